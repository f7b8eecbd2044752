"""Azure side of peer pods: AKS (optional), the pod VMs' NSG, and the adaptor's identity.

Sources, as checked:
- Identity: confidentialcontainers.org `docs/cloud-api-adaptor/azure` ("User assigned
  identity and federated credentials"): a user-assigned identity with a federated credential
  for `system:serviceaccount:confidential-containers-system:cloud-api-adaptor`, audience
  `api://AzureADTokenExchange`; the DaemonSet labelled `azure.workload.identity/use: "true"`
  and its ServiceAccount annotated `azure.workload.identity/client-id` (peerpods chart
  `values.yaml` comments on `daemonset.podLabels` / `daemonset.serviceAccount.annotations`,
  and peerpod-ctrl chart `values.yaml` for `resourceCtrl.*`).
- Roles, read against cloud-api-adaptor v0.22.0 `src/cloud-providers/azure/provider.go`
  rather than the guide's "Virtual Machine Contributor + Reader on the pod-VM group, Network
  Contributor on the cluster's": the adaptor creates, reads and deletes VMs and their NICs in
  AZURE_RESOURCE_GROUP, joining the NIC to AZURE_NSG_ID (in that group) and AZURE_SUBNET_ID
  (`buildNetworkConfig`, `getIPs`, `DeleteInstance`): Virtual Machine Contributor on that group
  covers it (Reader there adds nothing, so it is not granted). The subnet lives in the
  cluster's VNet: only `Microsoft.Network/virtualNetworks/subnets/join/action`, on that one
  subnet, instead of Network Contributor on the VNet. `NewProvider` lists VM sizes
  (`updateInstanceSizeSpecList`: `VirtualMachineSizesClient.NewListPager(region)`, a
  subscription-level path), which no resource-group assignment covers: without
  `Microsoft.Compute/locations/vmSizes/read` at subscription scope the adaptor never starts.
  Both are custom roles holding exactly that one action.
- AKS: `--enable-oidc-issuer --enable-workload-identity --nodepool-labels
  node.kubernetes.io/worker= --os-sku Ubuntu` (same guide).
- `peer-pods-cm` keys: peerpods chart `providers/azure.yaml` (AZURE_IMAGE_ID,
  AZURE_INSTANCE_SIZE, AZURE_NSG_ID, AZURE_REGION, AZURE_RESOURCE_GROUP, AZURE_SUBNET_ID,
  AZURE_SUBSCRIPTION_ID, ...); secret keys AZURE_CLIENT_ID, AZURE_CLIENT_SECRET,
  AZURE_TENANT_ID (cloud-providers `azure/manager.go`).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pulumi

if TYPE_CHECKING:
    # pulumi_azure_native is ~356 MB of generated code that mypy cannot load in any sane amount of
    # memory; its calls are typed as Any here and exercised by tests/test_peerpods.py.
    azure_native: Any
else:
    import pulumi_azure_native as azure_native

from components.peerpods.common import (
    CLIENT_ID_ANNOTATION,
    NODE_LABEL,
    USE_LABEL,
    CloudSide,
    identity_subjects,
    secret_config,
    split_cidr,
)
from components.peerpods.settings import FORWARDER_PORT, AzurePeerPods, PeerPodsCluster

VIRTUAL_MACHINE_CONTRIBUTOR = "9980e02c-c2be-4d73-94e8-173b1dc7cf3c"
NETWORK_CONTRIBUTOR = "4d97b98b-1d4f-4787-a291-c67834d212e7"
"""Still used for AKS's own control-plane identity on the VNet it creates."""
ROLE_NAMES = {
    VIRTUAL_MACHINE_CONTRIBUTOR: "Virtual Machine Contributor",
    NETWORK_CONTRIBUTOR: "Network Contributor",
}

SUBNET_JOIN_ACTION = "Microsoft.Network/virtualNetworks/subnets/join/action"
VM_SIZES_READ_ACTION = "Microsoft.Compute/locations/vmSizes/read"

WORKLOAD_IDENTITY_AUDIENCE = "api://AzureADTokenExchange"
DEFAULT_NODE_SIZE = "Standard_D4s_v5"
SERVICE_CIDR = "172.16.0.0/16"
DNS_SERVICE_IP = "172.16.0.10"
POD_CIDR = "192.168.0.0/16"


