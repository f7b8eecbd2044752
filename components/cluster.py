"""ConfidentialCluster: Confidential Containers on a bare-metal (or any existing) cluster.

A confidential pod needs three things from the cluster under it: the Kata shim for its TEE
installed on the right nodes, a RuntimeClass whose handler names that shim and whose node
selector keeps the pod off nodes without the hardware, and, for GPU classes, NVIDIA's GPU
Operator switching the GPUs into confidential-computing mode. This component owns all three
for one stack, so a preview already shows which shims, RuntimeClasses and node labels a
change touches, and a mismatch between what the workloads need and what the cluster offers
fails before anything is applied.

How CoCo gets onto the nodes (`coco:cluster.install.method`):

- `chart`: the pinned kata-deploy Helm chart, with only the shims the workloads need.
  RuntimeClasses are *not* left to the chart (`runtimeClasses.enabled: false`): Pulumi owns
  them, so their node selectors follow the stack's hardware declaration and a removed class
  is deleted with the stack.
- `preinstalled`: CoCo is already there (operator, GitOps, a platform team). Nothing is
  installed; each RuntimeClass the workloads use is read from the cluster, so a missing or
  mis-wired class fails at preview rather than as a pod stuck in ContainerCreating.

Upstream sources the values below are written against (re-check them when a pin moves):

- kata-deploy chart 4.1.0 (components/releases.py), `oci://ghcr.io/kata-containers/kata-deploy-
  charts/kata-deploy`: structured values (`shims.disableAll`, `shims.<shim>.enabled|
  supportedArches|containerd.snapshotter|containerd.forceGuestPull|crio.guestPull`,
  `defaultShim.<arch>`, `snapshotter.setup`, `runtimeClasses.enabled|createDefault`,
  `node-feature-discovery.enabled`, `nodeFeatureRules.create`), as its `values.yaml` and
  `templates/_helpers.tpl` read them; tests/conformance/test_charts.py renders the chart with
  real Helm and checks the DaemonSet environment they produce.
- NVIDIA Confidential Containers reference architecture 1.0.0 (Kata 3.29, GPU Operator
  v26.3.1): https://docs.nvidia.com/datacenter/cloud-native/confidential-containers/latest/
  confidential-containers-deploy.html and .../install-quickstart.html (its order is
  kata-deploy first; coco installs the operator first, see `ConfidentialCluster`, and
  `nvidia/gpu-operator` from https://helm.ngc.nvidia.com/nvidia with
  `sandboxWorkloads.enabled=true`, `sandboxWorkloads.mode=kata`, `nfd.enabled=true`,
  `nfd.nodefeaturerules=true`, and `sandboxWorkloads.defaultWorkload=vm-passthrough` when every
  node runs confidential GPU pods, else the node label
  `nvidia.com/gpu.workload.config=vm-passthrough`), and .../configure-cc-mode.html
  (`ccManager.defaultMode`, `nvidia.com/cc.ready.state`).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components import kata_chart, labels, releases, tee, tokens
from components.stack_settings import BareMetalCluster

# --------------------------------------------------------------------------- pins and names

KATA_DEPLOY_CHART_VERSION = releases.KATA_DEPLOY.version
"""The kata-deploy chart version `kata_deploy_values` is written for (components/releases.py)."""

GPU_OPERATOR_CHART_VERSIONS = releases.GPU_OPERATOR_SUPPORTED
"""GPU Operator versions `gpu_operator_values` is written for (`sandboxWorkloads.mode=kata`).

NVIDIA's reference architecture 1.0.0 validates v26.3.1; v26.7.0 keeps the same CC values
(its `values.yaml` `sandboxWorkloads`, `ccManager` and `nfd` blocks are unchanged), which the
Helm tier checks by rendering both. The v25.x charts configured Kata through `kataManager`.
"""

GPU_OPERATOR_KATA_MANAGER_IGNORED_FROM = "v26.7.0"
"""The first GPU Operator whose ClusterPolicy ignores `kataManager`: its CRD
(`crds/nvidia.com_clusterpolicies.yaml`, v26.7.0) says "Deprecated: This field is no longer
honored by the GPU Operator. All values under this field are ignored."; v26.3.1's honors it."""

