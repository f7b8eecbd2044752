"""End to end with the real Pulumi engine, offline, for every stack that needs no cloud account.

The bare-metal stacks target clusters we do not have here, so each runs with its Kubernetes
target switched to rendering (and, since a Helm release cannot be rendered, CoCo marked as
preinstalled): the program, the providers and the engine are the real ones. Each run checks
the lifecycle users rely on: `up`, a second `preview` that proposes nothing, a state export
holding no secret in plain text, rendered manifests that pass the Kubernetes schemas, rendered
Rego that OPA accepts and that releases the secret to the rendered workload's digest, and a
`destroy` that leaves nothing behind.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from k8s_schema import validate_manifest
from opa import opa_check_text, opa_eval

ROOT = Path(__file__).resolve().parent.parent
WEBAPP_CHART = ROOT / "tests" / "fixtures" / "charts" / "webapp"


def webapp_chart(digest: str) -> dict[str, Any]:
    """A `coco:manifests` entry naming the fixture chart (namespace shop), image pinned."""
    return {
        "name": "shop",
        "chart": str(WEBAPP_CHART),
        "namespace": "shop",
        "values": {"image": {"digest": digest}},
    }


PROJECT_FILES = ("__main__.py", "components", "policies")
STACKS = ["dev", "baremetal-tdx", "baremetal-snp", "gpu-tdx", "s390x-se"]

pytestmark = pytest.mark.e2e


def engine_env(backend: Path, stack: str) -> dict[str, str]:
    if shutil.which("pulumi") is None:
        pytest.fail(
            "the pulumi CLI is not on PATH: run `bash scripts/setup.sh; source scripts/env.sh`"
        )
    env = dict(os.environ)
    env.pop("PULUMI_CONFIG_PASSPHRASE_FILE", None)
    # The public dev passphrase decrypts the dev stack's committed demoKey; any other stack is
    # refused with it (components/secrets_provider.py), so it gets a passphrase of its own.
    passphrase = "coco-local-dev" if stack == "dev" else f"e2e-{stack}-{os.getpid()}"
    env.update(
        PULUMI_BACKEND_URL=f"file://{backend}",
        PULUMI_CONFIG_PASSPHRASE=passphrase,
        PULUMI_SKIP_UPDATE_CHECK="true",
        PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION="true",
    )
    return env


class Project:
    """A throwaway copy of the project, so config edits never touch the repo's stack files."""

    def __init__(self, tmp: Path, stack: str) -> None:
        self.dir = tmp / "project"
        self.stack = stack
        self.dir.mkdir()
        for name in PROJECT_FILES:
            src = ROOT / name
            if src.is_dir():
                shutil.copytree(src, self.dir / name, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                shutil.copy(src, self.dir / name)
        (self.dir / "stacks").mkdir()
        project = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())
        project["runtime"]["options"]["virtualenv"] = str(ROOT / ".venv")
        (self.dir / "Pulumi.yaml").write_text(yaml.safe_dump(project, sort_keys=False))
        self.render_dir = self.dir / "out" / stack
        backend = tmp / "state"
        backend.mkdir()
        self.env = engine_env(backend, stack)

    def pulumi(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        cmd = ["pulumi", *args, "--stack", self.stack, "--non-interactive"]
        out = subprocess.run(
            cmd, cwd=self.dir, env=self.env, capture_output=True, text=True, timeout=600
        )
        if check and out.returncode != 0:
            pytest.fail(f"{' '.join(cmd)} failed:\n{out.stdout}\n{out.stderr}")
        return out

    def link_local_charts(self) -> None:
        """The repo's `.charts/` (scripts/charts.sh), so a stack naming `./.charts/...`
        renders its chart offline from this copy as from the repo."""
        charts = ROOT / ".charts"
        if not (charts / "kata-deploy-4.1.0" / "Chart.yaml").is_file():
            pytest.fail("no .charts/kata-deploy-4.1.0: run `bash scripts/setup.sh`")
        (self.dir / ".charts").symlink_to(charts, target_is_directory=True)

    def write_stack_file(self, name: str, local_chart: bool = False) -> dict[str, Any]:
        """The repo's stack file, retargeted to render into this project's out/ folder.

        kata-deploy is taken as `preinstalled` (no chart fetched), unless `local_chart` and
        the stack names a local chart folder (the dev stack): that one is rendered as in the
        repo."""
        doc = yaml.safe_load((ROOT / "stacks" / f"Pulumi.{name}.yaml").read_text())
        # The example's KMS/Vault provider cannot be reached offline: the copy uses the
        # passphrase provider (with a private passphrase, see engine_env).
        doc.pop("secretsprovider", None)
        config = doc["config"]
        config["coco:kubernetes"] = {"renderDir": f"out/{self.stack}"}
        topology = config.get("coco:topology") or {}
        if topology.get("trusteeCluster"):  # the trusted zone renders beside it
            topology["trusteeCluster"] = {"renderDir": f"out/{self.stack}/trusted-zone"}
        cluster = config["coco:cluster"]
        install = cluster.setdefault("install", {})
        if local_chart and str(install.get("chart", "")).startswith("./"):
            self.link_local_charts()
        else:
            install["method"] = "preinstalled"
        if "gpu" in cluster:
            cluster["gpu"].setdefault("operator", {})["install"] = False
        path = self.dir / "stacks" / f"Pulumi.{self.stack}.yaml"
        path.write_text(yaml.safe_dump(doc, sort_keys=False))
        return dict(config)

    def edit_config(self, edit: Callable[[dict[str, Any]], None]) -> None:
        """Change the written stack file's `config` in place (after `write_stack_file`)."""
        path = self.dir / "stacks" / f"Pulumi.{self.stack}.yaml"
        doc = yaml.safe_load(path.read_text())
        edit(doc["config"])
        path.write_text(yaml.safe_dump(doc, sort_keys=False))


def secret_keys(config: dict[str, Any]) -> list[str]:
    keys = [r["valueFrom"] for r in config.get("coco:trustee", {}).get("resources", [])]
    return [k for k in keys if f"coco:{k}" not in config]


def sealed_references_only(secret: dict[str, Any]) -> bool:
    """A rendered Secret whose every value is a sealed reference (`sealed.<jws>`)."""
    values = list((secret.get("stringData") or {}).values())
    values += [base64.b64decode(v).decode() for v in (secret.get("data") or {}).values()]
    return bool(values) and all(v.startswith("sealed.") for v in values)


def rendered(render_dir: Path) -> list[dict[str, Any]]:
    docs = []
    for path in sorted(render_dir.rglob("*.yaml")):
        docs += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return docs


def by_role(docs: list[dict[str, Any]], role: str) -> list[dict[str, Any]]:
    key = "coco.confidentialcontainers.org/role"
    return [d for d in docs if d["metadata"].get("labels", {}).get(key) == role]


def ear_token(claim: str, platform: str) -> dict[str, Any]:
    return {
        "submods": {
            "cpu0": {
                "ear.status": "affirming",
                "ear.veraison.annotated-evidence": {platform: {}, "init_data": claim},
            }
        }
    }


@pytest.mark.parametrize("name", STACKS)
def test_stack_lifecycle_with_the_real_engine(tmp_path: Path, name: str) -> None:
    project = Project(tmp_path, name)
    config = project.write_stack_file(name, local_chart=True)
    project.pulumi("stack", "init")
    known_secrets = {}
    for key in secret_keys(config):
        value = f"e2e-{name}-{key}-5c1d"
        project.pulumi("config", "set", "--secret", key, value)
        known_secrets[key] = value
    if name == "dev":
        known_secrets["demoKey"] = "coco-dev-demo-key-not-a-real-secret"
    assert known_secrets, "the stack reads at least one KBS secret"

    project.pulumi("up", "--yes", "--skip-preview")
    project.pulumi("preview", "--expect-no-changes", "--diff")

    # State: secrets encrypted, never in plain text.
    export = project.pulumi("stack", "export").stdout
    tls_key = project.pulumi("stack", "output", "kbsTlsPrivateKey", "--show-secrets").stdout
    assert "PRIVATE KEY" in tls_key
    body = tls_key.strip().splitlines()[1]
    for value in [*known_secrets.values(), body]:
        assert value not in export

    # Rendered manifests: schema-valid, and no secret values in them either.
    docs = rendered(project.render_dir)
    assert docs, "manifests were rendered"
    text = "\n".join((p.read_text()) for p in project.render_dir.rglob("*.yaml"))
    for value in [*known_secrets.values(), body]:
        assert value not in text
    for doc in docs:
        validate_manifest(doc)
    # Rendering references the KBS's Secrets only; a workload's sealed-secret Secret holds
    # signed references (`sealed.`), no value, so it is rendered like any other object.
    secrets = [d for d in docs if d["kind"] == "Secret"]
    assert all(sealed_references_only(d) for d in secrets), "rendering references Secrets only"
    # The dev stack renders kata-deploy from its local chart (the whole cluster side), with
    # no Helm hook (its post-delete cleanup Job would uninstall Kata on the first sync).
    daemonsets = [d["metadata"]["name"] for d in docs if d["kind"] == "DaemonSet"]
    assert daemonsets == (["kata-deploy"] if name == "dev" else [])
    assert not [d for d in docs if "helm.sh/hook" in (d["metadata"].get("annotations") or {})]

    # Rendered Rego: OPA accepts it, and the KBS releases the secret to the rendered pod.
    (policy_cm,) = by_role(docs, "resource-policy")
    resource_policy = policy_cm["data"]["policy.rego"]
    opa_check_text(resource_policy)
    outputs = json.loads(project.pulumi("stack", "output", "--json").stdout)
    initdata = by_role(docs, "initdata")
    assert len(initdata) == len(outputs["workloads"])
    for cm in initdata:
        opa_check_text(cm["data"]["policy.rego"])
        workload = cm["metadata"]["labels"]["coco.confidentialcontainers.org/workload"]
        claim = outputs["workloads"][workload]["initdataDigest"]
        assert (
            cm["metadata"]["annotations"]["coco.confidentialcontainers.org/initdata-digest"]
            == claim
        )
    resource = config["coco:trustee"]["resources"][0]
    reader = resource["readers"][0]
    claim = outputs["workloads"][reader]["initdataDigest"]
    platform = {"kata-qemu-coco-dev": "sample", "kata-qemu-se": "se"}.get(
        outputs["workloads"][reader]["runtimeClass"],
        "snp" if "snp" in outputs["workloads"][reader]["runtimeClass"] else "tdx",
    )
    token = ear_token(claim, platform)
    if resource.get("requireGpu"):
        token["submods"]["gpu0"] = {"ear.status": "affirming"}
    data = {"resource-path": resource["path"], "plugin": "resource"}
    assert opa_eval(resource_policy, token, data, "data.policy.allow") is True
    wrong = ear_token("00" * (len(claim) // 2), platform)
    assert opa_eval(resource_policy, wrong, data, "data.policy.allow") is False

    # Destroy: the folder is empty and the stack holds no resources.
    project.pulumi("destroy", "--yes", "--skip-preview")
    assert not [p for p in project.render_dir.rglob("*") if p.is_file()]
    state = json.loads(project.pulumi("stack", "export").stdout)
    assert not state["deployment"].get("resources")


def test_hardware_mismatch_fails_at_preview_before_any_resource(tmp_path: Path) -> None:
    project = Project(tmp_path, "mismatch")
    config = project.write_stack_file("baremetal-tdx")
    config["coco:workloads"][0]["runtimeClass"] = "kata-qemu-snp"
    path = project.dir / "stacks" / "Pulumi.mismatch.yaml"
    path.write_text(yaml.safe_dump({"config": config}, sort_keys=False))
    project.pulumi("stack", "init")
    project.pulumi("config", "set", "--secret", "apiDbPassword", "e2e-mismatch-secret")
    out = project.pulumi("preview", check=False)
    assert out.returncode != 0
    text = out.stdout + out.stderr
    assert "coco:workloads[0].runtimeClass" in text
    assert "Traceback" not in text
    assert "'kata-qemu-snp' needs TEE snp" in text and "TEE tdx" in text
    state = json.loads(project.pulumi("stack", "export").stdout)
    assert not state["deployment"].get("resources")


def test_changing_the_renewal_window_keeps_the_certificate(tmp_path: Path) -> None:
    """A new `renewBeforeHours` is an in-place update: same key, same init-data, no rollout."""
    project = Project(tmp_path, "dev")
    config = project.write_stack_file("dev")
    project.pulumi("stack", "init")
    project.pulumi("up", "--yes", "--skip-preview")
    before = json.loads(project.pulumi("stack", "output", "--json").stdout)

    tls = config["coco:trustee"].setdefault("tls", {})
    tls["renewBeforeHours"] = 100
    path = project.dir / "stacks" / "Pulumi.dev.yaml"
    doc = yaml.safe_load(path.read_text())
    doc["config"] = config
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    preview = project.pulumi("preview", "--diff").stdout
    assert "replace" not in preview.lower(), preview
    project.pulumi("up", "--yes", "--skip-preview")
    after = json.loads(project.pulumi("stack", "output", "--json").stdout)
    assert after["kbsCertificate"] == before["kbsCertificate"]
    assert after["workloads"] == before["workloads"], "init-data digests unchanged"
    project.pulumi("preview", "--expect-no-changes")
    project.pulumi("destroy", "--yes", "--skip-preview")
