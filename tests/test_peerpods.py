"""Peer pods: settings validation per cloud, and what the PeerPods component registers.

The component runs under Pulumi mocks for each cloud; the assertions are the ones that matter
for a confidential deployment: the adaptor gets every `peer-pods-cm` key its cloud needs, a
confidential instance type and a default init-data that points at our Trustee; credentials
only ever travel as Pulumi secrets; the cloud identity holds exactly the upstream least-
privilege permissions; and the tunnel ports are open to the cluster only.
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pulumi
import pytest
import yaml
from mocks import CloudMocks, Recorded, RecordingMocks, fake_pem, resolve
from pulumi.runtime import rpc

from components import labels, releases
from components.peerpods.common import common_config
from components.peerpods.component import CREDENTIALS_SECRET, PeerPods, chart_values
from components.peerpods.settings import (
    AwsPeerPods,
    AzurePeerPods,
    GcpPeerPods,
    PeerPodsCluster,
    attestation_platform,
)
from components.settings import SettingsError, parse, strip_namespace
from policies.initdata import INITDATA_VERSION, decode_annotation
from policies.resource import PLATFORM_EVIDENCE_KEYS

ROOT = Path(__file__).resolve().parent.parent
KBS_URL = "https://kbs.example.com:8080"
KBS_CERT = fake_pem("CERTIFICATE", "peerpods-kbs")
PINNED = "registry.example.com/app@sha256:" + "ab" * 32
SUBSCRIPTION = "3f2b8c4e-6a1d-4e7f-9b2c-5d8e1f0a7c36"
AKS_SUBNET = (
    f"/subscriptions/{SUBSCRIPTION}/resourceGroups/MC_rg_aks_eastus/providers/"
    "Microsoft.Network/virtualNetworks/aks-vnet/subnets/aks-subnet"
)
SECRET_VALUE = "s3cr3t-value-that-must-never-appear-in-plain-text"

# The EC2 calls cloud-api-adaptor v0.22.0 makes with coco's settings, as read in its
# src/cloud-providers/aws/provider.go (written out here, not imported, so a change in the code
# fails this test): NewProvider -> DescribeImages (getDeviceNameAndSize, ROOT_VOLUME_SIZE 30),
# DescribeInstanceTypes (updateInstanceTypeSpecList); CreateInstance -> RunInstances with
# TagSpecifications (so CreateTags on create); DeleteInstance -> DescribeAddresses
# (deleteElasticIPforInstance), TerminateInstances. peerpod-ctrl builds the same provider.
ADAPTOR_CALLS = {
    "ec2:DescribeImages",
    "ec2:DescribeInstanceTypes",
    "ec2:DescribeAddresses",
    "ec2:RunInstances",
    "ec2:CreateTags",
    "ec2:TerminateInstances",
}
CONTROLLER_CALLS = {
    "ec2:DescribeImages",
    "ec2:DescribeInstanceTypes",
    "ec2:DescribeAddresses",
    "ec2:TerminateInstances",
}
AZURE_ROLES = {
    "9980e02c-c2be-4d73-94e8-173b1dc7cf3c": "Virtual Machine Contributor",
    "acdd72a7-3385-48ef-bd42-f606fba81ae7": "Reader",
    "4d97b98b-1d4f-4787-a291-c67834d212e7": "Network Contributor",
}

AWS_GIVEN: dict[str, Any] = {
    "provider": "aws",
    "region": "us-east-2",
    "podvmAmiId": "ami-0a1b2c3d4e5f60718",
    "vpcId": "vpc-0123456789abcdef0",
    "subnetId": "subnet-0123456789abcdef0",
    "clusterSecurityGroupId": "sg-0c1u5ter000000000",
    "oidcProviderArn": (
        "arn:aws:iam::123456789012:oidc-provider/oidc.eks.us-east-2.amazonaws.com/id/ABC123"
    ),
}
AZURE_GIVEN: dict[str, Any] = {
    "provider": "azure",
    "subscriptionId": SUBSCRIPTION,
    "region": "eastus",
    "resourceGroup": "coco-podvms",
    "imageId": "/CommunityGalleries/coco/Images/peerpod-podvm-ubuntu2204-cvm-snp/Versions/0.21.0",
    "subnetId": AKS_SUBNET,
    "clusterCidr": "10.224.0.0/16",
    "oidcIssuerUrl": "https://eastus.oic.prod-aks.azure.com/tenant/issuer/",
}
GCP_GIVEN: dict[str, Any] = {
    "provider": "gcp",
    "tee": "tdx",
    "projectId": "coco-project-1",
    "zone": "us-central1-a",
    "podvmImage": "podvm-tdx-v0-22-0",
    "network": "global/networks/default",
    "clusterCidr": "10.128.0.0/20",
}


# --------------------------------------------------------------------------- helpers


@pytest.fixture
def cloud() -> Iterator[CloudMocks]:
    recording = CloudMocks(gcp_private_key=SECRET_VALUE)
    pulumi.runtime.set_mocks(recording, project="coco", stack="test", preview=False)
    pulumi.runtime.set_all_config({})
    yield recording
    pulumi.runtime.set_all_config({})


def peerpods_settings(cloud_raw: dict[str, Any], **extra: Any) -> PeerPodsCluster:
    return PeerPodsCluster.model_validate({"kind": "peerpods", "cloud": cloud_raw, **extra})


def run(
    settings: PeerPodsCluster, secrets: dict[str, str] | None = None
) -> tuple[dict[str, Any], dict[str, bool]]:
    """Build PeerPods under the mocks; its outputs' values and whether each is secret."""
    secrets = secrets or {}
    pulumi.runtime.set_all_config(
        {f"coco:{k}": v for k, v in secrets.items()}, [f"coco:{k}" for k in secrets]
    )

    def build() -> dict[str, Any]:
        pp = PeerPods("peerpods", settings, "production", kbs_url=KBS_URL, kbs_cert_pem=KBS_CERT)
        return {
            "initdata": pp.default_initdata,
            "kubeconfig": pp.kubeconfig,
            "credentials": pp.credentials,
            "has_provider": pp.provider is not None,
            "runtime_classes": pp.runtime_classes,
        }

    return resolve(build)