GPU_OPERATOR_REPOSITORY = releases.GPU_OPERATOR.repository or ""
GPU_OPERATOR_CHART = releases.GPU_OPERATOR.chart

KATA_DEPLOY_RELEASE = "kata-deploy"
GPU_OPERATOR_RELEASE = "gpu-operator"

HELM_TIMEOUT_SECONDS = 600
"""NVIDIA's guide installs both charts with `--wait --timeout 10m`."""

TEE_NODE_LABEL = f"{labels.DOMAIN}/tee"
"""Put on `labelNodes` (value: the TEE) when Node Feature Discovery does not label them."""

GPU_WORKLOAD_LABEL = "nvidia.com/gpu.workload.config"
GPU_WORKLOAD_PASSTHROUGH = "vm-passthrough"
"""The GPU Operator deploys its confidential-computing operands on nodes labelled so."""

GPU_CC_READY_LABEL = "nvidia.com/cc.ready.state"
"""Set to "true" by the GPU Operator's CC manager once the GPUs are in CC mode (not by NFD)."""

ARCH_NODE_LABEL = "kubernetes.io/arch"

NFD_RULE_CRD = "nodefeaturerules.nfd.k8s-sigs.io"
"""The CRD of kata-deploy's NodeFeatureRule (node-feature-discovery's `nfd-api-crds.yaml`)."""

HELM_ARCH: dict[tee.Arch, str] = {"x86_64": "amd64", "s390x": "s390x"}
"""Our architecture names as Kubernetes and kata-deploy's `supportedArches` spell them."""


# --------------------------------------------------------------------------- pure functions


def offered_classes(settings: BareMetalCluster, runtime_classes: Sequence[str]) -> list[str]:
    """The runtime classes this cluster offers the stack, sorted, each checked to fit.

    Settings validation has already matched every class to the hardware; this repeats the
    check because a component can be built from other programs (the Automation API) too.
    With no workloads yet, the cluster still offers the secure default class for its
    hardware (and the GPU one on GPU nodes), so it is usable as soon as it is up.
    """
    hw = settings.hardware
    wanted = sorted(set(runtime_classes))
    if not wanted:
        wanted = [tee.default_class(hw)]
        if hw.gpu:
            wanted.append(tee.default_class(hw, wants_gpu=True))
    for rc in wanted:
        why = tee.mismatch(rc, hw)
        if why:
            raise ValueError(f"coco:cluster: {why}")
        if settings.install.method == "chart" and tee.lookup(rc).kata_deploy_shim is None:
            raise ValueError(
                f"coco:cluster.install.method: runtime class {rc!r} cannot be installed by "
                "kata-deploy; use 'preinstalled' on a cluster that already has it"
            )
    return sorted(set(wanted))


def needed_shims(runtime_classes: Sequence[str]) -> list[str]:
    """kata-deploy shim names for the classes, sorted (no installable shim: not listed)."""
    shims = {tee.lookup(rc).kata_deploy_shim for rc in runtime_classes}
    return sorted(s for s in shims if s is not None)


def node_labels(settings: BareMetalCluster) -> dict[str, str]:
    """The labels this component puts on every node in `labelNodes`.

    The TEE label lets RuntimeClasses and the kata-deploy DaemonSet target those nodes when
    NFD does not; the GPU label is what the GPU Operator reads to deploy its VFIO, CC manager
    and sandbox device plugin operands there (NVIDIA's "Label Nodes" step).
    """
    out: dict[str, str] = {TEE_NODE_LABEL: settings.tee}
    if settings.gpu is not None:
        out[GPU_WORKLOAD_LABEL] = GPU_WORKLOAD_PASSTHROUGH
    return out


