"""Labels coco puts on every Kubernetes object it owns.

The policy pack and the tests find objects by role, not by name, so a user can rename things
without silently escaping the production checklist; the environment label lets the pack
enforce production rules without reading stack config.
"""

from __future__ import annotations

DOMAIN = "coco.confidentialcontainers.org"
ROLE = f"{DOMAIN}/role"
ENVIRONMENT = f"{DOMAIN}/environment"
WORKLOAD = f"{DOMAIN}/workload"
MANAGED_BY = "app.kubernetes.io/managed-by"
PART_OF = "app.kubernetes.io/part-of"

INITDATA_DIGEST_ANNOTATION = f"{DOMAIN}/initdata-digest"
"""Hex of the fitted init-data digest, so reviewers and the pack see what the KBS binds."""

# Roles
ROLE_WORKLOAD = "workload"
ROLE_KBS = "kbs"
ROLE_KBS_CONFIG = "kbs-config"
ROLE_RESOURCE_POLICY = "resource-policy"
ROLE_ATTESTATION_POLICY = "attestation-policy"
ROLE_REFERENCE_VALUES = "reference-values"
ROLE_KBS_RESOURCE = "kbs-resource"
ROLE_KBS_TLS = "kbs-tls"
ROLE_INITDATA = "initdata"
ROLE_RUNTIME = "runtime"


def common(environment: str, role: str, **extra: str) -> dict[str, str]:
    """The label set for one object: who manages it, what it is, which environment."""
    labels = {
        MANAGED_BY: "coco",
        PART_OF: "confidential-containers",
        ROLE: role,
        ENVIRONMENT: environment,
    }
    labels.update(extra)
    return labels