def statements(policy: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {st["Sid"]: st for st in policy["Statement"]}


def actions(by_sid: dict[str, dict[str, Any]]) -> set[str]:
    out: set[str] = set()
    for st in by_sid.values():
        out.update([st["Action"]] if isinstance(st["Action"], str) else st["Action"])
    return out


def adaptor_release(cloud: RecordingMocks) -> dict[str, Any]:
    (release,) = [r for r in cloud.of_type("helm.sh/v3:Release") if r.name == "peerpods-adaptor"]
    return release.inputs


def provider_configs(cloud: RecordingMocks) -> dict[str, str]:
    values = adaptor_release(cloud)["values"]
    configs: dict[str, str] = values["providerConfigs"][values["provider"]]
    return configs


def plain_text(record: Recorded) -> str:
    """Every input of a resource that did *not* arrive as a secret, as one string."""

    def strip(value: Any) -> Any:
        if rpc.is_rpc_secret(value):
            return "<secret>"
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items()}
        if isinstance(value, list):
            return [strip(v) for v in value]
        return value

    return json.dumps(strip(record.raw_inputs), default=str)


def assert_labelled(cloud: RecordingMocks) -> None:
    objects = [
        r
        for r in cloud.kubernetes()
        if r.type != "kubernetes:helm.sh/v3:Release" and not r.type.startswith("pulumi:providers")
    ]
    assert objects
    for r in objects:
        got = r.metadata.get("labels", {})
        assert got.get(labels.MANAGED_BY) == "coco", r.name
        assert got.get(labels.ENVIRONMENT) == "production", r.name
        assert labels.ROLE in got, r.name


# --------------------------------------------------------------------------- AWS


def test_aws_adaptor_values_irsa_and_least_privilege(cloud: CloudMocks) -> None:
    values, _ = run(peerpods_settings(AWS_GIVEN))
    configs = provider_configs(cloud)
    assert {
        "AWS_REGION",
        "PODVM_AMI_ID",
        "PODVM_INSTANCE_TYPE",
        "AWS_SUBNET_ID",
        "AWS_SG_IDS",
        "VXLAN_PORT",
        "FORWARDER_PORT",
        "INITDATA",
        "DISABLECVM",
    } <= set(configs)
    assert configs["AWS_REGION"] == "us-east-2"
    assert configs["PODVM_INSTANCE_TYPE"] == "m6a.large"
    assert configs["PODVM_AMI_ID"] == AWS_GIVEN["podvmAmiId"]
    assert configs["AWS_SUBNET_ID"] == AWS_GIVEN["subnetId"]
    assert configs["VXLAN_PORT"] == "4789" and configs["FORWARDER_PORT"] == "15150"
    assert configs["DISABLECVM"] == "false"

    chart = adaptor_release(cloud)
    assert (
        chart["chart"] == "oci://ghcr.io/confidential-containers/cloud-api-adaptor/charts/peerpods"
    )
    assert chart["version"] == releases.PEERPODS.version
    assert chart["namespace"] == "confidential-containers-system"
    v = chart["values"]
    assert v["provider"] == "aws"
    assert v["secrets"] == {"mode": "reference", "existingSecretName": ""}
    adaptor_role = v["daemonset"]["serviceAccount"]["annotations"]["eks.amazonaws.com/role-arn"]
    ctrl_role = v["resourceCtrl"]["serviceAccount"]["annotations"]["eks.amazonaws.com/role-arn"]
    assert adaptor_role != ctrl_role
    assert values["credentials"] is None and not cloud.of_type("core/v1:Secret")

    policies = {r.name: json.loads(r.inputs["policy"]) for r in cloud.of_type("iam/policy:Policy")}
    adaptor_doc = statements(policies["peerpods-adaptor"])
    ctrl_doc = statements(policies["peerpods-controller"])
    assert actions(adaptor_doc) == ADAPTOR_CALLS
    assert actions(ctrl_doc) == CONTROLLER_CALLS
    tags = {"managed-by": "coco", "coco-environment": "production"}
    assert provider_configs(cloud)["TAGS"] == "coco-environment=production,managed-by=coco"
    for doc in (adaptor_doc, ctrl_doc):
        describe = doc["PeerPodDescribe" if doc is adaptor_doc else "PeerPodCleanupDescribe"]
        assert describe["Condition"] == {"StringEquals": {"aws:RequestedRegion": "us-east-2"}}
        # Terminate only what carries this stack's tags, never `*`.
        terminate = doc["PeerPodTerminateTagged"]
        assert terminate["Resource"] == "arn:aws:ec2:us-east-2:*:instance/*"
        assert terminate["Condition"]["StringEquals"] == {
            f"aws:ResourceTag/{k}": v for k, v in tags.items()
        }
    launch = adaptor_doc["PeerPodLaunchTagged"]
    assert launch["Resource"] == "arn:aws:ec2:us-east-2:*:instance/*"
    assert launch["Condition"]["StringEquals"] == {
        f"aws:RequestTag/{k}": v for k, v in tags.items()
    }
    launch_from = adaptor_doc["PeerPodLaunchFrom"]["Resource"]
    assert f"arn:aws:ec2:us-east-2::image/{AWS_GIVEN['podvmAmiId']}" in launch_from
    assert f"arn:aws:ec2:us-east-2:*:subnet/{AWS_GIVEN['subnetId']}" in launch_from
    assert adaptor_doc["PeerPodTagOnLaunch"]["Condition"] == {
        "StringEquals": {"ec2:CreateAction": "RunInstances"}
    }

    roles = {
        r.name: json.loads(r.inputs["assumeRolePolicy"]) for r in cloud.of_type("iam/role:Role")
    }
    issuer = "oidc.eks.us-east-2.amazonaws.com/id/ABC123"
    trust = roles["peerpods-adaptor-irsa"]["Statement"][0]
    assert trust["Action"] == "sts:AssumeRoleWithWebIdentity"
    assert trust["Principal"] == {"Federated": AWS_GIVEN["oidcProviderArn"]}
    assert trust["Condition"]["StringEquals"] == {
        f"{issuer}:sub": "system:serviceaccount:confidential-containers-system:cloud-api-adaptor",
        f"{issuer}:aud": "sts.amazonaws.com",
    }
    ctrl_trust = roles["peerpods-controller-irsa"]["Statement"][0]["Condition"]["StringEquals"]
    assert ctrl_trust[f"{issuer}:sub"].endswith(":peerpodctrl-controller-manager")
    assert not cloud.of_type("eks/cluster:Cluster")
    assert values["kubeconfig"] is None and values["has_provider"] is False
    assert values["runtime_classes"] == ["kata-remote"]


