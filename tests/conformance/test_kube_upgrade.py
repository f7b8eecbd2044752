"""Upgrading a live stack from the previous release set to the current one (docs/upgrades.md),
through the real engine against a real control plane (kube_cluster.py: kube-apiserver + kwok).

The stack is baremetal-tdx with `install.method: chart`, so Pulumi owns kata-deploy's Helm release
and the RuntimeClasses. It is deployed on the previous set (`coco:cluster.releaseSet: 3.29.0`:
the upstream kata-deploy 3.29.0 chart, laid out by the helm judge), then moved to the current set
(kata-deploy 4.1.0) by removing that one key, as an operator would. What only a cluster shows:

- what re-rolls and what does not: the preview proposes updates to the kata-deploy release and the
  RuntimeClass only, no replacement and no delete; the DaemonSet is the same object and rolls its
  pods onto the 4.1.0 image; the RuntimeClass is the same object with the TEE key added to its
  overhead; the workload's Deployment, pods and init-data, and the KBS, are not touched;
- no pod ever exists without its RuntimeClass, watched by a poller for the whole `up`;
- the KBS stays available for the whole `up` (a poller), and its rollout strategy would keep it so
  had it rolled (`maxUnavailable: 0`);
- old runtime config: no DaemonSet pod still runs the 3.29.0 image, one kata-deploy DaemonSet is
  left on the cluster, and Helm's own release records show which objects each direction adds
  and drops (4.1.0 drops none of 3.29.0's; the rollback drops what 4.1.0 added, and those
  objects are gone). The NodeFeatureRule kata-deploy <= 4.0's binary
  applied at run time (`amd64-tee-keys`, outside the release) is NOT removed by the upgrade; it is
  emulated here (kwok runs no kata-deploy binary) to prove the documented manual step is needed
  and names the right object;
- rollback: putting the key back returns the release, DaemonSet image and RuntimeClass to the
  previous set, again without an orphaned pod or a KBS outage.

The Helm tier part renders both sets' kata-deploy values with their own upstream chart.
"""

from __future__ import annotations

import base64
import gzip
import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from judges import judge_dir
from kube_cluster import KubeCluster, start_cluster
from kube_stack import KubeProject, install_nfd_crds, kata_deploy_chart
from test_charts import chart_dir, helm_template
from test_kube_e2e import check_placement, outputs, ready, trustee_ready, workload_pods

from components import releases, trustee
from components.cluster import gpu_operator_values, kata_deploy_values
from components.settings import BareMetalCluster, strip_namespace

pytestmark = [pytest.mark.conformance, pytest.mark.e2e]

PREVIOUS = releases.PREVIOUS
CURRENT = releases.CURRENT
KATA_NS = "kata-system"
RC = "kata-qemu-tdx"
TDX_KEY = "tdx.intel.com/keys"
LEGACY_RULE = "amd64-tee-keys"
"""The NodeFeatureRule kata-deploy <= 4.0's binary applies at run time (kata-containers 3.29.0
`tools/packaging/kata-deploy/node-feature-rules/x86_64-tee-keys.yaml`, `binary/src/k8s/nfd.rs`)."""
CHART_RULE = "kata-tee-keys"
"""The one kata-deploy 4.1.0's chart renders (`templates/node-feature-rules.yaml`: "Deliberately
not the legacy `amd64-tee-keys` name the binary used")."""
NFR_PATH = "/apis/nfd.k8s-sigs.io/v1alpha1/nodefeaturerules"
STATE_CONFIGMAP = "kata-deploy-kata-deploy-state"
"""kata-deploy 4.1.0's install identity (`templates/kata-deploy-state.yaml`: `<release>-kata-deploy-
state`), which an upgrade from a release without it derives from the old DaemonSet's name."""
ROOT = Path(__file__).resolve().parents[2]

UPDATED_ON_UPGRADE = {"kubernetes:helm.sh/v3:Release", "kubernetes:node.k8s.io/v1:RuntimeClass"}
"""The only resource types whose objects an upgrade from the previous set changes."""


# --------------------------------------------------------------------------- the Helm tier


