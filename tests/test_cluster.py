"""ConfidentialCluster: kata-deploy and GPU Operator values, RuntimeClasses, node labels.

The pure value builders are checked directly; the component runs under Pulumi mocks, and
every RuntimeClass it registers is validated against the real Kubernetes schemas.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pulumi
import pytest

from components import labels, tee
from components.cluster import (
    GPU_CC_READY_LABEL,
    GPU_OPERATOR_CHART_VERSIONS,
    GPU_OPERATOR_REPOSITORY,
    GPU_WORKLOAD_LABEL,
    KATA_DEPLOY_CHART_VERSION,
    NFD_RULE_CRD,
    TEE_NODE_LABEL,
    ConfidentialCluster,
    gpu_operator_values,
    kata_deploy_values,
    runtime_class_manifest,
)
from components.settings import BareMetalCluster
from tests.k8s_schema import ManifestError, validate_manifest
from tests.mocks import Recorded, RecordingMocks

RELEASE = "kubernetes:helm.sh/v3:Release"
RUNTIME_CLASS = "kubernetes:node.k8s.io/v1:RuntimeClass"
NODE_PATCH = "kubernetes:core/v1:NodePatch"
GPU_OPERATOR_VERSION = GPU_OPERATOR_CHART_VERSIONS[-1]


def cluster_settings(
    tee_name: str, arch: str = "x86_64", gpu: bool | dict[str, Any] = False, **extra: Any
) -> BareMetalCluster:
    """Settings as a stack file would give them, pinned to the chart versions coco supports."""
    raw: dict[str, Any] = {
        "kind": "baremetal",
        "arch": arch,
        "tee": tee_name,
        "install": {"method": "chart", "version": KATA_DEPLOY_CHART_VERSION},
    }
    if gpu is True:
        raw["gpu"] = {"operator": {"version": GPU_OPERATOR_VERSION}}
    elif gpu:
        raw["gpu"] = gpu
    for key, value in extra.items():
        if key == "install":
            raw["install"] = {**raw["install"], **value}
        else:
            raw[key] = value
    return BareMetalCluster.model_validate(raw)


# (settings, runtime classes the workloads need, kata-deploy shims expected)
CASES: dict[str, tuple[BareMetalCluster, list[str], list[str]]] = {
    "tdx": (cluster_settings("tdx"), ["kata-qemu-tdx"], ["qemu-tdx"]),
    "snp": (cluster_settings("snp"), ["kata-qemu-snp"], ["qemu-snp"]),
    "se": (cluster_settings("se", arch="s390x"), ["kata-qemu-se"], ["qemu-se"]),
    "gpu-tdx": (
        cluster_settings("tdx", gpu=True),
        ["kata-qemu-nvidia-gpu-tdx", "kata-qemu-tdx"],
        ["qemu-nvidia-gpu-tdx", "qemu-tdx"],
    ),
    "gpu-snp": (
        cluster_settings("snp", gpu=True),
        ["kata-qemu-nvidia-gpu-snp"],
        ["qemu-nvidia-gpu-snp"],
    ),
}


class ClusterMocks(RecordingMocks):
    """RecordingMocks that also answer reads (`RuntimeClass.get`) like a cluster would.

    `handlers` maps the RuntimeClasses that "exist" to their handler; reads are recorded in
    `reads` and kept out of `resources`, so "nothing created" stays easy to assert.
    """

    def __init__(self) -> None:
        super().__init__()
        self.reads: list[tuple[str, str]] = []
        self.handlers: dict[str, str] = {}

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str | None, dict]:  # type: ignore[type-arg]
        if args.resource_id:
            self.reads.append((args.typ, args.resource_id))
            handler = self.handlers.get(args.resource_id, args.resource_id)
            return args.resource_id, {"metadata": {"name": args.resource_id}, "handler": handler}
        return super().new_resource(args)

    templated: list[dict[str, Any]]
    """The `kubernetes:helm:template` requests (a rendered `helm.v3.Chart`'s options)."""

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict, list[tuple[str, str]] | None]:  # type: ignore[type-arg]
        if args.token == "kubernetes:helm:template":
            # A chart answer with one ordinary object and one post-delete hook, as kata-deploy's.
            self.templated = [*getattr(self, "templated", []), json.loads(args.args["jsonOpts"])]
            hook = {"helm.sh/hook": "post-delete"}
            return {
                "result": [
                    {
                        "apiVersion": "apps/v1",
                        "kind": "DaemonSet",
                        "metadata": {"name": "kd"},
                        "spec": {"selector": {}, "template": {}},
                    },
                    {
                        "apiVersion": "batch/v1",
                        "kind": "Job",
                        "metadata": {"name": "cleanup", "annotations": hook},
                        "spec": {"template": {}},
                    },
                ]
            }, []
        return super().call(args)