def role_definition_id(subscription_id: str, role: str) -> str:
    return (
        f"/subscriptions/{subscription_id}/providers/Microsoft.Authorization/roleDefinitions/{role}"
    )


def nsg_rules(cluster_cidr: pulumi.Input[str], vxlan_port: int) -> list[dict[str, Any]]:
    """Admit the tunnel from the cluster's subnet, and nothing else.

    The final deny overrides Azure's default AllowVnetInBound (priority 65000), so other
    hosts in the VNet cannot reach the pod VMs either.
    """
    tunnel = [("allow-vxlan-from-cluster", 100, "Udp", vxlan_port)]
    tunnel.append(("allow-forwarder-from-cluster", 110, "Tcp", FORWARDER_PORT))
    rules: list[dict[str, Any]] = [
        {
            "name": rule,
            "priority": priority,
            "direction": "Inbound",
            "access": "Allow",
            "protocol": protocol,
            "source_address_prefix": cluster_cidr,
            "source_port_range": "*",
            "destination_address_prefix": "*",
            "destination_port_range": str(port),
        }
        for rule, priority, protocol, port in tunnel
    ]
    rules.append(
        {
            "name": "deny-other-inbound",
            "priority": 4096,
            "direction": "Inbound",
            "access": "Deny",
            "protocol": "*",
            "source_address_prefix": "*",
            "source_port_range": "*",
            "destination_address_prefix": "*",
            "destination_port_range": "*",
        }
    )
    return rules


def _tags(environment: str) -> dict[str, str]:
    return {"managed-by": "coco", "coco-environment": environment}


class _Aks:
    """The created resource group, VNet and AKS cluster."""

    def __init__(
        self, name: str, cloud: AzurePeerPods, environment: str, opts: pulumi.ResourceOptions
    ) -> None:
        cc = cloud.cluster
        tags = _tags(environment)
        self.resource_group = azure_native.resources.ResourceGroup(
            f"{name}-rg",
            resource_group_name=cloud.resource_group,
            location=cloud.region,
            tags=tags,
            opts=opts,
        )
        rg = self.resource_group.name
        vnet = azure_native.network.VirtualNetwork(
            f"{name}-vnet",
            resource_group_name=rg,
            virtual_network_name=f"{cc.name}-vnet",
            location=cloud.region,
            address_space={"address_prefixes": [cc.network_cidr]},
            tags=tags,
            opts=pulumi.ResourceOptions.merge(
                opts, pulumi.ResourceOptions(ignore_changes=["subnets"])
            ),
        )
        self.cluster_cidr = split_cidr(cc.network_cidr, 1)[0]
        self.nat_gateway = _nat_gateway(name, cloud, rg, tags, opts)
        subnet = azure_native.network.Subnet(
            f"{name}-nodes",
            resource_group_name=rg,
            virtual_network_name=vnet.name,
            subnet_name="nodes",
            address_prefix=self.cluster_cidr,
            nat_gateway={"id": self.nat_gateway.id},
            opts=opts,
        )
        control_plane, cp_network = _control_plane_identity(name, cloud, rg, vnet, tags, opts)
        self.cluster = _managed_cluster(
            name, cloud, rg, subnet, control_plane, cp_network, tags, opts
        )
        self.subnet_id = subnet.id
        self.vnet_id = vnet.id
        self.issuer = self.cluster.oidc_issuer_profile.apply(
            lambda p: (p.issuer_url if p else None) or ""
        )
        creds = azure_native.containerservice.list_managed_cluster_user_credentials_output(
            resource_group_name=rg,
            resource_name=self.cluster.name,
            opts=pulumi.InvokeOutputOptions(parent=opts.parent, provider=opts.provider),
        )
        self.kubeconfig = pulumi.Output.secret(
            creds.kubeconfigs.apply(lambda ks: base64.b64decode(ks[0].value).decode("utf-8"))
        )


