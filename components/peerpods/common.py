"""What every cloud module hands back to the PeerPods component, and helpers they share.

The component owns everything cloud-neutral (namespace, cert-manager, the Helm release, the
credentials Secret, the default init-data); each cloud module owns only its cloud side and
describes the adaptor's view of it with a `CloudSide`. That split keeps each cloud module
independently testable and means adding a cloud is one new module, not edits everywhere.
"""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components.peerpods.settings import (
    ADAPTOR_SERVICE_ACCOUNT,
    CONTROLLER_SERVICE_ACCOUNT,
    FORWARDER_PORT,
    PeerPodsCluster,
)
from components.vocabulary import secret_config as secret_config

NODE_LABEL = "node.kubernetes.io/worker"
"""The peerpods chart's DaemonSet `nodeSelector` (chart `templates/daemonset.yaml`)."""

IRSA_ANNOTATION = "eks.amazonaws.com/role-arn"
"""EKS IRSA: the IAM role a ServiceAccount's pods assume."""
CLIENT_ID_ANNOTATION = "azure.workload.identity/client-id"
"""Azure workload identity: the managed identity a ServiceAccount's pods act as."""
USE_LABEL = "azure.workload.identity/use"
"""Azure workload identity: the pod label its webhook injects the token for."""


@dataclass
class CloudSide:
    """The adaptor's view of one cloud: its `peer-pods-cm` keys, credentials and identity."""

    provider: str
    """The chart's `provider` value (`aws`, `azure`, `gcp`)."""
    provider_configs: dict[str, pulumi.Input[str]]
    """`providerConfigs.<provider>`: rendered by the chart into ConfigMap `peer-pods-cm`."""
    secrets: dict[str, pulumi.Output[str]] = field(default_factory=dict)
    """Keys of Secret `peer-pods-secret` (static credentials); every value a Pulumi secret."""
    service_account_annotations: dict[str, pulumi.Input[str]] = field(default_factory=dict)
    """On both the adaptor's and peerpod-ctrl's ServiceAccounts (IRSA / workload identity)."""
    controller_service_account_annotations: dict[str, pulumi.Input[str]] | None = None
    """peerpod-ctrl's own, when it gets a narrower identity than the adaptor (AWS)."""
    pod_labels: dict[str, str] = field(default_factory=dict)
    """On both pod templates (Azure workload identity's `azure.workload.identity/use`)."""
    kubeconfig: pulumi.Output[str] | None = None
    """The created cluster's kubeconfig (secret), None for an existing cluster."""
    nodes_labelled: bool = False
    """True when the created node pool already carries NODE_LABEL."""
    resource_ctrl: bool = True
    """Deploy peerpod-ctrl (the chart's `resourceCtrl`): only where it has a provider."""
    system_priority_quota: bool = False
    """GKE only admits system-priority pods in namespaces with a matching ResourceQuota."""
    ready: list[pulumi.Resource] = field(default_factory=list)
    """What the Helm release must wait for (node pools, role assignments)."""
    outputs: dict[str, pulumi.Input[Any]] = field(default_factory=dict)
    """Extra component outputs (policy ARN, identity ids, security group id)."""


def common_config(settings: PeerPodsCluster) -> dict[str, str]:
    """The `peer-pods-cm` keys every cloud shares (names from the providers' values files)."""
    return {
        "VXLAN_PORT": str(settings.vxlan_port),
        "FORWARDER_PORT": str(FORWARDER_PORT),
        "DISABLECVM": "false",
        "PEERPODS_LIMIT_PER_NODE": str(settings.adaptor.peerpods_limit_per_node),
    }


def subject(namespace: str, service_account: str) -> str:
    """The OIDC `sub` claim of a Kubernetes ServiceAccount token."""
    return f"system:serviceaccount:{namespace}:{service_account}"


def identity_subjects(settings: PeerPodsCluster) -> list[str]:
    """Both ServiceAccounts that talk to the cloud: the adaptor and peerpod-ctrl."""
    ns = settings.adaptor.namespace
    return [subject(ns, ADAPTOR_SERVICE_ACCOUNT), subject(ns, CONTROLLER_SERVICE_ACCOUNT)]


def split_cidr(cidr: str, count: int) -> list[str]:
    """`count` equal subnets of `cidr`, four bits longer (a /16 gives /20s)."""
    net = ipaddress.ip_network(cidr)
    new_prefix = min(net.prefixlen + 4, 28)
    return [str(s) for s in list(net.subnets(new_prefix=new_prefix))[:count]]


def exec_kubeconfig(
    cluster: str, server: pulumi.Input[str], ca_data: pulumi.Input[str], user: dict[str, Any]
) -> pulumi.Output[str]:
    """A kubeconfig (JSON is valid YAML) whose user authenticates with an exec plugin.

    No long-lived token ever lands in state: the cloud CLI mints one at each use.
    """

    def render(args: list[str]) -> str:
        return json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [
                    {
                        "name": cluster,
                        "cluster": {"server": args[0], "certificate-authority-data": args[1]},
                    }
                ],
                "contexts": [{"name": cluster, "context": {"cluster": cluster, "user": cluster}}],
                "current-context": cluster,
                "users": [{"name": cluster, "user": {"exec": user}}],
            },
            indent=2,
            sort_keys=True,
        )

    return pulumi.Output.secret(pulumi.Output.all(server, ca_data).apply(render))


def k8s_provider(
    name: str, kubeconfig: pulumi.Output[str], parent: pulumi.Resource
) -> k8s.Provider:
    """The Kubernetes provider for a cluster this stack created."""
    return k8s.Provider(name, kubeconfig=kubeconfig, opts=pulumi.ResourceOptions(parent=parent))
