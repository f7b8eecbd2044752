"""Hardened by default: what every pod template coco renders gets unless its spec says otherwise.

A confidential pod keeps the host out, but the code inside it still deserves the least
privilege a container can have: a compromised process that may gain privileges, hold
capabilities or read a Kubernetes API token has more to attack (the guest kernel, the agent,
the API server) than one that may not. So both pipelines (`coco:workloads` and
`coco:manifests` / `confidential(...)`) pass the pod template through `harden_pod_spec`
*before* the agent policy is derived from it, and the policy pins what the hardened spec
says (policies/agent_container.py `ContainerPin.no_new_privileges`, `capabilities`,
`service_account_token`): a host that starts the container with its privileges back is
refused inside the TEE.

The defaults are those of the Kubernetes Pod Security Standard "restricted" (a namespace
that enforces it admits these pods as they are), plus what a VM-backed pod needs:

- `allowPrivilegeEscalation: false` on every container (OCI `NoNewPrivileges`);
- `capabilities.drop: [ALL]` on every container (containerd's sysctl
  `net.ipv4.ip_unprivileged_port_start=0` still lets a non-root process bind any port);
- `seccompProfile: RuntimeDefault` on the pod. Kata passes it to the guest, whose agent does
  not apply it with kata's default `disable_guest_seccomp = true` (runtime-rs Makefile
  `DEFDISABLEGUESTSECCOMP`; genpolicy rules.rego expects `Linux.Seccomp` null); it is set
  for the Pod Security Standard and for runtimes that do apply it;
- `runAsNonRoot: true` on the pod, unless the spec runs a container as uid 0 (then the image
  needs root and the kubelet would refuse the pod);
- `automountServiceAccountToken: false`: no API token in the TEE unless asked for;
- memory request = limit on every container that sets neither (`memory`), and a CPU
  request (`cpuRequest`). Kata sizes the pod VM from the containers' memory *limits*:
  static sandbox sizing, which every CoCo runtime class uses
  (`static_sandbox_resource_mgmt`, kata 4.1.0 runtime-rs Makefile
  `DEFSTATICRESOURCEMGMT_COCO = true`), adds the sum of the limits (containerd's
  `io.kubernetes.cri.sandbox-memory`, kata-types `annotations/cri_containerd.rs`) to a base:
  `overhead_memory` in runtime-rs (`resource/src/cpu_mem/initial_size.rs` `setup_config`,
  128 MiB for TDX/SNP, `DEFOVERHEADMEMSZ_TEE`), `default_memory` in the Go shims coco
  installs (`src/runtime/pkg/oci/utils.go`: `MemorySize += WorkloadMemMB`; 2048 MiB,
  `DEFMEMSZ`). Without any limit the VM gets just that base, and a guest-pulled image is
  unpacked into guest memory. A request equal to the limit makes the scheduler reserve
  what the VM takes (on top of the RuntimeClass's `overhead.podFixed`, kata-deploy chart
  `templates/runtimeclasses.yaml`).

Each default is relaxable by a named option (`HardeningSettings`), and an explicit value in
the pod spec always wins. `harden_pod_spec` is pure and idempotent: a spec hardened twice is
the spec hardened once, so a Deployment coco renders, fed back through the transform, gets
the same policy and init-data.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, Literal
from urllib.parse import urlparse

from pydantic import Field, field_validator

from components.config_types import Model
from policies.agent_container import DEFAULT_CAPS

_MEMORY = re.compile(r"^[1-9][0-9]*(Ki|Mi|Gi|Ti|k|M|G|T)$")
_CPU = re.compile(r"^([1-9][0-9]*m|[0-9]+(\.[0-9]{1,3})?)$")

DNS_PORT = 53
HTTPS_PORT = 443


class HardeningSettings(Model):
    """The hardened defaults of a workload's pods (or the KBS's), each relaxable by name.

    Stack key: `coco:workloads[i].hardening`, `coco:manifests[i].hardening`,
    `coco:trustee.hardening` (docs/hardening.md)."""

    allow_privilege_escalation: bool = Field(
        default=False,
        description="false: every container gets allowPrivilegeEscalation: false (OCI "
        "NoNewPrivileges, pinned by the agent policy). true: left to the pod spec.",
    )
    drop_all_capabilities: bool = Field(
        default=True,
        description="Every container without capabilities.drop gets drop: [ALL]; the agent "
        "policy then refuses any capability. false: containerd's default set.",
    )
    seccomp_runtime_default: bool = Field(
        default=True, description="The pod gets seccompProfile RuntimeDefault unless it sets one."
    )
    run_as_non_root: bool = Field(
        default=True,
        description="The pod gets runAsNonRoot: true unless a container runs as uid 0. An image "
        "whose USER is root or a name needs runAsUser, or this set to false.",
    )
    automount_service_account_token: bool = Field(
        default=False,
        description="false: automountServiceAccountToken: false (no API token in the TEE; the "
        "agent policy refuses its mount). true: the token is mounted as Kubernetes defaults.",
    )
    memory: str | None = Field(
        default="512Mi",
        description="Memory request and limit of each container that sets neither (one set: "
        "the other follows it). The limits size the pod VM. null: left unset.",
    )
    cpu_request: str | None = Field(
        default="100m",
        description="CPU request of each container that sets none (its CPU limit if it has "
        "one). No CPU limit is added: a limit adds vCPUs to the pod VM. null: left unset.",
    )
    network_policy: bool = Field(
        default=True,
        description="A NetworkPolicy per workload: ingress only to its container ports, egress "
        "as `egress` says. false: none.",
    )
    egress: Literal["attestation", "open"] = Field(
        default="attestation",
        description="attestation: DNS, HTTPS (443) and the KBS port only (attestation, guest "
        "image pull, KBS resources). open: any egress.",
    )
    pod_disruption_budget: bool = Field(
        default=True,
        description="A PodDisruptionBudget (maxUnavailable 1) when replicas > 1. false: none.",
    )

    @field_validator("memory")
    @classmethod
    def _memory(cls, v: str | None) -> str | None:
        if v is not None and not _MEMORY.match(v):
            raise ValueError(
                f"{v!r} is not a memory quantity: use e.g. 512Mi or 2Gi (a positive integer "
                "with Ki, Mi, Gi or Ti), or null to leave memory unset"
            )
        return v

    @field_validator("cpu_request")
    @classmethod
    def _cpu(cls, v: str | None) -> str | None:
        if v is not None and (not _CPU.match(v) or v in ("0", "0.0")):
            raise ValueError(
                f"{v!r} is not a CPU quantity: use e.g. 100m or 0.5, or null to leave it unset"
            )
        return v


def _copy_tree(value: Any) -> Any:
    """A copy of the dicts and lists of `value`, sharing its leaves (which may be Pulumi
    outputs or the engine's unknowns in the transform path, which cannot be deep-copied)."""
    if isinstance(value, Mapping):
        return {k: _copy_tree(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy_tree(v) for v in value]
    return value


def _containers(spec: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return [c for f in ("initContainers", "containers") for c in spec.get(f) or []]


def _runs_as_root(spec: Mapping[str, Any]) -> bool:
    """The spec itself asks for uid 0 somewhere: the image needs root there."""
    ids = [(spec.get("securityContext") or {}).get("runAsUser")]
    ids += [(c.get("securityContext") or {}).get("runAsUser") for c in _containers(spec)]
    return 0 in ids


def _escalation_allowed(security: Mapping[str, Any]) -> bool:
    """Kubernetes refuses allowPrivilegeEscalation: false next to these (API validation)."""
    adds = (security.get("capabilities") or {}).get("add") or []
    return bool(security.get("privileged")) or "SYS_ADMIN" in adds or "CAP_SYS_ADMIN" in adds


def _harden_container(container: Mapping[str, Any], options: HardeningSettings) -> dict[str, Any]:
    out = dict(container)
    security = dict(out.get("securityContext") or {})
    if not options.allow_privilege_escalation and not _escalation_allowed(security):
        security.setdefault("allowPrivilegeEscalation", False)
    if options.drop_all_capabilities:
        capabilities = dict(security.get("capabilities") or {})
        capabilities.setdefault("drop", ["ALL"])
        security["capabilities"] = capabilities
    if security:
        out["securityContext"] = security
    resources = dict(out.get("resources") or {})
    limits = dict(resources.get("limits") or {})
    requests = dict(resources.get("requests") or {})
    if options.memory is not None:
        memory = limits.get("memory") or requests.get("memory") or options.memory
        limits.setdefault("memory", memory)
        requests.setdefault("memory", memory)
    if options.cpu_request is not None:
        requests.setdefault("cpu", limits.get("cpu") or options.cpu_request)
    if limits:
        resources["limits"] = dict(sorted(limits.items()))
    if requests:
        resources["requests"] = dict(sorted(requests.items()))
    if resources:
        out["resources"] = resources
    return out


def harden_pod_spec(spec: Mapping[str, Any], options: HardeningSettings) -> dict[str, Any]:
    """`spec` with the hardened defaults filled in where it says nothing (pure, idempotent)."""
    out: dict[str, Any] = _copy_tree(spec)
    if not options.automount_service_account_token:
        out.setdefault("automountServiceAccountToken", False)
    security = dict(out.get("securityContext") or {})
    if options.seccomp_runtime_default:
        security.setdefault("seccompProfile", {"type": "RuntimeDefault"})
    if options.run_as_non_root and not _runs_as_root(out):
        security.setdefault("runAsNonRoot", True)
    if security:
        out["securityContext"] = security
    for field in ("initContainers", "containers"):
        if field in out:
            out[field] = [_harden_container(c, options) for c in out[field]]
    return out


def policy_pins(container: Mapping[str, Any], pod_spec: Mapping[str, Any]) -> dict[str, Any]:
    """The `ContainerPin` fields a (hardened) container implies, as genpolicy derives them
    (kata 4.1.0 `src/tools/genpolicy/src/pod.rs`: `allowPrivilegeEscalation: false` makes
    `NoNewPrivileges` true; `drop` removes capabilities from the default set, `ALL` all of
    them, `add` puts them back), and whether the service-account token is mounted."""
    security = container.get("securityContext") or {}
    caps = security.get("capabilities") or {}
    drop = [str(c).removeprefix("CAP_") for c in caps.get("drop") or []]
    add = [f"CAP_{str(c).removeprefix('CAP_')}" for c in caps.get("add") or []]
    kept: tuple[str, ...] | None = None
    if drop or add:
        base = () if "ALL" in drop else tuple(c for c in DEFAULT_CAPS if c[4:] not in drop)
        kept = tuple(sorted({*base, *add}))
    return {
        "no_new_privileges": security.get("allowPrivilegeEscalation") is False,
        "capabilities": kept,
        "service_account_token": pod_spec.get("automountServiceAccountToken") is not False,
    }


def url_port(url: str) -> int:
    """The TCP port of an http(s) URL (its scheme's default when none is written)."""
    parsed = urlparse(url)
    return parsed.port or (HTTPS_PORT if parsed.scheme == "https" else 80)


def network_policy_spec(
    selector: Mapping[str, str],
    ingress_ports: Sequence[int],
    egress_ports: Sequence[int],
    options: HardeningSettings,
) -> dict[str, Any]:
    """Ingress only to the pods' own ports (from anywhere: a Service, an Ingress or a guest
    reaching the KBS may come from any node); egress to DNS and `egress_ports` (TCP), or any
    egress with `egress: open`. No ports: no ingress at all."""
    ingress = (
        [{"ports": [{"protocol": "TCP", "port": p} for p in sorted(set(ingress_ports))]}]
        if ingress_ports
        else []
    )
    if options.egress == "open":
        egress: list[dict[str, Any]] = [{}]
    else:
        egress = [
            {
                "ports": [
                    {"protocol": "UDP", "port": DNS_PORT},
                    {"protocol": "TCP", "port": DNS_PORT},
                    *({"protocol": "TCP", "port": p} for p in sorted(set(egress_ports))),
                ]
            }
        ]
    return {
        "podSelector": {"matchLabels": dict(selector)},
        "policyTypes": ["Ingress", "Egress"],
        "ingress": ingress,
        "egress": egress,
    }


def disruption_budget_spec(selector: Mapping[str, str]) -> dict[str, Any]:
    """At most one pod of the workload voluntarily evicted at a time (a node drain)."""
    return {"maxUnavailable": 1, "selector": {"matchLabels": dict(selector)}}


def registry_ports(images: Sequence[str]) -> list[int]:
    """Ports of registries the images name explicitly (`host:5000/app`): the guest pulls
    the image itself (guest pull), so its egress must reach them."""
    ports = set()
    for image in images:
        first, _, rest = image.partition("/")
        if rest and ("." in first or ":" in first or first == "localhost"):
            host_port = first.rsplit(":", 1)
            if len(host_port) == 2 and host_port[1].isdigit():
                ports.add(int(host_port[1]))
    return sorted(ports)