def test_aws_security_group_admits_the_tunnel_from_the_cluster_only(cloud: CloudMocks) -> None:
    run(peerpods_settings(AWS_GIVEN))
    ingress = {
        r.name: r.inputs
        for r in cloud.of_type("vpc/securityGroupIngressRule:SecurityGroupIngressRule")
    }
    vxlan, forwarder = ingress["peerpods-podvm-vxlan"], ingress["peerpods-podvm-forwarder"]
    assert (vxlan["ipProtocol"], vxlan["fromPort"], vxlan["toPort"]) == ("udp", 4789, 4789)
    assert (forwarder["ipProtocol"], forwarder["fromPort"], forwarder["toPort"]) == (
        "tcp",
        15150,
        15150,
    )
    for rule in (vxlan, forwarder):
        assert rule["referencedSecurityGroupId"] == AWS_GIVEN["clusterSecurityGroupId"]
        assert "cidrIpv4" not in rule and "cidrIpv6" not in rule
    back = ingress["peerpods-nodes-vxlan"]
    assert back["securityGroupId"] == AWS_GIVEN["clusterSecurityGroupId"]
    assert back["referencedSecurityGroupId"] == "peerpods-podvm-id"
    for rule in ingress.values():
        assert "0.0.0.0/0" not in json.dumps(rule)
    assert provider_configs(cloud)["AWS_SG_IDS"] == "peerpods-podvm-id"


def test_aws_static_credentials_are_secrets_everywhere(cloud: CloudMocks) -> None:
    raw = {
        **AWS_GIVEN,
        "credentials": "static",
        "accessKeyIdFrom": "awsKeyId",
        "secretAccessKeyFrom": "awsSecretKey",
    }
    raw.pop("oidcProviderArn")
    values, secret = run(
        peerpods_settings(raw), {"awsKeyId": "AKIAEXAMPLE", "awsSecretKey": SECRET_VALUE}
    )
    assert secret["credentials"] and values["credentials"] == {
        "AWS_ACCESS_KEY_ID": "AKIAEXAMPLE",
        "AWS_SECRET_ACCESS_KEY": SECRET_VALUE,
    }
    (k8s_secret,) = cloud.of_type("core/v1:Secret")
    assert k8s_secret.metadata["name"] == CREDENTIALS_SECRET == "peer-pods-secret"
    assert k8s_secret.metadata["namespace"] == "confidential-containers-system"
    # The whole stringData reaches the engine as one secret (encrypted in state).
    assert k8s_secret.secret_paths == {"stringData"}
    assert set(k8s_secret.inputs["stringData"]) == {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}
    v = adaptor_release(cloud)["values"]
    assert v["secrets"] == {"mode": "reference", "existingSecretName": "peer-pods-secret"}
    assert "eks.amazonaws.com/role-arn" not in v["daemonset"]["serviceAccount"]["annotations"]
    for record in cloud.resources:
        assert SECRET_VALUE not in plain_text(record), record.name


def test_aws_created_cluster_exposes_a_secret_kubeconfig_and_provider(cloud: CloudMocks) -> None:
    raw = {k: v for k, v in AWS_GIVEN.items() if k in ("provider", "region", "podvmAmiId")}
    raw["cluster"] = {"create": True, "name": "coco-eks", "nodeCount": 2}
    values, secret = run(peerpods_settings(raw))
    assert values["has_provider"] and secret["kubeconfig"]
    kubeconfig = json.loads(values["kubeconfig"])
    assert kubeconfig["users"][0]["user"]["exec"]["command"] == "aws"
    (cluster,) = cloud.of_type("eks/cluster:Cluster")
    assert cluster.inputs["name"] == "coco-eks"
    (group,) = cloud.of_type("eks/nodeGroup:NodeGroup")
    assert group.inputs["scalingConfig"]["desiredSize"] == 2
    assert cloud.of_type("iam/openIdConnectProvider:OpenIdConnectProvider")
    ingress = {r.name: r.inputs for r in cloud.of_type("SecurityGroupIngressRule")}
    assert ingress["peerpods-podvm-vxlan"]["referencedSecurityGroupId"] == "sg-new"
    assert provider_configs(cloud)["AWS_SUBNET_ID"] == "peerpods-private-0-id"
    assert cloud.of_type("batch/v1:Job"), "EKS refuses kubernetes.io labels: the Job labels nodes"
    assert_labelled(cloud)


# --------------------------------------------------------------------------- Azure


