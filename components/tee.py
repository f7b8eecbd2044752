"""The TEE / runtime-class catalogue: the one table every other module reads.

A confidential pod is only as confidential as the match between its runtime class and the
hardware under it: a TDX class on an SNP node never starts, and `kata-qemu-coco-dev` starts
anywhere while protecting nothing. Keeping every fact about a runtime class in one frozen
table (rather than scattered `if tee == ...` branches) is what lets settings validation, the
cluster component, the workload component and the policy pack agree.

Sources (docs/workloads.md, "Runtime classes: the catalogue"): kata-deploy's RuntimeClass manifests
(kata-containers `tools/packaging/kata-deploy/runtimeclasses/`) for handler names and
`overhead.podFixed`; kata's runtime `initdata` module for the init-data binding field sizes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Tee = Literal["none", "tdx", "snp", "sev", "se", "remote"]
Arch = Literal["x86_64", "s390x"]
HostKind = Literal["baremetal", "peerpods"]
DigestAlgorithm = Literal["sha256", "sha384", "sha512"]

KATA_RUNTIME_NODE_LABEL = "katacontainers.io/kata-runtime"
"""Set to "true" by kata-deploy on a node once the runtime is installed there."""

GPU_RESOURCE = "nvidia.com/pgpu"
"""The extended resource NVIDIA's sandbox device plugin advertises for pass-through GPUs."""

GPU_KERNEL_PARAMS_ANNOTATION = "io.katacontainers.config.hypervisor.kernel_params"
GPU_KERNEL_PARAMS = "nvrc.smi.srs=1"


@dataclass(frozen=True)
class RuntimeClassSpec:
    """What one Kata runtime class needs from the hardware and gives to the workload."""

    name: str
    tee: Tee
    arch: Arch
    host: HostKind
    gpu: bool
    secure: bool
    """False only for coco-dev: it runs the CoCo stack without any hardware protection."""
    initdata_field_len: int | None
    """Bytes of the TEE field init-data is bound to (None: digest used as computed)."""
    default_digest: DigestAlgorithm
    overhead_memory: str
    overhead_cpu: str
    node_labels: dict[str, str] = field(default_factory=dict)
    """Node Feature Discovery labels that show the hardware is there."""
    tee_resource: str | None = None
    """Per-host finite TEE key resource a pod consumes (capacity planning), if any."""
    kata_deploy_shim: str | None = None
    """Name of the shim in kata-deploy's chart values (None: not installable by us)."""
    notes: str = ""

    @property
    def handler(self) -> str:
        """kata-deploy names the handler exactly like the class."""
        return self.name

    @property
    def attestation_platform(self) -> str | None:
        """The TEE name Trustee's verifiers report for this class, None when none attests it.

        coco-dev runs the sample attester; AMD SEV (pre-SNP) has no Trustee verifier, so no
        KBS resource can be bound to such a pod; peer pods depend on the cloud's VM TEE.
        """
        if self.host == "peerpods":
            return None
        return {"none": "sample", "tdx": "tdx", "snp": "snp", "se": "se"}.get(self.tee)


_TDX_LABELS = {"intel.feature.node.kubernetes.io/tdx": "true"}
_SNP_LABELS = {"amd.feature.node.kubernetes.io/snp": "true"}
_GPU_LABELS = {"nvidia.com/cc.ready.state": "true"}

