"""The cluster side of a peer-pods stack without its cloud: what a render writes, what it cannot.

A render (`coco:kubernetes.renderDir`, `python -m automation render`) writes Kubernetes
objects for a GitOps tool and creates nothing anywhere else. A peer-pods stack is both: the
cloud side (a managed cluster and its network, the pod-VM firewall or security group, the
adaptor's cloud identity and roles) and the cluster side (the adaptor and its config, the
`kata-remote` RuntimeClass, the workloads). So the render keeps the cluster side, built from
the settings alone, and lists the cloud side as not rendered, with every adaptor value that
only the created cloud resources can give (a security-group id, a role ARN, an identity's
client id): those keys are left out of the rendered `peer-pods-cm` and ServiceAccount
annotations rather than filled with a stand-in, so the adaptor reports a missing key instead
of acting on a fake one.

Credentials are never rendered: the static keys of Secret `peer-pods-secret` are Pulumi
secrets, so the Secret is listed for your secret manager (the chart reads it by name,
`secrets.mode: reference`), as the KBS Secrets are (docs/charts.md).

Pure: no cloud SDK call and no resource; each cloud module's `build` is the deploying twin.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from components.peerpods.common import (
    CLIENT_ID_ANNOTATION,
    IRSA_ANNOTATION,
    USE_LABEL,
    CloudSide,
)
from components.peerpods.settings import (
    ADAPTOR_SERVICE_ACCOUNT,
    CONTROLLER_SERVICE_ACCOUNT,
    FORWARDER_PORT,
    AwsPeerPods,
    AzurePeerPods,
    GcpPeerPods,
    PeerPodsCluster,
)
from components.vocabulary import full_key


def _tags(environment: str, order: tuple[str, ...]) -> str:
    """The `TAGS` value the cloud modules write (the adaptor tags each pod VM with it): AWS
    sorts the pairs, Azure writes `managed-by` first (aws.py, azure.py `build`)."""
    pairs = {"managed-by": "coco", "coco-environment": environment}
    return ",".join(f"{k}={pairs[k]}" for k in order)


@dataclass
class ClusterView:
    """The adaptor's view of a cloud that this run does not create."""

    side: CloudSide
    """`peer-pods-cm` keys and identity labels known from the settings; no resources."""
    not_rendered: list[str] = field(default_factory=list)
    """Each cloud resource (or group) the deploying stack creates, and each adaptor value
    left out because only those resources can give it."""
    secret_keys: dict[str, str] = field(default_factory=dict)
    """Key of `peer-pods-secret` -> where its value comes from (never the value)."""


def _sa_names(settings: PeerPodsCluster) -> str:
    ns = settings.adaptor.namespace
    return f"{ns}/{ADAPTOR_SERVICE_ACCOUNT} and {ns}/{CONTROLLER_SERVICE_ACCOUNT}"


def _tunnel(settings: PeerPodsCluster) -> str:
    return f"VXLAN {settings.vxlan_port}/udp and agent-protocol-forwarder {FORWARDER_PORT}/tcp"


def _aws(cloud: AwsPeerPods, settings: PeerPodsCluster, environment: str) -> ClusterView:
    configs: dict[str, Any] = {
        "AWS_REGION": cloud.region,
        "PODVM_AMI_ID": cloud.podvm_ami_id or "",
        "PODVM_INSTANCE_TYPE": cloud.instance_type,
        "TAGS": _tags(environment, ("coco-environment", "managed-by")),
    }
    out: list[str] = []
    if cloud.cluster.create:
        out.append(
            f"EKS cluster {cloud.cluster.name} (Kubernetes "
            f"{cloud.cluster.kubernetes_version or 'default'}) with its VPC "
            f"{cloud.cluster.network_cidr}, subnets, internet and NAT gateways, route tables, "
            "node group and IAM OIDC provider"
        )
        out.append("peer-pods-cm AWS_SUBNET_ID: the pod-VM subnet of the EKS cluster's VPC")
    else:
        configs["AWS_SUBNET_ID"] = cloud.subnet_id or ""
    out.append(
        f"EC2 security group {cloud.cluster.name}-podvm and its rules ({_tunnel(settings)} "
        "from the cluster's nodes, and back; egress open)"
    )
    out.append("peer-pods-cm AWS_SG_IDS: the id of that pod-VM security group")
    out.append(
        "IAM policies of the adaptor (launch and terminate coco-tagged pod VMs) and of "
        "peerpod-ctrl (terminate them)"
    )
    secrets: dict[str, str] = {}
    if cloud.credentials == "irsa":
        out.append(
            f"IAM roles for service accounts (IRSA) of {_sa_names(settings)}, each holding its "
            f"policy; annotate each ServiceAccount with {IRSA_ANNOTATION}: <its role ARN> (not "
            "rendered: the ARNs exist once the roles are created)"
        )
    else:
        assert cloud.access_key_id_from and cloud.secret_access_key_from
        secrets = {
            "AWS_ACCESS_KEY_ID": f"config {full_key(cloud.access_key_id_from)}",
            "AWS_SECRET_ACCESS_KEY": f"config {full_key(cloud.secret_access_key_from)}",
        }
    return ClusterView(CloudSide(provider="aws", provider_configs=dict(configs)), out, secrets)