def runtime_class_node_selector(settings: BareMetalCluster, runtime_class: str) -> dict[str, str]:
    """Where pods of `runtime_class` may be scheduled.

    Always a node kata-deploy finished installing on (`katacontainers.io/kata-runtime`), and
    then the hardware: the catalogue's NFD labels (TDX/SNP/SE, plus the CC-ready GPU label for
    GPU classes) with `useNfd`, or our TEE label on `labelNodes` without it. A GPU class keeps
    the CC-ready label either way: the GPU Operator sets it, and without it a pod could land
    on a GPU that is not in confidential-computing mode.
    """
    spec = tee.lookup(runtime_class)
    selector = {tee.KATA_RUNTIME_NODE_LABEL: "true"}
    if settings.use_nfd:
        selector.update(spec.node_labels)
    else:
        selector[TEE_NODE_LABEL] = settings.tee
    if spec.gpu:
        selector[GPU_CC_READY_LABEL] = "true"
    return dict(sorted(selector.items()))


def runtime_class_manifest(
    settings: BareMetalCluster, runtime_class: str, environment: str
) -> dict[str, Any]:
    """The `node.k8s.io/v1` RuntimeClass for one class, as a plain manifest.

    Name and handler are the class name (kata-deploy names its containerd handlers
    `kata-<shim>`, which the catalogue's class names are); the pod overhead is the
    catalogue's, so the scheduler reserves the guest VM's memory and CPU.
    """
    spec = tee.lookup(runtime_class)
    pod_fixed = {"cpu": spec.overhead_cpu, "memory": spec.overhead_memory}
    if spec.tee_resource is not None and tee_keys_advertised(settings):
        pod_fixed[spec.tee_resource] = "1"
    return {
        "apiVersion": "node.k8s.io/v1",
        "kind": "RuntimeClass",
        "metadata": {
            "name": spec.name,
            "labels": labels.common(environment, labels.ROLE_RUNTIME),
        },
        "handler": spec.handler,
        "overhead": {"podFixed": dict(sorted(pod_fixed.items()))},
        "scheduling": {"nodeSelector": runtime_class_node_selector(settings, runtime_class)},
    }


def tee_keys_advertised(settings: BareMetalCluster) -> bool:
    """Whether kata-deploy's NodeFeatureRule advertises the nodes' TEE keys on this cluster.

    kata-deploy 4.1.0 renders the rule (`templates/node-feature-rules.yaml`: TDX
    `tdx.intel.com/keys`, SNP `sev-snp.amd.com/esids`, and the `intel.feature...tdx` /
    `amd.feature...snp` labels) when `nodeFeatureRules.create` is true, which coco sets
    exactly when the stack selects TEE nodes by NFD labels. Its own RuntimeClasses then
    request one key per pod in `overhead.podFixed` (`templates/runtimeclasses.yaml`, "TEE key
    accounting"); coco's do the same, so the scheduler never places more TEE pods on a node
    than it has keys, and a key is never requested where nothing advertises it (which would
    leave every pod of the class Pending). The rule covers TDX and SNP only: on coco-dev and
    SE clusters it is not created (and NFD is not required).
    """
    return (
        settings.install.method == "chart"
        and settings.use_nfd
        and settings.tee in ("tdx", "snp")
        and chart_renders_node_feature_rules(settings)
    )


def chart_renders_node_feature_rules(settings: BareMetalCluster) -> bool:
    """Whether the stack's kata-deploy chart has `nodeFeatureRules` (4.1.0 on).

    The previous release set's kata-deploy 3.29.0 has no such value: its binary applies the
    rule `amd64-tee-keys` itself at run time when NFD's CRD exists, outside the release, and
    patches TEE keys into RuntimeClasses (which coco's therefore do not declare on that set).
    """
    return releases.version_tuple(settings.install.version) >= releases.version_tuple(
        releases.KATA_DEPLOY_NODE_FEATURE_RULES_FROM
    )


