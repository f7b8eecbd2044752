"""`protect` on what holds state or identity: managed clusters, IAM identities, KBS keys.

Why: a production `pulumi up` that plans a replacement of the EKS cluster, an IAM role the
adaptor authenticates with, or the Secret holding a KBS key, would delete it; `destroy` on
the wrong stack would too. Pulumi's `protect` option makes the engine refuse any such delete
until someone runs `pulumi state unprotect` on purpose.

How: one resource transformation (`protect_children`) given to the top-level components in
components/stack.py. Pulumi applies a component's transformations to every descendant
before it is registered (pulumi/sdk/python/lib/pulumi/resource.py, `_collapse_…`/
`transformations`), so the components that create these resources (cluster.py, trustee.py,
peerpods/*) keep their code and the protected set lives here, in one list. The legacy
`transformations` (not the newer `transforms`) run inside the program, so they also work
under the unit-test mocks.

What is not protected on purpose: the self-signed KBS TLS and token-signer keys (dynamic
resources that `renewBeforeHours` replaces; protect would block renewal), networks, node
pools and Kubernetes objects that are rebuilt from configuration.

GKE has its own switch, `deletion_protection`: it is set to the same value.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pulumi

from components import labels

PROTECTED_TYPES = frozenset(
    {
        # managed clusters: the workloads, their data, the cluster's own identity
        "aws:eks/cluster:Cluster",
        "azure-native:containerservice:ManagedCluster",
        "gcp:container/cluster:Cluster",
        # cloud identities the adaptor and the nodes act as
        "aws:iam/role:Role",
        "aws:iam/openIdConnectProvider:OpenIdConnectProvider",
        "azure-native:managedidentity:UserAssignedIdentity",
        "gcp:serviceaccount/account:Account",
        "gcp:serviceaccount/key:Key",
    }
)
"""Cloud resource types that hold state or identity."""

PROTECTED_SECRET_ROLES = frozenset({labels.ROLE_KBS_TLS, labels.ROLE_KBS_RESOURCE})
"""Kubernetes Secrets holding the KBS's keys and the secrets it releases."""

GKE_CLUSTER = "gcp:container/cluster:Cluster"


def _role(props: Mapping[str, Any]) -> Any:
    metadata = props.get("metadata")
    if metadata is None:
        return None
    found = metadata.get("labels") if isinstance(metadata, Mapping) else None
    if found is None:
        found = getattr(metadata, "labels", None)
    return found.get(labels.ROLE) if isinstance(found, Mapping) else None


def is_protected(type_: str, props: Mapping[str, Any]) -> bool:
    """True for a resource that holds state or identity (see the module docstring)."""
    if type_ in PROTECTED_TYPES:
        return True
    return type_ == "kubernetes:core/v1:Secret" and _role(props) in PROTECTED_SECRET_ROLES


def protect_children(enabled: bool) -> pulumi.ResourceTransformation:
    """A transformation that protects every protected-type descendant when `enabled`.

    When not enabled it still sets GKE's `deletion_protection` to False explicitly, so the
    switch decides both together.
    """

    def transform(args: pulumi.ResourceTransformationArgs) -> pulumi.ResourceTransformationResult:
        props = dict(args.props)
        if args.type_ == GKE_CLUSTER:
            props["deletion_protection"] = enabled
        if not (enabled and is_protected(args.type_, props)):
            return pulumi.ResourceTransformationResult(props, args.opts)
        opts = pulumi.ResourceOptions.merge(args.opts, pulumi.ResourceOptions(protect=True))
        return pulumi.ResourceTransformationResult(props, opts)

    return transform


def options(enabled: bool) -> pulumi.ResourceOptions:
    """ResourceOptions carrying the protection transformation, to merge into a component's."""
    return pulumi.ResourceOptions(transformations=[protect_children(enabled)])
