"""A workload's NetworkPolicy and PodDisruptionBudget, as its hardening options say.

Kept apart from the pure builders in components/hardening.py because these register
Kubernetes objects: one call from each component that owns pods (`ConfidentialWorkload`,
`Trustee`), so both get the same guards from the same options.

Why a NetworkPolicy for a confidential pod: its guest shares the pod's network namespace on
the node (kata bridges the pod's interface into the VM), so the cluster's network policy
applies to the guest's traffic, attestation and guest image pull included. Default-open
networking lets any pod of the cluster reach the workload's every port, and the workload
reach anything; the policy narrows both to what the pod declares and needs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pulumi
import pulumi_kubernetes as k8s

from components.hardening import (
    HTTPS_PORT,
    HardeningSettings,
    disruption_budget_spec,
    network_policy_spec,
    registry_ports,
    url_port,
)
from components.kbs_render import KBS_PORT
from components.stack_settings import TrusteeSettings, WorkloadSettings


def guard_pods(
    name: str,
    metadata: Mapping[str, object],
    selector: Mapping[str, str],
    replicas: int,
    ingress_ports: Sequence[int],
    egress_ports: pulumi.Input[Sequence[int]],
    options: HardeningSettings,
    opts: pulumi.ResourceOptions,
) -> list[pulumi.Resource]:
    """The NetworkPolicy (unless `networkPolicy: false`) and, with more than one replica,
    the PodDisruptionBudget (unless `podDisruptionBudget: false`) of the pods `selector`
    picks; `metadata` is their name, namespace and labels."""
    made: list[pulumi.Resource] = []
    if options.network_policy:
        spec: pulumi.Input[dict[str, object]]
        if isinstance(egress_ports, Sequence):  # known now (the usual case): no Output
            spec = network_policy_spec(selector, ingress_ports, list(egress_ports), options)
        else:
            spec = pulumi.Output.all(egress_ports).apply(
                lambda ports: network_policy_spec(selector, ingress_ports, list(ports[0]), options)
            )
        made.append(
            k8s.networking.v1.NetworkPolicy(
                f"{name}-network-policy", metadata=dict(metadata), spec=spec, opts=opts
            )
        )
    if options.pod_disruption_budget and replicas > 1:
        made.append(
            k8s.policy.v1.PodDisruptionBudget(
                f"{name}-disruption-budget",
                metadata=dict(metadata),
                spec=disruption_budget_spec(selector),
                opts=opts,
            )
        )
    return made


def workload_guards(
    name: str,
    settings: WorkloadSettings,
    labels: Mapping[str, str],
    selector: Mapping[str, str],
    pod_spec: Mapping[str, object],
    kbs_url: pulumi.Input[str],
    opts: pulumi.ResourceOptions,
) -> list[pulumi.Resource]:
    """A `coco:workloads` entry's guards: ingress to the container ports of its pod spec (as
    rendered, full template included); egress to DNS, HTTPS, the KBS's port (attestation, KBS
    resources) and any registry port its images name (guest pull)."""

    # Through a Service, policies see the pod's port after DNAT: the KBS container's too.
    def ports(url: str) -> list[int]:
        return [HTTPS_PORT, KBS_PORT, url_port(url), *registry_ports(settings.images)]

    egress: pulumi.Input[Sequence[int]] = (
        ports(kbs_url)
        if isinstance(kbs_url, str)
        else pulumi.Output.all(kbs_url).apply(lambda url: ports(url[0]))
    )
    return guard_pods(
        name,
        {"name": settings.name, "namespace": settings.namespace, "labels": dict(labels)},
        selector,
        settings.replicas if settings.kind in ("Deployment", "StatefulSet") else 1,
        container_ports(pod_spec),
        egress,
        settings.hardening,
        opts,
    )


def kbs_guards(
    name: str,
    settings: TrusteeSettings,
    metadata: Mapping[str, object],
    selector: Mapping[str, str],
    opts: pulumi.ResourceOptions,
) -> list[pulumi.Resource]:
    """The KBS's guards: ingress to its HTTPS port from anywhere (guests on every node, and
    the NodePort, LoadBalancer or Ingress in front of it); egress to DNS, HTTPS and the
    ports of the verifier services it is configured to call (AMD KDS or a VCEK cache, NVIDIA
    NRAS)."""
    urls = [
        *(
            [settings.verifiers.snp.kds_url]
            if settings.verifiers.snp and settings.verifiers.snp.kds_url
            else []
        ),
        *(
            [settings.verifiers.nvidia.url]
            if settings.verifiers.nvidia and settings.verifiers.nvidia.url
            else []
        ),
    ]
    egress = [HTTPS_PORT, *(url_port(u) for u in urls)]
    return guard_pods(
        name, metadata, selector, settings.replicas, [KBS_PORT], egress, settings.hardening, opts
    )


def container_ports(pod_spec: Mapping[str, object]) -> list[int]:
    """The `containerPort`s a pod spec declares, in order, each once."""
    ports: list[int] = []
    containers = pod_spec.get("containers")
    for c in containers if isinstance(containers, list) else []:
        for port in (c.get("ports") or []) if isinstance(c, dict) else []:
            number = port.get("containerPort") if isinstance(port, dict) else None
            if isinstance(number, int) and number not in ports:
                ports.append(number)
    return ports
