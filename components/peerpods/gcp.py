"""GCP side of peer pods: GKE (optional), the tunnel firewall rule, and the adaptor's account.

Sources, as checked:
- Roles: `roles/compute.instanceAdmin.v1` (create and delete the pod VMs) on a dedicated
  service account; its key goes into `peer-pods-secret` as GCP_CREDENTIALS
  (confidentialcontainers.org `docs/examples/gcp-simple.md`, "Static Credentials"; chart
  `providers/gcp-secrets.yaml.template`). The guide also grants `roles/iam.serviceAccountUser`
  on the project, which lets the holder launch VMs *as any service account* of the project;
  the adaptor never attaches one: cloud-api-adaptor v0.22.0 `src/cloud-providers/gcp/
  provider.go` `CreateInstance` builds the `computepb.Instance` without `ServiceAccounts`, so
  pod VMs run with no account and the role is not granted here.
- peerpod-ctrl has no GCP provider (v0.22.0 `src/peerpod-ctrl/controllers/` registers aws,
  azure, alibabacloud, byom, ibmcloud, ibmcloud_powervs, libvirt only): it is not deployed on
  GCP (`CloudSide.resource_ctrl`), so leaked pod VMs are not garbage-collected there.
- Why not Workload Identity: the adaptor runs with `hostNetwork: true`, which bypasses the
  GKE metadata server (GKE docs on Workload Identity restrictions; cloud-api-adaptor issue
  #3062, PR #3077 adding direct federation to the chart). See `GcpPeerPods.credentials`.
- Firewall: the guide opens 15150/tcp ("For production scenarios, it is advisable to restrict
  the source IP range"); here 15150/tcp and the VXLAN port are opened from the node subnet
  only.
- GKE: `--image-type UBUNTU_CONTAINERD`, nodes labelled `node.kubernetes.io/worker=` (GKE
  refuses `*.kubernetes.io` labels on node pools, so the component's labelling Job does it),
  and a ResourceQuota admitting system priority classes in the adaptor's namespace (same
  guide, "Deploy the CAA Helm chart", step 3).
- `peer-pods-cm` keys: peerpods chart `providers/gcp.yaml` (GCP_PROJECT_ID, GCP_ZONE,
  GCP_NETWORK, GCP_SUBNETWORK, GCP_MACHINE_TYPE, GCP_CONFIDENTIAL_TYPE, GCP_DISK_TYPE,
  PODVM_IMAGE_NAME, ...); cloud-providers `gcp/manager.go` for GCP_CREDENTIALS.
"""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING, Any

import pulumi

if TYPE_CHECKING:
    # pulumi_gcp is ~290 MB of generated code that mypy cannot load in any sane amount of
    # memory; its calls are typed as Any here and exercised by tests/test_peerpods.py.
    gcp: Any
else:
    import pulumi_gcp as gcp

from components.peerpods.common import CloudSide, exec_kubeconfig, secret_config, split_cidr
from components.peerpods.settings import FORWARDER_PORT, GcpPeerPods, PeerPodsCluster

ADAPTOR_ROLES: tuple[str, ...] = ("roles/compute.instanceAdmin.v1",)
"""The adaptor's least privilege on the project (no serviceAccountUser: see the docstring)."""

NODE_ROLES: tuple[str, ...] = ("roles/container.defaultNodeServiceAccount",)
"""GKE's least-privilege role for a custom node service account (instead of Editor)."""

DEFAULT_NODE_TYPE = "e2-standard-4"


def resource_name(base: str, suffix: str) -> str:
    """A Compute Engine name (at most 63 characters) from the cluster name and a suffix."""
    return f"{base[: 62 - len(suffix)].rstrip('-')}-{suffix}"


def account_id(base: str, suffix: str) -> str:
    """A service-account id (6-30 chars): the suffix always survives, so ids stay distinct."""
    return f"{base[: 29 - len(suffix)].rstrip('-')}-{suffix}"


def firewall_allows(vxlan_port: int) -> list[dict[str, Any]]:
    return [
        {"protocol": "udp", "ports": [str(vxlan_port)]},
        {"protocol": "tcp", "ports": [str(FORWARDER_PORT)]},
    ]