@pytest.fixture
def mocks() -> Iterator[ClusterMocks]:
    recording = ClusterMocks()
    pulumi.runtime.set_mocks(recording, project="coco", stack="test", preview=False)
    pulumi.runtime.set_all_config({})
    yield recording


def build(
    settings: BareMetalCluster,
    classes: list[str],
    rendering: bool = False,
    environment: str = "production",
) -> dict[str, Any]:
    """Build the component under the mocks; the attributes and resolved outputs it exposes."""
    result: dict[str, Any] = {}

    @pulumi.runtime.test  # type: ignore[untyped-decorator]
    def program() -> Any:
        cluster = ConfidentialCluster("cluster", settings, environment, classes, rendering)
        result["cluster"] = cluster
        return pulumi.Output.from_input(cluster.urn)

    program()
    return result


def releases(mocks: RecordingMocks) -> dict[str, dict[str, Any]]:
    return {r.inputs["name"]: r.inputs for r in mocks.of_type(RELEASE)}


def runtime_classes(mocks: RecordingMocks) -> dict[str, Recorded]:
    return {r.metadata["name"]: r for r in mocks.of_type(RUNTIME_CLASS)}


def enabled_shims(values: dict[str, Any]) -> list[str]:
    shims = values["shims"]
    return sorted(k for k, v in shims.items() if k != "disableAll" and v.get("enabled") is True)


# --------------------------------------------------------------------------- kata-deploy values


@pytest.mark.parametrize("case", sorted(CASES))
def test_chart_values_enable_exactly_the_needed_shims(case: str) -> None:
    settings, classes, shims = CASES[case]
    values = kata_deploy_values(settings, classes)
    assert values["shims"]["disableAll"] is True
    assert enabled_shims(values) == shims
    assert values["runtimeClasses"] == {"enabled": False, "createDefault": False}
    assert values["node-feature-discovery"] == {"enabled": False}
    arch = "s390x" if settings.arch == "s390x" else "amd64"
    assert list(values["defaultShim"]) == [arch]
    assert values["defaultShim"][arch] in shims
    assert values["nodeSelector"] == {"kubernetes.io/arch": arch}
    for shim in shims:
        block = values["shims"][shim]
        assert block["supportedArches"] == [arch]
        assert block["allowedHypervisorAnnotations"] == []


@pytest.mark.parametrize("case", sorted(CASES))
def test_coco_shims_pull_images_in_the_guest(case: str) -> None:
    settings, classes, shims = CASES[case]
    values = kata_deploy_values(settings, classes)
    assert values["snapshotter"] == {"setup": ["nydus"]}
    for shim in shims:
        assert values["shims"][shim]["containerd"] == {
            "snapshotter": "nydus",
            "forceGuestPull": False,
        }
        assert values["shims"][shim]["crio"] == {"guestPull": True}


def test_without_nydus_the_shim_forces_guest_pull() -> None:
    settings = cluster_settings("tdx", install={"snapshotter": "none"})
    values = kata_deploy_values(settings, ["kata-qemu-tdx"])
    assert values["snapshotter"] == {"setup": []}
    assert values["shims"]["qemu-tdx"]["containerd"] == {"snapshotter": "", "forceGuestPull": True}