def test_azure_adaptor_values_workload_identity_and_roles(cloud: CloudMocks) -> None:
    values, _ = run(peerpods_settings(AZURE_GIVEN))
    configs = provider_configs(cloud)
    assert {
        "AZURE_SUBSCRIPTION_ID",
        "AZURE_REGION",
        "AZURE_RESOURCE_GROUP",
        "AZURE_SUBNET_ID",
        "AZURE_NSG_ID",
        "AZURE_IMAGE_ID",
        "AZURE_INSTANCE_SIZE",
        "VXLAN_PORT",
        "FORWARDER_PORT",
        "INITDATA",
    } <= set(configs)
    assert configs["AZURE_INSTANCE_SIZE"] == "Standard_DC2as_v5"
    assert configs["AZURE_SUBNET_ID"] == AKS_SUBNET
    assert configs["AZURE_IMAGE_ID"] == AZURE_GIVEN["imageId"]

    v = adaptor_release(cloud)["values"]
    client = v["daemonset"]["serviceAccount"]["annotations"]["azure.workload.identity/client-id"]
    assert client == "client-peerpods-adaptor"
    assert v["daemonset"]["podLabels"] == {"azure.workload.identity/use": "true"}
    assert v["resourceCtrl"]["podLabels"] == {"azure.workload.identity/use": "true"}
    assert values["credentials"] is None

    federated = cloud.of_type("managedidentity:FederatedIdentityCredential")
    assert sorted(f.inputs["subject"] for f in federated) == [
        "system:serviceaccount:confidential-containers-system:cloud-api-adaptor",
        "system:serviceaccount:confidential-containers-system:peerpodctrl-controller-manager",
    ]
    assert all(f.inputs["audiences"] == ["api://AzureADTokenExchange"] for f in federated)
    assert all(f.inputs["issuer"] == AZURE_GIVEN["oidcIssuerUrl"] for f in federated)

    # What cloud-api-adaptor v0.22.0's azure/provider.go does: VMs and NICs in the pod-VM
    # group (Virtual Machine Contributor), NICs joined to the node subnet (join only, on that
    # subnet; no Network Contributor on the VNet, no redundant Reader), and VM sizes listed at
    # subscription scope at start-up (updateInstanceSizeSpecList).
    rg_scope = f"/subscriptions/{SUBSCRIPTION}/resourceGroups/coco-podvms"
    custom = {r.name: r.inputs for r in cloud.of_type("authorization:RoleDefinition")}
    custom_actions = {f"{n}-id": d["permissions"][0]["actions"] for n, d in custom.items()}
    assert sorted(a for acts in custom_actions.values() for a in acts) == [
        "Microsoft.Compute/locations/vmSizes/read",
        "Microsoft.Network/virtualNetworks/subnets/join/action",
    ]
    granted: dict[str, str] = {}
    for r in cloud.of_type("authorization:RoleAssignment"):
        role = r.inputs["roleDefinitionId"]
        if role in custom_actions:
            (what,) = custom_actions[role]
        else:
            what = AZURE_ROLES[role.rsplit("/", 1)[1]]
        granted[what] = r.inputs["scope"]
        assert r.inputs["principalId"] == "principal-peerpods-adaptor"
    assert granted == {
        "Virtual Machine Contributor": rg_scope,
        "Microsoft.Network/virtualNetworks/subnets/join/action": AKS_SUBNET,
        "Microsoft.Compute/locations/vmSizes/read": f"/subscriptions/{SUBSCRIPTION}",
    }


def test_azure_nsg_admits_the_tunnel_from_the_node_subnet_only(cloud: CloudMocks) -> None:
    run(peerpods_settings(AZURE_GIVEN))
    (nsg,) = cloud.of_type("network:NetworkSecurityGroup")
    rules = {r["name"]: r for r in nsg.inputs["securityRules"]}
    vxlan, forwarder = rules["allow-vxlan-from-cluster"], rules["allow-forwarder-from-cluster"]
    assert (vxlan["protocol"], vxlan["destinationPortRange"]) == ("Udp", "4789")
    assert (forwarder["protocol"], forwarder["destinationPortRange"]) == ("Tcp", "15150")
    for rule in (vxlan, forwarder):
        assert rule["access"] == "Allow" and rule["direction"] == "Inbound"
        assert rule["sourceAddressPrefix"] == "10.224.0.0/16"
    deny = rules["deny-other-inbound"]
    assert deny["access"] == "Deny" and deny["priority"] > max(
        vxlan["priority"], forwarder["priority"]
    )
    allows = [r for r in rules.values() if r["access"] == "Allow"]
    assert all(r["sourceAddressPrefix"] not in ("*", "0.0.0.0/0", "Internet") for r in allows)
    assert provider_configs(cloud)["AZURE_NSG_ID"] == "peerpods-podvm-id"


def test_azure_static_credentials_are_secrets(cloud: CloudMocks) -> None:
    raw = {
        **AZURE_GIVEN,
        "credentials": "static",
        "clientId": "11111111-2222-3333-4444-555555555555",
        "tenantId": "66666666-7777-8888-9999-000000000000",
        "principalId": "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee",
        "clientSecretFrom": "azureClientSecret",
    }
    raw.pop("oidcIssuerUrl")
    values, secret = run(peerpods_settings(raw), {"azureClientSecret": SECRET_VALUE})
    assert secret["credentials"]
    assert set(values["credentials"]) == {
        "AZURE_CLIENT_ID",
        "AZURE_CLIENT_SECRET",
        "AZURE_TENANT_ID",
    }
    (k8s_secret,) = cloud.of_type("core/v1:Secret")
    assert k8s_secret.secret_paths == {"stringData"}
    assert set(k8s_secret.inputs["stringData"]) == set(values["credentials"])
    assert not cloud.of_type("managedidentity:UserAssignedIdentity")
    roles = cloud.of_type("authorization:RoleAssignment")
    assert {r.inputs["principalId"] for r in roles} == {raw["principalId"]}
    for record in cloud.resources:
        assert SECRET_VALUE not in plain_text(record), record.name


def test_azure_created_cluster_labels_its_pool_and_enables_workload_identity(
    cloud: CloudMocks,
) -> None:
    given_only = ("subnetId", "clusterCidr", "oidcIssuerUrl")
    raw = {k: v for k, v in AZURE_GIVEN.items() if k not in given_only}
    raw["tee"] = "tdx"
    raw["imageId"] = "/CommunityGalleries/coco/Images/peerpod-podvm-ubuntu2204-cvm-tdx/Versions/1"
    raw["cluster"] = {"create": True, "name": "coco-aks", "networkCidr": "10.30.0.0/16"}
    values, secret = run(peerpods_settings(raw))
    assert secret["kubeconfig"] and values["has_provider"]
    (aks,) = cloud.of_type("containerservice:ManagedCluster")
    (pool,) = aks.inputs["agentPoolProfiles"]
    assert pool["nodeLabels"] == {"node.kubernetes.io/worker": ""}
    assert aks.inputs["oidcIssuerProfile"] == {"enabled": True}
    assert aks.inputs["securityProfile"]["workloadIdentity"] == {"enabled": True}
    # Pod VMs have no public IP and are in no LB pool: the subnet's NAT gateway is their way out.
    (nat,) = cloud.of_type("network:NatGateway")
    (subnet,) = cloud.of_type("network:Subnet")
    assert subnet.inputs["natGateway"] == {"id": f"{nat.name}-id"}
    assert aks.inputs["networkProfile"]["outboundType"] == "userAssignedNATGateway"
    assert provider_configs(cloud)["AZURE_INSTANCE_SIZE"] == "Standard_DC2es_v6"
    (nsg,) = cloud.of_type("network:NetworkSecurityGroup")
    allows = [r for r in nsg.inputs["securityRules"] if r["access"] == "Allow"]
    sources = {r["sourceAddressPrefix"] for r in allows}
    assert sources == {"10.30.0.0/20"}
    federated = cloud.of_type("managedidentity:FederatedIdentityCredential")
    assert {f.inputs["issuer"] for f in federated} == {"https://issuer/new/"}
    assert not cloud.of_type("batch/v1:Job"), "the AKS pool already carries the worker label"
    assert_labelled(cloud)