def _nat_gateway(
    name: str,
    cloud: AzurePeerPods,
    rg: pulumi.Input[str],
    tags: dict[str, str],
    opts: pulumi.ResourceOptions,
) -> Any:
    """The node subnet's outbound path. Pod VMs join the node subnet without public IPs
    (the adaptor's default, USE_PUBLIC_IP false) and sit in no load balancer pool, so AKS's
    load-balancer outbound does not reach them; Azure's default outbound access is retired
    for new VNets. A NAT gateway on the subnet gives nodes and pod VMs one explicit outbound
    path (image pulls, KBS)."""
    cc = cloud.cluster
    outbound_ip = azure_native.network.PublicIPAddress(
        f"{name}-nat-ip",
        resource_group_name=rg,
        public_ip_address_name=f"{cc.name}-nat",
        location=cloud.region,
        sku={"name": "Standard"},
        public_ip_allocation_method="Static",
        tags=tags,
        opts=opts,
    )
    return azure_native.network.NatGateway(
        f"{name}-nat",
        resource_group_name=rg,
        nat_gateway_name=f"{cc.name}-nat",
        location=cloud.region,
        sku={"name": "Standard"},
        public_ip_addresses=[{"id": outbound_ip.id}],
        tags=tags,
        opts=opts,
    )


def _control_plane_identity(
    name: str,
    cloud: AzurePeerPods,
    rg: pulumi.Input[str],
    vnet: Any,
    tags: dict[str, str],
    opts: pulumi.ResourceOptions,
) -> tuple[Any, Any]:
    """(identity, its role assignment): a bring-your-own VNet needs the control plane's
    identity to hold Network Contributor on it *before* the cluster exists, hence a
    user-assigned identity."""
    control_plane = azure_native.managedidentity.UserAssignedIdentity(
        f"{name}-aks-identity",
        resource_group_name=rg,
        resource_name_=f"{cloud.cluster.name}-aks",
        location=cloud.region,
        tags=tags,
        opts=opts,
    )
    cp_network = azure_native.authorization.RoleAssignment(
        f"{name}-aks-network",
        principal_id=control_plane.principal_id,
        principal_type="ServicePrincipal",
        role_definition_id=role_definition_id(cloud.subscription_id, NETWORK_CONTRIBUTOR),
        scope=vnet.id,
        opts=opts,
    )
    return control_plane, cp_network


def _managed_cluster(
    name: str,
    cloud: AzurePeerPods,
    rg: pulumi.Input[str],
    subnet: Any,
    control_plane: Any,
    cp_network: Any,
    tags: dict[str, str],
    opts: pulumi.ResourceOptions,
) -> Any:
    """The AKS cluster: its nodes in the subnet, labelled for the adaptor DaemonSet, with
    the OIDC issuer and workload identity on, out through the NAT gateway."""
    cc = cloud.cluster
    return azure_native.containerservice.ManagedCluster(
        f"{name}-aks",
        resource_group_name=rg,
        resource_name_=cc.name,
        location=cloud.region,
        dns_prefix=cc.name,
        kubernetes_version=cc.kubernetes_version,
        identity={
            "type": "UserAssigned",
            "user_assigned_identities": [control_plane.id],
        },
        agent_pool_profiles=[
            {
                "name": "system",
                "mode": "System",
                "count": cc.node_count,
                "vm_size": cc.node_instance_type or DEFAULT_NODE_SIZE,
                "os_type": "Linux",
                "os_sku": "Ubuntu",
                "type": "VirtualMachineScaleSets",
                "vnet_subnet_id": subnet.id,
                # The adaptor DaemonSet's nodeSelector; AKS accepts node.kubernetes.io/*.
                "node_labels": {NODE_LABEL: ""},
            }
        ],
        network_profile={
            "network_plugin": "azure",
            "network_plugin_mode": "overlay",
            "pod_cidr": POD_CIDR,
            "service_cidr": SERVICE_CIDR,
            "dns_service_ip": DNS_SERVICE_IP,
            "outbound_type": "userAssignedNATGateway",
        },
        oidc_issuer_profile={"enabled": True},
        security_profile={"workload_identity": {"enabled": True}},
        tags=tags,
        opts=pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(depends_on=[cp_network])),
    )


