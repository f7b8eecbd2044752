"""A YAML program that is not coco's uses coco's components through the component package.

Upstream Pulumi YAML (the `yaml` judge: pulumi-language-yaml built from
github.com/pulumi/pulumi-yaml) reads the package schema from `package/pulumi-resource-coco`,
type-checks examples/package_yaml/Pulumi.yaml against it and registers the components as
remote components; the engine has the package's provider construct them. Render mode: the
manifests go to the project's out/ folder, no cluster needed. The checks: the workload's
init-data digest output crosses the boundary and is the digest of the init-data it rendered,
the Trustee's resource policy (fed that output) releases the secret to it and to nothing else,
secrets stay secrets, a second preview proposes nothing, a bad argument is refused naming it,
and destroy leaves nothing.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from judges import judge_dir
from opa import opa_eval

from policies.initdata import initdata_claim_hex

pytestmark = pytest.mark.conformance

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "package_yaml"
PLUGIN_DIR = ROOT / "package"
ROLE = "coco.confidentialcontainers.org/role"


class Consumer:
    """A copy of the example project, its `packages.coco` pointed at this checkout's package."""

    def __init__(self, tmp: Path, host: Path) -> None:
        self.dir = tmp / "consumer"
        shutil.copytree(EXAMPLE, self.dir, ignore=shutil.ignore_patterns("out"))
        doc = yaml.safe_load((self.dir / "Pulumi.yaml").read_text())
        doc["packages"]["coco"] = str(PLUGIN_DIR)
        (self.dir / "Pulumi.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
        (tmp / "state").mkdir()
        self.env = {
            **os.environ,
            "PATH": f"{host}{os.pathsep}{os.environ['PATH']}",
            # The package's components make their keys with Python dynamic resources, which
            # the engine runs in the consumer's environment: they import coco's modules.
            "PYTHONPATH": str(ROOT),
            "PULUMI_BACKEND_URL": f"file://{tmp / 'state'}",
            "PULUMI_CONFIG_PASSPHRASE": f"package-{os.getpid()}",
            "PULUMI_SKIP_UPDATE_CHECK": "true",
            "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION": "true",
        }
        self.env.pop("PULUMI_CONFIG_PASSPHRASE_FILE", None)

    def pulumi(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        cmd = ["pulumi", *args, "--stack", "dev", "--non-interactive"]
        out = subprocess.run(
            cmd, cwd=self.dir, env=self.env, capture_output=True, text=True, timeout=600
        )
        if check and out.returncode != 0:
            pytest.fail(f"{' '.join(cmd)} failed:\n{out.stdout}\n{out.stderr}")
        return out

    def rendered(self) -> list[dict[str, Any]]:
        docs: list[dict[str, Any]] = []
        for path in sorted((self.dir / "out").rglob("*.yaml")):
            docs += [d for d in yaml.safe_load_all(path.read_text()) if d]
        return docs


@pytest.fixture
def consumer(tmp_path: Path) -> Consumer:
    if shutil.which("pulumi") is None:
        pytest.fail("the pulumi CLI is not on PATH: run `bash scripts/setup.sh`")
    return Consumer(tmp_path, judge_dir("yaml") / "bin")


def ear_token(claim: str) -> dict[str, Any]:
    evidence = {"sample": {}, "init_data": claim}
    cpu = {"ear.status": "affirming", "ear.veraison.annotated-evidence": evidence}
    return {"submods": {"cpu0": cpu}}


def test_a_yaml_program_deploys_coco_components_through_the_package(consumer: Consumer) -> None:
    consumer.pulumi("stack", "init")
    consumer.pulumi("up", "--yes", "--skip-preview")
    outputs = json.loads(consumer.pulumi("stack", "output", "--json").stdout)

    # The digest output crossed the package boundary, and it is the digest of what was rendered.
    docs = consumer.rendered()
    (initdata,) = [d for d in docs if d["metadata"].get("labels", {}).get(ROLE) == "initdata"]
    text = initdata["data"]["initdata.toml"]
    digest = outputs["initdataDigest"]
    assert outputs["algorithm"] == "sha384"
    assert digest == initdata_claim_hex(text, "sha384", None)
    (pod,) = [d for d in docs if d["kind"] == "Pod"]
    annotations = pod["metadata"]["annotations"]
    assert annotations["coco.confidentialcontainers.org/initdata-digest"] == digest
    assert pod["spec"]["runtimeClassName"] == "kata-qemu-coco-dev"

    # The Trustee, fed that output, releases the secret to exactly that digest.
    policy = outputs["resourcePolicy"]
    data = {"resource-path": "default/db/password", "plugin": "resource"}
    assert opa_eval(policy, ear_token(digest), data, "data.policy.allow") is True
    assert opa_eval(policy, ear_token("00" * 48), data, "data.policy.allow") is False
    (cm,) = [d for d in docs if d["metadata"].get("labels", {}).get(ROLE) == "resource-policy"]
    assert cm["data"]["policy.rego"] == policy

    # Secrets stay secrets across the boundary: masked in outputs, encrypted in state.
    assert outputs["tokenSignerPrivateKeyPem"] == "[secret]"
    key = consumer.pulumi(
        "stack", "output", "tokenSignerPrivateKeyPem", "--show-secrets"
    ).stdout.strip()
    assert "PRIVATE KEY" in key
    state = consumer.pulumi("stack", "export").stdout
    assert key.splitlines()[1] not in state
    urns = [r["urn"] for r in json.loads(state)["deployment"]["resources"]]
    assert any(u.endswith("coco:index:ConfidentialWorkload::app") for u in urns)
    assert any("coco:index:ConfidentialWorkload$kubernetes:core/v1:Pod::app" in u for u in urns)

    consumer.pulumi("preview", "--expect-no-changes")
    consumer.pulumi("destroy", "--yes", "--skip-preview")
    assert not [p for p in (consumer.dir / "out").rglob("*") if p.is_file()]
    # The YAML host caches a plugin's schema as `schema-<name>.json` next to the plugin path it
    # was given (pulumi sdk v3.215.0 workspace/plugins.go, when the plugin reports a version):
    # through `packages:` it writes none, so the checkout stays clean.
    assert not list(ROOT.glob("schema-coco*.json")) and not list(PLUGIN_DIR.glob("schema-*"))


def test_a_bad_argument_is_refused_naming_it(consumer: Consumer) -> None:
    path = consumer.dir / "Pulumi.yaml"
    doc = yaml.safe_load(path.read_text())
    doc["resources"]["app"]["properties"]["containers"][0]["name"] = "Not_A_Label"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    consumer.pulumi("stack", "init")
    out = consumer.pulumi("preview", check=False)
    assert out.returncode != 0
    text = out.stdout + out.stderr
    assert "args.containers[0].name" in text and "DNS-1123" in text, text
    state = json.loads(consumer.pulumi("stack", "export").stdout)
    assert not [
        r for r in state["deployment"].get("resources", []) if r["type"].startswith("kubernetes:")
    ]
