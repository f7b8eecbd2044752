"""Settings of a peer-pods cluster: which cloud, and what its pod VMs need.

Imported by `components.stack_settings`; it must not import any cloud SDK, so a bare-metal stack
never pays for loading pulumi-aws, pulumi-azure-native or pulumi-gcp (the cloud modules
next to this file import them, and only `component.py` loads those, lazily).

Why so much validation here: a peer pod that lands on a VM without the TEE the stack asked
for still starts, still runs the workload, and simply never attests (or worse, the stack's
resource policy names a platform the evidence never comes from). The cloud only tells you at
the first pod launch, hours after `pulumi up`. So the instance family, the region/zone, the
pod-VM image and the network every cloud needs are checked here, at preview, each error
addressed by its config key (`coco:cluster.cloud.instanceType`). Each check sits in a field
validator of the field it names (the fields it depends on are declared first, so they are in
`info.data`), which is what puts the right key on the message.

Upstream facts these checks encode, as checked (cite when changing them):
- AWS: "AMD SEV-SNP is supported with M6a, R6a, and C6a instance types only" (EC2 API
  reference, `CpuOptionsRequest.AmdSevSnp`); "You can launch an instance with AMD SEV-SNP on
  shared tenancy in US East (Ohio) and Europe (Ireland)" (EC2 user guide
  `snp-work-launch.md`; Dedicated Hosts work in any commercial region, but the adaptor
  launches shared-tenancy instances). AWS offers no TDX instances. The adaptor enables SNP on
  every pod VM unless DISABLECVM (cloud-api-adaptor `src/cloud-providers/aws/provider.go`:
  `CpuOptions.AmdSevSnp = enabled`) and needs a UEFI AMI for it.
- Azure: confidential VM series DCasv5/DCadsv5/ECasv5/ECadsv5 (AMD SEV-SNP, EPYC Milan) and
  DCasv6/DCadsv6/ECasv6/ECadsv6 (SEV-SNP, Genoa); DCesv5/DCedsv5/ECesv5/ECedsv5 and
  DCesv6/DCedsv6/ECesv6 (Intel TDX) (MicrosoftDocs azure-docs `dcasv5-dcadsv5-series.md`,
  `confidential-computing/overview-azure-products.md`). The `_cc_` sizes are confidential
  *child* capable hosts (AKS pod sandboxing), not confidential VMs, so they are refused.
  Azure CVMs attest through the paravisor's vTPM, hence the `az-*-vtpm` verifiers.
- GCP: "AMD SEV-SNP is supported in the following zones, on N2D machine types with AMD Milan
  CPU platforms" and "Intel TDX is supported in the following zones, on c3-standard-*
  machine types"; TDX: "Local SSD machine types aren't supported", "Only Balanced Persistent
  Disk volumes ... are supported" (Google Cloud, Confidential VM "Supported configurations",
  last updated 2026-04-08). GCP_CONFIDENTIAL_TYPE is `TDX`, `SEV` or `SEV_SNP`
  (cloud-api-adaptor `src/cloud-providers/gcp/manager.go`). Plain SEV is not offered: Trustee
  has no verifier for it (the same reason `kata-qemu-sev` readers are refused). SEV_SNP is
  refused too while the adaptor sets no `minCpuPlatform` (see `GcpPeerPods._gcp_tee`); the
  SNP tables stay for when it does.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from components import releases, tee
from components.config_types import DnsLabel, Model, SecretKeyRef
from policies.agent import AgentPolicySpec

PodVmTee = Literal["snp", "tdx"]
"""The TEE of the pod VMs. Each cloud offers a subset; see the per-cloud tables below."""

AttestationPlatform = Literal["snp", "tdx", "az-snp-vtpm", "az-tdx-vtpm"]
"""Trustee verifier names, spelled as `policies.resource.PlatformName` spells them."""

ADAPTOR_SERVICE_ACCOUNT = "cloud-api-adaptor"
"""The adaptor DaemonSet's ServiceAccount (peerpods chart `templates/daemonset.yaml`)."""

CONTROLLER_SERVICE_ACCOUNT = "peerpodctrl-controller-manager"
"""peerpod-ctrl's ServiceAccount (`namePrefix` + `controller-manager`, peerpod-ctrl chart);
it deletes pod VMs a crashed adaptor left behind, so it needs cloud credentials too."""

