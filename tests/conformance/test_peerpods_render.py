"""The peer-pods stacks rendered with the pinned peerpods chart, judged by a real API server.

`python -m automation render` of aws-peerpods, azure-peerpods and gcp-peerpods, each with
`coco:cluster.adaptor.chart` pointing at the helm judge's peerpods 0.4.0 (the pinned archive,
its subcharts resolved locally: scripts/judges/helm/build.sh), so the chart is rendered into
the folder with the program's values (client-side `helm template`, hooks dropped) instead of
being listed. Checked:

- the adaptor's ConfigMap `peer-pods-cm` holds the keys the settings give and none of the
  keys only the cloud side could (they are listed in NOT-RENDERED.md), with this stack's
  default init-data; the adaptor DaemonSet and `kata-remote` RuntimeClass are rendered;
- no secret value given to the render is in any file;
- every object of the folder (the trusted zone's too) goes to a real kube-apiserver (kube
  judge): Namespaces created, then a server-side dry-run create with strict field validation
  for every other object whose kind the API server serves; objects of kinds a CRD brings
  (cert-manager's Certificate and Issuer for the webhook) are listed, since cert-manager is
  itself listed as not rendered.

    bash scripts/judges.sh helm kube
    pytest -m conformance tests/conformance/test_peerpods_render.py
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from builders import run_cli
from judges import judge_dir
from kube_cluster import KubeCluster, start_cluster

from automation.spec import PROJECT_DIR
from components import releases
from components.settings import parse, secret_refs, strip_namespace

pytestmark = [pytest.mark.conformance, pytest.mark.e2e]

STACKS = ("aws-peerpods", "azure-peerpods", "gcp-peerpods")
CLOUD_ONLY_KEYS = {
    "aws-peerpods": {"AWS_SG_IDS", "AWS_SUBNET_ID"},
    "azure-peerpods": {"AZURE_NSG_ID"},
    "gcp-peerpods": {"GCP_NETWORK"},
}
"""`peer-pods-cm` keys only the created cloud resources give (per the stacks' settings)."""


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KubeCluster]:
    bin_dir = judge_dir("kube") / "bin"
    with start_cluster(bin_dir, tmp_path_factory.mktemp("cluster")) as running:
        yield running


def render(stack: str, tmp: Path) -> tuple[str, Path, dict[str, str]]:
    chart = judge_dir("helm") / "charts" / f"peerpods-{releases.PEERPODS.version}"
    doc = yaml.safe_load((PROJECT_DIR / "stacks" / f"Pulumi.{stack}.yaml").read_text())
    doc["config"]["coco:cluster"]["adaptor"]["chart"] = str(chart)
    settings = parse(strip_namespace(doc["config"]))
    secrets = {
        ref: f"peerpods-secret-{i}-never-rendered"
        for i, (_, ref) in enumerate(secret_refs(settings))
    }
    file = tmp / f"Pulumi.{stack}.yaml"
    file.write_text(yaml.safe_dump(doc))
    out = tmp / "out"
    code, text = run_cli("render", file, tmp / "state", secrets=secrets, out=out)
    assert code == 0, text[-4000:]
    return text, out, secrets


def _collections(cluster: KubeCluster, api_versions: set[str]) -> dict[tuple[str, str], Any]:
    """(apiVersion, kind) -> (plural, namespaced) for what the API server serves."""
    out: dict[tuple[str, str], Any] = {}
    for api in sorted(api_versions):
        doc = cluster.get("/api/v1" if api == "v1" else f"/apis/{api}")
        for r in (doc or {}).get("resources", []):
            if "/" not in r["name"]:
                out[(api, r["kind"])] = (r["name"], r["namespaced"])
    return out


@pytest.mark.parametrize("stack", STACKS)
def test_the_cluster_side_renders_with_the_pinned_chart(
    stack: str, tmp_path: Path, cluster: KubeCluster
) -> None:
    _, out, secrets = render(stack, tmp_path)
    docs = [
        d
        for p in sorted(out.rglob("*.yaml"))
        for d in yaml.safe_load_all(p.read_text())
        if isinstance(d, dict)
    ]
    for p in out.rglob("*"):
        if p.is_file():
            body = p.read_text(errors="replace")
            assert not any(v in body for v in secrets.values()), p
    found = {(d["kind"], d["metadata"]["name"]): d for d in docs}
    cm = found[("ConfigMap", "peer-pods-cm")]["data"]
    assert cm["INITDATA"] and not (CLOUD_ONLY_KEYS[stack] & set(cm)), sorted(cm)
    not_rendered = (out / "NOT-RENDERED.md").read_text()
    for key in CLOUD_ONLY_KEYS[stack]:
        assert key in not_rendered, key
    assert ("DaemonSet", "cloud-api-adaptor-daemonset") in found or any(
        k[0] == "DaemonSet" and "cloud-api-adaptor" in k[1] for k in found
    ), sorted(found)
    assert ("RuntimeClass", "kata-remote") in found, sorted(found)
    assert "the peerpods chart oci://" not in not_rendered  # rendered, not listed

    collections = _collections(cluster, {d["apiVersion"] for d in docs})
    for ns in [d for d in docs if d["kind"] == "Namespace"]:
        if cluster.get(f"/api/v1/namespaces/{ns['metadata']['name']}") is None:
            cluster.create(ns)
    unserved = []
    for obj in docs:
        if obj["kind"] == "Namespace":
            continue
        key = (obj["apiVersion"], obj["kind"])
        if key not in collections:
            unserved.append(key)
            continue
        plural, namespaced = collections[key]
        base = "/api/v1" if obj["apiVersion"] == "v1" else f"/apis/{obj['apiVersion']}"
        path = (
            f"{base}/namespaces/{obj['metadata']['namespace']}/{plural}"
            if namespaced
            else f"{base}/{plural}"
        )
        created = cluster.request("POST", path + "?dryRun=All&fieldValidation=Strict", obj)
        assert created["metadata"]["name"] == obj["metadata"]["name"]
    # Only custom resources of what NOT-RENDERED.md lists (cert-manager) need a CRD first.
    assert {api for api, _ in unserved} <= {"cert-manager.io/v1"}, unserved
