"""The whole stack configuration as typed, validated models: the one source of truth.

Every component reads these models and nothing else, so a mistake in a stack file is caught
here, once, before a single resource is registered. Parsing never stops at the first
problem: users fix stack files in one pass, so `SettingsError` lists every problem with the
exact config key (`coco:workloads[0].runtimeClass`) and how to fix it.

Config layout (namespace `coco:`), one structured key each:

    coco:environment   dev | staging | production
    coco:kubernetes    where manifests go: renderDir, or a kubeconfig/context
    coco:cluster       baremetal (TEE hardware, how CoCo is installed) or peerpods (cloud)
    coco:trustee       KBS/AS/RVPS, TLS, resources (KBS secrets), policies, reference values
    coco:workloads     confidential pods/deployments
    coco:waivers       explicit, reasoned exceptions to the production checklist
    coco:checklist     optional checks a stack opts in to (components/checklist.py)
    coco:protect       Pulumi `protect` on clusters, identities, KBS keys (default: production)
    coco:layer         two-stack layout: {kind: platform} or {kind: trust, platformStack}
    coco:topology      where the Trustee runs: co-located, trusted-zone, external (topology.py)

Secret values (KBS resources, cloud credentials, provided TLS keys) never sit in these
objects: the settings name another config key (`valueFrom`), which the stack must hold as a
Pulumi secret (`pulumi config set --secret`), so plain text never reaches state or logs.

`python -m components.settings --schema` prints the JSON Schema for editors.
"""

from __future__ import annotations

import json
import re
import sys
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Annotated, Any, Literal

