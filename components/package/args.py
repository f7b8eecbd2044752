"""The package components' typed arguments: the schema other Pulumi programs see.

The SDK's analyzer (`pulumi/provider/experimental/analyzer.py`, `Analyzer.analyze_type`)
turns each TypedDict into a `coco:index:<Name>` object type: snake_case keys become camelCase
properties, `Required[...]` keys required ones (total=False makes the rest optional),
`pulumi.Input[...]` values take outputs of other resources, plain values must be known when
the component is built (they shape which resources exist), and the docstring under a key is
its description. The values are then validated by the program's own pydantic models
(components/stack_settings.py), so a package user gets the same checks and messages as a stack
config, addressed by argument (`args.containers[0].image`) instead of `coco:` key.

Settings whose value lives in nested models the package does not type field by field
(`agentPolicy`, `service`, `registry`, `hardening`, `referenceValues`) are JSON objects here,
validated by those models. Not offered: `sealedEnv`, `imageSignatures`, `imageDecryptionKeys` (each
needs KBS resources the program's stack builder generates and binds; the package's Trustee
takes only resources the caller gives values for).

No `from __future__ import annotations` here: see components/package/__init__.py.
"""

from enum import StrEnum
from typing import Any, Required, TypedDict

import pulumi


class Environment(StrEnum):
    """The stack's environment: production enforces the CoCo production checklist."""

    DEV = "dev"
    STAGING = "staging"
    PRODUCTION = "production"


class WorkloadKind(StrEnum):
    """The Kubernetes object a confidential workload is."""

    POD = "Pod"
    DEPLOYMENT = "Deployment"
    STATEFUL_SET = "StatefulSet"
    JOB = "Job"
    CRON_JOB = "CronJob"


class ContainerResourcesArgs(TypedDict, total=False):
    """Kubernetes resource limits and requests of one container."""

    limits: dict[str, str]
    """e.g. {memory: 512Mi}"""
    requests: dict[str, str]
    """e.g. {cpu: 100m}"""


class ContainerArgs(TypedDict, total=False):
    """One container of a confidential workload (pinned into its agent policy)."""

    name: Required[str]
    """Container name (a DNS-1123 label)."""
    image: Required[str]
    """Image reference; pin it by digest (`...@sha256:...`) for production."""
    command: list[str]
    """Entrypoint argv; fixes the argv the agent policy allows."""
    args: list[str]
    """Arguments after the command."""
    env: dict[str, str]
    """Environment variables (pinned by the agent policy)."""
    ports: list[int]
    """Container ports."""
    resources: ContainerResourcesArgs
    """Resource limits and requests."""
    working_dir: str
    """Working directory (pinned when set)."""
    run_as_user: int
    """securityContext.runAsUser."""
    run_as_group: int
    """securityContext.runAsGroup."""
    read_only_root_filesystem: bool
    """securityContext.readOnlyRootFilesystem."""


class InitDataArgs(TypedDict, total=False):
    """How the workload's init-data is digested."""

    algorithm: str
    """sha256, sha384 or sha512; default: the TEE's own (sha384 on TDX and SNP)."""


class ConfidentialWorkloadArgs(TypedDict, total=False):
    """A confidential Pod, Deployment, StatefulSet, Job or CronJob: the fields of a
    `coco:workloads` entry, plus what the stack would otherwise supply (environment, KBS URL
    and certificate)."""

    name: Required[str]
    """Kubernetes name of the object (a DNS-1123 label)."""
    namespace: str
    """Namespace (default: default); it must exist."""
    kind: WorkloadKind
    """Pod, Deployment, StatefulSet, Job or CronJob (default: Deployment)."""
    replicas: int
    """Deployment or StatefulSet replicas (default 1)."""
    runtime_class: Required[str]
    """The CoCo runtime class, e.g. kata-qemu-tdx, kata-qemu-snp, kata-qemu-coco-dev."""
    containers: list[ContainerArgs]
    """The short form of the containers (this or `template` gives at least one)."""
    template: dict[str, Any]
    """A Kubernetes PodTemplateSpec (metadata, spec: probes, securityContext, volumes,
    serviceAccountName, initContainers, ...) merged over what `containers` expands into."""
    spec: dict[str, Any]
    """The object's other spec fields (CronJob schedule, Job backoffLimit, StatefulSet
    serviceName)."""
    gpus: int
    """NVIDIA GPUs passed through to the pod VM."""
    memory: str
    """Pod memory limit (required with gpus)."""
    agent_policy: dict[str, Any]
    """The Kata agent policy spec (`agentPolicy` of a coco:workloads entry)."""
    initdata: InitDataArgs
    """Init-data options."""
    labels: dict[str, str]
    """Extra pod labels."""
    annotations: dict[str, str]
    """Extra pod annotations (coco's own cannot be overridden)."""
    legacy_runtime_handler_annotation: bool
    """Also set io.containerd.cri.runtime-handler (older containerd)."""
    service: dict[str, Any]
    """A Service for the workload (`service` of a coco:workloads entry)."""
    registry: dict[str, Any]
    """Private registry access (`registry` of a coco:workloads entry)."""
    hardening: dict[str, Any]
    """The pods' hardened defaults, each relaxable by name (`hardening` of a coco:workloads
    entry, docs/hardening.md)."""
    environment: Required[Environment]
    """dev, staging or production."""
    kbs_url: Required[pulumi.Input[str]]
    """The KBS URL the guest attests to (a TrusteeTls's `url`)."""
    kbs_certificate_pem: Required[pulumi.Input[str]]
    """The KBS certificate the guest pins (a TrusteeTls's `certificatePem`)."""