def test_chart_values_are_deterministic() -> None:
    settings, _, _ = CASES["gpu-tdx"]
    a = kata_deploy_values(settings, ["kata-qemu-tdx", "kata-qemu-nvidia-gpu-tdx"])
    b = kata_deploy_values(settings, ["kata-qemu-nvidia-gpu-tdx", "kata-qemu-tdx", "kata-qemu-tdx"])
    assert a == b


def test_no_workloads_still_offers_the_default_secure_classes() -> None:
    assert enabled_shims(kata_deploy_values(CASES["snp"][0], [])) == ["qemu-snp"]
    assert enabled_shims(kata_deploy_values(CASES["gpu-tdx"][0], [])) == [
        "qemu-nvidia-gpu-tdx",
        "qemu-tdx",
    ]


def test_coco_dev_on_plain_x86() -> None:
    values = kata_deploy_values(cluster_settings("none"), ["kata-qemu-coco-dev"])
    assert enabled_shims(values) == ["qemu-coco-dev"]


def test_label_nodes_restrict_the_kata_deploy_daemonset() -> None:
    settings = cluster_settings("tdx", label_nodes=["tdx-1"], use_nfd=False)
    values = kata_deploy_values(settings, ["kata-qemu-tdx"])
    assert values["nodeSelector"] == {"kubernetes.io/arch": "amd64", TEE_NODE_LABEL: "tdx"}


def test_chart_values_refuse_other_chart_versions() -> None:
    settings = cluster_settings("tdx", install={"version": "3.23.0"})
    with pytest.raises(ValueError, match=r"coco:cluster.install.version '3.23.0'.*4\.1\.0"):
        kata_deploy_values(settings, ["kata-qemu-tdx"])


def test_mismatched_class_is_refused() -> None:
    with pytest.raises(ValueError, match="needs TEE snp"):
        kata_deploy_values(CASES["tdx"][0], ["kata-qemu-snp"])


# --------------------------------------------------------------------------- GPU Operator values


@pytest.mark.parametrize("case", ["gpu-tdx", "gpu-snp"])
def test_gpu_operator_values_follow_nvidia_coco_guide(case: str) -> None:
    settings, _, _ = CASES[case]
    assert settings.gpu is not None and settings.gpu.operator.version == "v26.7.0"
    # v26.7.0 ignores `kataManager` (deprecated in its ClusterPolicy CRD): not written.
    assert gpu_operator_values(settings) == {
        "sandboxWorkloads": {"enabled": True, "mode": "kata", "defaultWorkload": "vm-passthrough"},
        "nfd": {"enabled": True, "nodefeaturerules": True},
        "ccManager": {"enabled": True, "defaultMode": "on"},
    }


def test_gpu_operator_v26_3_keeps_its_kata_manager_off() -> None:
    """v26.3.1 still honors `kataManager`: kept off explicitly (Kata comes from kata-deploy)."""
    settings = cluster_settings("tdx", gpu={"operator": {"version": "v26.3.1"}})
    values = gpu_operator_values(settings)
    assert values["kataManager"] == {"enabled": False}
    assert values["sandboxWorkloads"]["mode"] == "kata"


def test_gpu_operator_with_labelled_nodes_keeps_the_default_workload() -> None:
    settings = cluster_settings("tdx", gpu=True, label_nodes=["gpu-1"])
    assert "defaultWorkload" not in gpu_operator_values(settings)["sandboxWorkloads"]


def test_gpu_operator_values_refuse_other_versions() -> None:
    settings = cluster_settings("tdx", gpu={"operator": {"version": "v25.10.0"}})
    with pytest.raises(ValueError, match=r"coco:cluster.gpu.operator.version 'v25.10.0'"):
        gpu_operator_values(settings)


# --------------------------------------------------------------------------- RuntimeClasses