class _Gke:
    """The created VPC, node service account and GKE cluster."""

    def __init__(
        self, name: str, cloud: GcpPeerPods, environment: str, opts: pulumi.ResourceOptions
    ) -> None:
        cc = cloud.cluster
        self.network = gcp.compute.Network(
            f"{name}-net",
            name=resource_name(cc.name, "net"),
            auto_create_subnetworks=False,
            routing_mode="REGIONAL",
            opts=opts,
        )
        self.cluster_cidr = split_cidr(cc.network_cidr, 1)[0]
        self.subnetwork = gcp.compute.Subnetwork(
            f"{name}-nodes",
            name=resource_name(cc.name, "nodes"),
            region=cloud.region,
            network=self.network.id,
            ip_cidr_range=self.cluster_cidr,
            private_ip_google_access=True,
            opts=opts,
        )
        node_sa, node_roles = _node_identity(name, cloud, opts)
        self.cluster = gcp.container.Cluster(
            f"{name}-gke",
            name=cc.name,
            location=cloud.zone,
            network=self.network.id,
            subnetwork=self.subnetwork.id,
            min_master_version=cc.kubernetes_version,
            remove_default_node_pool=True,
            initial_node_count=1,
            # coco:protect decides (components/protection.py sets it): on in production.
            deletion_protection=environment == "production",
            ip_allocation_policy={},
            release_channel={"channel": "REGULAR"},
            resource_labels={"managed-by": "coco", "coco-environment": environment},
            opts=opts,
        )
        self.node_pool = _node_pool(name, cloud, self.cluster, node_sa, node_roles, opts)
        self.kubeconfig = exec_kubeconfig(
            cc.name,
            pulumi.Output.concat("https://", self.cluster.endpoint),
            self.cluster.master_auth.apply(lambda a: a.cluster_ca_certificate or ""),
            {
                "apiVersion": "client.authentication.k8s.io/v1beta1",
                "command": "gke-gcloud-auth-plugin",
                "provideClusterInfo": True,
                "installHint": "gcloud components install gke-gcloud-auth-plugin",
            },
        )


def _node_identity(
    name: str, cloud: GcpPeerPods, opts: pulumi.ResourceOptions
) -> tuple[Any, list[Any]]:
    """(the nodes' own service account, its role bindings): NODE_ROLES only, GKE's
    least-privilege role instead of Editor."""
    cc = cloud.cluster
    node_sa = gcp.serviceaccount.Account(
        f"{name}-nodes",
        account_id=account_id(cc.name, "gke-nodes"),
        display_name=f"GKE nodes of {cc.name} (coco)",
        opts=opts,
    )
    node_roles = [
        gcp.projects.IAMMember(
            f"{name}-nodes-{role.rsplit('/', 1)[1]}",
            project=cloud.project_id,
            role=role,
            member=node_sa.member,
            opts=opts,
        )
        for role in NODE_ROLES
    ]
    return node_sa, node_roles


def _node_pool(
    name: str,
    cloud: GcpPeerPods,
    cluster: Any,
    node_sa: Any,
    node_roles: list[Any],
    opts: pulumi.ResourceOptions,
) -> Any:
    """The cluster's nodes (Ubuntu, secure boot), running as their own service account once
    it holds its roles."""
    cc = cloud.cluster
    return gcp.container.NodePool(
        f"{name}-pool",
        cluster=cluster.name,
        location=cloud.zone,
        node_count=cc.node_count,
        node_config={
            "machine_type": cc.node_instance_type or DEFAULT_NODE_TYPE,
            "image_type": "UBUNTU_CONTAINERD",
            "service_account": node_sa.email,
            "oauth_scopes": ["https://www.googleapis.com/auth/cloud-platform"],
            "shielded_instance_config": {"enable_secure_boot": True},
        },
        opts=pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(depends_on=node_roles)),
    )