def build(
    name: str,
    cloud: AzurePeerPods,
    settings: PeerPodsCluster,
    environment: str,
    parent: pulumi.Resource,
) -> CloudSide:
    """Create the Azure resources pod VMs need, and describe them to the adaptor."""
    provider = azure_native.Provider(
        f"{name}-azure",
        subscription_id=cloud.subscription_id,
        location=cloud.region,
        opts=pulumi.ResourceOptions(parent=parent),
    )
    opts = pulumi.ResourceOptions(parent=parent, provider=provider)
    tags = _tags(environment)
    place = _placement(name, cloud, environment, parent, opts)
    nsg = azure_native.network.NetworkSecurityGroup(
        f"{name}-podvm",
        resource_group_name=place.resource_group,
        network_security_group_name=f"{cloud.cluster.name}-podvm",
        location=cloud.region,
        security_rules=nsg_rules(place.cluster_cidr, settings.vxlan_port),
        tags=tags,
        opts=opts,
    )
    side = CloudSide(
        provider="azure",
        provider_configs={
            "AZURE_SUBSCRIPTION_ID": cloud.subscription_id,
            "AZURE_REGION": cloud.region,
            "AZURE_RESOURCE_GROUP": cloud.resource_group,
            "AZURE_SUBNET_ID": place.subnet_id,
            "AZURE_NSG_ID": nsg.id,
            "AZURE_IMAGE_ID": cloud.image_id or "",
            "AZURE_INSTANCE_SIZE": cloud.size,
            "TAGS": f"managed-by=coco,coco-environment={environment}",
        },
        kubeconfig=place.kubeconfig,
        nodes_labelled=cloud.cluster.create,
        ready=place.ready,
        outputs={"podVmNsgId": nsg.id},
    )
    principal_id: pulumi.Input[str]
    if cloud.credentials == "workload-identity":
        principal_id = _workload_identity(name, cloud, settings, place, side, tags, opts)
    else:
        assert cloud.client_id and cloud.tenant_id and cloud.principal_id
        assert cloud.client_secret_from
        principal_id = cloud.principal_id
        side.secrets = {
            "AZURE_CLIENT_ID": pulumi.Output.secret(cloud.client_id),
            "AZURE_TENANT_ID": pulumi.Output.secret(cloud.tenant_id),
            "AZURE_CLIENT_SECRET": secret_config(cloud.client_secret_from),
        }
    side.ready += _adaptor_roles(name, cloud, environment, principal_id, place, opts)
    return side


@dataclass
class _Placement:
    """Where the pod VMs go: the created cluster's resource group and subnet, or the given."""

    resource_group: pulumi.Input[str]
    subnet_id: pulumi.Input[str]
    cluster_cidr: pulumi.Input[str]
    issuer: pulumi.Input[str] | None
    kubeconfig: pulumi.Output[str] | None = None
    ready: list[pulumi.Resource] = field(default_factory=list)
    created_group: list[pulumi.Resource] = field(default_factory=list)
    """The resource group, when the stack creates it: role assignments on it wait for it."""


def _placement(
    name: str,
    cloud: AzurePeerPods,
    environment: str,
    parent: pulumi.Resource,
    opts: pulumi.ResourceOptions,
) -> _Placement:
    """The AKS cluster when the stack creates it (the release waits for it); otherwise the
    subnet and issuer the settings name, with a warning about the subnet's outbound path."""
    if cloud.cluster.create:
        aks = _Aks(name, cloud, environment, opts)
        return _Placement(
            aks.resource_group.name,
            aks.subnet_id,
            aks.cluster_cidr,
            aks.issuer,
            aks.kubeconfig,
            [aks.cluster],
            [aks.resource_group],
        )
    assert cloud.subnet_id and cloud.cluster_cidr
    pulumi.log.warn(
        f"coco:cluster.cloud.subnetId: pod VMs join {cloud.subnet_id} without public IPs "
        "and outside AKS's load-balancer pool: the subnet needs its own outbound path (a "
        "NAT gateway or a firewall route) for image pulls and the KBS, since Azure's "
        "default outbound access is retired for new VNets",
        resource=parent,
    )
    return _Placement(
        cloud.resource_group, cloud.subnet_id, cloud.cluster_cidr, cloud.oidc_issuer_url
    )