# --------------------------------------------------------------------------- GCP


def test_gcp_adaptor_values_service_account_and_firewall(cloud: CloudMocks) -> None:
    values, secret = run(peerpods_settings(GCP_GIVEN))
    configs = provider_configs(cloud)
    assert {
        "GCP_PROJECT_ID",
        "GCP_ZONE",
        "GCP_NETWORK",
        "GCP_MACHINE_TYPE",
        "GCP_CONFIDENTIAL_TYPE",
        "GCP_DISK_TYPE",
        "PODVM_IMAGE_NAME",
        "VXLAN_PORT",
        "FORWARDER_PORT",
        "INITDATA",
    } <= set(configs)
    assert configs["GCP_MACHINE_TYPE"] == "c3-standard-4"
    assert configs["GCP_CONFIDENTIAL_TYPE"] == "TDX"
    assert configs["GCP_DISK_TYPE"] == "pd-balanced"
    assert configs["GCP_NETWORK"] == "global/networks/default"

    members = cloud.of_type("projects/iAMMember:IAMMember")
    # No roles/iam.serviceAccountUser: pod VMs get no service account (gcp/provider.go).
    assert {m.inputs["role"] for m in members} == {"roles/compute.instanceAdmin.v1"}
    # peerpod-ctrl has no GCP provider: not deployed.
    assert adaptor_release(cloud)["values"]["resourceCtrl"]["enabled"] is False
    assert {m.inputs["member"] for m in members} == {
        "serviceAccount:coco-cloud-api-adaptor@coco-project-1.iam.gserviceaccount.com"
    }
    assert secret["credentials"]
    assert json.loads(values["credentials"]["GCP_CREDENTIALS"])["type"] == "service_account"
    (k8s_secret,) = cloud.of_type("core/v1:Secret")
    assert k8s_secret.secret_paths == {"stringData"}
    assert set(k8s_secret.inputs["stringData"]) == {"GCP_CREDENTIALS"}
    for record in cloud.resources:
        assert SECRET_VALUE not in plain_text(record), record.name

    (firewall,) = cloud.of_type("compute/firewall:Firewall")
    assert firewall.inputs["direction"] == "INGRESS"
    assert firewall.inputs["sourceRanges"] == ["10.128.0.0/20"]
    assert firewall.inputs["allows"] == [
        {"protocol": "udp", "ports": ["4789"]},
        {"protocol": "tcp", "ports": ["15150"]},
    ]
    (quota,) = cloud.of_type("core/v1:ResourceQuota")
    assert quota.inputs["spec"]["scopeSelector"]["matchExpressions"][0]["values"] == [
        "system-node-critical",
        "system-cluster-critical",
    ]
    assert cloud.of_type("batch/v1:Job")
    assert_labelled(cloud)


def test_gcp_tdx_created_cluster(cloud: CloudMocks) -> None:
    raw = {"provider": "gcp", "projectId": "coco-project-1", "zone": "us-east5-b", "tee": "tdx"}
    raw["podvmImage"] = "podvm-tdx"
    raw["cluster"] = {"create": True, "name": "coco-gke"}
    values, secret = run(peerpods_settings(raw))
    configs = provider_configs(cloud)
    assert configs["GCP_MACHINE_TYPE"] == "c3-standard-4"
    assert configs["GCP_CONFIDENTIAL_TYPE"] == "TDX"
    assert configs["GCP_DISK_TYPE"] == "pd-balanced"
    assert configs["GCP_NETWORK"] == "peerpods-net-id"
    assert configs["GCP_SUBNETWORK"] == "peerpods-nodes-id"
    (pool,) = cloud.of_type("container/nodePool:NodePool")
    assert pool.inputs["nodeConfig"]["imageType"] == "UBUNTU_CONTAINERD"
    assert secret["kubeconfig"]
    exec_ = json.loads(values["kubeconfig"])["users"][0]["user"]["exec"]
    assert exec_["command"] == "gke-gcloud-auth-plugin"
    (firewall,) = cloud.of_type("compute/firewall:Firewall")
    assert firewall.inputs["sourceRanges"] == ["10.20.0.0/20"]


def test_gcp_bring_your_own_key(cloud: CloudMocks) -> None:
    values, secret = run(
        peerpods_settings({**GCP_GIVEN, "credentialsFrom": "gcpKey"}), {"gcpKey": SECRET_VALUE}
    )
    assert secret["credentials"] and values["credentials"] == {"GCP_CREDENTIALS": SECRET_VALUE}
    assert not cloud.of_type("serviceaccount/account:Account")


# --------------------------------------------------------------------------- shared


@pytest.mark.parametrize("raw", [AWS_GIVEN, AZURE_GIVEN, GCP_GIVEN], ids=["aws", "azure", "gcp"])
def test_default_initdata_points_at_our_trustee(cloud: CloudMocks, raw: dict[str, Any]) -> None:
    values, _ = run(peerpods_settings(raw))
    document = decode_annotation(provider_configs(cloud)["INITDATA"])
    assert document == values["initdata"]
    assert f'version = "{INITDATA_VERSION}"' in document
    assert f'url = "{KBS_URL}"' in document
    assert KBS_CERT.strip().splitlines()[1] in document
    assert "package agent_policy" in document
    # Fail closed: no image is allowed for a pod that brings no init-data of its own.
    assert "allowed_images := set()" in document


def test_cert_manager_installed_from_jetstack_unless_disabled(cloud: CloudMocks) -> None:
    run(peerpods_settings(AWS_GIVEN))
    (cm,) = [r for r in cloud.of_type("Release") if r.name == "peerpods-cert-manager"]
    assert cm.inputs["chart"] == "cert-manager"
    assert cm.inputs["repositoryOpts"]["repo"] == "https://charts.jetstack.io"
    assert cm.inputs["version"] == "v1.19.1"
    assert cm.inputs["values"] == {"crds": {"enabled": True}}


def test_cert_manager_can_be_a_prerequisite(cloud: CloudMocks) -> None:
    run(peerpods_settings(AWS_GIVEN, certManager={"install": False}))
    assert [r.name for r in cloud.of_type("Release")] == ["peerpods-adaptor"]


