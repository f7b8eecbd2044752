"""End to end against a real control plane: `pulumi up` applies, schedules, updates, detects drift
and destroys for real (kube_cluster.py starts etcd, kube-apiserver, kube-controller-manager,
kube-scheduler and kwok, built from upstream's Go modules by scripts/judges/kube/build.sh).

The render-mode engine tests (tests/test_e2e_engine.py) prove the manifests are schema-valid;
these prove what only a cluster can judge: the API server's validation and admission (the
RuntimeClass plugin merging `overhead` and `scheduling.nodeSelector` into each pod, PodSecurity
on the KBS namespace), the scheduler placing each confidential pod on a node of its TEE, the
provider's await logic seeing the rollouts complete (no skipAwait), in-place updates of live
objects, drift found by `refresh`, and a destroy that leaves nothing behind.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from judges import judge_dir
from kube_cluster import FLEET, KubeCluster, start_cluster
from kube_stack import (
    KubeProject,
    PulumiError,
    cluster_settings,
    install_nfd_crds,
    kata_deploy_chart,
    preinstall_runtime_classes,
)

from components import labels, tee, trustee

pytestmark = [pytest.mark.conformance, pytest.mark.e2e]

STACKS = ["baremetal-tdx", "baremetal-snp", "gpu-tdx", "s390x-se"]
NODE_TEE = {n.name: n.tee for n in FLEET}
TEE_NODES = {
    "tdx": {"tdx-0", "tdx-1", "gpu-0"},
    "snp": {"snp-0", "snp-1"},
    "se": {"se-0"},
}


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[KubeCluster]:
    bin_dir = judge_dir("kube") / "bin"
    with start_cluster(bin_dir, tmp_path / "cluster") as running:
        yield running


def runtime_classes(config: dict[str, Any]) -> dict[str, str]:
    """Workload name -> runtime class, as the program resolves it."""
    hw = cluster_settings(config).hardware
    return {
        w["name"]: w.get("runtimeClass")
        or tee.default_class(hw, wants_gpu=int(w.get("gpus", 0)) > 0)
        for w in config["coco:workloads"]
    }


_SUFFIX = {"m": Decimal("0.001"), "": Decimal(1), "k": Decimal(1000), "M": Decimal(10**6)}
_SUFFIX |= {f"{p}i": Decimal(1024**i) for i, p in enumerate("KMGTP", start=1)}


def quantity(text: str) -> Decimal:
    """A Kubernetes resource quantity's value (the suffixes coco and the fleet use)."""
    number = text.rstrip("kmMKGTPi")
    return Decimal(number) * _SUFFIX[text[len(number) :]]


def workload_pods(cluster: KubeCluster, name: str, namespace: str) -> list[dict[str, Any]]:
    return [
        p
        for p in cluster.pods(namespace)
        if p["metadata"].get("labels", {}).get(labels.WORKLOAD) == name
        and not p["metadata"].get("deletionTimestamp")
    ]


def ready(pod: dict[str, Any]) -> bool:
    conditions = pod.get("status", {}).get("conditions", [])
    return pod.get("status", {}).get("phase") == "Running" and any(
        c["type"] == "Ready" and c["status"] == "True" for c in conditions
    )


def uid(cluster: KubeCluster, path: str) -> str:
    obj = cluster.get(path)
    assert obj is not None, f"{path} does not exist"
    return str(obj["metadata"]["uid"])


