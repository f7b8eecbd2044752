"""`python -m automation render` of the peer-pods stacks, through the real engine.

Each of aws-peerpods, azure-peerpods and gcp-peerpods renders its cluster side (the adaptor's
namespace and node-labelling Job, the workloads, the Trustee: in `trusted-zone/` where the
stack has a trusted zone) and lists its cloud side in NOT-RENDERED.md and the CLI output.
The peerpods chart is a registry chart in the stack files, so it is listed too, and its
values (the adaptor config known from the settings, the default init-data) are written as
peerpods-values.yaml. Checked: every rendered object is valid Kubernetes
(tests/k8s_schema.py, strict), no secret value given to the render is in any file or in the
output, the credentials Secret is never rendered, and each cloud resource group is named.

The local-chart render (the chart's own objects: adaptor DaemonSet, peer-pods-cm,
`kata-remote`) is judged with the helm judge's pinned chart in
tests/conformance/test_peerpods_render.py.

    bash scripts/setup.sh && source scripts/env.sh
    pytest -m e2e tests/test_e2e_peerpods_render.py
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from builders import run_cli
from k8s_schema import as_manifest, has_schema, validate_manifest

from automation.spec import PROJECT_DIR
from components.settings import parse, secret_refs, strip_namespace

pytestmark = pytest.mark.e2e

STACKS = ("aws-peerpods", "azure-peerpods", "gcp-peerpods")

CLOUD_SIDE: dict[str, tuple[str, ...]] = {
    "aws-peerpods": (
        "EKS cluster coco-payments",
        "EC2 security group",
        "IAM roles for service accounts",
    ),
    "azure-peerpods": (
        "network security group",
        "user-assigned managed identity",
        "role assignments",
    ),
    "gcp-peerpods": (
        "GKE cluster coco-inference",
        "firewall rule",
        "service account cloud-api-adaptor",
    ),
}
"""What each stack's NOT-RENDERED.md must name (its settings: created cluster, identity)."""


def stack_config(stack: str) -> dict[str, Any]:
    doc = yaml.safe_load((PROJECT_DIR / "stacks" / f"Pulumi.{stack}.yaml").read_text())
    return doc


def secrets_of(doc: dict[str, Any]) -> dict[str, str]:
    """A distinct value for every secret config key the stack reads."""
    plain = {k: v for k, v in doc["config"].items() if not (isinstance(v, dict) and "secure" in v)}
    settings = parse(strip_namespace(plain))
    return {
        ref: f"render-secret-{i}-must-not-leak" for i, (_, ref) in enumerate(secret_refs(settings))
    }


def render(
    stack: str, tmp: Path, config: dict[str, Any] | None = None
) -> tuple[str, Path, dict[str, str]]:
    doc = stack_config(stack)
    doc["config"].update(config or {})
    secrets = secrets_of(doc)
    file = tmp / f"Pulumi.{stack}.yaml"
    file.write_text(yaml.safe_dump(doc))
    out = tmp / "out"
    _, text = run_cli("render", file, tmp / "state", secrets=secrets, out=out)
    return text, out, secrets


def objects_in(out: Path) -> list[dict[str, Any]]:
    return [
        doc
        for p in sorted(out.rglob("*.yaml"))
        if p.name != "peerpods-values.yaml"
        for doc in yaml.safe_load_all(p.read_text())
        if isinstance(doc, dict)
    ]


@pytest.mark.parametrize("stack", STACKS)
def test_a_peer_pods_stack_renders_its_cluster_side(stack: str, tmp_path: Path) -> None:
    text, out, secrets = render(stack, tmp_path)
    assert text.startswith("exit 0"), text[-4000:]
    files = [p for p in out.rglob("*") if p.is_file()]
    for p in files:
        body = p.read_text(errors="replace")
        for value in secrets.values():
            assert value not in body, (p, value)
    for value in secrets.values():
        assert value not in text
    objects = objects_in(out)
    for obj in objects:
        if has_schema(as_manifest(obj)):
            validate_manifest(obj)
    kinds = {(o["kind"], o["metadata"]["name"]) for o in objects}
    settings = parse(strip_namespace(stack_config(stack)["config"]))
    assert ("Namespace", settings.cluster.adaptor.namespace) in kinds
    for w in settings.workloads:
        assert any(k[1] == w.name and k[0] in ("Deployment", "Pod") for k in kinds), w.name
    assert ("Secret", "peer-pods-secret") not in kinds  # credentials: by reference only
    with_values = [
        o for o in objects if o["kind"] == "Secret" and (o.get("data") or o.get("stringData"))
    ]
    assert with_values == [], [o["metadata"]["name"] for o in with_values]
    not_rendered = (out / "NOT-RENDERED.md").read_text()
    for item in CLOUD_SIDE[stack]:
        assert item in not_rendered, (item, not_rendered)
        assert item in text
    assert "the peerpods chart oci://" in not_rendered
    values = yaml.safe_load((out / "peerpods-values.yaml").read_text())
    provider = settings.cluster.cloud.provider
    configs = values["providerConfigs"][provider]
    assert configs["INITDATA"] and configs["VXLAN_PORT"] == str(settings.cluster.vxlan_port)
    assert values["secrets"]["mode"] == "reference"
    if settings.topology is not None and settings.topology.trustee_cluster is not None:
        assert any((out / "trusted-zone").rglob("*.yaml"))