from pydantic import (
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

from components import kata_chart, releases, tee
from components.checklist import ChecklistSettings, signed_images_problems
from components.config_types import DnsLabel, Model, SecretKeyRef
from components.guest_features import ImageSignatures, SealedEnvVar, SealedFile, guest_problems
from components.hardening import HardeningSettings
from components.layer_settings import LayerSettings
from components.manifest_settings import ManifestSource
from components.peerpods.settings import PeerPodsCluster, attestation_platform
from components.reachability import KbsIngress, reachability_problems
from components.reference_coverage import coverage_gaps
from components.service import ServiceSettings
from components.tee import Hardware
from components.topology import TopologySettings, topology_problems
from components.value_ranges import INT32_MAX, MAX_VALIDITY_HOURS, Port
from components.verifier_settings import VerifierSettings
from components.yaml_input import clip, value_problems
from policies.agent import AgentPolicySpec, kubernetes_argv, pod_env
from policies.attestation import reference_value_problems
from policies.registry import RegistryAccess
from policies.vtpm_initdata import VTPM_ALGORITHM, VTPM_PLATFORMS

NAMESPACE = "coco"
MAX_SHOWN_PROBLEMS = 50
"""Problems a `SettingsError` lists (then a count): its text stays bounded."""
TOP_LEVEL_KEYS = (
    "environment",
    "kubernetes",
    "cluster",
    "trustee",
    "workloads",
    "manifests",
    "waivers",
    "checklist",
    "protect",
    "layer",
    "topology",
)

# trustee v0.21.0 kbs/src/plugins/implementations/resource/backend.rs `ResourceDesc`: each segment
# starts with [a-zA-Z0-9_-] (never `.`), then [a-zA-Z0-9_.-]*; the KBS refuses any other path, so
# a resource declared with one would be stored but never served.
_RESOURCE_SEGMENT = r"[A-Za-z0-9_-][A-Za-z0-9_.-]*"
_RESOURCE_PATH = re.compile(rf"^{_RESOURCE_SEGMENT}/{_RESOURCE_SEGMENT}/{_RESOURCE_SEGMENT}$")
_DIGEST_REF = re.compile(r"^[^\s@]+@sha256:[0-9a-f]{64}$")


def check_resource_path(v: str) -> str:
    """A KBS resource path the KBS will serve, or a ValueError saying how to write one."""
    if not _RESOURCE_PATH.match(v):
        raise ValueError(
            f"{v!r} is not a KBS resource path: use repo/type/tag, e.g. default/key/1, "
            "each part made of letters, digits, `_`, `-`, `.` and not starting with `.`"
        )
    return v


def is_pinned(image: str) -> bool:
    """True when an image reference names its content by sha256 digest."""
    return bool(_DIGEST_REF.match(image))


Environment = Literal["dev", "staging", "production"]


class KubernetesTarget(Model):
    """Where the Kubernetes objects go: a folder of YAML (GitOps, no cluster) or a cluster."""

    render_dir: str | None = Field(
        default=None,
        description="Render every manifest as YAML into this folder instead of applying it.",
    )
    kubeconfig: str | None = Field(
        default=None, description="Path to a kubeconfig; default: the ambient KUBECONFIG."
    )
    context: str | None = None

    @model_validator(mode="after")
    def _one_target(self) -> KubernetesTarget:
        if self.render_dir and (self.kubeconfig or self.context):
            raise ValueError(
                "renderDir and kubeconfig/context are exclusive: remove renderDir to deploy to "
                "a cluster, or remove kubeconfig/context to render manifests"
            )
        return self

    @property
    def rendering(self) -> bool:
        return self.render_dir is not None


class GpuOperator(Model):
    """NVIDIA GPU Operator, set up for confidential computing (NVIDIA's CoCo reference)."""

    install: bool = True
    version: str = releases.GPU_OPERATOR.version
    namespace: DnsLabel = "gpu-operator"


class GpuSettings(Model):
    model: Literal["H100", "H200", "H20", "H800", "B200"] = "H100"
    operator: GpuOperator = GpuOperator()


class KataInstall(Model):
    """How the Kata runtime gets onto the nodes."""

    method: Literal["chart", "preinstalled"] = Field(
        default="chart",
        description=(
            "chart: install the pinned kata-deploy Helm chart; preinstalled: CoCo is "
            "already on the cluster, only its runtime classes are checked and used."
        ),
    )
    chart: str = releases.KATA_DEPLOY.chart
    version: str = Field(
        default=releases.KATA_DEPLOY.version,
        description="kata-deploy chart version; values are generated for this version only.",
    )
    namespace: DnsLabel = "kata-system"
    snapshotter: Literal["nydus", "none"] = "nydus"
    image: str | None = Field(
        default=None,
        description=(
            "kata-deploy's DaemonSet image pinned by digest (name@sha256:<hex>); default: the "
            "chart's tag (quay.io/kata-containers/kata-deploy:<version>). docs/charts.md."
        ),
    )

    @field_validator("image")
    @classmethod
    def _digest(cls, v: str | None) -> str | None:
        return None if v is None else kata_chart.check_image(v)


class BareMetalCluster(Model):
    """A cluster whose own nodes have the TEE (or, for coco-dev, none)."""

    kind: Literal["baremetal"]
    arch: tee.Arch = "x86_64"
    tee: tee.HardwareTee
    gpu: GpuSettings | None = None
    install: KataInstall = KataInstall()
    label_nodes: list[str] = Field(
        default_factory=list,
        description="Node names to label as confidential nodes (when NFD is not used).",
    )
    use_nfd: bool = Field(
        default=True,
        description="Select TEE nodes by Node Feature Discovery labels on the runtime classes.",
    )

    @model_validator(mode="after")
    def _hardware_consistent(self) -> BareMetalCluster:
        if self.tee == "se" and self.arch != "s390x":
            raise ValueError("tee 'se' (IBM Secure Execution) needs arch 's390x'")
        if self.arch == "s390x" and self.tee not in ("se",):
            raise ValueError("arch 's390x' supports only tee 'se'")
        if self.gpu is not None and self.tee not in ("tdx", "snp"):
            raise ValueError(
                "confidential NVIDIA GPUs need tee 'tdx' or 'snp'; remove `gpu` or change `tee`"
            )
        if self.tee == "sev" and self.install.method == "chart":
            raise ValueError(
                "kata-deploy dropped AMD SEV (pre-SNP) in Jul 2025: set install.method to "
                "'preinstalled' on a cluster that already has kata-qemu-sev, or use tee 'snp'"
            )
        return self

    @property
    def hardware(self) -> Hardware:
        return Hardware(host="baremetal", arch=self.arch, tee=self.tee, gpu=self.gpu is not None)


ClusterSettings = Annotated[BareMetalCluster | PeerPodsCluster, Field(discriminator="kind")]


class TlsSettings(Model):
    """The KBS HTTPS certificate."""

    mode: Literal["self-signed", "provided"] = "self-signed"
    dns_names: list[str] = Field(default_factory=list)
    validity_hours: int = Field(default=8760, ge=24, le=MAX_VALIDITY_HOURS)
    renew_before_hours: int | None = Field(
        default=None,
        ge=0,
        le=MAX_VALIDITY_HOURS,
        description="Self-signed: from this long before expiry, `pulumi up` issues a new key and "
        "certificate (every workload's init-data changes with it, so pods roll). 0: never. "
        "Default: a quarter of validityHours, at most 720 (30 days).",
    )
    certificate_from: SecretKeyRef | None = None
    private_key_from: SecretKeyRef | None = None

    @model_validator(mode="after")
    def _provided_needs_keys(self) -> TlsSettings:
        if self.mode == "provided" and not (self.certificate_from and self.private_key_from):
            raise ValueError(
                "tls.mode 'provided' needs certificateFrom and privateKeyFrom (config keys "
                "holding the PEM certificate and key as secrets)"
            )
        if self.renew_before_hours is not None and self.renew_before_hours >= self.validity_hours:
            raise ValueError(
                f"renewBeforeHours ({self.renew_before_hours}) must be less than validityHours "
                f"({self.validity_hours}), or every `pulumi up` would issue a new certificate"
            )
        return self

    @property
    def renewal_hours(self) -> int:
        """The renewal window in force: the configured one, or the default."""
        if self.renew_before_hours is not None:
            return self.renew_before_hours
        return min(720, self.validity_hours // 4)


class KbsResource(Model):
    """One secret the KBS serves, and exactly who may have it."""

    path: str = Field(description="repo/type/tag, e.g. default/key/1")
    value_from: SecretKeyRef = Field(description="Config key holding the value as a secret.")
    readers: list[DnsLabel] = Field(
        default_factory=list,
        description="Workloads whose init-data digest is allowed to read this resource.",
    )
    min_trust: Literal["affirming", "warning"] = "affirming"
    require_gpu: bool | None = Field(
        default=None, description="Also require an affirming GPU; default: any reader has GPUs."
    )
    allow_unbound: bool = Field(
        default=False,
        description="Release to any attested workload (no init-data binding): never in production.",
    )

    @field_validator("path")
    @classmethod
    def _path_shape(cls, v: str) -> str:
        return check_resource_path(v)

    @model_validator(mode="after")
    def _bound(self) -> KbsResource:
        if not self.readers and not self.allow_unbound:
            raise ValueError(
                f"resource {self.path!r} has no readers: list the workloads that may read it "
                "(their init-data digests are bound into the resource policy)"
            )
        return self


class TrusteeSettings(Model):
    """Trustee (KBS with built-in AS and RVPS) on the cluster."""

    namespace: DnsLabel = "trustee"
    image: str = releases.TRUSTEE_KBS_IMAGE
    replicas: int = Field(default=1, ge=1, le=10)
    service_type: Literal["ClusterIP", "NodePort", "LoadBalancer"] = "ClusterIP"
    port: int = Field(default=8080, ge=1, le=65535)
    node_port: int | None = Field(
        default=None,
        ge=1,
        le=65535,
        description="serviceType NodePort: the node port, pinned (the port of `url`); unset, "
        "Kubernetes would pick a random one and guests would dial the wrong port.",
    )
    ingress: KbsIngress | None = Field(
        default=None,
        description="An Ingress at the URL's host (TLS passed through to the KBS); "
        "components/reachability.py.",
    )
    url: str | None = Field(
        default=None,
        description="URL pods' guests use to reach the KBS; default: the in-cluster service.",
    )
    tls: TlsSettings = TlsSettings()
    secrets_delivery: Literal["create", "reference"] | None = Field(
        default=None,
        description=(
            "create: Pulumi creates the Kubernetes Secrets; reference: the Secrets are made "
            "out of band (GitOps). Default: create, or reference when rendering manifests."
        ),
    )
    resources: list[KbsResource] = Field(default_factory=list)
    hardening: HardeningSettings = Field(
        default_factory=HardeningSettings,
        description="The KBS's NetworkPolicy, PodDisruptionBudget and pod defaults "
        "(docs/hardening.md).",
    )
    verifiers: VerifierSettings = Field(
        default_factory=VerifierSettings,
        description="Verifier configuration for real sites (e.g. snp.kdsUrl: a VCEK cache).",
    )
    attestation_policy: str | None = Field(
        default=None, description="Custom AS policy (Rego); default: upstream default_cpu."
    )
    reference_values: dict[
        str, StrictStr | StrictBool | StrictInt | list[StrictStr | StrictBool | StrictInt]
    ] = Field(
        default_factory=dict,
        description=(
            "RVPS reference values by name, typed as the attestation policy compares them: "
            "lists for `in` (e.g. mr_td: [hex]), scalars for `==` (e.g. snp_smt_enabled: "
            "false, major_version: 1); see policies/attestation.py REFERENCE_KINDS."
        ),
    )

    @field_validator("url")
    @classmethod
    def _https(cls, v: str | None) -> str | None:
        if v is not None and not re.match(r"^https://[^\s/]+(:\d+)?/?$", v):
            raise ValueError(f"{v!r} must be an https:// URL with host and optional port")
        return v

    @model_validator(mode="after")
    def _unique_paths(self) -> TrusteeSettings:
        seen: set[str] = set()
        for r in self.resources:
            if r.path in seen:
                raise ValueError(f"resource path {r.path!r} is listed twice")
            seen.add(r.path)
        return self

    def service_url(self) -> str:
        return self.url or f"https://kbs.{self.namespace}.svc.cluster.local:{self.port}"


class ContainerResources(Model):
    limits: dict[str, str] = Field(default_factory=dict)
    requests: dict[str, str] = Field(default_factory=dict)


class ContainerSettings(Model):
    name: DnsLabel
    image: str
    command: list[str] | None = None
    args: list[str] | None = None
    env: dict[str, str] = Field(default_factory=dict)
    ports: list[Port] = Field(default_factory=list)
    resources: ContainerResources = ContainerResources()
    working_dir: str | None = Field(
        default=None, description="workingDir; pinned by the agent policy (default: the image's)."
    )
    run_as_user: int | None = Field(
        default=None, ge=0, le=INT32_MAX, description="securityContext.runAsUser."
    )
    run_as_group: int | None = Field(
        default=None, ge=0, le=INT32_MAX, description="securityContext.runAsGroup."
    )
    read_only_root_filesystem: bool = Field(
        default=False, description="securityContext.readOnlyRootFilesystem."
    )
    sealed_env: list[SealedEnvVar] = Field(
        default_factory=list,
        description="Env vars unsealed in the guest from KBS resources (docs/guest-features.md).",
    )
    sealed_files: list[SealedFile] = Field(
        default_factory=list,
        description="Files unsealed in the guest from KBS resources (docs/guest-features.md).",
    )

    @field_validator("working_dir")
    @classmethod
    def _absolute(cls, v: str | None) -> str | None:
        if v is not None and (not v.startswith("/") or ".." in v.split("/")):
            raise ValueError(f"workingDir {v!r} must be an absolute path without '..'")
        return v

    @field_validator("image")
    @classmethod
    def _image_ref(cls, v: str) -> str:
        if not v or any(c.isspace() for c in v) or v != v.strip():
            raise ValueError(f"{v!r} is not an image reference")
        if "@" in v and not _DIGEST_REF.match(v):
            raise ValueError(
                f"{v!r} has a malformed digest: use name@sha256:<64 lowercase hex characters>"
            )
        return v


class InitDataSettings(Model):
    algorithm: tee.DigestAlgorithm | None = Field(
        default=None, description="Default: the runtime class's natural algorithm."
    )


class WorkloadSettings(Model):
    """A confidential Pod or Deployment."""

    name: DnsLabel
    namespace: DnsLabel = "default"
    kind: Literal["Pod", "Deployment"] = "Deployment"
    replicas: int = Field(default=1, ge=0, le=1000)
    runtime_class: str | None = Field(
        default=None, description="Default: the secure class that fits the cluster hardware."
    )
    containers: list[ContainerSettings] = Field(min_length=1)
    gpus: int = Field(default=0, ge=0, le=8, description="NVIDIA GPUs (nvidia.com/pgpu).")
    memory: str | None = Field(default=None, description="Pod memory limit (required with gpus).")
    agent_policy: AgentPolicySpec = AgentPolicySpec()
    initdata: InitDataSettings = InitDataSettings()
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    legacy_runtime_handler_annotation: bool = Field(
        default=False,
        description="Also set io.containerd.cri.runtime-handler (legacy; off by default).",
    )
    service: ServiceSettings | None = Field(
        default=None, description="A Service in front of the pods (components/service.py)."
    )
    registry: RegistryAccess | None = Field(
        default=None,
        description="Private registry under guest pull: credentials as a KBS resource, "
        "private CA roots (policies/registry.py).",
    )
    image_signatures: ImageSignatures | None = Field(
        default=None,
        description="Keys that must have signed every image, verified by the guest's image-rs.",
    )
    image_decryption_keys: list[str] = Field(
        default_factory=list,
        description="kbs:///repo/type/tag key ids the workload's encrypted images name.",
    )
    hardening: HardeningSettings = Field(
        default_factory=HardeningSettings,
        description="Hardened defaults of the pods, NetworkPolicy, PodDisruptionBudget "
        "(docs/hardening.md).",
    )

    @model_validator(mode="after")
    def _consistent(self) -> WorkloadSettings:
        if self.gpus and not self.memory:
            raise ValueError("a GPU workload needs `memory` (a pod memory limit, e.g. '64Gi')")
        names = [c.name for c in self.containers]
        if len(set(names)) != len(names):
            raise ValueError("container names must be unique")
        policy = self.agent_policy
        if policy.preset == "restrictive":
            for i, c in enumerate(self.containers):
                try:
                    pod_env(c.env, f"containers[{i}] ({c.name})")
                except ValueError as err:
                    raise ValueError(
                        f"{err}. The agent policy pins every env value as the container "
                        "receives it: define the variable earlier in `env` (kubelet expands "
                        "in name order here), or write a literal `$` as `$$`"
                    ) from None
        if policy.preset == "restrictive" and policy.pin_commands:
            for i, c in enumerate(self.containers):
                if c.command:
                    try:
                        kubernetes_argv(c.command, c.args, c.env)
                    except ValueError as err:
                        raise ValueError(
                            f"containers[{i}] ({c.name}): {err}. The agent policy pins the exact "
                            "argv: define the variable in `env`, write a literal `$` as `$$`, "
                            "or set agentPolicy.pinCommands: false"
                        ) from None
        return self

    @property
    def images(self) -> list[str]:
        return [c.image for c in self.containers]


Check = Literal[
    "coco-dev-runtime",
    "allow-all-agent-policy",
    "unbound-resource-policy",
    "missing-reference-values",
    "unpinned-images",
    "unsigned-images",
    "co-located-trustee",
    "unpinned-kbs-image",
]
CHECK_TEXT: dict[str, str] = {
    "coco-dev-runtime": "runtime class kata-qemu-coco-dev gives no hardware protection",
    "allow-all-agent-policy": "an allow-all agent policy lets the host exec into the guest",
    "unbound-resource-policy": "a resource without init-data binding goes to any workload",
    "missing-reference-values": "without reference values the AS cannot affirm any measurement",
    "unpinned-images": "an image not pinned by digest can change under the same name",
    "unsigned-images": "an image no signature policy covers runs whatever the registry serves "
    "(only with coco:checklist.requireSignedImages)",
    "co-located-trustee": "a Trustee on the confidential cluster keeps every KBS key and secret "
    "where that cluster's untrusted admins can read them (docs/topologies.md)",
    "unpinned-kbs-image": "a KBS image pulled by tag lets whoever controls the tag replace the "
    "root of trust",
}


class Waiver(Model):
    """A deliberate, documented exception to one production check."""

    check: Check
    reason: str = Field(min_length=15, description="Why this is acceptable; kept in the stack.")


class StackSettings(Model):
    environment: Environment = "dev"
    kubernetes: KubernetesTarget = KubernetesTarget()
    cluster: ClusterSettings
    trustee: TrusteeSettings = TrusteeSettings()
    workloads: list[WorkloadSettings] = Field(default_factory=list)
    manifests: list[ManifestSource] = Field(
        default_factory=list,
        description="Your own YAML folders or Helm charts, made confidential "
        "(components/manifests.py, docs/workloads.md).",
    )
    waivers: list[Waiver] = Field(default_factory=list)
    checklist: ChecklistSettings | None = Field(
        default=None,
        description="Optional checks the stack opts in to (components/checklist.py); "
        "default: none.",
    )
    protect: bool | None = Field(
        default=None,
        description="Pulumi `protect` on clusters, cloud identities and KBS keys "
        "(components/protection.py). Default: on in production unless rendering.",
    )

    layer: LayerSettings | None = Field(
        default=None,
        description="Two-stack layout (platform / trust, components/layers.py); "
        "default: one stack holds everything.",
    )
    topology: TopologySettings | None = Field(
        default=None,
        description="Where the Trustee runs (components/topology.py, docs/topologies.md); "
        "default: co-located (dev/test only).",
    )

    @property
    def protected(self) -> bool:
        """Whether what holds state or identity is `protect`ed (coco:protect, or its default)."""
        if self.protect is not None:
            return self.protect
        return self.production and not self.kubernetes.rendering

    @property
    def trustee_topology(self) -> TopologySettings:
        """Where the Trustee runs: `coco:topology`, or its default (co-located)."""
        return self.topology or TopologySettings()

    @property
    def hardware(self) -> tee.Hardware:
        return self.cluster.hardware

    @property
    def production(self) -> bool:
        return self.environment == "production"

    def waived(self, check: Check) -> bool:
        return any(w.check == check for w in self.waivers)

    def runtime_class_of(self, workload: WorkloadSettings) -> str:
        if workload.runtime_class:
            return workload.runtime_class
        return tee.default_class(self.hardware, wants_gpu=workload.gpus > 0)

    def secrets_delivery(self) -> Literal["create", "reference"]:
        if self.trustee.secrets_delivery:
            return self.trustee.secrets_delivery
        return "reference" if self.kubernetes.rendering else "create"

    @cached_property
    def _workloads_by_name(self) -> dict[str, WorkloadSettings]:
        return {w.name: w for w in self.workloads}

    def manifest_runtime_class(self, source: ManifestSource) -> str:
        return source.runtime_class or tee.default_class(self.hardware, wants_gpu=source.gpus > 0)

    def workload(self, name: str) -> WorkloadSettings:
        """The workload named `name` (a dict lookup: stacks may hold thousands)."""
        return self._workloads_by_name[name]


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the stack configuration, addressed by its config key."""

    key: str
    message: str

    def __str__(self) -> str:
        # Bounded: a problem never repeats a huge value (components/yaml_input.py).
        return f"  - {clip(self.key, 200)}: {clip(self.message)}"


class SettingsError(ValueError):
    """Every problem in a stack configuration, reported together."""

    def __init__(self, problems: Iterable[Problem], stack: str | None = None) -> None:
        self.problems = list(problems)
        where = f" in stack {clip(repr(stack), 120)}" if stack else ""
        shown = self.problems[:MAX_SHOWN_PROBLEMS]
        lines = "\n".join(str(p) for p in shown)
        if len(self.problems) > len(shown):
            lines += f"\n  ... and {len(self.problems) - len(shown)} more"
        super().__init__(
            f"invalid coco configuration{where} ({len(self.problems)} problem"
            f"{'s' if len(self.problems) != 1 else ''}):\n{lines}"
        )


def _key_path(loc: tuple[int | str, ...]) -> str:
    out = f"{NAMESPACE}:"
    for i, part in enumerate(loc):
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in ("baremetal", "peerpods", "aws", "azure", "gcp") and i > 0:
            continue  # pydantic's discriminator tag, not a key the user wrote
        else:
            out += ("." if i > 0 else "") + part
    return out


def _pydantic_problems(err: ValidationError) -> list[Problem]:
    problems = []
    for e in err.errors(include_url=False):
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            msg = "unknown key: check its spelling against `python -m components.settings --schema`"
        elif e["type"] == "missing":
            msg = "required key is missing"
        elif e["type"] == "union_tag_invalid":
            msg = f"{msg}; set it to one of the listed values"
        problems.append(Problem(_key_path(tuple(e["loc"])), msg))
    return problems


def _cross_checks(s: StackSettings, is_secret: Callable[[str], bool] | None) -> list[Problem]:
    """Checks that span several keys: hardware fit, references, the production checklist."""
    problems: list[Problem] = []
    hw = s.hardware
    names = [w.name for w in s.workloads]
    name_counts = Counter(names)
    for i, w in enumerate(s.workloads):
        key = f"{NAMESPACE}:workloads[{i}]"
        if name_counts[w.name] > 1:
            problems.append(Problem(f"{key}.name", f"workload name {w.name!r} is used twice"))
        if w.runtime_class is not None:
            why = tee.mismatch(w.runtime_class, hw)
            if why:
                choices = ", ".join(tee.classes_for(hw)) or "none"
                problems.append(
                    Problem(f"{key}.runtimeClass", f"{why}; classes that fit: {choices}")
                )
                continue
        try:
            rc = s.runtime_class_of(w)
        except ValueError as exc:
            problems.append(Problem(f"{key}.runtimeClass", str(exc)))
            continue
        spec = tee.CATALOGUE[rc]
        if w.gpus and not spec.gpu:
            problems.append(
                Problem(
                    f"{key}.gpus",
                    f"runtime class {rc!r} has no GPU pass-through; use a kata-qemu-nvidia-gpu-* "
                    "class on a cluster with `gpu`, or set gpus to 0",
                )
            )
        if spec.gpu and not w.gpus:
            problems.append(
                Problem(f"{key}.gpus", f"runtime class {rc!r} is for GPU pods: set gpus >= 1")
            )
        chart = isinstance(s.cluster, BareMetalCluster) and s.cluster.install.method == "chart"
        if chart and spec.kata_deploy_shim is None:
            problems.append(
                Problem(f"{key}.runtimeClass", f"{rc!r} cannot be installed by kata-deploy")
            )
        if (
            isinstance(s.cluster, PeerPodsCluster)
            and attestation_platform(s.cluster.cloud) in VTPM_PLATFORMS
            and w.initdata.algorithm not in (None, VTPM_ALGORITHM)
        ):
            problems.append(
                Problem(
                    f"{key}.initdata.algorithm",
                    f"Azure confidential VMs bind init-data by extending vTPM PCR8, which takes "
                    f"a sha256 digest only (the attester refuses, the verifier panics on, a "
                    f"{w.initdata.algorithm} one): use sha256 or omit it",
                )
            )
        if w.agent_policy.preset == "restrictive":
            for j, c in enumerate(w.containers):
                if not is_pinned(c.image) and not w.agent_policy.allowed_images:
                    problems.append(
                        Problem(
                            f"{key}.containers[{j}].image",
                            f"{c.image!r} is not pinned by digest, so the restrictive agent "
                            "policy cannot allow it: pin it as name@sha256:<digest>",
                        )
                    )
        if s.production:
            if rc == "kata-qemu-coco-dev" and not s.waived("coco-dev-runtime"):
                problems.append(
                    Problem(
                        f"{key}.runtimeClass",
                        "production refuses kata-qemu-coco-dev (no hardware protection): run on "
                        "TEE hardware or waive 'coco-dev-runtime' with a reason",
                    )
                )
            if w.agent_policy.preset == "allow-all" and not s.waived("allow-all-agent-policy"):
                problems.append(
                    Problem(
                        f"{key}.agentPolicy.preset",
                        "production refuses the allow-all agent policy: use 'restrictive' or "
                        "waive 'allow-all-agent-policy' with a reason",
                    )
                )
            if not s.waived("unpinned-images"):
                for j, c in enumerate(w.containers):
                    if not is_pinned(c.image):
                        problems.append(
                            Problem(
                                f"{key}.containers[{j}].image",
                                f"production needs images pinned by digest: {c.image!r}",
                            )
                        )
    problems += _manifest_problems(s, name_counts)
    problems += _registry_problems(s)
    sources = {m.name for m in s.manifests}
    for i, r in enumerate(s.trustee.resources):
        key = f"{NAMESPACE}:trustee.resources[{i}]"
        # A Trustee stack of the split trusted zone names workloads of other stacks: checked
        # when it reads their exported digests (components/zones.py).
        for reader in r.readers if s.trustee_topology.role != "trustee" else []:
            if reader in sources and reader not in name_counts:
                continue
            if reader not in name_counts:
                problems.append(
                    Problem(
                        f"{key}.readers",
                        f"{reader!r} is not a workload in coco:workloads or coco:manifests "
                        f"(known: {', '.join([*names, *sorted(sources)]) or 'none'})",
                    )
                )
                continue
            reader_rc = s.workload(reader).runtime_class
            if reader_rc is None and hw.tee == "sev":
                reader_rc = tee.default_class(hw)
            if hw.host == "baremetal" and reader_rc == "kata-qemu-sev":
                problems.append(
                    Problem(
                        f"{key}.readers",
                        f"{reader!r} runs on {reader_rc!r}, which Trustee cannot attest "
                        "(no verifier for AMD SEV): it can read no KBS resource; "
                        "move it to kata-qemu-snp",
                    )
                )
        if r.allow_unbound and s.production and not s.waived("unbound-resource-policy"):
            problems.append(
                Problem(
                    f"{key}.allowUnbound",
                    "production refuses a resource without init-data binding: list its readers "
                    "or waive 'unbound-resource-policy' with a reason",
                )
            )
    problems += guest_problems(s)
    problems += signed_images_problems(s)
    if is_secret is not None:
        problems += _secret_ref_problems(s, is_secret)
    rv_problems = reference_value_problems(
        s.trustee.reference_values, custom_policy=s.trustee.attestation_policy is not None
    )
    for rv_name, why in rv_problems.items():
        problems.append(Problem(f"{NAMESPACE}:trustee.referenceValues.{rv_name}", why))
    problems += topology_problems(s)
    problems += reachability_problems(s)
    # A confidential stack of the split form holds no reference values: its Trustee stack
    # checks them. An external Trustee's are set by this stack (admin API), so checked here.
    measured_here = s.trustee_topology.role != "confidential"
    if s.production and measured_here and not s.waived("missing-reference-values"):
        # Resources that require affirming evidence the reference values cannot give
        # (components/reference_coverage.py); warned about outside production (stack.py).
        problems += [Problem(key, why) for key, why in coverage_gaps(s)]
    if (
        s.production
        and measured_here
        and not s.trustee.reference_values
        and not s.waived("missing-reference-values")
    ):
        problems.append(
            Problem(
                f"{NAMESPACE}:trustee.referenceValues",
                "production needs reference values (e.g. mr_td, rtmr_1 for TDX; "
                "snp_launch_measurement for SNP) or a waiver of 'missing-reference-values'",
            )
        )
    if s.kubernetes.rendering and isinstance(s.cluster, BareMetalCluster):
        bm = s.cluster
        if bm.gpu is not None and bm.gpu.operator.install:
            problems.append(
                Problem(
                    f"{NAMESPACE}:cluster.gpu.operator.install",
                    "the GPU Operator is a Helm release and cannot be rendered: set it to false "
                    "with renderDir, or deploy to a cluster",
                )
            )
        if bm.label_nodes:
            problems.append(
                Problem(
                    f"{NAMESPACE}:cluster.labelNodes",
                    "node labels patch live Node objects and cannot be rendered: label the "
                    "nodes yourself, or deploy to a cluster",
                )
            )
    if (
        isinstance(s.cluster, BareMetalCluster)
        and s.cluster.install.method == "chart"
        and kata_chart.is_local_chart(s.cluster.install.chart)
    ):
        why = kata_chart.local_chart_problem(s.cluster.install.chart, s.cluster.install.version)
        if why:
            problems.append(Problem(f"{NAMESPACE}:cluster.install.chart", why))
    if (
        isinstance(s.cluster, BareMetalCluster)
        and s.cluster.install.method == "chart"
        and not s.cluster.use_nfd
        and not s.cluster.label_nodes
    ):
        problems.append(
            Problem(
                f"{NAMESPACE}:cluster.labelNodes",
                "with useNfd false, no node carries the TEE label and no pod can be scheduled: "
                "list the TEE nodes in labelNodes, or set useNfd true",
            )
        )
    if isinstance(s.cluster, PeerPodsCluster):
        if s.kubernetes.rendering:
            problems.append(
                Problem(
                    f"{NAMESPACE}:kubernetes.renderDir",
                    "peer pods need cloud resources and Helm releases, which cannot be "
                    "rendered: remove renderDir and give a kubeconfig or let the stack create "
                    "the cluster",
                )
            )
        if s.trustee.url is None and not s.trustee_topology.remote_trustee:
            problems.append(
                Problem(
                    f"{NAMESPACE}:trustee.url",
                    "pod VMs run outside the cluster and cannot resolve the in-cluster KBS "
                    "service: set the KBS URL they reach (NodePort, load balancer or ingress)",
                )
            )
    if s.kubernetes.rendering and s.trustee.secrets_delivery == "create":
        problems.append(
            Problem(
                f"{NAMESPACE}:trustee.secretsDelivery",
                "rendering writes Secret objects in plain text: use 'reference' with renderDir "
                "and deliver the Secrets through your secret manager",
            )
        )
    return problems


def _registry_problems(s: StackSettings) -> list[Problem]:
    """Registry credentials are a KBS resource granted to exactly the workloads that pull
    with them: any other reader would get a key to the registry it does not need."""
    problems: list[Problem] = []
    pullers: dict[str, set[str]] = {}
    for i, w in enumerate(s.workloads):
        path = w.registry.credentials_resource if w.registry else None
        if path is None:
            continue
        pullers.setdefault(path, set()).add(w.name)
        if path not in {r.path for r in s.trustee.resources}:
            problems.append(
                Problem(
                    f"{NAMESPACE}:workloads[{i}].registry.credentialsResource",
                    f"{path!r} is not in coco:trustee.resources: add it with the Docker "
                    "config.json as a secret (valueFrom) and this workload as its reader",
                )
            )
    for i, r in enumerate(s.trustee.resources):
        if r.path in pullers and set(r.readers) != pullers[r.path]:
            problems.append(
                Problem(
                    f"{NAMESPACE}:trustee.resources[{i}].readers",
                    f"registry credentials {r.path!r} go only to the workloads pulling with "
                    f"them: set readers to {sorted(pullers[r.path])}",
                )
            )
    return problems


def _manifest_problems(s: StackSettings, workload_names: Counter[str]) -> list[Problem]:
    """coco:manifests: names, runtime class fit, and every object of a YAML folder checked
    (schema, TEE, agent policy, digests in production) before anything is created."""
    if not s.manifests:
        return []
    from components.manifests import chart_problems, folder_problems  # loads k8s schemas

    problems: list[Problem] = []
    seen: set[str] = set()
    for i, m in enumerate(s.manifests):
        key = f"{NAMESPACE}:manifests[{i}]"
        if m.name in seen or m.name in workload_names:
            problems.append(Problem(f"{key}.name", f"{m.name!r} is also another workload's name"))
        seen.add(m.name)
        if m.runtime_class is not None and (why := tee.mismatch(m.runtime_class, s.hardware)):
            problems.append(Problem(f"{key}.runtimeClass", why))
            continue
        try:
            rc = s.manifest_runtime_class(m)
        except ValueError as exc:
            problems.append(Problem(f"{key}.runtimeClass", str(exc)))
            continue
        if m.gpus and not tee.CATALOGUE[rc].gpu:
            problems.append(Problem(f"{key}.gpus", f"runtime class {rc!r} has no GPU pass-through"))
            continue
        if s.production and rc == "kata-qemu-coco-dev" and not s.waived("coco-dev-runtime"):
            problems.append(Problem(f"{key}.runtimeClass", "production refuses kata-qemu-coco-dev"))
        if (
            s.production
            and m.agent_policy.preset == "allow-all"
            and not s.waived("allow-all-agent-policy")
        ):
            problems.append(
                Problem(
                    f"{key}.agentPolicy.preset", "production refuses the allow-all agent policy"
                )
            )
        if m.chart is not None:
            problems += [Problem(f"{key}.chart", p) for p in chart_problems(m.chart)]
        if m.path is not None:
            production = s.production and not s.waived("unpinned-images")
            problems += [Problem(f"{key}.path", p) for p in folder_problems(m, rc, production)]
    return problems


def secret_refs(s: StackSettings) -> list[tuple[str, str]]:
    """(settings key, referenced config key) for every value that must be a Pulumi secret."""
    refs: list[tuple[str, str]] = []
    for i, r in enumerate(s.trustee.resources):
        refs.append((f"{NAMESPACE}:trustee.resources[{i}].valueFrom", r.value_from))
    external = s.trustee_topology.external
    if external is not None:
        refs.append((f"{NAMESPACE}:topology.external.adminKeyFrom", external.admin_key_from))
    tls = s.trustee.tls
    if tls.certificate_from:
        refs.append((f"{NAMESPACE}:trustee.tls.certificateFrom", tls.certificate_from))
    if tls.private_key_from:
        refs.append((f"{NAMESPACE}:trustee.tls.privateKeyFrom", tls.private_key_from))
    if isinstance(s.cluster, PeerPodsCluster):
        cloud = s.cluster.cloud
        for field_name in type(cloud).model_fields:
            if field_name.endswith("_from"):
                value = getattr(cloud, field_name)
                if value:
                    refs.append((f"{NAMESPACE}:cluster.cloud.{to_camel(field_name)}", value))
    return refs


def full_key(ref: str) -> str:
    return ref if ":" in ref else f"{NAMESPACE}:{ref}"


def _secret_ref_problems(s: StackSettings, is_secret: Callable[[str], bool]) -> list[Problem]:
    problems = []
    for key, ref in secret_refs(s):
        if not is_secret(full_key(ref)):
            problems.append(
                Problem(
                    key,
                    f"config key {full_key(ref)!r} must be set as a secret: "
                    f"`pulumi config set --secret {ref} <value>`",
                )
            )
    return problems


def parse(
    raw: Mapping[str, Any],
    *,
    is_secret: Callable[[str], bool] | None = None,
    stack: str | None = None,
) -> StackSettings:
    """Validate raw config (keys without the `coco:` prefix) into settings, or raise.

    `is_secret` tells whether a full config key (`coco:dbPassword`) is a secret in the stack;
    when given, every `...From` reference must name one.
    """
    data = {k: v for k, v in raw.items() if k in TOP_LEVEL_KEYS}
    # The input boundary first: values no Pulumi config or Kubernetes object can carry
    # (integers beyond int64, lone surrogates, non-string keys), whichever path they came by.
    found = value_problems(data)
    if found:
        raise SettingsError([Problem(f"{NAMESPACE}:{k}", m) for k, m in found], stack)
    try:
        settings = StackSettings.model_validate(data)
    except ValidationError as err:
        raise SettingsError(_pydantic_problems(err), stack) from None
    problems = _cross_checks(settings, is_secret)
    if problems:
        raise SettingsError(problems, stack)
    return settings


def strip_namespace(config: Mapping[str, Any]) -> dict[str, Any]:
    """`{"coco:cluster": ...}` (a stack file's `config:`) -> `{"cluster": ...}`."""
    prefix = f"{NAMESPACE}:"
    return {k[len(prefix) :]: v for k, v in config.items() if k.startswith(prefix)}


def load(stack: str | None = None) -> StackSettings:
    """Read and validate the `coco:` config of the running Pulumi program."""
    import pulumi
    from pulumi.runtime.config import is_config_secret

    cfg = pulumi.Config(NAMESPACE)
    raw: dict[str, Any] = {}
    for key in TOP_LEVEL_KEYS:
        # `environment` is a plain string in stack files; the rest are structured values.
        value = cfg.get(key) if key == "environment" else cfg.get_object(key)
        if value is not None:
            raw[key] = value
    return parse(raw, is_secret=is_config_secret, stack=stack or pulumi.get_stack())


def json_schema() -> dict[str, Any]:
    """The JSON Schema of `coco:` config values, keyed as they appear in a stack file."""
    schema = StackSettings.model_json_schema(by_alias=True)
    schema["title"] = "coco stack configuration (keys under the `coco:` namespace)"
    return schema


def main(argv: list[str]) -> int:
    if argv[1:] == ["--schema"]:
        print(json.dumps(json_schema(), indent=2, sort_keys=True))
        return 0
    print("usage: python -m components.settings --schema", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