def test_chart_values_keys_match_the_chart() -> None:
    """Only keys the pinned chart's values.yaml (and peerpod-ctrl's) defines."""
    from components.peerpods.common import CloudSide

    side = CloudSide(provider="aws", provider_configs={"AWS_REGION": "us-east-2"})
    values = chart_values(peerpods_settings(AWS_GIVEN), side, "H4sI")
    assert set(values) == {
        "provider",
        "providerConfigs",
        "secrets",
        "daemonset",
        "resourceCtrl",
        "webhook",
        "kata-deploy",
    }
    assert set(values["daemonset"]) == {"serviceAccount", "podLabels"}
    assert set(values["resourceCtrl"]) == {"enabled", "serviceAccount", "podLabels"}
    assert values["providerConfigs"]["aws"]["INITDATA"] == "H4sI"


def test_peer_pods_kata_deploy_installs_only_the_remote_shim() -> None:
    from components.peerpods.common import CloudSide

    side = CloudSide(provider="aws", provider_configs={"AWS_REGION": "us-east-2"})
    values = chart_values(peerpods_settings(AWS_GIVEN), side, "H4sI")
    assert values["kata-deploy"]["shims"] == {"disableAll": True, "remote": {"enabled": True}}


def test_irsa_on_an_older_chart_is_refused_naming_the_key() -> None:
    raw = {"kind": "peerpods", "cloud": AWS_GIVEN, "adaptor": {"version": "0.3.0"}}
    with pytest.raises(ValueError, match=r"coco:cluster.adaptor.version '0.3.0'.*IRSA.*0\.4\.0"):
        PeerPodsCluster.model_validate(raw)


def test_attestation_platform_per_cloud() -> None:
    cases = {
        "aws": (AWS_GIVEN, "snp"),
        "azure-snp": (AZURE_GIVEN, "az-snp-vtpm"),
        "azure-tdx": (
            {**AZURE_GIVEN, "tee": "tdx"},
            "az-tdx-vtpm",
        ),
        "gcp-tdx": ({**GCP_GIVEN, "zone": "us-east4-a"}, "tdx"),
    }
    for case, (raw, expected) in cases.items():
        platform = attestation_platform(peerpods_settings(raw).cloud)
        assert platform == expected, case
        assert platform in PLATFORM_EVIDENCE_KEYS, case


def test_cloud_sdks_load_only_for_their_cloud() -> None:
    """A bare-metal stack must not import pulumi_aws, pulumi_azure_native or pulumi_gcp."""
    script = """
import sys
from components.settings import parse
s = parse({"cluster": {"kind": "baremetal", "tee": "tdx"}})
from components.peerpods import settings as _ps  # the peer-pods settings, still SDK-free
loaded = sorted(m for m in sys.modules if m.split(".")[0] in
                ("pulumi_aws", "pulumi_azure_native", "pulumi_gcp"))
print(",".join(loaded))
"""
    out = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == ""


@pytest.mark.parametrize(
    ("raw", "sdk"),
    [(AWS_GIVEN, "pulumi_aws"), (AZURE_GIVEN, "pulumi_azure_native"), (GCP_GIVEN, "pulumi_gcp")],
    ids=["aws", "azure", "gcp"],
)
def test_a_peerpods_stack_loads_only_its_own_cloud_sdk(raw: dict[str, Any], sdk: str) -> None:
    script = f"""
import sys
from components.peerpods.component import cloud_module
from components.peerpods.settings import PeerPodsCluster
cluster = PeerPodsCluster.model_validate({{"kind": "peerpods", "cloud": {raw!r}}})
cloud_module(cluster.cloud)
print(",".join(sorted({{m.split(".")[0] for m in sys.modules}} &
               {{"pulumi_aws", "pulumi_azure_native", "pulumi_gcp"}})))
"""
    out = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == sdk


# --------------------------------------------------------------------------- validation

BASE: dict[str, Any] = {
    "environment": "production",
    "cluster": {"kind": "peerpods", "cloud": AWS_GIVEN},
    "topology": {"kind": "trusted-zone", "trusteeCluster": {"context": "trust"}},
    "trustee": {
        "image": "registry.example.com/key-broker-service@sha256:" + "cd" * 32,
        "serviceType": "LoadBalancer",
        "url": "https://kbs.example.com:8080",
        "resources": [{"path": "default/key/1", "valueFrom": "appKey", "readers": ["app"]}],
        "referenceValues": {
            "snp_launch_measurement": ["aa" * 48],
            "snp_bootloader": [10],
            "snp_microcode": [213],
            "snp_snp_svn": [22],
            "snp_tee_svn": [0],
        },
    },
    "workloads": [{"name": "app", "containers": [{"name": "app", "image": PINNED}]}],
}


def stack_with(cloud_raw: dict[str, Any], **changes: Any) -> dict[str, Any]:
    out = copy.deepcopy(BASE)
    out["cluster"]["cloud"] = cloud_raw
    out.update(changes)
    return out


def problems(data: dict[str, Any], **kw: Any) -> str:
    with pytest.raises(SettingsError) as exc:
        parse(data, **kw)
    return str(exc.value)


def test_valid_peerpods_stacks_parse() -> None:
    # Each cloud's verifier needs its own complete set (components/reference_coverage.py).
    extra = {
        **{n: ["1"] for n in ("tcb_bootloader", "tcb_microcode", "tcb_snp", "tcb_tee")},
        **{n: ["0"] for n in ("abi_major", "abi_minor")},
        **{n: ["false"] for n in ("smt_enabled", "tsme_enabled", "single_socket", "smt_allowed")},
        "measurement": ["qg" * 32],
        "snp_pcr11": ["ab" * 32],
        "mr_td": ["aa" * 48],
        "rtmr_1": ["bb" * 48],
        "rtmr_2": ["cc" * 48],
        "xfam": ["e702060000000000"],
    }
    for raw in (AWS_GIVEN, AZURE_GIVEN, GCP_GIVEN):
        data = stack_with(raw)
        data["trustee"]["referenceValues"].update(extra)
        s = parse(data, is_secret=lambda k: k == "coco:appKey")
        assert s.runtime_class_of(s.workloads[0]) == "kata-remote"