def build(
    name: str,
    cloud: GcpPeerPods,
    settings: PeerPodsCluster,
    environment: str,
    parent: pulumi.Resource,
) -> CloudSide:
    """Create the GCP resources pod VMs need, and describe them to the adaptor."""
    provider = gcp.Provider(
        f"{name}-gcp",
        project=cloud.project_id,
        region=cloud.region,
        zone=cloud.zone,
        opts=pulumi.ResourceOptions(parent=parent),
    )
    opts = pulumi.ResourceOptions(parent=parent, provider=provider)
    ready: list[pulumi.Resource] = []
    network: pulumi.Input[str]
    subnetwork: pulumi.Input[str] | None = cloud.subnetwork
    cluster_cidr: pulumi.Input[str]
    kubeconfig: pulumi.Output[str] | None = None
    if cloud.cluster.create:
        gke = _Gke(name, cloud, environment, opts)
        network, subnetwork, cluster_cidr = gke.network.id, gke.subnetwork.id, gke.cluster_cidr
        kubeconfig = gke.kubeconfig
        ready.append(gke.node_pool)
    else:
        assert cloud.network and cloud.cluster_cidr
        network, cluster_cidr = cloud.network, cloud.cluster_cidr
    firewall = _tunnel_firewall(name, cloud, settings, network, cluster_cidr, opts)
    ready.append(firewall)
    configs: dict[str, pulumi.Input[str]] = {
        "GCP_PROJECT_ID": cloud.project_id,
        "GCP_ZONE": cloud.zone,
        "GCP_NETWORK": network,
        "GCP_MACHINE_TYPE": cloud.machine,
        "GCP_CONFIDENTIAL_TYPE": cloud.confidential_type,
        "GCP_DISK_TYPE": cloud.disk,
        "PODVM_IMAGE_NAME": cloud.podvm_image or "",
    }
    if subnetwork is not None:
        configs["GCP_SUBNETWORK"] = subnetwork
    side = CloudSide(
        provider="gcp",
        provider_configs=configs,
        kubeconfig=kubeconfig,
        system_priority_quota=True,
        resource_ctrl=False,
        ready=ready,
        outputs={"firewall": firewall.name},
    )
    if cloud.credentials_from is not None:
        side.secrets = {"GCP_CREDENTIALS": secret_config(cloud.credentials_from)}
    else:
        _adaptor_service_account(name, cloud, side, opts)
    return side


def _tunnel_firewall(
    name: str,
    cloud: GcpPeerPods,
    settings: PeerPodsCluster,
    network: pulumi.Input[str],
    cluster_cidr: pulumi.Input[str],
    opts: pulumi.ResourceOptions,
) -> Any:
    """The tunnel ports (VXLAN, agent forwarder), open only from the cluster's range."""
    return gcp.compute.Firewall(
        f"{name}-tunnel",
        name=resource_name(cloud.cluster.name, "peerpods-tunnel"),
        description="coco peer pods: VXLAN and agent forwarder between nodes and pod VMs",
        network=network,
        direction="INGRESS",
        priority=1000,
        source_ranges=[cluster_cidr],
        allows=firewall_allows(settings.vxlan_port),
        opts=opts,
    )


def _adaptor_service_account(
    name: str, cloud: GcpPeerPods, side: CloudSide, opts: pulumi.ResourceOptions
) -> None:
    """No key given: a service account of the adaptor's own, holding only ADAPTOR_ROLES,
    and its key as `GCP_CREDENTIALS` (a secret); the release waits for the role bindings."""
    adaptor_sa = gcp.serviceaccount.Account(
        f"{name}-adaptor",
        account_id=account_id(cloud.cluster.name, "cloud-api-adaptor"),
        display_name="cloud-api-adaptor (coco): creates and deletes pod VMs",
        opts=opts,
    )
    for role in ADAPTOR_ROLES:
        side.ready.append(
            gcp.projects.IAMMember(
                f"{name}-adaptor-{role.rsplit('/', 1)[1]}",
                project=cloud.project_id,
                role=role,
                member=adaptor_sa.member,
                opts=opts,
            )
        )
    key = gcp.serviceaccount.Key(f"{name}-adaptor", service_account_id=adaptor_sa.name, opts=opts)
    side.secrets = {
        "GCP_CREDENTIALS": pulumi.Output.secret(
            key.private_key.apply(lambda b64: base64.b64decode(b64).decode("utf-8"))
        )
    }
    side.outputs["adaptorServiceAccount"] = adaptor_sa.email
