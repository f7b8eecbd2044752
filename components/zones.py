"""The trusted zone as separate stacks: one Trustee stack, N confidential-cluster stacks.

Why two kinds of stack: the Trustee's keys, policies, reference values and secrets belong to
the trusted zone, and so does the state that holds them; a confidential-cluster stack, its
state and its cluster hold none of them (tests/test_zones.py scans for them).

Data flows without a cycle, each way through `pulumi.StackReference`, each value computed
from the one before it:

    Trustee stack  --(kbs: URL, certificate: public)------------->  confidential stack
        KBS TLS identity issued here          init-data pins them -> init-data digests
    Trustee stack  <--(kbsReaders: digests, platform, GPUs: public)--  confidential stack
        resource policy binds the digests of the readers coco:trustee.resources names

The certificate never depends on a digest, so the first deploy is: Trustee stack (KBS up,
no reader deployed yet: the policy has no rule for those resources, the KBS refuses them),
then each confidential stack, then the Trustee stack again (the policy binds their digests).
docs/topologies.md lists the order for each kind of change.

Who may read which secret stays in the Trustee stack (`coco:trustee.resources[].readers`,
workload names looked up in every confidential stack's exported `kbsReaders`): the operator
of a confidential stack can change what runs there, and then its digest, but cannot grant
its workloads a secret.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components import protection, tee
from components.peerpods.settings import PeerPodsCluster, attestation_platform
from components.stack import (
    Platform,
    _provider,
    all_runtime_classes,
    build_platform,
    deploy_workloads,
    export_workload_digests,
    hardware_dict,
    platform_of,
)
from components.stack_settings import StackSettings
from components.trustee import Trustee, TrusteeTls
from components.vocabulary import NAMESPACE, secret_config
from components.workload import ConfidentialWorkload
from policies.resource import ResourceGrant

KBS_OUTPUT = "kbs"
"""Trustee stack output: `{url, certificatePem}` (public: both are in every init-data)."""
READERS_OUTPUT = "kbsReaders"
"""Confidential stack output: reader name -> `{digests, platform, gpus}` (public)."""


@dataclass
class RemoteKbs:
    """The KBS of the Trustee stack, as a confidential stack sees it: URL and certificate."""

    url: pulumi.Output[str]
    certificate_pem: pulumi.Output[str]


@dataclass
class ConfidentialZone:
    """Handles to what a confidential-cluster stack created."""

    settings: StackSettings
    platform: Platform
    kbs: RemoteKbs
    workloads: dict[str, ConfidentialWorkload]


@dataclass
class TrusteeZone:
    """Handles to what a Trustee stack created."""

    settings: StackSettings
    provider: k8s.Provider
    tls: TrusteeTls
    trustee: Trustee


def trustee_platforms(settings: StackSettings) -> list[str]:
    """The attestation platforms of the hardware the served clusters run (`coco:cluster`)."""
    if isinstance(settings.cluster, PeerPodsCluster):
        return [attestation_platform(settings.cluster.cloud)]
    hw = settings.hardware
    found = {tee.lookup(rc).attestation_platform for rc in tee.classes_for(hw)}
    return sorted(p for p in found if p is not None)


def _kbs_of(trustee_stack: str, value: Any) -> dict[str, str]:
    if not isinstance(value, Mapping) or not value.get("url") or not value.get("certificatePem"):
        raise ValueError(
            f"{NAMESPACE}:topology.trusteeStack ({trustee_stack}) exports no `{KBS_OUTPUT}`: is "
            "it a coco Trustee stack (coco:topology.role: trustee), and has it been deployed? "
            "Deploy it first (docs/topologies.md)"
        )
    return {"url": str(value["url"]), "certificatePem": str(value["certificatePem"])}


def build_confidential_zone(settings: StackSettings) -> ConfidentialZone:
    """A confidential-cluster stack: its cluster side and workloads, their init-data pinning
    the Trustee stack's KBS; exports the readers' digests for the Trustee stack."""
    name = settings.trustee_topology.trustee_stack
    if name is None:  # settings validation refuses it
        raise ValueError(f"{NAMESPACE}:topology.trusteeStack is required with role confidential")
    reference = pulumi.StackReference(name, stack_name=name)
    kbs_out = reference.get_output(KBS_OUTPUT).apply(lambda v: _kbs_of(name, v))
    kbs = RemoteKbs(
        url=kbs_out.apply(lambda k: k["url"]),
        certificate_pem=pulumi.Output.unsecret(kbs_out.apply(lambda k: k["certificatePem"])),
    )
    platform = build_platform(settings, kbs)
    workloads, manifests = deploy_workloads(settings, kbs.url, kbs.certificate_pem, platform, None)
    classes = all_runtime_classes(settings)
    names = sorted(workloads)
    sources = sorted(manifests)

    def readers(values: list[Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for n, digest in zip(names, values[: len(names)], strict=True):
            w = settings.workload(n)
            out[n] = {
                "digests": [digest],
                "platform": platform_of(settings, classes[n]),
                "gpus": w.gpus > 0,
            }
        for m_name, digests in zip(sources, values[len(names) :], strict=True):
            m = next(m for m in settings.manifests if m.name == m_name)
            out[m_name] = {
                "digests": sorted(set(digests.values())),
                "platform": platform_of(settings, classes[m_name]),
                "gpus": m.gpus > 0,
            }
        return out

    exported = pulumi.Output.all(
        *[workloads[n].initdata_digest for n in names], *[manifests[n].digests for n in sources]
    ).apply(readers)
    pulumi.export("environment", settings.environment)
    pulumi.export("topology", {"role": "confidential", "trusteeStack": name})
    pulumi.export("hardware", hardware_dict(settings.hardware))
    pulumi.export("kbsUrl", kbs.url)
    pulumi.export("kbsCertificate", kbs.certificate_pem)
    pulumi.export("runtimeClasses", platform.offered)
    pulumi.export(READERS_OUTPUT, exported)
    export_workload_digests(workloads)
    return ConfidentialZone(settings, platform, kbs, workloads)


@dataclass(frozen=True)
class ServedStack:
    """What one confidential stack exported, as the Trustee stack read it (None: not yet)."""

    name: str
    readers: Mapping[str, Any] | None
    hardware: Mapping[str, Any] | None
    kbs_url: str | None
    kbs_certificate: str | None


def zone_grants(
    settings: StackSettings,
    served: Sequence[ServedStack],
    url: str,
    certificate_pem: str,
) -> list[ResourceGrant]:
    """The resource-policy grants from the confidential stacks' exported readers.

    A stack not deployed yet (no `kbsReaders`) contributes nothing, so a resource none of
    whose readers runs anywhere gets no rule (the KBS refuses it); once every listed stack is
    deployed, a reader found in none of them is an error naming the key. A stack that runs
    other hardware, or whose init-data points at another KBS URL, is an error too.
    """
    mine = hardware_dict(settings.hardware)
    where = f"{NAMESPACE}:topology.confidentialStacks"
    for s in served:
        if s.readers is None:
            continue
        if s.hardware is not None and dict(s.hardware) != mine:
            raise ValueError(
                f"{where}: {s.name} runs on {dict(s.hardware)}, but this Trustee stack's "
                f"coco:cluster declares {mine}: use the same coco:cluster in both"
            )
        if s.kbs_url != url:
            raise ValueError(
                f"{where}: the init-data of {s.name} sends guests to {s.kbs_url!r}, not to this "
                f"KBS ({url!r}): point its coco:topology.trusteeStack here and `up` it"
            )
        if s.kbs_certificate is not None and s.kbs_certificate != certificate_pem:
            pulumi.log.warn(
                f"{s.name} pins an older KBS certificate in its init-data: `up` it, then this "
                "stack again (docs/topologies.md, certificate renewal)"
            )
    all_deployed = all(s.readers is not None for s in served)
    grants: list[ResourceGrant] = []
    for i, r in enumerate(settings.trustee.resources):
        digests: set[str] = set()
        platforms: set[str] = set()
        gpus = False
        found: set[str] = set()
        for s in served:
            for reader in r.readers:
                entry = (s.readers or {}).get(reader)
                if entry is None:
                    continue
                found.add(reader)
                digests.update(entry["digests"])
                platforms.add(entry["platform"])
                gpus = gpus or bool(entry["gpus"])
        missing = sorted(set(r.readers) - found)
        if all_deployed and missing:
            raise ValueError(
                f"{NAMESPACE}:trustee.resources[{i}].readers: {missing} run in none of "
                f"{[s.name for s in served]} (their exported {READERS_OUTPUT}): fix the name, "
                "or deploy the workload first"
            )
        if not digests and not r.allow_unbound:
            continue  # no reader deployed yet: no rule, the KBS refuses the resource
        grants.append(
            ResourceGrant(
                path=r.path,
                initdata_digests=sorted(digests),
                platforms=sorted(platforms) or trustee_platforms(settings),
                min_trust=r.min_trust,
                require_gpu=gpus if r.require_gpu is None else r.require_gpu,
            )
        )
    return grants


def build_trustee_zone(settings: StackSettings) -> TrusteeZone:
    """The Trustee stack: KBS TLS and the Trustee on the trusted cluster (`coco:kubernetes`),
    its resource policy bound to the digests the confidential stacks export."""
    env = settings.environment
    protect = protection.options(settings.protected)
    provider = _provider(settings)
    tls = TrusteeTls("kbs", settings.trustee)
    stacks = settings.trustee_topology.confidential_stacks
    outputs: list[pulumi.Output[Any]] = []
    for name in stacks:
        ref = pulumi.StackReference(name, stack_name=name)
        outputs += [
            ref.get_output(READERS_OUTPUT),
            ref.get_output("hardware"),
            ref.get_output("kbsUrl"),
            pulumi.Output.unsecret(ref.get_output("kbsCertificate")),
        ]

    def grants_of(values: list[Any]) -> list[ResourceGrant]:
        cert = values[-1]
        served = [ServedStack(name, *values[4 * i : 4 * i + 4]) for i, name in enumerate(stacks)]
        return zone_grants(settings, served, tls.url, cert)

    grants = pulumi.Output.all(*outputs, tls.certificate_pem).apply(grants_of)
    delivery = settings.secrets_delivery()
    resource_values: dict[str, pulumi.Output[str]] = {}
    if delivery == "create":
        resource_values = {r.path: secret_config(r.value_from) for r in settings.trustee.resources}
    trustee = Trustee(
        "trustee",
        settings.trustee,
        env,
        tls=tls,
        grants=grants,
        resource_values=resource_values,
        secrets_delivery=delivery,
        tee_platforms=trustee_platforms(settings),
        opts=pulumi.ResourceOptions.merge(
            pulumi.ResourceOptions(providers={"kubernetes": provider}), protect
        ),
    )
    pulumi.export("environment", env)
    pulumi.export("topology", {"role": "trustee", "confidentialStacks": list(stacks)})
    pulumi.export(
        KBS_OUTPUT, {"url": tls.url, "certificatePem": pulumi.Output.unsecret(tls.certificate_pem)}
    )
    pulumi.export("kbsUrl", tls.url)
    pulumi.export("kbsCertificate", tls.certificate_pem)
    # Nothing else: a StackReference copies *every* output of this stack into the state of
    # each confidential stack that reads it (secret ones too, encrypted with that stack's
    # key), so no private key, policy or reference value is an output here. In 'reference'
    # delivery the keys the Secrets need stay in this stack's own state (docs/topologies.md).
    if delivery == "reference":
        pulumi.export("kbsTokenSignerCertificate", trustee.token_signer_certificate_pem)
        pulumi.export("requiredSecrets", trustee.required_secrets)
    return TrusteeZone(settings, provider, tls, trustee)


__all__ = [
    "ConfidentialZone",
    "RemoteKbs",
    "ServedStack",
    "TrusteeZone",
    "build_confidential_zone",
    "build_trustee_zone",
    "trustee_platforms",
    "zone_grants",
]