def check_kata_deploy_version(settings: BareMetalCluster) -> None:
    """Refuse a chart version whose values format `kata_deploy_values` was not written for:
    the kata-deploy chart of the stack's release set (`coco:cluster.releaseSet`)."""
    version = settings.install.version
    chosen = releases.release_set(settings.release_set)
    wanted = chosen.kata_deploy.version
    if version != wanted:
        raise ValueError(
            f"coco:cluster.install.version {version!r}: coco generates kata-deploy values for "
            f"chart {wanted} in release set {chosen.name!r} (coco:cluster.releaseSet); remove "
            f"install.version or set it to {wanted}, or pick the release set whose kata-deploy "
            f"it is ({', '.join(repr(n) for n in releases.RELEASE_SETS)}); a newer chart needs "
            "its values.yaml checked and a new pin in components/releases.py"
        )


def check_gpu_operator_version(settings: BareMetalCluster) -> None:
    """Refuse a GPU Operator version whose values `gpu_operator_values` was not written for."""
    if settings.gpu is None:
        return
    version = settings.gpu.operator.version
    if version not in GPU_OPERATOR_CHART_VERSIONS:
        raise ValueError(
            f"coco:cluster.gpu.operator.version {version!r}: coco generates GPU Operator values "
            f"for {', '.join(GPU_OPERATOR_CHART_VERSIONS)} only (NVIDIA's Confidential "
            "Containers reference architecture); pick one of them, or check NVIDIA's guide "
            "for the new version and update components/cluster.py"
        )


def kata_deploy_values(
    settings: BareMetalCluster, runtime_classes: Sequence[str]
) -> dict[str, Any]:
    """Helm values for kata-deploy (the release set's chart: 4.1.0, or 3.29.0 on the previous
    set, which lacks `nodeFeatureRules`) that install exactly the shims the classes need.

    `shims.disableAll` turns off every shim the chart would install by default; each needed
    shim is then enabled with the block upstream's TEE profile uses: its architecture, no
    extra hypervisor annotations, and guest pull, so images are pulled inside the TEE and
    never unpacked by the untrusted host. With the nydus snapshotter (kata-deploy sets it up,
    `snapshotter.setup`) containerd hands the pull to the guest; without it,
    `containerd.forceGuestPull` makes the shim pull in the guest anyway. `crio.guestPull`
    does the same on CRI-O nodes.

    RuntimeClasses stay off (`runtimeClasses.enabled: false`): this component creates them.
    NFD stays off too: the GPU Operator, or the cluster's own, provides it, and kata-deploy
    refuses to install its NFD subchart next to an existing one. kata-deploy's NodeFeatureRule
    (the TEE labels and key resources) is created with `useNfd` (`tee_keys_advertised`). The
    DaemonSet runs only on nodes of the declared architecture, and only on `labelNodes` when
    those are given.
    """
    check_kata_deploy_version(settings)
    arch = HELM_ARCH[settings.arch]
    classes = offered_classes(settings, runtime_classes)
    shims = needed_shims(classes)
    nydus = settings.install.snapshotter == "nydus"
    shim_values: dict[str, Any] = {"disableAll": True}
    for shim in shims:
        shim_values[shim] = {
            "enabled": True,
            "supportedArches": [arch],
            "allowedHypervisorAnnotations": [],
            "containerd": {
                "snapshotter": "nydus" if nydus else "",
                "forceGuestPull": not nydus,
            },
            "crio": {"guestPull": True},
        }
    default_rc = tee.default_class(settings.hardware)
    default_shim = tee.lookup(default_rc).kata_deploy_shim
    if default_shim not in shims:
        default_shim = shims[0]
    node_selector = {ARCH_NODE_LABEL: arch}
    if settings.label_nodes:
        node_selector[TEE_NODE_LABEL] = settings.tee
    rules: dict[str, Any] = {}
    if chart_renders_node_feature_rules(settings):
        # Explicit, never `auto`: auto asks the live cluster at install time whether NFD's
        # CRD exists, so the same stack would render differently depending on install order.
        rules["nodeFeatureRules"] = {"create": tee_keys_advertised(settings)}
    return {
        "shims": shim_values,
        "defaultShim": {arch: default_shim},
        "snapshotter": {"setup": ["nydus"] if nydus else []},
        "runtimeClasses": {"enabled": False, "createDefault": False},
        "node-feature-discovery": {"enabled": False},
        **rules,
        "nodeSelector": dict(sorted(node_selector.items())),
        **kata_chart.image_values(settings.install.image),
    }