@pytest.mark.parametrize("case", sorted(CASES))
def test_runtime_class_manifests_are_valid_kubernetes(case: str) -> None:
    settings, classes, _ = CASES[case]
    for rc in classes:
        validate_manifest(runtime_class_manifest(settings, rc, "production"))


def test_schema_check_catches_a_misspelt_field() -> None:
    manifest = runtime_class_manifest(CASES["tdx"][0], "kata-qemu-tdx", "dev")
    manifest["scheduling"] = {"nodeselector": {"a": "b"}}
    with pytest.raises(ManifestError, match="nodeselector"):
        validate_manifest(manifest)


@pytest.mark.parametrize("case", sorted(CASES))
def test_chart_install_registers_release_and_runtime_classes(
    mocks: ClusterMocks, case: str
) -> None:
    settings, classes, shims = CASES[case]
    built = build(settings, classes)
    cluster: ConfidentialCluster = built["cluster"]
    assert cluster.runtime_classes == sorted(classes)
    assert cluster.hardware == settings.hardware

    rel = releases(mocks)
    kata = rel["kata-deploy"]
    assert kata["chart"] == "oci://ghcr.io/kata-containers/kata-deploy-charts/kata-deploy"
    assert kata["version"] == KATA_DEPLOY_CHART_VERSION
    assert kata["namespace"] == "kata-system"
    assert kata["createNamespace"] is True
    assert kata["waitForJobs"] is True
    assert enabled_shims(kata["values"]) == shims
    assert kata["values"]["runtimeClasses"]["enabled"] is False

    rcs = runtime_classes(mocks)
    assert sorted(rcs) == sorted(classes)
    for rc, recorded in rcs.items():
        spec = tee.CATALOGUE[rc]
        inputs = recorded.inputs
        validate_manifest(inputs)
        assert inputs["handler"] == rc
        expected = {"cpu": spec.overhead_cpu, "memory": spec.overhead_memory}
        if spec.tee_resource:  # useNfd: kata-deploy's NodeFeatureRule advertises the keys
            expected[spec.tee_resource] = "1"
        assert inputs["overhead"]["podFixed"] == expected
        selector = inputs["scheduling"]["nodeSelector"]
        assert selector[tee.KATA_RUNTIME_NODE_LABEL] == "true"
        for key, value in spec.node_labels.items():  # useNfd is the default
            assert selector[key] == value
        assert inputs["metadata"]["labels"] == labels.common("production", labels.ROLE_RUNTIME)
    assert cluster.kata_deploy is not None and cluster.kata_deploy in cluster.ready
    assert len(cluster.ready) == 1 + len(classes) + (1 if settings.gpu else 0)
    rule = settings.tee in ("tdx", "snp")  # kata-deploy's rule covers TDX and SNP
    assert kata["values"]["nodeFeatureRules"] == {"create": rule}
    crd = ("kubernetes:apiextensions.k8s.io/v1:CustomResourceDefinition", NFD_RULE_CRD)
    if settings.gpu:
        # The operator (NFD and its CRDs) before kata-deploy, whose NodeFeatureRule needs them.
        assert cluster.ready.index(cluster.gpu_operator) < cluster.ready.index(cluster.kata_deploy)
        assert crd not in mocks.reads
    else:
        # No NFD of ours: the cluster's NodeFeatureRule CRD is read at preview.
        assert (crd in mocks.reads) == rule


def test_without_nfd_no_tee_keys_and_no_rule() -> None:
    """Keys are requested only where kata-deploy's NodeFeatureRule advertises them."""
    settings = cluster_settings("tdx", label_nodes=["tdx-1"], use_nfd=False)
    manifest = runtime_class_manifest(settings, "kata-qemu-tdx", "production")
    assert manifest["overhead"]["podFixed"] == {"cpu": "1", "memory": "2048Mi"}
    values = kata_deploy_values(settings, ["kata-qemu-tdx"])
    assert values["nodeFeatureRules"] == {"create": False}
    with_nfd = runtime_class_manifest(cluster_settings("snp"), "kata-qemu-snp", "production")
    assert with_nfd["overhead"]["podFixed"]["sev-snp.amd.com/esids"] == "1"