def _azure(cloud: AzurePeerPods, settings: PeerPodsCluster, environment: str) -> ClusterView:
    configs: dict[str, Any] = {
        "AZURE_SUBSCRIPTION_ID": cloud.subscription_id,
        "AZURE_REGION": cloud.region,
        "AZURE_RESOURCE_GROUP": cloud.resource_group,
        "AZURE_IMAGE_ID": cloud.image_id or "",
        "AZURE_INSTANCE_SIZE": cloud.size,
        "TAGS": _tags(environment, ("managed-by", "coco-environment")),
    }
    out: list[str] = []
    if cloud.cluster.create:
        out.append(
            f"AKS cluster {cloud.cluster.name} with its resource group, virtual network "
            f"{cloud.cluster.network_cidr}, subnets and NAT gateway (public IP)"
        )
        out.append("peer-pods-cm AZURE_SUBNET_ID: the pod-VM subnet of that virtual network")
    else:
        configs["AZURE_SUBNET_ID"] = cloud.subnet_id or ""
    out.append(
        f"network security group {cloud.cluster.name}-podvm ({_tunnel(settings)} from the cluster)"
    )
    out.append("peer-pods-cm AZURE_NSG_ID: the id of that network security group")
    out.append(
        "role definitions (subnet join, VM-size listing) and role assignments (Virtual Machine "
        "Contributor on the pod-VM resource group, subnet join, VM sizes) of the adaptor"
    )
    side = CloudSide(
        provider="azure",
        provider_configs=dict(configs),
        nodes_labelled=cloud.cluster.create,  # the node pool coco creates carries the label
    )
    secrets: dict[str, str] = {}
    if cloud.credentials == "workload-identity":
        side.pod_labels = {USE_LABEL: "true"}
        out.append(
            f"user-assigned managed identity {cloud.cluster.name}-cloud-api-adaptor and its "
            f"federated credentials for {_sa_names(settings)}; annotate each ServiceAccount "
            f"with {CLIENT_ID_ANNOTATION}: <the identity's client id> (not rendered: it exists "
            "once the identity is created)"
        )
    else:
        assert cloud.client_secret_from
        secrets = {
            "AZURE_CLIENT_ID": "coco:cluster.cloud.clientId",
            "AZURE_TENANT_ID": "coco:cluster.cloud.tenantId",
            "AZURE_CLIENT_SECRET": f"config {full_key(cloud.client_secret_from)}",
        }
    return ClusterView(side, out, secrets)


def _gcp(cloud: GcpPeerPods, settings: PeerPodsCluster, environment: str) -> ClusterView:
    configs: dict[str, Any] = {
        "GCP_PROJECT_ID": cloud.project_id,
        "GCP_ZONE": cloud.zone,
        "GCP_MACHINE_TYPE": cloud.machine,
        "GCP_CONFIDENTIAL_TYPE": cloud.confidential_type,
        "GCP_DISK_TYPE": cloud.disk,
        "PODVM_IMAGE_NAME": cloud.podvm_image or "",
    }
    out: list[str] = []
    if cloud.cluster.create:
        out.append(
            f"GKE cluster {cloud.cluster.name} with its VPC network, subnetwork "
            f"{cloud.cluster.network_cidr} and node pool"
        )
        out.append("peer-pods-cm GCP_NETWORK and GCP_SUBNETWORK: that network and subnetwork")
    else:
        configs["GCP_NETWORK"] = cloud.network or ""
        if cloud.subnetwork is not None:
            configs["GCP_SUBNETWORK"] = cloud.subnetwork
    out.append(f"firewall rule for the pod-VM tunnel ({_tunnel(settings)} from the cluster)")
    secrets: dict[str, str] = {}
    if cloud.credentials_from is not None:
        secrets = {"GCP_CREDENTIALS": f"config {full_key(cloud.credentials_from)}"}
    else:
        out.append(
            "service account cloud-api-adaptor with roles/compute.instanceAdmin.v1, and its key"
        )
        secrets = {"GCP_CREDENTIALS": "the key of that service account (JSON)"}
    side = CloudSide(
        provider="gcp",
        provider_configs=dict(configs),
        system_priority_quota=True,
        resource_ctrl=False,
    )
    return ClusterView(side, out, secrets)


def cluster_view(settings: PeerPodsCluster, environment: str) -> ClusterView:
    """The cluster side the settings alone give, and the cloud side left out."""
    cloud = settings.cloud
    if isinstance(cloud, AwsPeerPods):
        view = _aws(cloud, settings, environment)
    elif isinstance(cloud, AzurePeerPods):
        view = _azure(cloud, settings, environment)
    else:
        view = _gcp(cloud, settings, environment)
    return view