def gpu_operator_values(settings: BareMetalCluster) -> dict[str, Any]:
    """Helm values for the GPU Operator (v26.3, v26.7) as NVIDIA's CoCo guide sets them.

    Sandbox workloads in Kata mode give GPUs to Kata VMs by VFIO passthrough (the operator
    deploys the VFIO manager, the CC manager and the Kata sandbox device plugin that
    advertises `nvidia.com/pgpu`); NFD with NVIDIA's NodeFeatureRules finds the GPU nodes.
    `ccManager` is spelled out although `on` is the chart default: confidential computing
    mode is the property this stack relies on, so it must not depend on a default; the same
    goes for `kataManager` staying off (Kata comes from kata-deploy) on v26.3.1, the last
    version that honors it; from v26.7.0 the field is deprecated and ignored, so it is not
    written (a value the operator ignores would only look like a setting). Without
    `labelNodes` every node runs confidential GPU pods (the quickstart's
    `defaultWorkload=vm-passthrough`); with them, only the labelled nodes do.
    """
    if settings.gpu is None:
        raise ValueError("gpu_operator_values needs a cluster with `gpu`")
    check_gpu_operator_version(settings)
    sandbox: dict[str, Any] = {"enabled": True, "mode": "kata"}
    if not settings.label_nodes:
        sandbox["defaultWorkload"] = GPU_WORKLOAD_PASSTHROUGH
    values: dict[str, Any] = {
        "sandboxWorkloads": sandbox,
        "nfd": {"enabled": True, "nodefeaturerules": True},
        "ccManager": {"enabled": True, "defaultMode": "on"},
    }
    version = settings.gpu.operator.version
    if releases.version_tuple(version) < releases.version_tuple(
        GPU_OPERATOR_KATA_MANAGER_IGNORED_FROM
    ):
        # kata-deploy installs Kata; the operator's own Kata manager (off by default in
        # v26.3, `values.yaml` `kataManager`) would install a second copy and RuntimeClasses.
        values["kataManager"] = {"enabled": False}
    return values


def check_renderable(settings: BareMetalCluster, rendering: bool) -> None:
    """Refuse what cannot become YAML in a render directory, naming the key and the fix.

    kata-deploy renders (a client-side `helm.v3.Chart`, see `ConfidentialCluster`); the GPU
    Operator is left to a real release, and a node label is a patch to an object the GitOps
    tree does not own.
    """
    if not rendering:
        return
    if settings.gpu is not None and settings.gpu.operator.install:
        raise ValueError(
            "coco:cluster.gpu.operator.install installs the NVIDIA GPU Operator as a Helm "
            "release, which cannot be rendered to YAML: set it to false with renderDir and "
            "install the operator out of band, or deploy to a cluster"
        )
    if settings.label_nodes:
        raise ValueError(
            "coco:cluster.labelNodes patches live Node objects, which cannot be rendered to "
            "YAML: label the nodes out of band and remove labelNodes, or deploy to a cluster"
        )