def check_placement(cluster: KubeCluster, config: dict[str, Any]) -> None:
    """Every workload pod: Running and Ready, on a node of its TEE (the GPU node for GPU
    classes), with its RuntimeClass's overhead and node selector merged in by admission."""
    classes = runtime_classes(config)
    for w in config["coco:workloads"]:
        rc = classes[w["name"]]
        spec = tee.lookup(rc)
        pods = workload_pods(cluster, w["name"], w["namespace"])
        assert len(pods) == int(w.get("replicas", 1)), [p["metadata"]["name"] for p in pods]
        for pod in pods:
            assert ready(pod), pod["status"]
            node = pod["spec"]["nodeName"]
            assert node in TEE_NODES[spec.tee], f"{rc} pod on {node} ({NODE_TEE[node]})"
            if spec.gpu:
                assert node == "gpu-0"
            assert pod["spec"]["runtimeClassName"] == rc
            # RuntimeClass admission: overhead.podFixed and scheduling.nodeSelector merged in.
            # (The API server writes quantities in canonical form: 2048Mi comes back as 2Gi.)
            overhead = pod["spec"]["overhead"]
            assert quantity(overhead["cpu"]) == quantity(spec.overhead_cpu)
            assert quantity(overhead["memory"]) == quantity(spec.overhead_memory)
            live = cluster.get(f"/apis/node.k8s.io/v1/runtimeclasses/{rc}")
            selector = live["scheduling"]["nodeSelector"]
            assert selector[tee.KATA_RUNTIME_NODE_LABEL] == "true"
            assert selector.items() <= pod["spec"]["nodeSelector"].items()
    tee_pods = [p for p in cluster.pods() if p["spec"].get("runtimeClassName")]
    assert tee_pods
    assert not [p for p in tee_pods if p["spec"].get("nodeName") == "plain-0"]


def trustee_ready(cluster: KubeCluster, namespace: str) -> None:
    name = trustee.DEPLOYMENT_NAME
    dep = cluster.get(f"/apis/apps/v1/namespaces/{namespace}/deployments/{name}")
    assert dep is not None, "the KBS Deployment exists"
    status = dep["status"]
    assert status.get("availableReplicas") == dep["spec"]["replicas"], status
    assert status.get("observedGeneration") == dep["metadata"]["generation"]


def set_image(config: dict[str, Any], digest_char: str) -> dict[str, Any]:
    """A copy of the config whose first workload's first image has another digest."""
    changed = copy.deepcopy(config)
    container = changed["coco:workloads"][0]["containers"][0]
    repo = container["image"].split("@", 1)[0]
    container["image"] = f"{repo}@sha256:{digest_char * 64}"
    return changed


def outputs(project: KubeProject) -> dict[str, Any]:
    return dict(json.loads(project.pulumi("stack", "output", "--json").stdout))


@pytest.mark.parametrize("name", STACKS)
def test_up_schedules_every_pod_on_its_tee_and_destroy_removes_everything(
    tmp_path: Path, cluster: KubeCluster, name: str
) -> None:
    project = KubeProject(tmp_path, name, cluster)
    config = project.write_stack(name)
    preinstall_runtime_classes(cluster, config, list(runtime_classes(config).values()))
    project.init()

    project.pulumi("up", "--yes", "--skip-preview")
    check_placement(cluster, config)
    trustee_ns = config["coco:trustee"].get("namespace", "trustee")
    trustee_ready(cluster, trustee_ns)
    # A second run changes nothing against the live objects (refreshed first).
    project.pulumi("preview", "--refresh", "--expect-no-changes", "--diff")

    # The init-data ConfigMap carries the digest the KBS policy binds.
    out = outputs(project)
    for w in config["coco:workloads"]:
        cm = cluster.get(f"/api/v1/namespaces/{w['namespace']}/configmaps/{w['name']}-initdata")
        digest = out["workloads"][w["name"]]["initdataDigest"]
        assert cm["metadata"]["annotations"][labels.INITDATA_DIGEST_ANNOTATION] == digest
        assert digest in out["resourcePolicy"]

    rcs_before = {
        rc: uid(cluster, f"/apis/node.k8s.io/v1/runtimeclasses/{rc}")
        for rc in set(runtime_classes(config).values())
    }
    with cluster.watch_orphans() as orphans:
        project.pulumi("destroy", "--yes", "--skip-preview")
    assert not orphans, f"pods outlived their RuntimeClass during destroy: {orphans}"
    namespaces = {w["namespace"] for w in config["coco:workloads"]} | {trustee_ns}
    for ns in namespaces - {"default"}:
        # Namespace deletion is asynchronous (the namespace controller empties it first);
        # the provider's delete await waits for it, so it is gone (or going) right away.
        obj = cluster.get(f"/api/v1/namespaces/{ns}")
        assert obj is None or obj["status"]["phase"] == "Terminating"
        cluster.wait_for(
            f"namespace {ns} deleted", lambda ns=ns: cluster.get(f"/api/v1/namespaces/{ns}") is None
        )
    assert not [p for p in cluster.pods() if p["spec"].get("runtimeClassName")]
    # The installer's RuntimeClasses are only read by the stack: destroy leaves them alone.
    for rc, before in rcs_before.items():
        assert uid(cluster, f"/apis/node.k8s.io/v1/runtimeclasses/{rc}") == before
    state = json.loads(project.pulumi("stack", "export").stdout)
    assert not state["deployment"].get("resources")