class TlsArgs(TypedDict, total=False):
    """The KBS HTTPS certificate (self-signed: coco issues and renews it)."""

    dns_names: list[str]
    """Extra DNS names in the certificate."""
    validity_hours: int
    """Certificate lifetime (default 8760, at least 24)."""
    renew_before_hours: int
    """Renew this long before expiry (default: a quarter of the validity, at most 720)."""


class TrusteeTlsArgs(TypedDict, total=False):
    """Where the KBS is served: the Trustee's namespace, port and URL (give the Trustee the
    same values) and its certificate settings."""

    namespace: str
    """The Trustee's namespace (default: trustee)."""
    port: int
    """The KBS port (default 8080)."""
    url: str
    """URL guests use to reach the KBS (https://); default: the in-cluster service."""
    tls: TlsArgs
    """Certificate settings."""


class KbsResourceArgs(TypedDict, total=False):
    """One secret the KBS serves, and exactly which init-data digests may read it."""

    path: Required[str]
    """repo/type/tag, e.g. default/key/1."""
    value: pulumi.Input[str]
    """The secret value (kept a Pulumi secret); required with secretsDelivery create, not
    given with reference."""
    initdata_digests: Required[pulumi.Input[list[str]]]
    """The readers' init-data digests (ConfidentialWorkload `initdataDigest` outputs)."""
    platforms: Required[list[str]]
    """TEEs the evidence must come from, e.g. [tdx] (sample for kata-qemu-coco-dev)."""
    min_trust: str
    """affirming (default) or warning."""
    require_gpu: bool
    """Also require an affirming GPU."""
    allow_unbound: bool
    """Release to any attested workload (no digests): never in production."""


class SnpVerifierArgs(TypedDict, total=False):
    """The SEV-SNP verifier's VCEK source."""

    kds_url: Required[str]
    """Base URL of AMD KDS or a site VCEK cache (no trailing slash)."""


class NvidiaVerifierArgs(TypedDict, total=False):
    """Which NVIDIA verifier judges GPU evidence."""

    mode: Required[str]
    """local or remote (NVIDIA NRAS; the only mode trustee's default GPU policy affirms)."""
    url: str
    """remote mode: the NRAS attest URL (https://)."""


class VerifierArgs(TypedDict, total=False):
    """Verifier configuration of the KBS's attestation service (docs/attestation.md)."""

    snp: SnpVerifierArgs
    nvidia: NvidiaVerifierArgs


class TrusteeArgs(TypedDict, total=False):
    """Trustee (KBS, built-in AS and RVPS): the fields of `coco:trustee`, with each
    resource's value and readers' digests passed in, and the KBS identity a TrusteeTls
    issued."""

    namespace: str
    """Namespace (default: trustee); created unless it is a system namespace."""
    image: str
    """The KBS image (default: coco's pinned Trustee release)."""
    replicas: int
    """KBS replicas (1-10)."""
    service_type: str
    """ClusterIP (default), NodePort or LoadBalancer."""
    port: int
    """The KBS port (default 8080)."""
    node_port: int
    """serviceType NodePort: the node port, pinned (the port of `url`)."""
    ingress: dict[str, Any]
    """An Ingress at the URL's host, TLS passed through: `className`, `annotations`."""
    url: str
    """URL guests use to reach the KBS (https://); default: the in-cluster service."""
    tls: TlsArgs
    """Certificate settings (also the attestation-token signer's lifetime)."""
    secrets_delivery: str
    """create (default): the Trustee creates the Kubernetes Secrets; reference: they are
    made out of band (GitOps, rendered manifests), and no resource carries a value."""
    attestation_policy: str
    """Custom attestation-service policy (Rego); default: upstream default_cpu."""
    reference_values: dict[str, Any]
    """RVPS reference values by name (`referenceValues` of coco:trustee)."""
    verifiers: VerifierArgs
    """Verifier configuration for real sites (SEV-SNP VCEK source, NVIDIA mode)."""
    hardening: dict[str, Any]
    """The KBS's NetworkPolicy, PodDisruptionBudget and pod defaults (`hardening` of
    coco:trustee, docs/hardening.md)."""
    resources: list[KbsResourceArgs]
    """The secrets the KBS serves."""
    tee_platforms: Required[list[str]]
    """The TEEs the attestation policy is chosen for, e.g. [tdx]."""
    environment: Required[Environment]
    """dev, staging or production."""
    kbs_certificate_pem: Required[pulumi.Input[str]]
    """The KBS HTTPS certificate (a TrusteeTls's `certificatePem`)."""
    kbs_private_key_pem: Required[pulumi.Input[str]]
    """The KBS HTTPS private key (a TrusteeTls's `privateKeyPem`, a secret)."""