def _workload_identity(
    name: str,
    cloud: AzurePeerPods,
    settings: PeerPodsCluster,
    place: _Placement,
    side: CloudSide,
    tags: dict[str, str],
    opts: pulumi.ResourceOptions,
) -> pulumi.Output[str]:
    """The adaptor's user-assigned identity, federated with the ServiceAccounts' tokens
    (the chart gets its client id and the workload-identity pod label); its principal id."""
    assert place.issuer is not None
    identity = azure_native.managedidentity.UserAssignedIdentity(
        f"{name}-adaptor",
        resource_group_name=place.resource_group,
        resource_name_=f"{cloud.cluster.name}-cloud-api-adaptor",
        location=cloud.region,
        tags=tags,
        opts=opts,
    )
    previous: list[pulumi.Resource] = []
    for i, sub in enumerate(identity_subjects(settings)):
        # Azure refuses concurrent federated-credential writes on one identity: chain them.
        credential = azure_native.managedidentity.FederatedIdentityCredential(
            f"{name}-federated-{i}",
            resource_group_name=place.resource_group,
            resource_name_=identity.name,
            federated_identity_credential_resource_name=sub.rsplit(":", 1)[1],
            issuer=place.issuer,
            subject=sub,
            audiences=[WORKLOAD_IDENTITY_AUDIENCE],
            opts=pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(depends_on=previous)),
        )
        previous = [credential]
        side.ready.append(credential)
    side.service_account_annotations = {CLIENT_ID_ANNOTATION: identity.client_id}
    side.pod_labels = {USE_LABEL: "true"}
    side.outputs["adaptorClientId"] = identity.client_id
    principal: pulumi.Output[str] = identity.principal_id
    return principal


def _adaptor_roles(
    name: str,
    cloud: AzurePeerPods,
    environment: str,
    principal_id: pulumi.Input[str],
    place: _Placement,
    opts: pulumi.ResourceOptions,
) -> list[pulumi.Resource]:
    """What the adaptor's principal may do: Virtual Machine Contributor on the pod VMs'
    resource group, and two custom one-action roles (join the subnet; read VM sizes at
    subscription scope, which no resource-group assignment covers)."""
    subscription_scope = f"/subscriptions/{cloud.subscription_id}"
    podvm_rg_scope = f"{subscription_scope}/resourceGroups/{cloud.resource_group}"
    custom = {
        label: azure_native.authorization.RoleDefinition(
            f"{name}-{label}",
            role_name=f"coco {cloud.cluster.name} {environment} peer pods: {action}",
            description=f"coco cloud-api-adaptor ({environment}): {action} only",
            permissions=[{"actions": [action], "not_actions": []}],
            assignable_scopes=[subscription_scope],
            scope=subscription_scope,
            opts=opts,
        )
        for label, action in (
            ("subnet-join", SUBNET_JOIN_ACTION),
            ("vm-sizes", VM_SIZES_READ_ACTION),
        )
    }
    assignments: list[tuple[str, pulumi.Input[str], pulumi.Input[str], str]] = [
        (
            "vm-contributor",
            role_definition_id(cloud.subscription_id, VIRTUAL_MACHINE_CONTRIBUTOR),
            podvm_rg_scope,
            ROLE_NAMES[VIRTUAL_MACHINE_CONTRIBUTOR],
        ),
        ("subnet-join", custom["subnet-join"].id, place.subnet_id, SUBNET_JOIN_ACTION),
        ("vm-sizes", custom["vm-sizes"].id, subscription_scope, VM_SIZES_READ_ACTION),
    ]
    return [
        azure_native.authorization.RoleAssignment(
            f"{name}-{label}",
            principal_id=principal_id,
            principal_type="ServicePrincipal",
            role_definition_id=role_id,
            scope=scope,
            description=f"coco cloud-api-adaptor: {what}",
            opts=pulumi.ResourceOptions.merge(
                opts, pulumi.ResourceOptions(depends_on=place.created_group)
            ),
        )
        for label, role_id, scope, what in assignments
    ]