@pytest.mark.parametrize(
    ("cloud_raw", "key", "text"),
    [
        ({**AWS_GIVEN, "instanceType": "t3.large"}, "coco:cluster.cloud.instanceType", "SEV-SNP"),
        ({**AWS_GIVEN, "instanceType": "m6i.large"}, "coco:cluster.cloud.instanceType", "m6a"),
        ({**AWS_GIVEN, "instanceType": "m6a.metal"}, "coco:cluster.cloud.instanceType", "m6a"),
        ({**AWS_GIVEN, "region": "us-east-1"}, "coco:cluster.cloud.region", "us-east-2"),
        ({**AWS_GIVEN, "tee": "tdx"}, "coco:cluster.cloud.tee", "no TDX"),
        ({**AWS_GIVEN, "podvmAmiId": None}, "coco:cluster.cloud.podvmAmiId", "image is required"),
        ({**AWS_GIVEN, "subnetId": None}, "coco:cluster.cloud.subnetId", "not created"),
        ({**AWS_GIVEN, "vpcId": None}, "coco:cluster.cloud.vpcId", "not created"),
        (
            {**AWS_GIVEN, "clusterSecurityGroupId": None},
            "coco:cluster.cloud.clusterSecurityGroupId",
            "not created",
        ),
        ({**AWS_GIVEN, "oidcProviderArn": None}, "coco:cluster.cloud.oidcProviderArn", "irsa"),
        (
            {**AWS_GIVEN, "credentials": "static", "oidcProviderArn": None},
            "coco:cluster.cloud.accessKeyIdFrom",
            "static",
        ),
        (
            {**AZURE_GIVEN, "instanceSize": "Standard_DC2es_v5"},
            "coco:cluster.cloud.instanceSize",
            "not a SNP",
        ),
        (
            {**AZURE_GIVEN, "tee": "tdx", "instanceSize": "Standard_DC2as_v5"},
            "coco:cluster.cloud.instanceSize",
            "not a TDX",
        ),
        (
            {**AZURE_GIVEN, "instanceSize": "Standard_DC4ads_cc_v5"},
            "coco:cluster.cloud.instanceSize",
            "confidential VM size",
        ),
        ({**AZURE_GIVEN, "imageId": None}, "coco:cluster.cloud.imageId", "image is required"),
        ({**AZURE_GIVEN, "subnetId": None}, "coco:cluster.cloud.subnetId", "not created"),
        ({**AZURE_GIVEN, "clusterCidr": None}, "coco:cluster.cloud.clusterCidr", "not created"),
        ({**AZURE_GIVEN, "oidcIssuerUrl": None}, "coco:cluster.cloud.oidcIssuerUrl", "OIDC"),
        ({**GCP_GIVEN, "tee": "snp"}, "coco:cluster.cloud.tee", "minCpuPlatform 'AMD Milan'"),
        (
            {**GCP_GIVEN, "tee": "tdx", "machineType": "n2d-standard-2", "zone": "us-east4-a"},
            "coco:cluster.cloud.machineType",
            "c3-standard",
        ),
        (
            {**GCP_GIVEN, "tee": "tdx", "machineType": "c3-standard-8-lssd", "zone": "us-east4-a"},
            "coco:cluster.cloud.machineType",
            "c3-standard",
        ),
        ({**GCP_GIVEN, "tee": "tdx", "zone": "europe-west3-a"}, "coco:cluster.cloud.zone", "TDX"),
        (
            {**GCP_GIVEN, "tee": "tdx", "zone": "us-east4-a", "diskType": "pd-standard"},
            "coco:cluster.cloud.diskType",
            "pd-balanced",
        ),
        ({**GCP_GIVEN, "podvmImage": None}, "coco:cluster.cloud.podvmImage", "image is required"),
        ({**GCP_GIVEN, "network": None}, "coco:cluster.cloud.network", "not created"),
        ({**GCP_GIVEN, "clusterCidr": None}, "coco:cluster.cloud.clusterCidr", "not created"),
        (
            {**GCP_GIVEN, "credentials": "workload-identity"},
            "coco:cluster.cloud.credentials",
            "hostNetwork",
        ),
    ],
)
def test_bad_cloud_settings_name_their_key(cloud_raw: dict[str, Any], key: str, text: str) -> None:
    msg = problems(stack_with(cloud_raw))
    assert f"{key}:" in msg
    line = next(li for li in msg.splitlines() if f"{key}:" in li)
    assert text in line, line


def test_network_may_be_omitted_when_the_cluster_is_created() -> None:
    raw = {"provider": "aws", "region": "eu-west-1", "podvmAmiId": "ami-0a1b2c3d4e5f60718"}
    parse(stack_with({**raw, "cluster": {"create": True}}))
    msg = problems(stack_with(raw))
    for key in ("vpcId", "subnetId", "clusterSecurityGroupId", "oidcProviderArn"):
        assert f"coco:cluster.cloud.{key}:" in msg


def test_every_problem_reported_at_once() -> None:
    raw = {**AWS_GIVEN, "instanceType": "t3.large", "region": "ap-south-1", "podvmAmiId": None}
    msg = problems(stack_with(raw))
    for key in ("instanceType", "region", "podvmAmiId"):
        assert f"coco:cluster.cloud.{key}:" in msg


def test_workload_runtime_class_must_be_kata_remote() -> None:
    workloads = [
        {
            "name": "app",
            "runtimeClass": "kata-qemu-tdx",
            "containers": [{"name": "app", "image": PINNED}],
        }
    ]
    msg = problems(stack_with(GCP_GIVEN, workloads=workloads))
    assert "coco:workloads[0].runtimeClass" in msg and "kata-remote" in msg


def test_cloud_credentials_must_be_pulumi_secrets() -> None:
    raw = {
        **AWS_GIVEN,
        "credentials": "static",
        "accessKeyIdFrom": "awsKeyId",
        "secretAccessKeyFrom": "awsSecretKey",
    }
    raw.pop("oidcProviderArn")
    msg = problems(stack_with(raw), is_secret=lambda k: k in ("coco:appKey", "coco:awsKeyId"))
    assert "coco:cluster.cloud.secretAccessKeyFrom" in msg
    assert "pulumi config set --secret awsSecretKey" in msg
    assert "coco:cluster.cloud.accessKeyIdFrom" not in msg