FORWARDER_PORT = 15150
"""agent-protocol-forwarder's port in the pod VM (cloud-api-adaptor docs, aws-simple)."""


def _check_cidr(value: str, what: str) -> str:
    try:
        net = ipaddress.ip_network(value, strict=True)
    except ValueError as err:
        raise ValueError(f"{value!r} is not a {what} CIDR (e.g. 10.20.0.0/16): {err}") from err
    if net.version != 4:
        raise ValueError(f"{value!r}: the pod-VM tunnel rules are IPv4 only")
    return value


# --------------------------------------------------------------------------- shared


class _CloudModel(Model):
    """Base of the per-cloud models: optional settings are always validated by their alias.

    Pydantic names a validation error after the key the user wrote, but a field left out has
    no such key, so its error would carry the Python name (`subnet_id`) instead of the
    config key (`subnetId`). Writing the omitted optional keys back as explicit `None`
    (their default) makes every error name the key exactly as the stack file spells it.
    """

    @model_validator(mode="before")
    @classmethod
    def _explicit_optionals(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        out = dict(data)
        for name, field in cls.model_fields.items():
            alias = field.alias or name
            if field.default is None and alias not in out and name not in out:
                out[alias] = None
        return out


class CloudCluster(Model):
    """Use an existing managed cluster (the kubeconfig in `coco:kubernetes`) or create one."""

    create: bool = Field(
        default=False,
        description=(
            "true: create an EKS/AKS/GKE cluster with the network its pod VMs need; false: "
            "use the cluster `coco:kubernetes` points at, and name its network below."
        ),
    )
    name: DnsLabel = "coco"
    kubernetes_version: str | None = Field(
        default=None, description="Default: the cloud's current default version."
    )
    node_count: int = Field(default=2, ge=1, le=100)
    node_instance_type: str | None = Field(
        default=None,
        description=(
            "Worker size (they run the adaptor, not the workloads). Default: m5.xlarge, "
            "Standard_D4s_v5, e2-standard-4."
        ),
    )
    network_cidr: str = Field(
        default="10.20.0.0/16",
        description="Address space of the network created with the cluster (create: true).",
    )

    @field_validator("network_cidr")
    @classmethod
    def _cidr(cls, v: str) -> str:
        _check_cidr(v, "network")
        if ipaddress.ip_network(v).prefixlen > 22:
            raise ValueError(f"{v!r} is too small: use a /22 or larger for nodes and pod VMs")
        return v


class CertManager(Model):
    """cert-manager, which the peerpods chart's webhook needs for its serving certificate.

    Installed the way the upstream GCP guide does (jetstack chart, `crds.enabled=true`);
    set `install: false` when the cluster already has it (it must be installed exactly once).
    """

    install: bool = True
    chart: str = releases.CERT_MANAGER.chart
    repository: str = releases.CERT_MANAGER.repository or ""
    version: str = releases.CERT_MANAGER.version
    namespace: DnsLabel = "cert-manager"


class DefaultInitData(Model):
    """The adaptor's cluster-wide default init-data (`INITDATA` in `peer-pods-cm`).

    Every coco workload carries its own init-data annotation, which wins. The default exists
    so a `kata-remote` pod started outside coco still attests to *this* Trustee; its agent
    policy defaults to restrictive with no allowed image, so such a pod runs no container
    (fail closed) unless the stack lists images here.
    """

    algorithm: tee.DigestAlgorithm = "sha384"
    agent_policy: AgentPolicySpec = AgentPolicySpec()


class AdaptorSettings(Model):
    """The cloud-api-adaptor, installed with the upstream peerpods Helm chart."""

    chart: str = releases.PEERPODS.chart
    version: str = Field(
        default=releases.PEERPODS.version,
        description=(
            f"peerpods chart version; {releases.PEERPODS.version} ships cloud-api-adaptor "
            f"{releases.PEERPODS.app_version}. Values are generated for this version only."
        ),
    )
    namespace: DnsLabel = "confidential-containers-system"
    install_kata: bool = Field(
        default=True,
        description="The chart's kata-deploy subchart (remote shim, `kata-remote` class).",
    )
    webhook: bool = Field(
        default=True,
        description="The peer-pods webhook (schedules by pod-VM count; needs cert-manager).",
    )
    peerpods_limit_per_node: int = Field(default=10, ge=1, le=1000)
    label_nodes: bool = Field(
        default=True,
        description=(
            "The adaptor DaemonSet only runs on nodes labelled `node.kubernetes.io/worker`. "
            "true: a one-shot Job labels the current nodes (not needed, and not run, on an "
            "AKS cluster coco creates: its node pool carries the label)."
        ),
    )
    kubectl_image: str = Field(
        default="registry.k8s.io/kubectl:v1.34.1",
        description="Image of the node-labelling Job (pin it by digest in production).",
    )
    default_initdata: DefaultInitData = DefaultInitData()


# --------------------------------------------------------------------------- AWS

AWS_SNP_INSTANCE = re.compile(r"^(m6a|c6a|r6a)\.(large|xlarge|[1-9][0-9]*xlarge)$")
AWS_SNP_REGIONS = ("us-east-2", "eu-west-1")
_AWS_REGION = re.compile(r"^[a-z]{2}(-gov)?-[a-z]+-[0-9]$")


class AwsPeerPods(_CloudModel):
    """Pod VMs as EC2 instances with AMD SEV-SNP."""

    provider: Literal["aws"]
    cluster: CloudCluster = CloudCluster()
    tee: PodVmTee = Field(default="snp", description="AWS offers AMD SEV-SNP only.")
    region: str = Field(description="AWS_REGION; SEV-SNP: us-east-2 or eu-west-1.")
    instance_type: str = Field(
        default="m6a.large", description="PODVM_INSTANCE_TYPE: an m6a, c6a or r6a size."
    )
    podvm_ami_id: str | None = Field(
        default=None, description="PODVM_AMI_ID: the pod-VM AMI (UEFI boot, built for SNP)."
    )
    vpc_id: str | None = Field(default=None, description="The cluster's VPC (create: false).")
    subnet_id: str | None = Field(
        default=None, description="AWS_SUBNET_ID: the pod VMs' subnet (create: false)."
    )
    cluster_security_group_id: str | None = Field(
        default=None,
        description=(
            "The cluster's node security group (EKS: the cluster security group); the only "
            "source the pod VMs accept tunnel traffic from (create: false)."
        ),
    )
    credentials: Literal["irsa", "static"] = Field(
        default="irsa",
        description="irsa: IAM role for the adaptor's ServiceAccount (EKS); static: keys.",
    )
    oidc_provider_arn: str | None = Field(
        default=None,
        description="The cluster's IAM OIDC provider (irsa on an existing EKS cluster).",
    )
    access_key_id_from: SecretKeyRef | None = None
    secret_access_key_from: SecretKeyRef | None = None

    @field_validator("tee")
    @classmethod
    def _aws_tee(cls, v: str) -> str:
        if v != "snp":
            raise ValueError(
                f"AWS offers no {v.upper()} instances: use tee 'snp' (m6a/c6a/r6a), or "
                "Azure/GCP for Intel TDX pod VMs"
            )
        return v

    @field_validator("region")
    @classmethod
    def _aws_region(cls, v: str, info: ValidationInfo) -> str:
        if not _AWS_REGION.match(v):
            raise ValueError(f"{v!r} is not an AWS region name (e.g. us-east-2)")
        if info.data.get("tee") == "snp" and v not in AWS_SNP_REGIONS:
            raise ValueError(
                f"AWS runs SEV-SNP instances on shared tenancy only in "
                f"{' and '.join(AWS_SNP_REGIONS)} (EC2 user guide, 'Enable AMD SEV-SNP'); "
                f"{v!r} has none"
            )
        return v

    @field_validator("instance_type")
    @classmethod
    def _aws_instance(cls, v: str, info: ValidationInfo) -> str:
        if info.data.get("tee") == "snp" and not AWS_SNP_INSTANCE.match(v):
            raise ValueError(
                f"{v!r} has no AMD SEV-SNP: AWS supports it on m6a, c6a and r6a sizes only "
                "(e.g. m6a.large; bare metal excluded)"
            )
        return v

    @field_validator("podvm_ami_id")
    @classmethod
    def _aws_ami(cls, v: str | None) -> str | None:
        if v is None:
            raise ValueError(
                "the pod-VM image is required: set podvmAmiId to a UEFI AMI built for SNP "
                "(cloud-api-adaptor podvm image, TEE_PLATFORM=snp)"
            )
        if not re.match(r"^ami-[0-9a-f]{8,17}$", v):
            raise ValueError(f"{v!r} is not an AMI id (ami-0123456789abcdef0)")
        return v

    @field_validator("vpc_id", "subnet_id", "cluster_security_group_id")
    @classmethod
    def _aws_network(cls, v: str | None, info: ValidationInfo) -> str | None:
        prefix = {"vpc_id": "vpc-", "subnet_id": "subnet-", "cluster_security_group_id": "sg-"}[
            str(info.field_name)
        ]
        cluster = info.data.get("cluster")
        if v is None and cluster is not None and not cluster.create:
            raise ValueError(
                f"required when the cluster is not created (cluster.create: false): the "
                f"existing cluster's {prefix.rstrip('-')} id ({prefix}...)"
            )
        if v is not None and not v.startswith(prefix):
            raise ValueError(f"{v!r} is not an id of the form {prefix}...")
        return v

    @field_validator("oidc_provider_arn")
    @classmethod
    def _aws_oidc(cls, v: str | None, info: ValidationInfo) -> str | None:
        cluster = info.data.get("cluster")
        irsa = info.data.get("credentials") == "irsa"
        if v is None and irsa and cluster is not None and not cluster.create:
            raise ValueError(
                "irsa on an existing cluster needs its IAM OIDC provider ARN "
                "(arn:aws:iam::<account>:oidc-provider/oidc.eks.<region>.amazonaws.com/id/...)"
            )
        if v is not None and not re.match(r"^arn:aws[a-z-]*:iam::\d{12}:oidc-provider/.+$", v):
            raise ValueError(f"{v!r} is not an IAM OIDC provider ARN")
        return v

    @field_validator("access_key_id_from", "secret_access_key_from")
    @classmethod
    def _aws_static(cls, v: str | None, info: ValidationInfo) -> str | None:
        if info.data.get("credentials") == "static" and v is None:
            raise ValueError(
                "credentials 'static' needs both accessKeyIdFrom and secretAccessKeyFrom "
                "(config keys holding the keys as Pulumi secrets)"
            )
        if info.data.get("credentials") == "irsa" and v is not None:
            raise ValueError("credentials 'irsa' uses no keys: remove it, or use 'static'")
        return v

    @property
    def oidc_issuer_host(self) -> str | None:
        """The issuer's host/path as IAM condition keys spell it, from the provider ARN."""
        if self.oidc_provider_arn is None:
            return None
        return self.oidc_provider_arn.split(":oidc-provider/", 1)[1]


# --------------------------------------------------------------------------- Azure

AZURE_SIZES: dict[str, re.Pattern[str]] = {
    "snp": re.compile(r"^Standard_(DC|EC)[0-9]+ad?s_v[56]$"),
    "tdx": re.compile(r"^Standard_(DC|EC)[0-9]+ed?s_v[56]$"),
}
AZURE_DEFAULT_SIZE = {"snp": "Standard_DC2as_v5", "tdx": "Standard_DC2es_v6"}
_UUID = re.compile(r"^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")
_AZURE_SUBNET = re.compile(
    r"^/subscriptions/[^/]+/resourceGroups/[^/]+/providers/Microsoft\.Network/"
    r"virtualNetworks/[^/]+/subnets/[^/]+$",
    re.IGNORECASE,
)


class AzurePeerPods(_CloudModel):
    """Pod VMs as Azure confidential VMs (SEV-SNP or TDX, attested through the vTPM)."""

    provider: Literal["azure"]
    cluster: CloudCluster = CloudCluster()
    tee: PodVmTee = "snp"
    subscription_id: str = Field(description="AZURE_SUBSCRIPTION_ID")
    region: str = Field(description="AZURE_REGION, e.g. eastus")
    resource_group: str = Field(
        description=(
            "AZURE_RESOURCE_GROUP: where pod VMs are created (created with the cluster when "
            "create: true, else it must exist)."
        )
    )
    instance_size: str | None = Field(
        default=None,
        description="AZURE_INSTANCE_SIZE; default Standard_DC2as_v5 (snp), DC2es_v6 (tdx).",
    )
    image_id: str | None = Field(
        default=None, description="AZURE_IMAGE_ID: the pod-VM image (a gallery image version)."
    )
    subnet_id: str | None = Field(
        default=None, description="AZURE_SUBNET_ID: the cluster's node subnet (create: false)."
    )
    cluster_cidr: str | None = Field(
        default=None,
        description="The node subnet's prefix; the only source pod VMs accept (create: false).",
    )
    credentials: Literal["workload-identity", "static"] = "workload-identity"
    oidc_issuer_url: str | None = Field(
        default=None,
        description="The AKS cluster's OIDC issuer (workload-identity, create: false).",
    )
    client_id: str | None = Field(default=None, description="Service principal (static).")
    tenant_id: str | None = Field(default=None, description="Tenant of the principal (static).")
    principal_id: str | None = Field(
        default=None,
        description="Object id of the principal (static): the role assignments' assignee.",
    )
    client_secret_from: SecretKeyRef | None = None

    @field_validator("subscription_id")
    @classmethod
    def _az_subscription(cls, v: str) -> str:
        if not _UUID.match(v):
            raise ValueError(f"{v!r} is not a subscription id (a GUID)")
        return v

    @field_validator("instance_size")
    @classmethod
    def _az_size(cls, v: str | None, info: ValidationInfo) -> str | None:
        chosen = info.data.get("tee")
        if v is None or chosen is None:
            return v
        if not AZURE_SIZES[chosen].match(v):
            families = {
                "snp": "DCasv5/DCadsv5/ECasv5/ECadsv5 or the v6 equivalents",
                "tdx": "DCesv5/DCedsv5/ECesv5/ECedsv5 or DCesv6/DCedsv6/ECesv6",
            }[chosen]
            raise ValueError(
                f"{v!r} is not a {chosen.upper()} confidential VM size: use {families} "
                f"(e.g. {AZURE_DEFAULT_SIZE[chosen]})"
            )
        return v

    @field_validator("image_id")
    @classmethod
    def _az_image(cls, v: str | None) -> str | None:
        if v is None:
            raise ValueError(
                "the pod-VM image is required: set imageId to a confidential-VM image version "
                "(/CommunityGalleries/.../Images/.../Versions/... or a gallery resource id)"
            )
        if not v.startswith("/"):
            raise ValueError(f"{v!r} is not an Azure image resource id (starts with '/')")
        return v

    @field_validator("subnet_id")
    @classmethod
    def _az_subnet(cls, v: str | None, info: ValidationInfo) -> str | None:
        cluster = info.data.get("cluster")
        if v is None and cluster is not None and not cluster.create:
            raise ValueError(
                "required when the cluster is not created: the AKS node subnet's resource id "
                "(pod VMs join it)"
            )
        if v is not None and not _AZURE_SUBNET.match(v):
            raise ValueError(
                f"{v!r} is not a subnet resource id (/subscriptions/.../resourceGroups/.../"
                "providers/Microsoft.Network/virtualNetworks/<vnet>/subnets/<subnet>)"
            )
        return v

    @field_validator("cluster_cidr")
    @classmethod
    def _az_cidr(cls, v: str | None, info: ValidationInfo) -> str | None:
        cluster = info.data.get("cluster")
        if v is None and cluster is not None and not cluster.create:
            raise ValueError(
                "required when the cluster is not created: the node subnet's prefix, the "
                "only source the pod VMs' NSG admits tunnel traffic from"
            )
        return None if v is None else _check_cidr(v, "node subnet")

    @field_validator("oidc_issuer_url")
    @classmethod
    def _az_oidc(cls, v: str | None, info: ValidationInfo) -> str | None:
        cluster = info.data.get("cluster")
        wi = info.data.get("credentials") == "workload-identity"
        if v is None and wi and cluster is not None and not cluster.create:
            raise ValueError(
                "workload-identity on an existing AKS cluster needs its OIDC issuer URL "
                "(`az aks show --query oidcIssuerProfile.issuerUrl`)"
            )
        if v is not None and not v.startswith("https://"):
            raise ValueError(f"{v!r} is not an https:// issuer URL")
        return v

    @field_validator("client_id", "tenant_id", "principal_id", "client_secret_from")
    @classmethod
    def _az_static(cls, v: str | None, info: ValidationInfo) -> str | None:
        static = info.data.get("credentials") == "static"
        if static and v is None:
            raise ValueError(
                "credentials 'static' needs clientId, tenantId, principalId and "
                "clientSecretFrom (a config key holding the client secret as a Pulumi secret)"
            )
        if not static and v is not None:
            raise ValueError("only used with credentials 'static': remove it")
        if v is not None and info.field_name != "client_secret_from" and not _UUID.match(v):
            raise ValueError(f"{v!r} is not a GUID")
        return v

    @property
    def size(self) -> str:
        return self.instance_size or AZURE_DEFAULT_SIZE[self.tee]

    @property
    def subnet_resource_group(self) -> str | None:
        """The resource group holding the node VNet (from the subnet id)."""
        return None if self.subnet_id is None else self.subnet_id.split("/")[4]

    @property
    def vnet_id(self) -> str | None:
        """The node VNet's id: the scope of the adaptor's Network Contributor role."""
        return None if self.subnet_id is None else self.subnet_id.rsplit("/subnets/", 1)[0]


# --------------------------------------------------------------------------- GCP

GCP_MACHINES: dict[str, re.Pattern[str]] = {
    "snp": re.compile(r"^n2d-(standard|highmem|highcpu)-[0-9]+$"),
    "tdx": re.compile(r"^c3-standard-[0-9]+$"),
}
GCP_ZONES: dict[str, tuple[str, ...]] = {
    "snp": (
        "asia-southeast1-a", "asia-southeast1-b", "asia-southeast1-c",
        "europe-west3-a", "europe-west3-b", "europe-west3-c",
        "europe-west4-a", "europe-west4-b", "europe-west4-c",
        "us-central1-a", "us-central1-b", "us-central1-c",
    ),
    "tdx": (
        "asia-northeast1-b", "asia-south1-b",
        "asia-southeast1-a", "asia-southeast1-b", "asia-southeast1-c",
        "europe-west4-a", "europe-west4-b", "europe-west4-c",
        "europe-west9-a", "europe-west9-b",
        "us-central1-a", "us-central1-b", "us-central1-c",
        "us-east1-c", "us-east1-d", "us-east4-a", "us-east4-c", "us-east5-b", "us-east5-c",
        "us-west1-a", "us-west1-b",
    ),
}  # fmt: skip
GCP_CONFIDENTIAL_TYPE = {"snp": "SEV_SNP", "tdx": "TDX"}
GCP_DEFAULT_MACHINE = {"snp": "n2d-standard-2", "tdx": "c3-standard-4"}
GCP_DEFAULT_DISK = {"snp": "pd-standard", "tdx": "pd-balanced"}


class GcpPeerPods(_CloudModel):
    """Pod VMs as Compute Engine Confidential VMs: TDX on C3 (SEV-SNP on N2D is refused)."""

    provider: Literal["gcp"]
    cluster: CloudCluster = CloudCluster()
    tee: PodVmTee = Field(
        default="tdx",
        description="GCP pod VMs: Intel TDX (SEV-SNP is refused, see `_gcp_tee`).",
    )
    project_id: str = Field(description="GCP_PROJECT_ID")
    zone: str = Field(description="GCP_ZONE: where pod VMs (and a created cluster) run.")
    machine_type: str | None = Field(
        default=None,
        description="GCP_MACHINE_TYPE. Default: n2d-standard-2 (snp), c3-standard-4 (tdx).",
    )
    disk_type: Literal["pd-standard", "pd-balanced", "pd-ssd"] | None = Field(
        default=None, description="GCP_DISK_TYPE. Default: pd-standard (snp), pd-balanced (tdx)."
    )
    podvm_image: str | None = Field(
        default=None, description="PODVM_IMAGE_NAME: a pod-VM image in the project."
    )
    network: str | None = Field(
        default=None,
        description="GCP_NETWORK, e.g. global/networks/default (create: false).",
    )
    subnetwork: str | None = Field(default=None, description="GCP_SUBNETWORK (custom mode).")
    cluster_cidr: str | None = Field(
        default=None,
        description="The node subnet's range; the only source the firewall admits (create: false).",
    )
    credentials: Literal["static", "workload-identity"] = Field(
        default="static",
        description=(
            "static: a key of a least-privilege service account (created by coco, or "
            "credentialsFrom) in peer-pods-secret."
        ),
    )
    credentials_from: SecretKeyRef | None = Field(
        default=None,
        description=(
            "Config key holding a service-account key JSON (as a Pulumi secret) for an "
            "account you manage; default: coco creates the account, its roles and a key."
        ),
    )

    @field_validator("tee")
    @classmethod
    def _gcp_tee(cls, v: str) -> str:
        # Compute Engine: "If SEV_SNP, currently minCpuPlatform has to be set to "AMD Milan"
        # or this will fail to create the VM" (`confidentialInstanceConfig` API reference, as
        # the GCP Terraform/Pulumi provider docs carry it); cloud-api-adaptor v0.22.0
        # `src/cloud-providers/gcp/provider.go` `CreateInstance` sets the confidential type
        # and TERMINATE on maintenance but never `MinCpuPlatform`.
        if v == "snp":
            raise ValueError(
                "GCP creates SEV_SNP VMs only with minCpuPlatform 'AMD Milan', which the pinned "
                "cloud-api-adaptor (v0.22.0, gcp/provider.go) does not set, so every pod VM "
                "would fail to start: use tee 'tdx' (c3-standard-*), or AWS/Azure for SEV-SNP"
            )
        return v

    @field_validator("project_id")
    @classmethod
    def _gcp_project(cls, v: str) -> str:
        if not re.match(r"^[a-z][-a-z0-9]{4,28}[a-z0-9]$", v):
            raise ValueError(f"{v!r} is not a GCP project id")
        return v

    @field_validator("zone")
    @classmethod
    def _gcp_zone(cls, v: str, info: ValidationInfo) -> str:
        if not re.match(r"^[a-z]+-[a-z]+[0-9]-[a-z]$", v):
            raise ValueError(f"{v!r} is not a GCP zone (e.g. us-central1-a)")
        chosen = info.data.get("tee")
        if chosen is not None and v not in GCP_ZONES[chosen]:
            raise ValueError(
                f"{v!r} has no {chosen.upper()} Confidential VMs (Google Cloud 'Supported "
                f"configurations'); zones with it: {', '.join(GCP_ZONES[chosen])}"
            )
        return v

    @field_validator("machine_type")
    @classmethod
    def _gcp_machine(cls, v: str | None, info: ValidationInfo) -> str | None:
        chosen = info.data.get("tee")
        if v is None or chosen is None:
            return v
        if not GCP_MACHINES[chosen].match(v):
            what = {
                "snp": "AMD SEV-SNP runs on N2D only (n2d-standard/highmem/highcpu-*)",
                "tdx": "Intel TDX runs on c3-standard-* only (no -lssd)",
            }[chosen]
            raise ValueError(f"{v!r} has no {chosen.upper()}: {what}")
        return v

    @field_validator("disk_type")
    @classmethod
    def _gcp_disk(cls, v: str | None, info: ValidationInfo) -> str | None:
        if info.data.get("tee") == "tdx" and v not in (None, "pd-balanced"):
            raise ValueError(f"TDX Confidential VMs support only pd-balanced disks, not {v!r}")
        return v

    @field_validator("podvm_image")
    @classmethod
    def _gcp_image(cls, v: str | None) -> str | None:
        if v is None:
            raise ValueError(
                "the pod-VM image is required: set podvmImage to the image's name in the "
                "project (created with guest OS features UEFI_COMPATIBLE, +TDX_CAPABLE for tdx)"
            )
        if not re.match(r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$", v):
            raise ValueError(f"{v!r} is not a Compute Engine image name")
        return v

    @field_validator("network", "cluster_cidr")
    @classmethod
    def _gcp_network(cls, v: str | None, info: ValidationInfo) -> str | None:
        cluster = info.data.get("cluster")
        if v is None and cluster is not None and not cluster.create:
            what = {
                "network": "the cluster's VPC network (e.g. global/networks/default)",
                "cluster_cidr": "the node subnet's range, the only source the firewall admits",
            }[str(info.field_name)]
            raise ValueError(f"required when the cluster is not created: {what}")
        if v is not None and info.field_name == "cluster_cidr":
            _check_cidr(v, "node subnet")
        return v

    @field_validator("credentials")
    @classmethod
    def _gcp_credentials(cls, v: str) -> str:
        if v == "workload-identity":
            raise ValueError(
                "GKE Workload Identity does not reach the adaptor: its DaemonSet runs with "
                "hostNetwork, which bypasses the GKE metadata server, and the pinned adaptor's "
                "entrypoint.sh (v0.22.0) refuses to start without GCP_CREDENTIALS: use "
                "'static'"
            )
        return v

    @property
    def machine(self) -> str:
        return self.machine_type or GCP_DEFAULT_MACHINE[self.tee]

    @property
    def disk(self) -> str:
        return self.disk_type or GCP_DEFAULT_DISK[self.tee]

    @property
    def confidential_type(self) -> str:
        return GCP_CONFIDENTIAL_TYPE[self.tee]

    @property
    def region(self) -> str:
        return self.zone.rsplit("-", 1)[0]


CloudSettings = Annotated[
    AwsPeerPods | AzurePeerPods | GcpPeerPods, Field(discriminator="provider")
]


class PeerPodsCluster(Model):
    """A cluster whose pods run as confidential VMs through the cloud-api-adaptor."""

    kind: Literal["peerpods"]
    cloud: CloudSettings
    release_set: str = Field(
        default=releases.CURRENT.name,
        description="Peer-pods clusters run the current release set only (docs/upgrades.md).",
    )
    adaptor: AdaptorSettings = AdaptorSettings()
    cert_manager: CertManager = CertManager()
    vxlan_port: int = Field(
        default=4789,
        ge=1,
        le=65535,
        description="VXLAN_PORT; must not collide with the cluster CNI's own VXLAN port.",
    )

    @field_validator("release_set")
    @classmethod
    def _current_set_only(cls, v: str) -> str:
        """The previous set's peerpods 0.3.0 is refused (`_chart_version`), so a peer-pods
        stack cannot be on it; say so here rather than as a chart-version error."""
        chosen = releases.release_set(v)
        if chosen is not releases.CURRENT:
            raise ValueError(
                f"release set {v!r} is for bare-metal clusters only: peer-pods clusters run the "
                f"current set {releases.CURRENT.name!r} (its peerpods "
                f"{releases.PREVIOUS.peerpods.version} adaptor exits under AWS IRSA and its "
                "values are no longer generated); remove the key"
            )
        return v

    @model_validator(mode="after")
    def _chart_version(self) -> PeerPodsCluster:
        """Refuse a peerpods chart the values (and the credential mode) were not written for.

        cloud-api-adaptor v0.21.0 (chart 0.3.0) `entrypoint.sh` `aws()` requires
        AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY and exits 1 under IRSA; v0.22.0 (chart 0.4.0)
        accepts AWS_ROLE_ARN + AWS_WEB_IDENTITY_TOKEN_FILE (tests/conformance/test_charts.py
        runs both scripts).
        """
        version = self.adaptor.version
        wanted = releases.PEERPODS.version
        if version == wanted:
            return self
        why = ""
        if isinstance(self.cloud, AwsPeerPods) and self.cloud.credentials == "irsa":
            why = (
                " (and its cloud-api-adaptor exits at start under IRSA: its entrypoint.sh "
                "requires static AWS keys)"
            )
        raise ValueError(
            f"coco:cluster.adaptor.version {version!r}: coco generates peerpods values for "
            f"chart {wanted} (cloud-api-adaptor {releases.PEERPODS.app_version}) only{why}; "
            f"set it to {wanted}"
        )

    @model_validator(mode="after")
    def _ports(self) -> PeerPodsCluster:
        if self.vxlan_port == FORWARDER_PORT:
            raise ValueError(
                f"vxlanPort {self.vxlan_port} is the agent forwarder's port: pick another"
            )
        return self

    @property
    def hardware(self) -> tee.Hardware:
        return tee.Hardware(host="peerpods", arch="x86_64", tee=None, gpu=False)


def attestation_platform(cloud: AwsPeerPods | AzurePeerPods | GcpPeerPods) -> AttestationPlatform:
    """The Trustee verifier that will judge this cloud's pod-VM evidence.

    EC2 and Compute Engine expose the raw SNP report / TDX quote to the guest (`/dev/sev-guest`,
    `/dev/tdx_guest`), so the plain `snp` / `tdx` verifiers apply. Azure CVMs run under a
    paravisor that exposes the report only through the vTPM, which guest-components attests
    with its `az-snp-vtpm` / `az-tdx-vtpm` attesters (and the podvm image is built with
    `TEE_PLATFORM=az-snp-vtpm|az-tdx-vtpm`, cloud-api-adaptor podvm build docs).
    """
    if isinstance(cloud, AzurePeerPods):
        return "az-snp-vtpm" if cloud.tee == "snp" else "az-tdx-vtpm"
    return cloud.tee