def test_changed_image_updates_in_place_rebinds_and_rolls(
    tmp_path: Path, cluster: KubeCluster
) -> None:
    project = KubeProject(tmp_path, "update", cluster)
    config = project.write_stack("baremetal-tdx")
    preinstall_runtime_classes(cluster, config, list(runtime_classes(config).values()))
    project.init()
    project.pulumi("up", "--yes", "--skip-preview")
    w = config["coco:workloads"][0]
    ns, wl = w["namespace"], w["name"]
    paths = {
        "namespace": f"/api/v1/namespaces/{ns}",
        "trustee namespace": "/api/v1/namespaces/trustee",
        "runtime class": "/apis/node.k8s.io/v1/runtimeclasses/kata-qemu-tdx",
        "deployment": f"/apis/apps/v1/namespaces/{ns}/deployments/{wl}",
        "init-data": f"/api/v1/namespaces/{ns}/configmaps/{wl}-initdata",
        "kbs": f"/apis/apps/v1/namespaces/trustee/deployments/{trustee.DEPLOYMENT_NAME}",
    }
    uids = {k: uid(cluster, p) for k, p in paths.items()}
    before = outputs(project)["workloads"][wl]["initdataDigest"]
    old_pods = {p["metadata"]["name"] for p in workload_pods(cluster, wl, ns)}
    old_hash = {
        p["metadata"]["labels"]["pod-template-hash"] for p in workload_pods(cluster, wl, ns)
    }
    kbs_hash = cluster.get(paths["kbs"])["spec"]["template"]["metadata"]["annotations"]

    changed = set_image(config, "e")
    project.save(changed)
    preview = project.pulumi("preview", "--diff").stdout
    assert "replace" not in preview.split("Resources:")[-1], preview
    project.pulumi("up", "--yes", "--skip-preview")

    # Same objects (updated in place, none replaced), new digest bound everywhere.
    assert {k: uid(cluster, p) for k, p in paths.items()} == uids
    after = outputs(project)
    digest = after["workloads"][wl]["initdataDigest"]
    assert digest != before
    assert digest in after["resourcePolicy"] and before not in after["resourcePolicy"]
    cm = cluster.get(paths["init-data"])
    assert cm["metadata"]["annotations"][labels.INITDATA_DIGEST_ANNOTATION] == digest
    image = changed["coco:workloads"][0]["containers"][0]["image"]
    assert image in cm["data"]["policy.rego"]
    # The workload rolled: new pods of a new template, all on the new image, Ready.
    pods = workload_pods(cluster, wl, ns)
    assert {p["metadata"]["name"] for p in pods}.isdisjoint(old_pods)
    assert {p["metadata"]["labels"]["pod-template-hash"] for p in pods}.isdisjoint(old_hash)
    assert all(p["spec"]["containers"][0]["image"] == image for p in pods)
    check_placement(cluster, changed)
    # The KBS re-read its policy: its pod template's config hash changed, and it rolled out.
    assert cluster.get(paths["kbs"])["spec"]["template"]["metadata"]["annotations"] != kbs_hash
    trustee_ready(cluster, "trustee")
    project.pulumi("destroy", "--yes", "--skip-preview")