def test_vxlan_port_must_not_be_the_forwarder_port() -> None:
    data = stack_with(AWS_GIVEN)
    data["cluster"]["vxlanPort"] = 15150
    assert "coco:cluster: vxlanPort 15150 is the agent forwarder's port" in problems(data)


# --------------------------------------------------------------------------- stack files

STACKS = sorted(ROOT.glob("stacks/Pulumi.*-peerpods.yaml"))


def test_peerpods_stack_files_exist() -> None:
    assert [p.name for p in STACKS] == [
        "Pulumi.aws-peerpods.yaml",
        "Pulumi.azure-peerpods.yaml",
        "Pulumi.gcp-peerpods.yaml",
    ]


@pytest.mark.parametrize("path", STACKS, ids=[p.name for p in STACKS])
def test_stack_file_is_valid_and_keeps_secrets_out(path: Path) -> None:
    text = path.read_text()
    config = yaml.safe_load(text)["config"]
    raw = strip_namespace(config)
    settings = parse(raw, stack=path.name, is_secret=lambda k: k not in config)
    assert isinstance(settings.cluster, PeerPodsCluster)
    assert settings.environment in ("staging", "production")
    for workload in settings.workloads:
        assert settings.runtime_class_of(workload) == "kata-remote"
        assert all("@sha256:" in c.image for c in workload.containers)
    for resource in settings.trustee.resources:
        # Secret values stay out of the file, and the comment tells how to set them.
        assert f"coco:{resource.value_from}" not in config
        assert f"pulumi config set --secret coco:{resource.value_from}" in text
    assert settings.trustee.url is not None
    if settings.production:
        assert settings.trustee.reference_values


@pytest.mark.parametrize("path", STACKS, ids=[p.name for p in STACKS])
def test_stack_file_builds_under_mocks(cloud: CloudMocks, path: Path) -> None:
    config = yaml.safe_load(path.read_text())["config"]
    settings = parse(strip_namespace(config), is_secret=lambda k: True)
    assert isinstance(settings.cluster, PeerPodsCluster)
    cloud_settings = settings.cluster.cloud
    assert isinstance(cloud_settings, AwsPeerPods | AzurePeerPods | GcpPeerPods)
    values, secret = run(settings.cluster)
    assert provider_configs(cloud)["INITDATA"]
    if cloud_settings.cluster.create:
        assert values["has_provider"] and secret["kubeconfig"]
    assert_labelled(cloud)


# --------------------------------------------------------------------------- render mode


@pytest.mark.parametrize("path", STACKS, ids=[p.name for p in STACKS])
def test_render_view_is_the_deploys_config_minus_what_the_cloud_gives(
    cloud: CloudMocks, path: Path
) -> None:
    """components/peerpods/render.py against the deploying twin (each cloud's `build`): every
    `peer-pods-cm` key the render writes has the deploy's value; every key it leaves out is
    one a cloud resource gives (a mock output here), and is named as not rendered."""
    from components.peerpods.render import cluster_view

    config = yaml.safe_load(path.read_text())["config"]
    settings = parse(strip_namespace(config), is_secret=lambda k: True)
    assert isinstance(settings.cluster, PeerPodsCluster)
    run(settings.cluster)
    deployed = provider_configs(cloud)
    view = cluster_view(settings.cluster, "production")
    rendered = dict(view.side.provider_configs)
    assert set(rendered) < set(deployed)
    for key, value in rendered.items():
        assert deployed[key] == value, key
    listed = "\n".join(view.not_rendered)
    for key in set(deployed) - set(rendered) - {"INITDATA", *common_config(settings.cluster)}:
        assert key in listed, key
    assert not view.side.secrets and not view.side.ready and view.side.kubeconfig is None


def test_a_render_creates_no_cloud_resource_and_no_credentials_secret(cloud: CloudMocks) -> None:
    """PeerPods(rendering=True) with static credentials: only Kubernetes objects, no Secret
    with the keys (listed instead), the chart left to the GitOps tool with its values."""
    raw = {
        **AWS_GIVEN,
        "credentials": "static",
        "accessKeyIdFrom": "awsKeyId",
        "secretAccessKeyFrom": "awsSecret",
    }
    raw.pop("oidcProviderArn")
    settings = peerpods_settings(raw)
    pulumi.runtime.set_all_config(
        {"coco:awsKeyId": SECRET_VALUE, "coco:awsSecret": SECRET_VALUE},
        ["coco:awsKeyId", "coco:awsSecret"],
    )

    def build() -> dict[str, Any]:
        pp = PeerPods(
            "peerpods",
            settings,
            "production",
            kbs_url=KBS_URL,
            kbs_cert_pem=KBS_CERT,
            rendering=True,
        )
        return {"left": pp.not_rendered, "values": pp.chart_values, "release": pp.release is None}

    values, _ = resolve(build)
    types = {r.type for r in cloud.resources}
    assert all(t.startswith(("kubernetes:", "coco:", "pulumi:")) for t in types), types
    assert not [r for r in cloud.of_type("core/v1:Secret")]
    for r in cloud.resources:
        assert SECRET_VALUE not in json.dumps(r.raw_inputs, default=str), r.name
    left = "\n".join(values["left"])
    assert "peer-pods-secret" in left and "AWS_ACCESS_KEY_ID (config coco:awsKeyId)" in left
    assert "AWS_SG_IDS" in left and "EC2 security group" in left and "cert-manager" in left
    assert (
        values["release"]
        and values["values"]["secrets"]["existingSecretName"] == "peer-pods-secret"
    )
    assert "AWS_SG_IDS" not in values["values"]["providerConfigs"]["aws"]


def test_a_local_peerpods_chart_must_be_that_chart_at_that_version(tmp_path: Path) -> None:
    data = stack_with(copy.deepcopy(AWS_GIVEN))
    data["cluster"]["adaptor"] = {"chart": str(tmp_path / "nochart")}
    assert "coco:cluster.adaptor.chart" in problems(data) and "no Chart.yaml" in problems(data)
    (tmp_path / "pp").mkdir()
    (tmp_path / "pp" / "Chart.yaml").write_text("name: peerpods\nversion: 0.3.0\n")
    data["cluster"]["adaptor"] = {"chart": str(tmp_path / "pp")}
    text = problems(data)
    assert (
        f"holds peerpods 0.3.0, but coco:cluster.adaptor.version is {releases.PEERPODS.version}"
        in text
    )