def cluster_config(release_set: str) -> dict[str, Any]:
    """baremetal-tdx's `coco:cluster` on `release_set`."""
    doc = yaml.safe_load((ROOT / "stacks" / "Pulumi.baremetal-tdx.yaml").read_text())
    cluster = dict(strip_namespace(doc["config"])["cluster"])
    cluster["releaseSet"] = release_set
    return cluster


def daemonset_env(docs: list[dict[str, Any]]) -> tuple[str, dict[str, str]]:
    (ds,) = [d for d in docs if d.get("kind") == "DaemonSet"]
    (container,) = ds["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e.get("value", "") for e in container.get("env", [])}
    return container["image"], env


@pytest.mark.parametrize("release_set", [PREVIOUS, CURRENT], ids=lambda s: s.name)
def test_each_sets_values_render_with_its_own_chart(
    tmp_path: Path, release_set: releases.ReleaseSet
) -> None:
    """Real Helm renders each set's kata-deploy values with that set's upstream chart: the same
    one TDX shim with guest pull; a NodeFeatureRule from the chart on the current set only (the
    previous set's binary applies its own); no RuntimeClass from the chart on either."""
    home = judge_dir("helm")
    settings = BareMetalCluster.model_validate(cluster_config(release_set.name))
    assert settings.install.version == release_set.kata_deploy.version
    values = kata_deploy_values(settings, [RC])
    chart = chart_dir(home, "kata-deploy", release_set.kata_deploy.version)
    docs = helm_template(home, chart, "kata-deploy", KATA_NS, values, tmp_path)
    image, env = daemonset_env(docs)
    assert image.endswith(f":{release_set.kata_deploy.app_version}"), image
    assert env["SHIMS_X86_64"] == "qemu-tdx"
    assert env["DEFAULT_SHIM_X86_64"] == "qemu-tdx"
    assert env["SNAPSHOTTER_HANDLER_MAPPING_X86_64"] == "qemu-tdx:nydus"
    assert env["PULL_TYPE_MAPPING_X86_64"] == "qemu-tdx:guest-pull"
    assert not [d for d in docs if d.get("kind") == "RuntimeClass"]
    rules = sorted(d["metadata"]["name"] for d in docs if d.get("kind") == "NodeFeatureRule")
    assert rules == ([CHART_RULE] if release_set is CURRENT else [])


@pytest.mark.parametrize("release_set", [PREVIOUS, CURRENT], ids=lambda s: s.name)
def test_each_sets_gpu_operator_values_render_with_its_own_chart(
    tmp_path: Path, release_set: releases.ReleaseSet
) -> None:
    """gpu-tdx's GPU Operator values on each set, rendered by that set's operator chart: the
    same confidential-computing ClusterPolicy, so an upgrade changes the operator's version,
    not what it does. The operator's own Kata manager is off on both: written off for v26.3.1,
    which honors it, and left at the chart's default (off) for v26.7.0, which ignores it."""
    home = judge_dir("helm")
    doc = yaml.safe_load((ROOT / "stacks" / "Pulumi.gpu-tdx.yaml").read_text())
    cluster = dict(strip_namespace(doc["config"])["cluster"])
    cluster["releaseSet"] = release_set.name
    settings = BareMetalCluster.model_validate(cluster)
    assert settings.gpu is not None
    assert settings.gpu.operator.version == release_set.gpu_operator.version
    chart = chart_dir(home, "gpu-operator", release_set.gpu_operator.version)
    docs = helm_template(
        home, chart, "gpu-operator", "gpu-operator", gpu_operator_values(settings), tmp_path
    )
    (policy,) = [d["spec"] for d in docs if d.get("kind") == "ClusterPolicy"]
    assert policy["sandboxWorkloads"]["enabled"] is True
    assert policy["sandboxWorkloads"]["mode"] == "kata"
    assert (policy["ccManager"]["enabled"], policy["ccManager"]["defaultMode"]) == (True, "on")
    assert policy["kataSandboxDevicePlugin"]["enabled"] is True
    assert policy["kataManager"]["enabled"] is False
    assert not [d for d in docs if d.get("kind") == "RuntimeClass"]


# --------------------------------------------------------------------------- the kube tier


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[KubeCluster]:
    with start_cluster(judge_dir("kube") / "bin", tmp_path / "cluster") as running:
        yield running


def helm_releases(cluster: KubeCluster, namespace: str, name: str) -> dict[int, dict[str, Any]]:
    """Helm's own records of release `name` (its storage Secrets: base64 of gzipped JSON, in a
    Secret's base64 data), by revision."""
    selector = f"owner%3Dhelm%2Cname%3D{name}"
    out = {}
    for secret in cluster.items(f"/api/v1/namespaces/{namespace}/secrets?labelSelector={selector}"):
        raw = base64.b64decode(base64.b64decode(secret["data"]["release"]))
        record = json.loads(gzip.decompress(raw))
        out[int(record["version"])] = record
    return out


def manifest_objects(record: dict[str, Any]) -> set[tuple[str, str, str]]:
    """(kind, namespace, name) of every object in a Helm release record's manifest."""
    found = set()
    for doc in yaml.safe_load_all(record["manifest"]):
        if doc:
            meta = doc["metadata"]
            found.add((doc["kind"], meta.get("namespace", ""), meta["name"]))
    return found


def object_path(kind: str, namespace: str, name: str) -> str:
    groups = {
        "DaemonSet": "/apis/apps/v1",
        "ClusterRole": "/apis/rbac.authorization.k8s.io/v1",
        "ClusterRoleBinding": "/apis/rbac.authorization.k8s.io/v1",
        "Role": "/apis/rbac.authorization.k8s.io/v1",
        "RoleBinding": "/apis/rbac.authorization.k8s.io/v1",
        "NodeFeatureRule": "/apis/nfd.k8s-sigs.io/v1alpha1",
    }
    base = groups.get(kind, "/api/v1")
    plural = kind.lower() + "s"
    cluster_scoped = kind in {"ClusterRole", "ClusterRoleBinding", "NodeFeatureRule"}
    ns = "" if cluster_scoped else f"/namespaces/{namespace or KATA_NS}"
    return f"{base}{ns}/{plural}/{name}"


def kata_daemonset(cluster: KubeCluster) -> dict[str, Any]:
    ds = cluster.get(f"/apis/apps/v1/namespaces/{KATA_NS}/daemonsets/kata-deploy")
    assert ds is not None, "the kata-deploy DaemonSet exists"
    return dict(ds)


def daemonset_pods(cluster: KubeCluster) -> list[dict[str, Any]]:
    return [
        p
        for p in cluster.pods(KATA_NS)
        if p["metadata"].get("labels", {}).get("name") == "kata-deploy"
    ]


@dataclass
class Watch:
    found: list[str] = field(default_factory=list)
    polls: int = 0
    """Completed polls: a watch that never got an answer proves nothing."""


@contextmanager
def watch(check: Callable[[], str | None], interval: float = 0.2) -> Iterator[Watch]:
    """Poll `check` until the block ends; every non-None answer is a finding."""
    out = Watch()
    stop = threading.Event()

    def poll() -> None:
        while not stop.is_set():
            with suppress(Exception):
                problem = check()
                out.polls += 1
                if problem:
                    out.found.append(problem)
            stop.wait(interval)

    thread = threading.Thread(target=poll, daemon=True)
    thread.start()
    try:
        yield out
    finally:
        stop.set()
        thread.join(timeout=10)


class Snapshot:
    """What must not change across the upgrade: the KBS and the workload, object by object."""

    def __init__(self, cluster: KubeCluster, config: dict[str, Any]) -> None:
        self.cluster = cluster
        w = config["coco:workloads"][0]
        self.ns, self.name = w["namespace"], w["name"]
        self.trustee_ns = config["coco:trustee"].get("namespace", "trustee")
        apps = "/apis/apps/v1/namespaces"
        self.kbs_path = f"{apps}/{self.trustee_ns}/deployments/{trustee.DEPLOYMENT_NAME}"
        self.workload_path = f"{apps}/{self.ns}/deployments/{self.name}"
        self.kbs = self._identity(self.kbs_path)
        self.workload = self._identity(self.workload_path)
        self.workload_pods = self._pods()
        self.kbs_pods = self._kbs_pods()

    def _identity(self, path: str) -> tuple[str, int]:
        obj = self.cluster.get(path)
        assert obj is not None, path
        return obj["metadata"]["uid"], obj["metadata"]["generation"]

    def _pods(self) -> set[str]:
        return {p["metadata"]["name"] for p in workload_pods(self.cluster, self.name, self.ns)}

    def _kbs_pods(self) -> set[str]:
        return {
            p["metadata"]["name"]
            for p in self.cluster.pods(self.trustee_ns)
            if ready(p) and not p["metadata"].get("deletionTimestamp")
        }

    def kbs_serving(self) -> str | None:
        """None while the KBS Deployment is the same object with a Ready replica."""
        dep = self.cluster.get(self.kbs_path)
        if dep is None:
            return "the KBS Deployment is gone"
        if dep["metadata"]["uid"] != self.kbs[0]:
            return "the KBS Deployment was replaced"
        if int(dep.get("status", {}).get("availableReplicas") or 0) < 1:
            return f"the KBS had no available replica: {dep.get('status')}"
        return None

    def assert_untouched(self) -> None:
        assert self._identity(self.kbs_path) == self.kbs, "the KBS Deployment changed"
        assert self._kbs_pods() == self.kbs_pods, "the KBS pods were replaced"
        assert self._identity(self.workload_path) == self.workload, "the workload changed"
        assert self._pods() == self.workload_pods, "the workload's pods were re-rolled"


def emulate_legacy_rule(cluster: KubeCluster) -> None:
    """The NodeFeatureRule kata-deploy 3.29.0's binary applies on a node with NFD (its
    `setup_nfd_rules`: the file's name, with the ownership labels it inserts), abridged to the
    TDX rule: kwok runs no kata-deploy binary, so the test puts it where the binary would."""
    cluster.request(
        "POST",
        NFR_PATH,
        {
            "apiVersion": "nfd.k8s-sigs.io/v1alpha1",
            "kind": "NodeFeatureRule",
            "metadata": {
                "name": LEGACY_RULE,
                "labels": {
                    "app.kubernetes.io/managed-by": "kata-deploy",
                    "kata-deploy/instance": "default",
                },
            },
            "spec": {
                "rules": [
                    {
                        "name": "intel.tdx",
                        "labels": {"intel.feature.node.kubernetes.io/tdx": "true"},
                        "extendedResources": {TDX_KEY: "@cpu.security.tdx.total_keys"},
                        "matchFeatures": [
                            {
                                "feature": "cpu.security",
                                "matchExpressions": {"tdx.enabled": {"op": "Exists"}},
                            }
                        ],
                    }
                ]
            },
        },
    )


def preview_steps(project: KubeProject) -> list[tuple[str, str]]:
    """(op, resource type) of every step `pulumi preview --json` proposes."""
    doc = json.loads(project.pulumi("preview", "--json").stdout)
    steps = []
    for step in doc.get("steps", []):
        # urn:pulumi:<stack>::<project>::<parent types $-joined>$<type>::<name>
        rtype = step["urn"].split("::")[2].rsplit("$", 1)[-1]
        steps.append((step["op"], rtype))
    return steps


def check_proposed_changes(steps: list[tuple[str, str]]) -> None:
    """Updates of the release and the RuntimeClass, nothing else. The one read that comes or
    goes with the set is the NFD CRD the current set requires (its chart renders a
    NodeFeatureRule, components/cluster.py); a read changes nothing on the cluster."""
    changed = {(op, t) for op, t in steps if op not in ("same", "read", "discard")}
    assert changed == {("update", t) for t in UPDATED_ON_UPGRADE}, steps
    reads = {t for op, t in steps if op in ("read", "discard")}
    assert reads <= {"kubernetes:apiextensions.k8s.io/v1:CustomResourceDefinition"}, steps


def move(
    project: KubeProject, config: dict[str, Any], chart: Path, release_set: str | None
) -> dict[str, Any]:
    """The stack on another release set: the key set (or removed, for the current set), and the
    local chart folder of that set's kata-deploy (a user's stack names the OCI reference)."""
    cluster = config["coco:cluster"]
    cluster["install"]["chart"] = str(chart)
    if release_set is None:
        cluster.pop("releaseSet", None)
    else:
        cluster["releaseSet"] = release_set
    project.save(config)
    return config


def rc_overhead(cluster: KubeCluster) -> tuple[str, dict[str, str]]:
    rc = cluster.get(f"/apis/node.k8s.io/v1/runtimeclasses/{RC}")
    assert rc is not None
    return rc["metadata"]["uid"], dict(rc["overhead"]["podFixed"])


def test_upgrade_from_the_previous_release_set(tmp_path: Path, cluster: KubeCluster) -> None:
    helm = judge_dir("helm")
    old_chart = kata_deploy_chart(helm, PREVIOUS.kata_deploy.version)
    new_chart = kata_deploy_chart(helm, CURRENT.kata_deploy.version)
    install_nfd_crds(cluster, new_chart)  # the cluster runs NFD (useNfd), before either set

    # ------------------------------------------------------------- on the previous set
    project = KubeProject(tmp_path, "upgrade", cluster)
    config = project.write_stack("baremetal-tdx", chart=old_chart)
    config = move(project, config, old_chart, PREVIOUS.name)
    project.init()
    project.pulumi("up", "--yes", "--skip-preview")
    emulate_legacy_rule(cluster)
    check_placement(cluster, config)
    digests = {k: v["initdataDigest"] for k, v in outputs(project)["workloads"].items()}
    ds_before = kata_daemonset(cluster)
    (old_container,) = ds_before["spec"]["template"]["spec"]["containers"]
    assert old_container["image"].endswith(f":{PREVIOUS.kata_deploy.app_version}")
    old_ds_pods = {p["metadata"]["name"] for p in daemonset_pods(cluster)}
    assert old_ds_pods
    rc_uid, overhead = rc_overhead(cluster)
    assert TDX_KEY not in overhead  # kata-deploy 3.29.0 advertises no key through its release
    assert cluster.get(f"{NFR_PATH}/{CHART_RULE}") is None
    kbs = cluster.get(
        f"/apis/apps/v1/namespaces/{config['coco:trustee'].get('namespace', 'trustee')}"
        f"/deployments/{trustee.DEPLOYMENT_NAME}"
    )
    assert kbs["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    before = Snapshot(cluster, config)
    records = helm_releases(cluster, KATA_NS, "kata-deploy")
    assert sorted(records) == [1] and records[1]["chart"]["metadata"]["version"] == "3.29.0"

    # ------------------------------------------------------------- the upgrade
    config = move(project, config, new_chart, None)
    check_proposed_changes(preview_steps(project))
    with (
        cluster.watch_orphans() as orphans,
        watch(before.kbs_serving) as kbs,
    ):
        project.pulumi("up", "--yes", "--skip-preview")
    assert not orphans, f"pods outlived their RuntimeClass during the upgrade: {orphans}"
    assert kbs.polls > 0 and not kbs.found, kbs

    # Re-rolled: the installer. Same DaemonSet object, new template, every pod replaced.
    ds_after = kata_daemonset(cluster)
    assert ds_after["metadata"]["uid"] == ds_before["metadata"]["uid"]
    (new_container,) = ds_after["spec"]["template"]["spec"]["containers"]
    assert new_container["image"].endswith(f":{CURRENT.kata_deploy.app_version}")
    cluster.wait_for(
        "the kata-deploy DaemonSet rolled onto the new image",
        lambda: (
            bool(daemonset_pods(cluster))
            and all(
                p["spec"]["containers"][0]["image"] == new_container["image"] and ready(p)
                for p in daemonset_pods(cluster)
            )
        ),
    )
    assert old_ds_pods.isdisjoint(p["metadata"]["name"] for p in daemonset_pods(cluster))
    all_ds = cluster.items("/apis/apps/v1/daemonsets")
    assert [d["metadata"]["name"] for d in all_ds] == ["kata-deploy"], "one installer"

    # Changed in place: the RuntimeClass (same object) now declares the TEE key.
    uid, overhead = rc_overhead(cluster)
    assert uid == rc_uid and overhead[TDX_KEY] == "1"

    # Not re-rolled: the workload (same Deployment, generation, pods, init-data) and the KBS.
    before.assert_untouched()
    assert {k: v["initdataDigest"] for k, v in outputs(project)["workloads"].items()} == digests
    check_placement(cluster, config)
    trustee_ready(cluster, before.trustee_ns)

    # Old runtime config, by Helm's own records: 4.1.0 renders every object 3.29.0's release had
    # (the same names: DaemonSet, ServiceAccount, RBAC), all live, and adds its install state
    # and the NodeFeatureRule.
    records = helm_releases(cluster, KATA_NS, "kata-deploy")
    assert records[2]["info"]["status"] == "deployed", records[2]["info"]
    assert records[1]["info"]["status"] == "superseded"
    assert records[2]["chart"]["metadata"]["version"] == CURRENT.kata_deploy.version
    old_objects, new_objects = manifest_objects(records[1]), manifest_objects(records[2])
    assert old_objects - new_objects == set()
    added = {(kind, name) for kind, _, name in new_objects - old_objects}
    assert added == {("NodeFeatureRule", CHART_RULE), ("ConfigMap", STATE_CONFIGMAP)}
    for kind, ns, name in new_objects:
        assert cluster.get(object_path(kind, ns, name)) is not None, f"{kind} {name} missing"
    # ... but the rule the old binary applied outside the release is still there. The manual
    # step of docs/upgrades.md finds it by `managed-by: kata-deploy` (Helm stamps `managed-by:
    # Helm` on every object it installs: helm v3 pkg/action/validate.go `setMetadataVisitor`,
    # so the chart's rule does not match) and deletes it by name; `kata-deploy/instance`, which
    # both rules carry, must not be the selector.
    legacy = cluster.get(f"{NFR_PATH}/{LEGACY_RULE}")
    assert legacy is not None
    chart_rule = cluster.get(f"{NFR_PATH}/{CHART_RULE}")
    assert chart_rule["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "Helm"
    instance = "kata-deploy/instance"
    assert legacy["metadata"]["labels"][instance] == chart_rule["metadata"]["labels"][instance]
    unowned = cluster.items(
        f"{NFR_PATH}?labelSelector=app.kubernetes.io%2Fmanaged-by%3Dkata-deploy"
    )
    assert [r["metadata"]["name"] for r in unowned] == [LEGACY_RULE]
    cluster.request("DELETE", f"{NFR_PATH}/{LEGACY_RULE}")
    assert cluster.get(f"{NFR_PATH}/{LEGACY_RULE}") is None
    assert cluster.get(f"{NFR_PATH}/{CHART_RULE}") is not None
    project.pulumi("preview", "--refresh", "--expect-no-changes", "--diff")

    # ------------------------------------------------------------- rollback
    config = move(project, config, old_chart, PREVIOUS.name)
    check_proposed_changes(preview_steps(project))
    with (
        cluster.watch_orphans() as orphans,
        watch(before.kbs_serving) as kbs,
    ):
        project.pulumi("up", "--yes", "--skip-preview")
    assert not orphans, f"pods outlived their RuntimeClass during the rollback: {orphans}"
    assert kbs.polls > 0 and not kbs.found, kbs
    (container,) = kata_daemonset(cluster)["spec"]["template"]["spec"]["containers"]
    assert container["image"] == old_container["image"]
    uid, overhead = rc_overhead(cluster)
    assert uid == rc_uid and TDX_KEY not in overhead
    # What 4.1.0 added is removed again by Helm (3.29.0's release has neither object).
    records = helm_releases(cluster, KATA_NS, "kata-deploy")
    assert records[3]["info"]["status"] == "deployed"
    assert records[3]["chart"]["metadata"]["version"] == PREVIOUS.kata_deploy.version
    dropped = manifest_objects(records[2]) - manifest_objects(records[3])
    assert {(kind, name) for kind, _, name in dropped} == added
    for kind, ns, name in dropped:
        assert cluster.get(object_path(kind, ns, name)) is None, f"{kind} {name} left behind"
    before.assert_untouched()

    with cluster.watch_orphans() as orphans:
        project.pulumi("destroy", "--yes", "--skip-preview")
    assert not orphans, f"pods outlived their RuntimeClass during destroy: {orphans}"
