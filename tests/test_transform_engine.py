"""The worked example through the real engine: an unmodified chart, made confidential.

examples/confidential_chart is an ordinary user Pulumi program: helm.v3.Chart renders the
fixture chart tests/fixtures/charts/webapp (written in the style of `helm create` and typical
public charts; coco never edits it) with `transformations=[confidential(...)]`. The engine and
Kubernetes provider are the real ones, rendering to a folder (no cluster): the rendered
Deployment and migration Job must carry the runtime class and the init-data whose digest the
program exports, pass the Kubernetes schemas, and the Service and ServiceAccount must be
exactly what the chart made.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from k8s_schema import validate_manifest
from mocks import fake_pem
from opa import opa_eval
from test_e2e_engine import (
    WEBAPP_CHART,
    Project,
    by_role,
    ear_token,
    engine_env,
    rendered,
    webapp_chart,
)

from components import labels
from policies.initdata import INITDATA_ANNOTATION, decode_annotation

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parent.parent
DIGEST = "sha256:" + "c" * 64


def _run(project: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    cmd = ["pulumi", *args, "--stack", "demo", "--non-interactive"]
    return subprocess.run(cmd, cwd=project, env=env, capture_output=True, text=True, timeout=600)


def _pulumi(project: Path, env: dict[str, str], *args: str) -> str:
    out = _run(project, env, *args)
    if out.returncode != 0:
        pytest.fail(f"pulumi {' '.join(args)} failed:\n{out.stdout}\n{out.stderr}")
    return out.stdout


def chart_example(
    tmp_path: Path, chart: Path = WEBAPP_CHART, **config: Any
) -> tuple[Path, dict[str, str]]:
    """examples/confidential_chart copied into `tmp_path` with its `demo` stack initialised
    on a fresh local backend: chart `chart`, rendering into out/, and `config` (keys without
    the project prefix) on top. Returns the project folder and the engine environment."""
    project = tmp_path / "project"
    shutil.copytree(ROOT / "examples" / "confidential_chart", project)
    doc = yaml.safe_load((project / "Pulumi.yaml").read_text())
    doc["runtime"]["options"]["virtualenv"] = str(ROOT / ".venv")
    (project / "Pulumi.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    (tmp_path / "kbs.pem").write_text(fake_pem("CERTIFICATE", "kbs"))
    settings = {
        "chart": str(chart),
        "kbsUrl": "https://kbs.example.com:8080",
        "kbsCertPath": str(tmp_path / "kbs.pem"),
        "renderDir": "out",
    } | config
    stack = {"config": {f"confidential-chart:{k}": v for k, v in settings.items()}}
    (project / "Pulumi.demo.yaml").write_text(yaml.safe_dump(stack))
    backend = tmp_path / "state"
    backend.mkdir()
    env = {**engine_env(backend, "demo"), "PYTHONPATH": str(ROOT)}  # coco's components
    _pulumi(project, env, "stack", "init")
    return project, env


def test_unmodified_chart_is_deployed_confidential(tmp_path: Path) -> None:
    values = {
        "image": {"repository": "registry.example.com/library/nginx", "digest": DIGEST},
        "migrations": {"enabled": True},
    }
    project, env = chart_example(tmp_path, production="true", values=values)
    _pulumi(project, env, "up", "--yes", "--skip-preview")
    digests: dict[str, str] = yaml.safe_load(
        _pulumi(project, env, "stack", "output", "initdataDigests", "--json")
    )
    assert sorted(digests) == ["Deployment/shop/webapp", "Job/shop/webapp-migrate"]

    docs = rendered(project / "out")
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for d in docs:
        validate_manifest(d)
        by_kind.setdefault(d["kind"], []).append(d)
    for kind, key in (("Deployment", "Deployment/shop/webapp"), ("Job", "Job/shop/webapp-migrate")):
        (obj,) = by_kind[kind]
        template = obj["spec"]["template"]
        assert template["spec"]["runtimeClassName"] == "kata-qemu-tdx"
        annotations = template["metadata"]["annotations"]
        assert annotations[labels.INITDATA_DIGEST_ANNOTATION] == digests[key]
        initdata = decode_annotation(annotations[INITDATA_ANNOTATION])
        assert "registry.example.com/library/nginx@" + DIGEST in initdata
    # The migration Job's command is pinned in its policy; the Deployment's image runs its
    # own ENTRYPOINT, so it has no argv pin.
    job_initdata = decode_annotation(
        by_kind["Job"][0]["spec"]["template"]["metadata"]["annotations"][INITDATA_ANNOTATION]
    )
    assert '"/app/migrate"' in job_initdata
    (svc,) = by_kind["Service"]
    assert svc["spec"]["selector"] == {
        "app.kubernetes.io/instance": "webapp",
        "app.kubernetes.io/name": "webapp",
    }
    assert "runtimeClassName" not in str(by_kind["ServiceAccount"])
    _pulumi(project, env, "destroy", "--yes", "--skip-preview")


def test_refused_workload_fails_before_anything_is_created(tmp_path: Path) -> None:
    """A tag without digest in production: the preview fails naming object and field, and
    the state holds no resource."""
    project, env = chart_example(tmp_path, production="true")
    out = _run(project, env, "preview")
    assert out.returncode != 0
    text = out.stdout + out.stderr
    assert "Deployment shop/webapp: spec.template.spec.containers.0.image" in text
    assert "has a tag but no digest" in text
    assert not (project / "out").exists() or not list((project / "out").rglob("*.yaml"))


def test_stack_deploys_the_chart_as_confidential_workloads(tmp_path: Path) -> None:
    """The dev stack with `coco:manifests` naming the fixture chart: through the real engine
    the chart's Deployment renders confidential, a second preview proposes nothing, and the
    rendered KBS resource policy releases the secret to that Deployment's digest only."""
    project = Project(tmp_path, "dev")
    project.write_stack_file("dev")

    def edit(config: dict[str, Any]) -> None:
        config["coco:manifests"] = [webapp_chart(DIGEST)]
        config["coco:trustee"]["resources"].append(
            {"path": "default/shop/key", "valueFrom": "demoKey", "readers": ["shop"]}
        )

    project.edit_config(edit)
    project.pulumi("stack", "init")
    project.pulumi("up", "--yes", "--skip-preview")
    project.pulumi("preview", "--expect-no-changes")
    outputs = json.loads(project.pulumi("stack", "output", "--json").stdout)
    digest = outputs["manifests"]["shop"]["Deployment/shop/shop-webapp"]

    docs = rendered(project.render_dir)
    for d in docs:
        validate_manifest(d)
    (web,) = [
        d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == "shop-webapp"
    ]
    template = web["spec"]["template"]
    assert template["spec"]["runtimeClassName"] == "kata-qemu-coco-dev"
    assert template["metadata"]["annotations"][labels.INITDATA_DIGEST_ANNOTATION] == digest
    assert template["metadata"]["labels"][labels.ENVIRONMENT] == "dev"
    (policy_cm,) = by_role(docs, "resource-policy")
    rego = policy_cm["data"]["policy.rego"]
    data = {"resource-path": "default/shop/key", "plugin": "resource"}
    assert opa_eval(rego, ear_token(digest, "sample"), data, "data.policy.allow") is True
    other = outputs["workloads"]["hello"]["initdataDigest"]
    assert opa_eval(rego, ear_token(other, "sample"), data, "data.policy.allow") is False
    project.pulumi("destroy", "--yes", "--skip-preview")