@pytest.mark.parametrize("case", ["gpu-tdx", "gpu-snp"])
def test_gpu_cluster_installs_the_gpu_operator(mocks: ClusterMocks, case: str) -> None:
    settings, classes, _ = CASES[case]
    cluster: ConfidentialCluster = build(settings, classes)["cluster"]
    gpu = releases(mocks)["gpu-operator"]
    assert gpu["chart"] == "gpu-operator"
    assert gpu["repositoryOpts"] == {"repo": GPU_OPERATOR_REPOSITORY}
    assert gpu["version"] == GPU_OPERATOR_VERSION
    assert gpu["namespace"] == "gpu-operator"
    assert gpu["values"]["sandboxWorkloads"]["mode"] == "kata"
    assert gpu["values"]["ccManager"] == {"enabled": True, "defaultMode": "on"}
    assert cluster.gpu_operator is not None and cluster.gpu_operator in cluster.ready
    gpu_class = next(rc for rc in classes if tee.CATALOGUE[rc].gpu)
    assert (
        runtime_classes(mocks)[gpu_class].inputs["scheduling"]["nodeSelector"][GPU_CC_READY_LABEL]
        == "true"
    )


@pytest.mark.parametrize("case", ["tdx", "snp", "se"])
def test_cpu_only_cluster_has_no_gpu_operator(mocks: ClusterMocks, case: str) -> None:
    settings, classes, _ = CASES[case]
    build(settings, classes)
    assert sorted(releases(mocks)) == ["kata-deploy"]


def test_gpu_operator_can_be_left_out(mocks: ClusterMocks) -> None:
    settings = cluster_settings(
        "tdx", gpu={"operator": {"install": False, "version": GPU_OPERATOR_VERSION}}
    )
    build(settings, ["kata-qemu-nvidia-gpu-tdx"])
    assert sorted(releases(mocks)) == ["kata-deploy"]


def test_labelled_nodes_without_nfd(mocks: ClusterMocks) -> None:
    settings = cluster_settings("snp", gpu=True, label_nodes=["b-node", "a-node"], use_nfd=False)
    build(settings, ["kata-qemu-nvidia-gpu-snp", "kata-qemu-snp"])
    patches = mocks.of_type(NODE_PATCH)
    assert [p.metadata["name"] for p in patches] == ["a-node", "b-node"]
    for p in patches:
        validate_manifest(p.inputs)
        assert p.metadata["labels"] == {
            TEE_NODE_LABEL: "snp",
            GPU_WORKLOAD_LABEL: "vm-passthrough",
        }
    rcs = runtime_classes(mocks)
    assert rcs["kata-qemu-snp"].inputs["scheduling"]["nodeSelector"] == {
        tee.KATA_RUNTIME_NODE_LABEL: "true",
        TEE_NODE_LABEL: "snp",
    }
    assert rcs["kata-qemu-nvidia-gpu-snp"].inputs["scheduling"]["nodeSelector"] == {
        tee.KATA_RUNTIME_NODE_LABEL: "true",
        TEE_NODE_LABEL: "snp",
        GPU_CC_READY_LABEL: "true",
    }
    for rc in rcs.values():
        validate_manifest(rc.inputs)


def test_no_nfd_and_no_labelled_nodes_is_refused(mocks: ClusterMocks) -> None:
    settings = cluster_settings("tdx", use_nfd=False)
    with pytest.raises(ValueError, match=r"coco:cluster.useNfd .* labelNodes"):
        build(settings, ["kata-qemu-tdx"])


# --------------------------------------------------------------------------- preinstalled


def preinstalled(tee_name: str = "tdx", **extra: Any) -> BareMetalCluster:
    return cluster_settings(tee_name, install={"method": "preinstalled"}, **extra)


