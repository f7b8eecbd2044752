"""The trusted-zone rules of the pack (components/topology.py, docs/topologies.md).

- `trustee-in-trusted-zone` (waiver `co-located-trustee`): no Trustee object (the KBS, its
  config, keys, policies, reference values, resources) is created through the same
  Kubernetes provider as a confidential pod or a RuntimeClass: that provider is the
  confidential cluster, whose admins and control plane CoCo treats as untrusted. Judged by
  the provider each resource was registered with (`PolicyResource.provider`), so a second
  provider for the trusted cluster passes and a co-located Trustee does not, whatever the
  stack config says.
- `kbs-image-pinned-by-digest` (waiver `unpinned-kbs-image`): every image of the KBS
  Deployment (label role `kbs`) is `name@sha256:<digest>`: the KBS is the root of trust.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from components import labels
from components.vocabulary import is_pinned
from policies.pack.checks import Finding, StackResource
from policies.pack.objects import (
    RUNTIME_CLASS,
    confidential_pod,
    is_production,
    mapping,
    role,
    sequence,
)

CO_LOCATED_POLICY = "trustee-in-trusted-zone"
KBS_IMAGE_POLICY = "kbs-image-pinned-by-digest"

TRUSTEE_ROLES = frozenset(
    {
        labels.ROLE_KBS,
        labels.ROLE_KBS_CONFIG,
        labels.ROLE_KBS_TLS,
        labels.ROLE_KBS_RESOURCE,
        labels.ROLE_RESOURCE_POLICY,
        labels.ROLE_ATTESTATION_POLICY,
        labels.ROLE_REFERENCE_VALUES,
    }
)
DEFAULT_PROVIDER = "(default provider)"


def provider_of(resource: StackResource) -> str:
    """The URN of the provider a resource was registered with (the default one if none)."""
    provider = getattr(resource, "provider", None)
    urn = getattr(provider, "urn", None)
    return urn if isinstance(urn, str) and urn else DEFAULT_PROVIDER


def _confidential(resource: StackResource) -> bool:
    if resource.resource_type == RUNTIME_CLASS:
        return str(mapping(resource.props).get("handler", "")).startswith("kata")
    return confidential_pod(resource.resource_type, resource.props) is not None


def trustee_in_trusted_zone(resources: Sequence[StackResource]) -> list[Finding]:
    """Each Trustee object sharing a provider with the confidential workloads."""
    untrusted = {provider_of(r) for r in resources if _confidential(r)}
    findings = []
    for r in resources:
        if role(r.props) in TRUSTEE_ROLES and provider_of(r) in untrusted:
            findings.append(
                Finding(
                    f"Trustee object (role {role(r.props)}) on the confidential cluster's "
                    "provider: its untrusted admins could read the KBS keys and secrets or "
                    "rewrite its policies; put the Trustee in the trusted zone "
                    "(coco:topology, docs/topologies.md)",
                    r.urn,
                    is_production(r.resource_type, r.props),
                )
            )
    return findings


def kbs_image_pinned(resource_type: str, props: Mapping[str, Any]) -> list[str]:
    """Every image of the KBS Deployment is pinned by digest."""
    if resource_type != "kubernetes:apps/v1:Deployment" or role(props) != labels.ROLE_KBS:
        return []
    spec = mapping(mapping(mapping(props.get("spec")).get("template")).get("spec"))
    found = []
    for kind in ("initContainers", "containers"):
        for c in sequence(spec.get(kind)):
            image = mapping(c).get("image")
            if not (isinstance(image, str) and is_pinned(image)):
                found.append(
                    f"KBS {kind} {mapping(c).get('name')!r} image {image!r} is not pinned by "
                    "digest: the KBS is the root of trust; set coco:trustee.image to "
                    "name@sha256:<64 hex>"
                )
    return found