def check_selectable(settings: BareMetalCluster) -> None:
    """Refuse RuntimeClasses no node could satisfy: our TEE label on no node, and no NFD.

    Only for `chart`, where this component writes the selectors; a preinstalled cluster's
    RuntimeClasses select whatever their installer chose.
    """
    if settings.install.method == "chart" and not settings.use_nfd and not settings.label_nodes:
        raise ValueError(
            "coco:cluster.useNfd is false but coco:cluster.labelNodes is empty: no node would "
            f"carry {TEE_NODE_LABEL}, so no confidential pod could be scheduled; list the TEE "
            "nodes in labelNodes, or set useNfd to true"
        )


def _check_existing(runtime_class: str, handler: str | None) -> str:
    if handler != runtime_class:
        raise ValueError(
            f"coco:cluster.install.method 'preinstalled': RuntimeClass {runtime_class!r} on the "
            f"cluster has handler {handler!r}, not {runtime_class!r}; install CoCo so that it "
            "provides this class, or use install.method 'chart'"
        )
    return runtime_class


# --------------------------------------------------------------------------- component


class ConfidentialCluster(pulumi.ComponentResource):
    """CoCo on a bare-metal or existing cluster: shims, RuntimeClasses, node labels, GPUs.

    The Kubernetes provider comes from `opts` (`providers={"kubernetes": ...}`) and reaches
    every child through `parent=self`. Workloads should `depends_on` `ready`, so no pod is
    created before its RuntimeClass and the shim behind it exist.
    """

    runtime_classes: list[str]
    """The runtime classes the cluster offers this stack (sorted)."""
    hardware: tee.Hardware
    ready: list[pulumi.Resource]
    """What workloads wait for: the installs and the RuntimeClasses (created or verified)."""
    kata_deploy: k8s.helm.v3.Release | k8s.helm.v3.Chart | None
    gpu_operator: k8s.helm.v3.Release | None
    node_patches: list[k8s.core.v1.NodePatch]

    def __init__(
        self,
        name: str,
        settings: BareMetalCluster,
        environment: str,
        runtime_classes: list[str],
        rendering: bool,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        kind = "ConfidentialCluster"
        super().__init__(tokens.token(kind), name, None, tokens.options(kind, opts))
        check_renderable(settings, rendering)
        check_selectable(settings)
        self.hardware = settings.hardware
        self.runtime_classes = offered_classes(settings, runtime_classes)
        self.ready = []
        self.kata_deploy = None
        child = pulumi.ResourceOptions(parent=self)
        # Node labels first: the kata-deploy DaemonSet and the RuntimeClasses select on them.
        self.node_patches = self._node_patches(name, settings, child)
        self.gpu_operator = self._gpu_operator(name, settings)
        if self.gpu_operator is not None:
            self.ready.append(self.gpu_operator)
        offered: pulumi.Input[list[str]]
        if settings.install.method == "chart":
            self.kata_deploy = self._kata_deploy(name, settings, environment, rendering, child)
            self.ready.append(self.kata_deploy)
            self.ready.extend(
                self._runtime_class_objects(name, settings, environment, self.kata_deploy)
            )
            offered = list(self.runtime_classes)
        else:
            offered = self._existing_runtime_classes(name, rendering, child)
        self.register_outputs(
            {
                "runtimeClasses": offered,
                "hardware": self.hardware.describe(),
                "installMethod": settings.install.method,
            }
        )

    @staticmethod
    def _node_patches(
        name: str, settings: BareMetalCluster, child: pulumi.ResourceOptions
    ) -> list[k8s.core.v1.NodePatch]:
        """coco's labels on the nodes `label_nodes` names. Only our own labels go on a Node
        (no managed-by/role labels): the Node is not ours."""
        return [
            k8s.core.v1.NodePatch(
                f"{name}-node-{node}",
                metadata={"name": node, "labels": node_labels(settings)},
                opts=child,
            )
            for node in sorted(set(settings.label_nodes))
        ]

    def _gpu_operator(self, name: str, settings: BareMetalCluster) -> k8s.helm.v3.Release | None:
        """The GPU Operator, when the stack installs it, before kata-deploy: it brings Node
        Feature Discovery and its CRDs, and kata-deploy's NodeFeatureRule (which puts the TEE
        label on the nodes) can only be created once that CRD exists. NVIDIA's guide installs
        Kata first, which with kata-deploy <= 4.0 left the rule unapplied (the binary checked
        for the CRD once, at start); with 4.1.0 the rule is part of the chart, so the CRD
        must come first."""
        if settings.gpu is None or not settings.gpu.operator.install:
            return None
        return k8s.helm.v3.Release(
            f"{name}-gpu-operator",
            name=GPU_OPERATOR_RELEASE,
            chart=GPU_OPERATOR_CHART,
            repository_opts=k8s.helm.v3.RepositoryOptsArgs(repo=GPU_OPERATOR_REPOSITORY),
            version=settings.gpu.operator.version,
            namespace=settings.gpu.operator.namespace,
            create_namespace=True,
            values=gpu_operator_values(settings),
            wait_for_jobs=True,
            timeout=HELM_TIMEOUT_SECONDS,
            opts=pulumi.ResourceOptions(parent=self, depends_on=list(self.node_patches)),
        )

    def _before_kata(
        self,
        name: str,
        settings: BareMetalCluster,
        rendering: bool,
        child: pulumi.ResourceOptions,
    ) -> list[pulumi.Resource]:
        """What kata-deploy waits for: the node labels, and the Node Feature Discovery its
        NodeFeatureRule needs (our GPU Operator's, or a read of the cluster's CRD)."""
        before: list[pulumi.Resource] = list(self.node_patches)
        if self.gpu_operator is not None:
            before.append(self.gpu_operator)
        elif tee_keys_advertised(settings) and not rendering:
            # No NFD of ours: the cluster's must be there, or the NodeFeatureRule (and
            # with it every TEE label the RuntimeClasses select on) cannot exist. A read
            # fails at preview, naming this resource, instead of a Pending pod later.
            pulumi.log.info(
                f"coco:cluster.useNfd: kata-deploy creates a NodeFeatureRule; the cluster "
                f"must run Node Feature Discovery (CRD {NFD_RULE_CRD})",
                resource=self,
            )
            before.append(
                k8s.apiextensions.v1.CustomResourceDefinition.get(
                    f"{name}-requires-nfd", NFD_RULE_CRD, opts=child
                )
            )
        return before

    def _kata_deploy(
        self,
        name: str,
        settings: BareMetalCluster,
        environment: str,
        rendering: bool,
        child: pulumi.ResourceOptions,
    ) -> k8s.helm.v3.Release | k8s.helm.v3.Chart:
        """kata-deploy from its chart: a Helm release, or its manifests when rendering."""
        before_kata = self._before_kata(name, settings, rendering, child)
        values = kata_deploy_values(settings, self.runtime_classes)
        if rendering:
            return self._render_kata_deploy(name, settings, environment, values, before_kata)
        return k8s.helm.v3.Release(
            f"{name}-kata-deploy",
            name=KATA_DEPLOY_RELEASE,
            chart=settings.install.chart,
            version=settings.install.version,
            namespace=settings.install.namespace,
            create_namespace=True,
            values=values,
            wait_for_jobs=True,
            timeout=HELM_TIMEOUT_SECONDS,
            opts=pulumi.ResourceOptions(parent=self, depends_on=before_kata),
        )

    def _runtime_class_objects(
        self,
        name: str,
        settings: BareMetalCluster,
        environment: str,
        kata_deploy: pulumi.Resource,
    ) -> list[k8s.node.v1.RuntimeClass]:
        """One RuntimeClass per offered class, created once kata-deploy has installed the
        shims behind them."""
        created = []
        for rc in self.runtime_classes:
            manifest = runtime_class_manifest(settings, rc, environment)
            created.append(
                k8s.node.v1.RuntimeClass(
                    f"{name}-{rc}",
                    metadata=manifest["metadata"],
                    handler=manifest["handler"],
                    overhead=manifest["overhead"],
                    scheduling=manifest["scheduling"],
                    opts=pulumi.ResourceOptions(
                        parent=self,
                        depends_on=[kata_deploy],
                        # Fixed names: a replacement must delete the old object first.
                        delete_before_replace=True,
                    ),
                )
            )
        return created

    def _existing_runtime_classes(
        self, name: str, rendering: bool, child: pulumi.ResourceOptions
    ) -> pulumi.Output[list[str]]:
        """Kata installed by someone else: each offered RuntimeClass is read, not created,
        so a missing class (or one with the wrong handler) fails at preview; the offered
        list resolves once every read has been checked."""
        checked: list[pulumi.Output[str]] = []
        if not rendering:
            for rc in self.runtime_classes:
                existing = k8s.node.v1.RuntimeClass.get(f"{name}-requires-{rc}", rc, opts=child)
                self.ready.append(existing)
                checked.append(existing.handler.apply(functools.partial(_check_existing, rc)))
        return pulumi.Output.all(*checked).apply(lambda _: list(self.runtime_classes))

    def _render_kata_deploy(
        self,
        name: str,
        settings: BareMetalCluster,
        environment: str,
        values: dict[str, Any],
        after: list[pulumi.Resource],
    ) -> k8s.helm.v3.Chart:
        """kata-deploy as plain manifests, for a render directory (GitOps).

        A `helm.v3.Chart` is client-side `helm template` (the provider's `kubernetes:helm:
        template`, `ClientOnly`) plus one Pulumi resource per object, so the rendered tree
        holds what a release would install, with the same release name and values. Not
        `helm.v4.Chart`: it templates with `--dry-run=server`, and kata-deploy 4.1.0's
        `lookup` calls (`templates/kata-deploy-state.yaml`) then fail without a cluster, as
        the engine test showed. Helm hooks are dropped (`drop_helm_hook`): applied as an
        ordinary Job, kata-deploy's post-delete cleanup would uninstall Kata on the first
        GitOps sync. Its namespace is rendered too. The chart comes from `install.chart` at
        render time: the OCI reference (network), or a local chart folder (offline).
        """
        namespace = k8s.core.v1.Namespace(
            f"{name}-kata-deploy-ns",
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name=settings.install.namespace,
                labels=labels.common(environment, labels.ROLE_RUNTIME),
            ),
            opts=pulumi.ResourceOptions(parent=self, depends_on=after),
        )
        chart = settings.install.chart
        config: k8s.helm.v3.ChartOpts | k8s.helm.v3.LocalChartOpts
        if kata_chart.is_local_chart(chart):
            # A chart folder (Helm's own rule: a path starts with / or .); its version is
            # what its Chart.yaml says, which the render test compares with the pin.
            config = k8s.helm.v3.LocalChartOpts(
                path=chart,
                namespace=settings.install.namespace,
                values=values,
                transformations=[drop_helm_hook],
            )
        else:
            config = k8s.helm.v3.ChartOpts(
                chart=chart,
                version=settings.install.version,
                namespace=settings.install.namespace,
                values=values,
                transformations=[drop_helm_hook],
            )
        return k8s.helm.v3.Chart(
            KATA_DEPLOY_RELEASE,
            config,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[namespace]),
        )


HELM_HOOK_ANNOTATION = "helm.sh/hook"


def drop_helm_hook(obj: dict[str, Any], opts: pulumi.ResourceOptions) -> None:
    """Omit a Helm hook object from a rendered chart (pulumi-kubernetes' documented way: an
    object turned into an empty `v1/List` registers nothing)."""
    annotations = (obj.get("metadata") or {}).get("annotations") or {}
    if HELM_HOOK_ANNOTATION in annotations:
        obj.clear()
        obj.update({"apiVersion": "v1", "kind": "List", "items": []})
