"""Settings of a peer-pods cluster: which cloud, and what its pod VMs need.

Imported by `components.settings`; it must not import any cloud SDK, so a bare-metal stack
never pays for loading pulumi-aws, pulumi-azure-native or pulumi-gcp.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from components import tee
from components.config_types import DnsLabel, Model, SecretKeyRef


class CloudCluster(Model):
    """Use an existing managed cluster (kubeconfig) or create one."""

    create: bool = False
    name: DnsLabel = "coco"
    kubernetes_version: str | None = None
    node_count: int = Field(default=2, ge=1, le=100)
    node_instance_type: str | None = None


class AwsPeerPods(Model):
    provider: Literal["aws"]
    region: str
    podvm_ami_id: str | None = None
    instance_type: str = "m6a.large"
    vpc_id: str | None = None
    subnet_id: str | None = None
    security_group_ids: list[str] = Field(default_factory=list)
    credentials: Literal["irsa", "static"] = "irsa"
    access_key_id_from: SecretKeyRef | None = None
    secret_access_key_from: SecretKeyRef | None = None
    cluster: CloudCluster = CloudCluster()


class AzurePeerPods(Model):
    provider: Literal["azure"]
    subscription_id: str
    region: str
    resource_group: str
    subnet_id: str | None = None
    image_id: str | None = None
    instance_size: str = "Standard_DC2as_v5"
    credentials: Literal["workload-identity", "static"] = "workload-identity"
    client_id: str | None = None
    tenant_id: str | None = None
    client_secret_from: SecretKeyRef | None = None
    cluster: CloudCluster = CloudCluster()


class GcpPeerPods(Model):
    provider: Literal["gcp"]
    project_id: str
    zone: str
    network: str | None = None
    machine_type: str = "n2d-standard-2"
    confidential_type: Literal["SEV", "SEV_SNP", "TDX"] = "SEV_SNP"
    podvm_image: str | None = None
    credentials: Literal["workload-identity", "static"] = "workload-identity"
    credentials_from: SecretKeyRef | None = None
    cluster: CloudCluster = CloudCluster()


CloudSettings = Annotated[AwsPeerPods | AzurePeerPods | GcpPeerPods, Field(discriminator="provider")]


class PeerPodsCluster(Model):
    """A cluster whose pods run as confidential VMs through the cloud-api-adaptor."""

    kind: Literal["peerpods"]
    cloud: CloudSettings
    adaptor_chart_version: str = "0.17.0"
    vxlan_port: int = Field(default=4789, ge=1, le=65535)

    @property
    def hardware(self) -> tee.Hardware:
        return tee.Hardware(host="peerpods", arch="x86_64", tee=None, gpu=False)