def test_edit_behind_pulumis_back_is_drift(tmp_path: Path, cluster: KubeCluster) -> None:
    project = KubeProject(tmp_path, "drift", cluster)
    config = project.write_stack("baremetal-snp")
    preinstall_runtime_classes(cluster, config, list(runtime_classes(config).values()))
    project.init()
    project.pulumi("up", "--yes", "--skip-preview")
    w = config["coco:workloads"][0]
    path = f"/apis/apps/v1/namespaces/{w['namespace']}/deployments/{w['name']}"
    cm_path = f"/api/v1/namespaces/{w['namespace']}/configmaps/{w['name']}-initdata"
    replicas = int(w.get("replicas", 1))
    policy = cluster.get(cm_path)["data"]["policy.rego"]
    cluster.merge_patch(path, {"spec": {"replicas": replicas + 2}})
    opened = "package agent_policy\ndefault allow := true\n"
    cluster.merge_patch(cm_path, {"data": {"policy.rego": opened}})

    # Without refresh the state still matches the program; with it, both edits are drift.
    project.pulumi("preview", "--expect-no-changes")
    drift = project.pulumi("preview", "--refresh", "--expect-no-changes", "--diff", check=False)
    assert drift.returncode != 0
    assert "replicas" in drift.stdout and "policy.rego" in drift.stdout, drift.stdout
    # `refresh` records the live values, so the next `up` proposes to put the program's back.
    project.pulumi("refresh", "--yes", "--skip-preview")
    state = json.loads(project.pulumi("stack", "export").stdout)["deployment"]["resources"]
    (dep,) = [
        r
        for r in state
        if r["type"] == "kubernetes:apps/v1:Deployment"
        and r["outputs"]["metadata"]["name"] == w["name"]
    ]
    assert dep["outputs"]["spec"]["replicas"] == replicas + 2
    # The Deployment alone (targeted): the preview runs resources in parallel, and the
    # ConfigMap's step below can end it before the Deployment's diff is printed.
    back = project.pulumi(
        "preview", "--expect-no-changes", "--diff", "--target", dep["urn"], check=False
    )
    assert back.returncode != 0 and "replicas" in back.stdout, back.stdout
    # The policy edit: a diff, or the API server's field-ownership conflict with the editor
    # (docs/kube-judge.md); either way the edited key is named and nothing is in sync.
    back = project.pulumi("preview", "--expect-no-changes", "--diff", check=False)
    assert back.returncode != 0 and "policy.rego" in back.stdout + back.stderr, back.stdout
    # Undone on the cluster, refreshed: in sync again.
    cluster.merge_patch(path, {"spec": {"replicas": replicas}})
    cluster.merge_patch(cm_path, {"data": {"policy.rego": policy}})
    project.pulumi("refresh", "--yes", "--skip-preview")
    project.pulumi("preview", "--expect-no-changes")
    project.pulumi("destroy", "--yes", "--skip-preview")


def test_workload_asking_for_a_tee_the_cluster_lacks_fails_at_preview(
    tmp_path: Path, cluster: KubeCluster
) -> None:
    project = KubeProject(tmp_path, "mismatch", cluster)
    config = project.write_stack("baremetal-tdx")
    config["coco:workloads"][0]["runtimeClass"] = "kata-qemu-snp"
    project.save(config)
    project.init()
    with pytest.raises(PulumiError) as failed:
        project.pulumi("preview")
    text = failed.value.proc.stdout + failed.value.proc.stderr
    assert "coco:workloads[0].runtimeClass" in text, text
    assert "'kata-qemu-snp' needs TEE snp" in text and "Traceback" not in text
    with pytest.raises(PulumiError):
        project.pulumi("up", "--yes", "--skip-preview")
    assert cluster.get("/api/v1/namespaces/payments") is None
    assert cluster.get("/api/v1/namespaces/trustee") is None