def test_preinstalled_creates_nothing_and_verifies_the_classes(mocks: ClusterMocks) -> None:
    cluster: ConfidentialCluster = build(preinstalled(), ["kata-qemu-tdx"])["cluster"]
    assert mocks.of_type(RELEASE) == []
    assert mocks.of_type(RUNTIME_CLASS) == []
    assert mocks.reads == [(RUNTIME_CLASS, "kata-qemu-tdx")]
    assert cluster.runtime_classes == ["kata-qemu-tdx"]
    assert len(cluster.ready) == 1


def test_preinstalled_class_with_a_wrong_handler_fails(mocks: ClusterMocks) -> None:
    mocks.handlers["kata-qemu-tdx"] = "kata-qemu"
    with pytest.raises(Exception, match="handler 'kata-qemu'"):
        build(preinstalled(), ["kata-qemu-tdx"])


def test_preinstalled_sev_is_accepted(mocks: ClusterMocks) -> None:
    build(preinstalled("sev"), ["kata-qemu-sev"])
    assert mocks.reads == [(RUNTIME_CLASS, "kata-qemu-sev")]


def test_preinstalled_rendering_reads_nothing(mocks: ClusterMocks) -> None:
    cluster: ConfidentialCluster = build(
        preinstalled("none"), ["kata-qemu-coco-dev"], rendering=True
    )["cluster"]
    assert mocks.reads == []
    assert [r.type for r in mocks.resources] == ["coco:index:ConfidentialCluster"]
    assert cluster.ready == []
    assert cluster.runtime_classes == ["kata-qemu-coco-dev"]


# --------------------------------------------------------------------------- rendering


RENDER_ERRORS: dict[str, tuple[Callable[[], BareMetalCluster], str]] = {
    "gpu-operator": (
        lambda: preinstalled(gpu={"operator": {"version": GPU_OPERATOR_VERSION}}),
        r"coco:cluster.gpu.operator.install",
    ),
    "label-nodes": (lambda: preinstalled(label_nodes=["n1"]), r"coco:cluster.labelNodes"),
}


@pytest.mark.parametrize("case", sorted(RENDER_ERRORS))
def test_rendering_refuses_what_cannot_be_yaml(mocks: ClusterMocks, case: str) -> None:
    make, message = RENDER_ERRORS[case]
    with pytest.raises(ValueError, match=message):
        build(make(), ["kata-qemu-tdx"], rendering=True)


def test_rendering_installs_kata_deploy_as_chart_manifests(mocks: ClusterMocks) -> None:
    """In a render directory kata-deploy becomes a client-side `helm.v3.Chart` (plain
    manifests, Helm hooks dropped) with the very values a release would get, in its own
    rendered namespace; the RuntimeClasses follow it and nothing is read from a cluster."""
    settings = cluster_settings("tdx")
    cluster: ConfidentialCluster = build(settings, ["kata-qemu-tdx"], rendering=True)["cluster"]
    assert not mocks.of_type(RELEASE)
    (request,) = mocks.templated
    assert request["release_name"] == "kata-deploy"
    assert request["chart"] == settings.install.chart
    assert request["version"] == KATA_DEPLOY_CHART_VERSION
    assert request["namespace"] == "kata-system"
    assert request["values"] == kata_deploy_values(settings, ["kata-qemu-tdx"])
    # The chart's objects are registered, its Helm hooks are not.
    assert [r.inputs["metadata"]["name"] for r in mocks.of_type("apps/v1:DaemonSet")] == ["kd"]
    assert not mocks.of_type("batch/v1:Job")
    (ns,) = mocks.of_type("core/v1:Namespace")
    assert ns.metadata["name"] == "kata-system"
    assert sorted(runtime_classes(mocks)) == ["kata-qemu-tdx"]
    assert mocks.reads == []
    assert cluster.kata_deploy in cluster.ready