CATALOGUE: dict[str, RuntimeClassSpec] = {
    spec.name: spec
    for spec in (
        RuntimeClassSpec(
            name="kata-qemu-coco-dev",
            tee="none",
            arch="x86_64",
            host="baremetal",
            gpu=False,
            secure=False,
            initdata_field_len=None,
            default_digest="sha384",
            overhead_memory="160Mi",
            overhead_cpu="250m",
            kata_deploy_shim="qemu-coco-dev",
            notes="testing only: no TEE, no security",
        ),
        RuntimeClassSpec(
            name="kata-qemu-tdx",
            tee="tdx",
            arch="x86_64",
            host="baremetal",
            gpu=False,
            secure=True,
            initdata_field_len=48,
            default_digest="sha384",
            overhead_memory="2048Mi",
            overhead_cpu="1",
            node_labels=_TDX_LABELS,
            tee_resource="tdx.intel.com/keys",
            kata_deploy_shim="qemu-tdx",
            notes="init-data bound to MRCONFIGID (48 bytes)",
        ),
        RuntimeClassSpec(
            name="kata-qemu-snp",
            tee="snp",
            arch="x86_64",
            host="baremetal",
            gpu=False,
            secure=True,
            initdata_field_len=32,
            default_digest="sha256",
            overhead_memory="2048Mi",
            overhead_cpu="1",
            node_labels=_SNP_LABELS,
            tee_resource="sev-snp.amd.com/esids",
            kata_deploy_shim="qemu-snp",
            notes="init-data bound to HOSTDATA (32 bytes)",
        ),
        RuntimeClassSpec(
            name="kata-qemu-sev",
            tee="sev",
            arch="x86_64",
            host="baremetal",
            gpu=False,
            secure=True,
            initdata_field_len=None,
            default_digest="sha384",
            overhead_memory="2048Mi",
            overhead_cpu="1",
            kata_deploy_shim=None,
            notes=(
                "AMD SEV (pre-SNP) was removed from kata-deploy in Jul 2025: usable only where "
                "it is already installed, and it has no init-data binding field"
            ),
        ),
        RuntimeClassSpec(
            name="kata-qemu-nvidia-gpu-tdx",
            tee="tdx",
            arch="x86_64",
            host="baremetal",
            gpu=True,
            secure=True,
            initdata_field_len=48,
            default_digest="sha384",
            overhead_memory="10240Mi",
            overhead_cpu="1",
            node_labels={**_TDX_LABELS, **_GPU_LABELS},
            tee_resource="tdx.intel.com/keys",
            kata_deploy_shim="qemu-nvidia-gpu-tdx",
            notes="TDX + NVIDIA Hopper GPU",
        ),
        RuntimeClassSpec(
            name="kata-qemu-nvidia-gpu-snp",
            tee="snp",
            arch="x86_64",
            host="baremetal",
            gpu=True,
            secure=True,
            initdata_field_len=32,
            default_digest="sha256",
            overhead_memory="10240Mi",
            overhead_cpu="1",
            node_labels={**_SNP_LABELS, **_GPU_LABELS},
            tee_resource="sev-snp.amd.com/esids",
            kata_deploy_shim="qemu-nvidia-gpu-snp",
            notes="SNP + NVIDIA Hopper GPU",
        ),
        RuntimeClassSpec(
            name="kata-qemu-se",
            tee="se",
            arch="s390x",
            host="baremetal",
            gpu=False,
            secure=True,
            initdata_field_len=None,
            default_digest="sha384",
            overhead_memory="1024Mi",
            overhead_cpu="1",
            node_labels={"feature.node.kubernetes.io/cpu-security.se.enabled": "true"},
            kata_deploy_shim="qemu-se",
            notes=(
                "IBM Secure Execution on s390x; kata-types' initdata adjust_digest fits only "
                "TDX, SNP and CCA, so the SE claim is the digest as computed"
            ),
        ),
        RuntimeClassSpec(
            name="kata-remote",
            tee="remote",
            arch="x86_64",
            host="peerpods",
            gpu=False,
            secure=True,
            initdata_field_len=None,
            default_digest="sha384",
            overhead_memory="120Mi",
            overhead_cpu="250m",
            kata_deploy_shim="remote",
            notes="peer pods: each pod is a confidential VM started by the cloud-api-adaptor",
        ),
    )
}

HardwareTee = Literal["none", "tdx", "snp", "sev", "se"]


@dataclass(frozen=True)
class Hardware:
    """What a cluster's confidential nodes actually have, as the stack declares it."""

    host: HostKind
    arch: Arch
    tee: HardwareTee | None
    """None for peer pods: the TEE is the cloud VM's, not the nodes'."""
    gpu: bool = False

    def describe(self) -> str:
        if self.host == "peerpods":
            return "a peer-pods cluster (cloud confidential VMs)"
        gpu = " with NVIDIA GPUs" if self.gpu else " without GPUs"
        tee = "no TEE" if self.tee in (None, "none") else f"TEE {self.tee}"
        return f"{self.arch} bare metal with {tee}{gpu}"


def lookup(runtime_class: str) -> RuntimeClassSpec:
    """The catalogue entry, or a KeyError that lists the known classes."""
    try:
        return CATALOGUE[runtime_class]
    except KeyError:
        known = ", ".join(sorted(CATALOGUE))
        raise KeyError(f"unknown runtime class {runtime_class!r}; known: {known}") from None


def mismatch(runtime_class: str, hw: Hardware) -> str | None:
    """Why `runtime_class` cannot run on `hw`, or None when it can.

    `kata-qemu-coco-dev` needs no TEE, so it fits any x86_64 bare-metal node: whether it is
    *allowed* is the production checklist's business, not the hardware's.
    """
    if runtime_class not in CATALOGUE:
        return f"unknown runtime class {runtime_class!r} (known: {', '.join(sorted(CATALOGUE))})"
    spec = CATALOGUE[runtime_class]
    where = hw.describe()
    if spec.host != hw.host:
        if hw.host == "peerpods":
            return (
                f"runtime class {runtime_class!r} needs bare-metal TEE nodes, but the cluster "
                f"is {where}; use 'kata-remote'"
            )
        return f"runtime class {runtime_class!r} runs peer pods, but the cluster is {where}"
    if spec.arch != hw.arch:
        return f"runtime class {runtime_class!r} is for {spec.arch}, but the cluster is {where}"
    if spec.host == "peerpods":
        return None
    if spec.tee != "none" and spec.tee != hw.tee:
        return f"runtime class {runtime_class!r} needs TEE {spec.tee}, but the cluster is {where}"
    if spec.gpu and not hw.gpu:
        return f"runtime class {runtime_class!r} needs NVIDIA GPUs, but the cluster is {where}"
    return None


def classes_for(hw: Hardware) -> list[str]:
    """Every catalogued runtime class that can run on `hw`, secure ones first."""
    fits = [name for name in CATALOGUE if mismatch(name, hw) is None]
    return sorted(fits, key=lambda n: (not CATALOGUE[n].secure, n))


def default_class(hw: Hardware, wants_gpu: bool = False) -> str:
    """The class a workload gets when it does not name one: the secure fit for its GPU need."""
    if hw.host == "peerpods":
        return "kata-remote"
    if hw.tee in (None, "none"):
        return "kata-qemu-coco-dev"
    candidates = [
        n for n in classes_for(hw) if CATALOGUE[n].secure and CATALOGUE[n].gpu == wants_gpu
    ]
    if not candidates:
        raise ValueError(f"no runtime class in the catalogue fits {hw.describe()}")
    return candidates[0]
