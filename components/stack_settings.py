"""The whole stack configuration as typed models: the one source of truth.

Every component reads these models and nothing else. Each model enforces the rules of its own
fields (pydantic validators); the rules that span several keys, and the reading of input
files, are the validation layer's (components/checks/), run by `components.settings.parse`,
which every caller uses to get a `StackSettings` (docs/architecture.md).

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

import re
from functools import cached_property
from typing import Annotated, Any, Literal
from urllib.parse import urlparse

from pydantic import (
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

from components import kata_chart, releases, tee
from components.checklist import ChecklistSettings
from components.config_types import DnsLabel, KubernetesTarget, Model, SecretKeyRef
from components.guest_features import ImageSignatures, SealedEnvVar, SealedFile
from components.hardening import HardeningSettings
from components.layer_settings import LayerSettings
from components.manifest_settings import ManifestSource
from components.peerpods.settings import PeerPodsCluster
from components.reachability import KbsIngress
from components.service import ServiceSettings
from components.tee import Hardware
from components.topology import TopologySettings
from components.value_ranges import INT32_MAX, MAX_VALIDITY_HOURS, Port
from components.verifier_settings import VerifierSettings
from components.vocabulary import DIGEST_REF, NAMESPACE, ResourcePath
from policies.agent import AgentPolicySpec, kubernetes_argv, pod_env
from policies.registry import RegistryAccess

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

Environment = Literal["dev", "staging", "production"]


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
    release_set: str = Field(
        default=releases.CURRENT.name,
        description=(
            "Which tested set of upstream releases to install (components/releases.py): "
            f"{releases.CURRENT.name!r} (current, the default) or {releases.PREVIOUS.name!r} "
            "(previous). It sets the defaults of install.version and gpu.operator.version. "
            "docs/upgrades.md."
        ),
    )
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

    @field_validator("release_set")
    @classmethod
    def _known_release_set(cls, v: str) -> str:
        return releases.release_set(v).name

    @model_validator(mode="before")
    @classmethod
    def _release_set_defaults(cls, data: Any) -> Any:
        """The chosen release set's versions as the defaults of the version keys.

        Only keys the stack does not set are filled, so an explicit version still wins (and is
        checked against the set by the values builders, components/cluster.py).
        """
        if not isinstance(data, dict):
            return data
        name = data.get("releaseSet", data.get("release_set", releases.CURRENT.name))
        chosen = releases.RELEASE_SETS.get(name) if isinstance(name, str) else None
        if chosen is None or chosen is releases.CURRENT:
            return data  # the field defaults are the current set's; unknown: refused above
        data = dict(data)
        install = data.get("install", {})
        if isinstance(install, dict) and "version" not in install:
            data["install"] = {**install, "version": chosen.kata_deploy.version}
        gpu = data.get("gpu")
        if isinstance(gpu, dict):
            operator = gpu.get("operator", {})
            if isinstance(operator, dict) and "version" not in operator:
                version = chosen.gpu_operator.version
                data["gpu"] = {**gpu, "operator": {**operator, "version": version}}
        return data

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

    path: ResourcePath = Field(description="repo/type/tag, e.g. default/key/1")
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
        description="Verifier configuration for real sites: snp.kdsUrl (a VCEK cache), "
        "snp.offlineStore (VCEKs for air-gapped sites), nvidia.mode (local or remote).",
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
        if v is None:
            return v
        problem = f"{v!r} must be an https:// URL with host and optional port (1-65535)"
        if not re.match(r"^https://[^\s/]+(:\d+)?/?$", v):
            raise ValueError(problem)
        try:
            # What guests and the reachability checks read from it (components/reachability.py
            # `url_host_port`): a bracket left open or a port out of range is refused here.
            parsed = urlparse(v)
            host, port = parsed.hostname, parsed.port
        except ValueError:
            raise ValueError(problem) from None
        if not host or port == 0:
            raise ValueError(problem)
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
        if "@" in v and not DIGEST_REF.match(v):
            raise ValueError(
                f"{v!r} has a malformed digest: use name@sha256:<64 lowercase hex characters>"
            )
        return v


class InitDataSettings(Model):
    algorithm: tee.DigestAlgorithm | None = Field(
        default=None, description="Default: the runtime class's natural algorithm."
    )


def _no_nulls(value: Any, where: str) -> None:
    """Nothing if `value` holds no null anywhere, else a ValueError naming the first one's path: a
    Kubernetes object written by hand has no use for one (a null field is unset, a null list
    item is no object), and the checks after this read every item as a mapping."""
    if value is None:
        raise ValueError(f"{where} is null: remove it, or give it a value")
    if isinstance(value, dict):
        for k, v in value.items():
            _no_nulls(v, f"{where}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _no_nulls(v, f"{where}[{i}]")


WORKLOAD_OWN_SPEC_FIELDS: dict[str, str] = {
    "template": "give the pod template as the entry's `template`",
    "jobTemplate": "give the pod template as the entry's `template`",
    "selector": "coco selects the workload's pods by its own label",
    "replicas": "give `replicas` on the entry",
}
"""Object spec fields a `coco:workloads` entry does not take in `spec`, and where they go."""


class WorkloadSettings(Model):
    """A confidential Pod, Deployment, StatefulSet, Job or CronJob (components/workload_template.py
    builds the Kubernetes object; docs/workloads.md)."""

    name: DnsLabel
    namespace: DnsLabel = "default"
    kind: Literal["Pod", "Deployment", "StatefulSet", "Job", "CronJob"] = "Deployment"
    replicas: int = Field(
        default=1, ge=0, le=1000, description="Deployment and StatefulSet replicas."
    )
    runtime_class: str | None = Field(
        default=None, description="Default: the secure class that fits the cluster hardware."
    )
    containers: list[ContainerSettings] = Field(
        default_factory=list,
        description="The short form: expands into the pod template's containers.",
    )
    template: dict[str, Any] = Field(
        default_factory=dict,
        description="A Kubernetes PodTemplateSpec (metadata, spec) merged over what the short "
        "form expands into (containers, initContainers, volumes and env by name); checked "
        "against the Kubernetes schema.",
    )
    spec: dict[str, Any] = Field(
        default_factory=dict,
        description="The object's other spec fields as Kubernetes spells them (CronJob "
        "schedule, Job backoffLimit, StatefulSet serviceName); not template, selector or "
        "replicas.",
    )
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

    @field_validator("template")
    @classmethod
    def _template_shape(cls, v: dict[str, Any]) -> dict[str, Any]:
        """A PodTemplateSpec's two fields, each a mapping (the Kubernetes schema checks the
        rest once the object is built: components/workload_template.py `problems`)."""
        extra = sorted(set(v) - {"metadata", "spec"})
        if extra:
            raise ValueError(
                f"a pod template has `metadata` and `spec` only, not {extra}: put pod fields "
                "under template.spec"
            )
        for key in ("metadata", "spec"):
            if key in v and not isinstance(v[key], dict):
                raise ValueError(f"template.{key} must be a mapping")
        _no_nulls(v, "template")
        return v

    @field_validator("spec")
    @classmethod
    def _spec_shape(cls, v: dict[str, Any]) -> dict[str, Any]:
        _no_nulls(v, "spec")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> WorkloadSettings:
        if self.gpus and not self.memory:
            raise ValueError("a GPU workload needs `memory` (a pod memory limit, e.g. '64Gi')")
        if not self.containers and not self._template_containers():
            raise ValueError("give at least one container (`containers` or template.spec)")
        self._kind_fits()
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

    def _kind_fits(self) -> None:
        """What the kind decides: which object spec fields and replicas the entry may give."""
        own = sorted(WORKLOAD_OWN_SPEC_FIELDS.keys() & self.spec.keys())
        if own:
            raise ValueError(f"spec.{own[0]}: {WORKLOAD_OWN_SPEC_FIELDS[own[0]]}, not in `spec`")
        if self.kind == "Pod" and self.spec:
            raise ValueError("a Pod has no `spec` besides its pod template: use `template`")
        if self.kind in ("Job", "CronJob"):
            if "replicas" in self.model_fields_set:
                raise ValueError(
                    f"a {self.kind} has no replicas: set spec.parallelism/completions instead"
                )
            restart = (self.template.get("spec") or {}).get("restartPolicy")
            if restart == "Always":
                raise ValueError(
                    f"template.spec.restartPolicy: a {self.kind} takes Never (the default) or "
                    "OnFailure"
                )

    def _template_containers(self) -> list[Any]:
        return [c for _, c in self._template_container_keys()]

    def _template_container_keys(self) -> list[tuple[str, dict[str, Any]]]:
        spec = self.template.get("spec")
        if not isinstance(spec, dict):
            return []
        return [
            (f"template.spec.{field}[{i}]", c)
            for field in ("initContainers", "containers")
            if isinstance(spec.get(field), list)
            for i, c in enumerate(spec[field])
            if isinstance(c, dict)
        ]

    def image_keys(self) -> list[tuple[str, str, str]]:
        """(key below the entry, container name, image) of every container, the template's
        image replacing the short form's of the same name (components/workload_template.py
        `merge`)."""
        found = {
            c.name: (f"containers[{j}].image", c.name, c.image)
            for j, c in enumerate(self.containers)
        }
        for key, c in self._template_container_keys():
            name = str(c.get("name"))
            if isinstance(c.get("image"), str):
                found[name] = (f"{key}.image", name, c["image"])
        return list(found.values())

    @property
    def images(self) -> list[str]:
        """Every container's image (`image_keys`)."""
        return [image for _, _, image in self.image_keys()]


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