@pytest.mark.parametrize(
    ("name", "label_nodes"), [("baremetal-tdx", None), ("baremetal-snp", ["snp-0", "snp-1"])]
)
def test_chart_install_owns_runtime_classes_and_destroys_pods_first(
    tmp_path: Path, cluster: KubeCluster, name: str, label_nodes: list[str] | None
) -> None:
    """`install.method: chart` with the pinned kata-deploy chart (the helm judge's local copy of
    the upstream chart): Pulumi owns the RuntimeClasses, so destroy must remove every pod before the
    class it runs under. A poller watches the whole destroy for a pod without its class.
    baremetal-tdx selects nodes by NFD's labels (`useNfd`); baremetal-snp, with `useNfd: false`,
    by the TEE label the program patches onto its `labelNodes`, removed again by destroy."""
    chart = kata_deploy_chart(judge_dir("helm"))
    if not label_nodes:
        install_nfd_crds(cluster, chart)
    project = KubeProject(tmp_path, "chart", cluster)
    config = project.write_stack(name, chart=chart)
    if label_nodes:
        config["coco:cluster"].update(labelNodes=label_nodes, useNfd=False)
        project.save(config)
    project.init()
    project.pulumi("up", "--yes", "--skip-preview")
    check_placement(cluster, config)
    (rc_name,) = set(runtime_classes(config).values())
    rc = cluster.get(f"/apis/node.k8s.io/v1/runtimeclasses/{rc_name}")
    assert rc["metadata"]["labels"][labels.ROLE] == labels.ROLE_RUNTIME
    tee_label = f"{labels.DOMAIN}/tee"
    for node in label_nodes or []:
        assert cluster.get(f"/api/v1/nodes/{node}")["metadata"]["labels"][tee_label] == "snp"
        assert tee_label in rc["scheduling"]["nodeSelector"]
    ds = cluster.items("/apis/apps/v1/namespaces/kata-system/daemonsets")
    assert [d["metadata"]["name"] for d in ds] == ["kata-deploy"]
    project.pulumi("preview", "--refresh", "--expect-no-changes", "--diff")

    with cluster.watch_orphans() as orphans:
        project.pulumi("destroy", "--yes", "--skip-preview")
    assert not orphans, f"pods outlived their RuntimeClass during destroy: {orphans}"
    assert cluster.get(f"/apis/node.k8s.io/v1/runtimeclasses/{rc_name}") is None
    assert not cluster.items("/apis/apps/v1/namespaces/kata-system/daemonsets")
    for node in label_nodes or []:
        assert tee_label not in cluster.get(f"/api/v1/nodes/{node}")["metadata"]["labels"]


def test_preinstalled_cluster_without_the_runtime_class_fails_at_preview(
    tmp_path: Path, cluster: KubeCluster
) -> None:
    """`preinstalled` on a cluster whose installer did not provide the workload's class: the
    read of the RuntimeClass fails at preview, before any object is created."""
    project = KubeProject(tmp_path, "missing", cluster)
    project.write_stack("baremetal-tdx")
    project.init()
    with pytest.raises(PulumiError) as failed:
        project.pulumi("preview")
    text = failed.value.proc.stdout + failed.value.proc.stderr
    assert "resource 'kata-qemu-tdx' does not exist" in text, text
    # `up` previews first (no --skip-preview): it stops there, so nothing is created.
    with pytest.raises(PulumiError):
        project.pulumi("up", "--yes")
    assert cluster.get("/api/v1/namespaces/payments") is None
    assert cluster.get("/api/v1/namespaces/trustee") is None
    # Without a preview the failed read still comes first: nothing on the confidential cluster
    # waits on no class. baremetal-tdx is a trusted zone: its Trustee goes to the trusted
    # cluster (here the same apiserver, another provider) and by design does not wait for the
    # confidential cluster (docs/topologies.md: the Trustee is deployed first).
    with pytest.raises(PulumiError):
        project.pulumi("up", "--yes", "--skip-preview")
    assert cluster.get("/api/v1/namespaces/payments") is None