def test_chart_that_fails_to_render_fails_the_preview(tmp_path: Path) -> None:
    """A chart whose template does not render: the preview fails naming the chart's template,
    and nothing is rendered."""
    chart = tmp_path / "webapp"
    shutil.copytree(ROOT / "tests/fixtures/charts/webapp", chart)
    broken = chart / "templates" / "service.yaml"
    broken.write_text(broken.read_text() + "\n{{ .Values.service.port | nosuchfunction }}\n")
    project, env = chart_example(tmp_path, chart)
    out = _run(project, env, "preview")
    assert out.returncode != 0
    assert "nosuchfunction" in out.stdout + out.stderr
    assert not (project / "out").exists() or not list((project / "out").rglob("*.yaml"))


PROGRAM = """
import pulumi
import pulumi_kubernetes as k8s
from components.transform import confidential

config = pulumi.Config()
cert = open(config.require("cert")).read()
coco = confidential("kata-qemu-tdx", "https://kbs.example.com:8080", cert)
provider = k8s.Provider("k8s", render_yaml_to_directory="out")
k8s.apps.v1.Deployment(
    "web",
    metadata={"name": "web", "namespace": "shop"},
    spec={
        "selector": {"matchLabels": {"app": "web"}},
        "template": {
            "metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "web", "image": "%s"}]},
        },
    },
    opts=pulumi.ResourceOptions(provider=provider, transforms=[coco.transform]),
)
k8s.core.v1.ConfigMap(
    "cfg", metadata={"name": "cfg", "namespace": "shop"}, data={"a": "b"},
    opts=pulumi.ResourceOptions(provider=provider, transforms=[coco.transform]),
)
"""


def test_resource_transform_on_a_programs_own_objects(tmp_path: Path) -> None:
    """`ResourceOptions(transforms=[coco.transform])` through the real engine."""
    project = tmp_path / "project"
    project.mkdir()
    image = "registry.example.com/library/nginx@" + DIGEST
    (project / "__main__.py").write_text(PROGRAM % image)
    (project / "Pulumi.yaml").write_text(
        yaml.safe_dump(
            {
                "name": "own-objects",
                "runtime": {"name": "python", "options": {"virtualenv": str(ROOT / ".venv")}},
            }
        )
    )
    (tmp_path / "kbs.pem").write_text(fake_pem("CERTIFICATE", "kbs"))
    (project / "Pulumi.demo.yaml").write_text(
        yaml.safe_dump({"config": {"own-objects:cert": str(tmp_path / "kbs.pem")}})
    )
    backend = tmp_path / "state"
    backend.mkdir()
    env = {**engine_env(backend, "demo"), "PYTHONPATH": str(ROOT)}
    _pulumi(project, env, "stack", "init")
    _pulumi(project, env, "up", "--yes", "--skip-preview")
    docs = rendered(project / "out")
    (web,) = [d for d in docs if d["kind"] == "Deployment"]
    template = web["spec"]["template"]
    assert template["spec"]["runtimeClassName"] == "kata-qemu-tdx"
    initdata = decode_annotation(template["metadata"]["annotations"][INITDATA_ANNOTATION])
    assert image in initdata
    (cfg,) = [d for d in docs if d["kind"] == "ConfigMap"]
    assert cfg["data"] == {"a": "b"}
