"""The external-Trustee topology: workloads here, a KBS someone else runs.

Why: a shared company Trustee (Red Hat's build, the Trustee operator) is not coco's to deploy,
yet its resource policy must name exactly the init-data digests of coco's workloads, and the
stack's attestation policy, reference values and resources belong on it. So this stack
deploys no Trustee object to any cluster: the workloads' init-data points at
`coco:topology.external.url` and pins its certificate, and their digests flow (as Pulumi
outputs, no cycle) into the resource policy, which coco sets with the other objects through
the KBS admin API (components/kbs_admin_resources.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi

from components import protection
from components.kbs_admin import load_admin_key
from components.kbs_admin_resources import (
    KbsAttestationPolicy,
    KbsReferenceValue,
    KbsResourcePolicy,
    KbsSecretResource,
)
from components.kbs_render import render_resource_policy_for
from components.stack import (
    Platform,
    all_runtime_classes,
    build_platform,
    deploy_workloads,
    export_workload_digests,
    grant_for,
    platform_of,
    reader_digests,
    registry_credentials,
)
from components.stack_settings import StackSettings
from components.vocabulary import NAMESPACE, full_key, secret_config
from components.workload import ConfidentialWorkload
from policies.attestation import ATTESTATION_POLICY_ID, attestation_policy, reference_values_json
from policies.gpu_attestation import GPU_POLICY_ID, gpu_attestation_policy


@dataclass(frozen=True)
class ExternalKbs:
    """Where guests reach the external KBS, and the certificate (or CA) they pin."""

    url: str
    certificate_pem: str


@dataclass
class ExternalZone:
    """Handles to what an external-Trustee stack created."""

    settings: StackSettings
    platform: Platform
    kbs: ExternalKbs
    workloads: dict[str, ConfidentialWorkload]
    resource_policy: KbsResourcePolicy
    attestation_policies: list[KbsAttestationPolicy]
    reference_values: dict[str, KbsReferenceValue]
    resources: dict[str, KbsSecretResource]


def reference_values_of(settings: StackSettings) -> dict[str, Any]:
    """name -> accepted values, as the RVPS stores them (the same normalisation as the
    files a deployed Trustee mounts, policies/attestation.py)."""
    import json

    entries = json.loads(reference_values_json(settings.trustee.reference_values))
    return {e["name"]: e["value"] for e in entries}


def attestation_policies_of(settings: StackSettings, platforms: list[str]) -> dict[str, str]:
    """policy id -> Rego to set: the stack's custom policy, or nothing (the KBS's own); and
    coco's GPU policy when the stack says the KBS runs the local NVIDIA verifier
    (policies/gpu_attestation.py: the KBS's built-in one never affirms its claims)."""
    policy: str | None = None
    for platform in platforms or ["sample"]:
        policy = attestation_policy(settings.trustee.attestation_policy, platform)
    out: dict[str, str] = {} if policy is None else {ATTESTATION_POLICY_ID: policy}
    nvidia = settings.trustee.verifiers.nvidia
    gpu = gpu_attestation_policy(nvidia.mode if nvidia is not None else None)
    if gpu is not None:
        out[GPU_POLICY_ID] = gpu
    return out


def checked_admin_key(ref: str, pem: str) -> str:
    """The admin key, refused at preview (naming its config key) unless the KBS can verify
    tokens it signs (components/kbs_admin.py)."""
    try:
        load_admin_key(pem)
    except ValueError as err:
        raise ValueError(
            f"{full_key(ref)} (coco:topology.external.adminKeyFrom): {err}; set it with "
            f'`pulumi config set --secret {ref} -- "$(cat admin-key.pem)"`'
        ) from None
    return pem


def build_external(settings: StackSettings) -> ExternalZone:
    """The cluster side and workloads (init-data -> the external KBS), then what coco sets on
    that KBS through its admin API, the resource policy bound to the workloads' digests."""
    ext = settings.trustee_topology.external
    if ext is None:  # settings validation refuses it
        raise ValueError(f"{NAMESPACE}:topology.external is required with kind external")
    kbs = ExternalKbs(url=ext.url, certificate_pem=ext.certificate_pem)
    protect = protection.options(settings.protected)
    platform = build_platform(settings, kbs)
    workloads, manifests = deploy_workloads(settings, kbs.url, kbs.certificate_pem, platform, None)
    runtime_classes = all_runtime_classes(settings)
    digests = {n: w.initdata_digest for n, w in workloads.items()}
    policy = reader_digests(digests, manifests).apply(
        lambda d: render_resource_policy_for(
            settings.trustee,
            [
                grant_for(settings, r, d[0], runtime_classes, d[1])
                for r in settings.trustee.resources
            ],
        )
    )
    endpoint = {"url": kbs.url, "certificatePem": kbs.certificate_pem}
    target = {"url": kbs.url, "certificate_pem": kbs.certificate_pem}
    admin = secret_config(ext.admin_key_from).apply(
        lambda key: {
            "private_key_pem": checked_admin_key(ext.admin_key_from, key),
            "role": ext.admin_role,
            "issuer": ext.admin_issuer or "",
            "audience": ext.admin_audience or "",
        }
    )

    # Resources and reference values first, the policies that release them last: a guest is
    # never granted a path before its value is in place.
    pulled = {w.registry.credentials_resource for w in settings.workloads if w.registry}
    resources: dict[str, KbsSecretResource] = {}
    for r in settings.trustee.resources:
        value = secret_config(r.value_from)
        if r.path in pulled:
            value = registry_credentials(r, value)
        resources[r.path] = KbsSecretResource(
            f"kbs-resource-{r.path.replace('/', '-')}", target, admin, r.path, value, opts=protect
        )
    reference_values = {
        name: KbsReferenceValue(f"kbs-rv-{name}", target, admin, name, value, opts=protect)
        for name, value in reference_values_of(settings).items()
    }
    platforms = sorted({platform_of(settings, rc) for rc in runtime_classes.values()})
    attestation = [
        KbsAttestationPolicy(f"kbs-as-{pid}", target, admin, pid, text, opts=protect)
        for pid, text in attestation_policies_of(settings, platforms).items()
    ]
    after = pulumi.ResourceOptions(
        depends_on=[*resources.values(), *reference_values.values(), *attestation]
    )
    resource_policy = KbsResourcePolicy(
        "kbs-resource-policy",
        target,
        admin,
        policy,
        opts=pulumi.ResourceOptions.merge(protect, after),
    )

    pulumi.export("environment", settings.environment)
    pulumi.export("topology", {"kind": "external"})
    pulumi.export("kbs", endpoint)
    pulumi.export("kbsUrl", kbs.url)
    pulumi.export("kbsCertificate", kbs.certificate_pem)
    pulumi.export("runtimeClasses", platform.offered)
    export_workload_digests(workloads, manifests)
    return ExternalZone(
        settings,
        platform,
        kbs,
        workloads,
        resource_policy,
        attestation,
        reference_values,
        resources,
    )
