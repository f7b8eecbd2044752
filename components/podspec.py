"""Full Kubernetes pod templates: schema check, what a TEE cannot honour, what the policy pins.

A workload someone else wrote (a folder of YAML, a chart's output) carries a complete pod
template. Three questions decide whether coco can make it confidential, and each must be
answered before anything is created:

1. Is it Kubernetes at all? Checked against the real OpenAPI schema of the oldest supported
   Kubernetes and the newest one `kubernetes-validate` ships, strictly (an unknown field is
   an error), not against a hand-written subset.
2. Can a TEE honour it? A pod VM shares nothing with the node: `hostNetwork`, `hostPID`,
   `hostIPC`, `hostPath` volumes and privileged containers either reach the untrusted host
   (so they void the protection) or are silently not what the user asked for.
3. Can the restrictive agent policy pin it? The policy compares every `CreateContainerRequest`
   with what the pod spec implies (policies/agent_container.py). Shapes it cannot pin
   (PersistentVolumeClaims, env from ConfigMaps/Secrets, exec probes without `allowExec`) are
   refused here with the reason, instead of rendering a pod the agent would refuse in the TEE.

Kinds: Pod, Deployment, StatefulSet, Job, CronJob (and ReplicaSet, which a Deployment
manages). DaemonSet is refused: it exists to run one pod on every node to act on that node
(host paths, host network, node agents), which is exactly what a pod VM cannot reach, and
it would start a TEE VM on every node whether or not the workload needs one there.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import kubernetes_validate

from components import hardening, kube_schemas
from components.value_ranges import INT32_MAX
from policies.agent import AgentPolicySpec, declared_env, kubernetes_argv
from policies.agent_container import (
    CONTAINER_MOUNTS,
    HOST_FILE_VOLUMES,
    ContainerPin,
    MountPin,
    block_empty_dir_mount,
    host_file_volume_mount,
    memory_empty_dir_mount,
)
from policies.sealed import sealed_env_pattern

OLDEST_SUPPORTED = "1.32"
"""NVIDIA's Confidential Containers reference architecture supports Kubernetes 1.32+."""

SCHEMA_VERSIONS: tuple[str, ...] = (OLDEST_SUPPORTED, kubernetes_validate.latest_version())


POD_SPEC_PATHS: dict[str, tuple[str, ...]] = {
    "Pod": ("spec",),
    "Deployment": ("spec", "template", "spec"),
    "ReplicaSet": ("spec", "template", "spec"),
    "StatefulSet": ("spec", "template", "spec"),
    "Job": ("spec", "template", "spec"),
    "CronJob": ("spec", "jobTemplate", "spec", "template", "spec"),
}
"""Where each workload kind keeps its pod spec; the template's metadata is its sibling."""

REFUSED_KINDS: dict[str, str] = {
    "DaemonSet": "a DaemonSet runs one pod per node to act on that node (host paths, host "
    "network), which a pod VM cannot reach, and would start a TEE VM on every node; deploy "
    "it as a Deployment, or keep it outside the confidential workloads",
}

HOST_FIELDS: dict[str, str] = {
    "hostNetwork": "the pod VM has its own network stack; the node's is untrusted",
    "hostPID": "the pod VM cannot see or share the node's processes",
    "hostIPC": "the pod VM cannot share the node's IPC namespace",
}

TEE_VOLUME_REFUSALS: dict[str, str] = {
    "hostPath": "a node directory is host-controlled data (and the pod VM cannot reach it)",
}

POLICY_PINNABLE_VOLUMES: frozenset[str] = frozenset({*HOST_FILE_VOLUMES, "emptyDir"})
"""Volume kinds whose mounts the restrictive agent policy pins: configMap, secret, projected
and downwardAPI (read-only shared-dir binds of host files copied in, policies/agent_container.py
`HOST_FILE_VOLUMES`); emptyDir with `medium: Memory` (a guest tmpfs,
`memory_empty_dir_mount`) or on disk (a block device the guest encrypts with a key only it
holds, `block_empty_dir_mount`). persistentVolumeClaim is refused (`POLICY_REFUSED_VOLUMES`);
the rest need the `allow-all` preset (dev only); see docs/workloads.md."""

POLICY_REFUSED_VOLUMES: dict[str, str] = {
    "persistentVolumeClaim": "a PersistentVolume's contents are whatever the host (node, "
    "storage driver, cloud) puts there: it can read everything written and plant or roll back "
    "what the workload reads, and under shared_fs=none the Kata runtime copies the volume into "
    "the guest once, so writes never reach it (kata runtime-rs share_fs_volume.rs); use an "
    "emptyDir (guest-encrypted) for scratch data, and keep persistent state encrypted by the "
    "workload with a key from the KBS",
}
"""Volume kinds the restrictive policy refuses on purpose, with the reason (docs/workloads.md
"Volumes"): not a gap to fill later, but data whose confidentiality and integrity the host
controls."""

_MOUNT_PATH = re.compile(r"(/[A-Za-z0-9_][A-Za-z0-9_.-]*)+")
"""A mount path whose last segment names a shared-dir entry the policy can match literally."""


class PodSpecError(ValueError):
    """Problems with a workload object, each naming the object and the field."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(f"  - {p}" for p in self.problems))


@dataclass(frozen=True)
class Located:
    """One pod template inside a workload object, and how to name it in errors."""

    kind: str
    name: str
    namespace: str | None
    path: tuple[str, ...]
    pod_spec: dict[str, Any]
    metadata: dict[str, Any] = dataclasses.field(default_factory=dict)
    """The template's metadata (a Pod's own): labels and annotations the recipe extends."""

    @property
    def where(self) -> str:
        ns = f"{self.namespace}/" if self.namespace else ""
        return f"{self.kind} {ns}{self.name}"

    def field(self, *rest: str | int) -> str:
        parts = [*self.path, *(str(r) for r in rest)]
        return f"{self.where}: {'.'.join(parts)}"


def describe(obj: Mapping[str, Any]) -> str:
    meta = obj.get("metadata") or {}
    ns = f"{meta.get('namespace')}/" if meta.get("namespace") else ""
    return f"{obj.get('kind')} {ns}{meta.get('name')}"


def is_workload(obj: Mapping[str, Any]) -> bool:
    """True for the core/apps/batch kinds that carry a pod template (or are refused)."""
    group = str(obj.get("apiVersion", "")).split("/")[0]
    kind = obj.get("kind")
    if kind == "Pod":
        return obj.get("apiVersion") == "v1"
    return group in {"apps", "batch"} and (kind in POD_SPEC_PATHS or kind in REFUSED_KINDS)


def locate(obj: Mapping[str, Any]) -> Located:
    """The pod spec of a workload object (a KeyError-free walk; missing levels are errors)."""
    kind = str(obj.get("kind"))
    if kind in REFUSED_KINDS:
        raise PodSpecError([f"{describe(obj)}: kind {kind}: {REFUSED_KINDS[kind]}"])
    path = POD_SPEC_PATHS[kind]
    node: Any = obj
    for i, key in enumerate(path):
        node = node.get(key) if isinstance(node, Mapping) else None
        if not isinstance(node, Mapping):
            raise PodSpecError([f"{describe(obj)}: {'.'.join(path[: i + 1])} is missing"])
    meta = obj.get("metadata") or {}
    parent: Any = obj
    for key in path[:-1]:
        parent = parent[key]
    template_meta = dict(parent.get("metadata") or {})
    return Located(
        kind, str(meta.get("name")), meta.get("namespace"), path, dict(node), template_meta
    )


def schema_problems(obj: Mapping[str, Any]) -> list[str]:
    """What the Kubernetes API of each supported version would reject, by field path.

    Each kind's validator is built once per process (components/kube_schemas.py), so a check
    costs microseconds and its answer is not kept: keeping answers by the object's canonical
    JSON cost ten times more (serialising and hashing the object) than checking it again."""
    problems = []
    for version in SCHEMA_VERSIONS:
        try:
            kube_schemas.validate_strict(obj, version)
        except (kubernetes_validate.SchemaNotFoundError, OSError):
            # The library opens a file named after apiVersion and kind: a name no schema file
            # can have (too long, a separator) fails to open with OSError, not its own error.
            problems.append(f"{describe(obj)}: Kubernetes {version} has no such kind")
        except kubernetes_validate.ValidationError as err:
            path = ".".join(str(p) for p in err.absolute_path) or "<root>"
            problems.append(
                f"{describe(obj)}: {path}: {err.message} (not valid Kubernetes {version})"
            )
    return sorted(set(problems))


def containers(spec: Mapping[str, Any]) -> Iterator[tuple[str, int, dict[str, Any]]]:
    """(field, index, container) of every container the pod starts, init containers first:
    each is a CreateContainerRequest of its own."""
    for name in ("initContainers", "containers"):
        for i, c in enumerate(spec.get(name) or []):
            yield name, i, c


SealedRefs = Mapping[tuple[str, str], str]
"""(Secret name, key) -> the KBS resource path whose sealed reference that Secret key holds:
an `env[].valueFrom.secretKeyRef` naming one is pinned as a sealed value
(policies/sealed.py `sealed_env_pattern`), not refused as a host-supplied one."""

NO_SEALED: SealedRefs = MappingProxyType({})


def sealed_ref(entry: Mapping[str, Any], sealed: SealedRefs) -> str | None:
    """The KBS resource path of an env entry that reads a sealed reference, else None."""
    ref = (entry.get("valueFrom") or {}).get("secretKeyRef") or {}
    return sealed.get((str(ref.get("name")), str(ref.get("key"))))


def tee_problems(loc: Located) -> list[str]:
    """What a TEE cannot honour, each with the field and the reason."""
    spec = loc.pod_spec
    problems = [
        f"{loc.field(field)}: {why}" for field, why in HOST_FIELDS.items() if spec.get(field)
    ]
    for i, volume in enumerate(spec.get("volumes") or []):
        for kind, why in TEE_VOLUME_REFUSALS.items():
            if kind in volume:
                problems.append(f"{loc.field('volumes', i, kind)}: {why}")
    if spec.get("ephemeralContainers"):
        problems.append(
            f"{loc.field('ephemeralContainers')}: debug containers are host-chosen code in the TEE"
        )
    problems += _id_problems(loc, ("securityContext",), spec.get("securityContext") or {}, POD_IDS)
    for field, i, c in containers(spec):
        security = c.get("securityContext") or {}
        problems += _id_problems(loc, (field, i, "securityContext"), security, CONTAINER_IDS)
        if security.get("privileged"):
            problems.append(
                f"{loc.field(field, i, 'securityContext', 'privileged')}: a privileged "
                "container gets every device and capability of the pod VM; the agent policy "
                "admits only the default capabilities"
            )
        for j, port in enumerate(c.get("ports") or []):
            if port.get("hostPort"):
                problems.append(
                    f"{loc.field(field, i, 'ports', j, 'hostPort')}: a node port reaches the pod "
                    "VM through the untrusted host anyway; use a Service"
                )
    return problems


CONTAINER_IDS = ("runAsUser", "runAsGroup")
"""The user and group IDs a container's securityContext sets."""

POD_IDS = (*CONTAINER_IDS, "fsGroup", "supplementalGroups")
"""And a pod's: its volumes' group and the extra groups of every process (a list)."""


def _id_problems(
    loc: Located, where: tuple[str | int, ...], security: Any, names: tuple[str, ...]
) -> list[str]:
    """User and group IDs outside what Kubernetes accepts (`IsValidUserID`, `IsValidGroupID`:
    0 to MaxInt32, components/value_ranges.py; pod validation applies them to each of
    `names`): the schema says only "integer", which a huge or fractional number passes, and
    the agent policy pins the IDs as integers."""
    if not isinstance(security, Mapping):
        return []
    problems = []
    for name in names:
        value = security.get(name)
        listed = value if isinstance(value, list) else [value]
        for j, one in enumerate(listed):
            if one is None:
                continue
            whole = isinstance(one, int) or (isinstance(one, float) and one.is_integer())
            if isinstance(one, bool) or not whole or not 0 <= one <= INT32_MAX:
                at = (name, j) if isinstance(value, list) else (name,)
                problems.append(
                    f"{loc.field(*where, *at)}: {one!r} is not an ID Kubernetes accepts; use a "
                    f"whole number from 0 to {INT32_MAX}"
                )
    return problems


def policy_problems(
    loc: Located, policy: AgentPolicySpec, sealed: SealedRefs = NO_SEALED
) -> list[str]:
    """What the restrictive agent policy cannot pin yet: the agent would refuse the container
    inside the TEE, so refuse it at preview instead, saying which relaxation exists. A
    `secretKeyRef` in `sealed` is pinned (its sealed reference), so it is no problem."""
    if policy.preset != "restrictive":
        return []
    spec = loc.pod_spec
    problems = []
    for i, volume in enumerate(spec.get("volumes") or []):
        kind = next((k for k in volume if k != "name"), "?")
        if kind in POLICY_REFUSED_VOLUMES:
            problems.append(f"{loc.field('volumes', i, kind)}: {POLICY_REFUSED_VOLUMES[kind]}")
        elif kind not in POLICY_PINNABLE_VOLUMES and kind not in TEE_VOLUME_REFUSALS:
            problems.append(
                f"{loc.field('volumes', i, kind)}: the restrictive agent policy pins only "
                "configMap, secret, projected, downwardAPI and emptyDir volume mounts (the "
                "agent would refuse the container); drop the volume or use agentPolicy preset "
                "allow-all in a dev stack"
            )
        elif kind == "emptyDir" and (volume["emptyDir"] or {}).get("medium") not in (
            None,
            "",
            "Memory",
        ):
            problems.append(
                f"{loc.field('volumes', i, 'emptyDir', 'medium')}: the policy pins the "
                "default (disk, guest-encrypted) and Memory media only"
            )
    problems += _host_file_mount_problems(loc)
    declared = {v.get("name") for v in spec.get("volumes") or []}
    for field, i, c in containers(spec):
        for j, vm in enumerate(c.get("volumeMounts") or []):
            if vm.get("name") not in declared:
                problems.append(
                    f"{loc.field(field, i, 'volumeMounts', j, 'name')}: {vm.get('name')!r} is no "
                    "volume of the pod spec (a StatefulSet's volumeClaimTemplate, a "
                    "PersistentVolumeClaim, is refused: "
                    + POLICY_REFUSED_VOLUMES["persistentVolumeClaim"]
                    + ")"
                )
    if spec.get("shareProcessNamespace"):
        problems.append(
            f"{loc.field('shareProcessNamespace')}: the agent policy refuses a shared PID "
            "namespace (one container could read another's memory)"
        )
    for field, i, c in containers(spec):
        if c.get("envFrom"):
            problems.append(
                f"{loc.field(field, i, 'envFrom')}: values from ConfigMaps/Secrets are host data "
                "the agent policy cannot pin; write literal env values"
            )
        for j, e in enumerate(c.get("env") or []):
            if "valueFrom" in e and sealed_ref(e, sealed) is None:
                problems.append(
                    f"{loc.field(field, i, 'env', j, 'valueFrom')}: ({e.get('name')}) a value "
                    "the host supplies at start cannot be pinned; write a literal value, or "
                    "for a secretKeyRef serve it from the KBS (the manifests entry's "
                    "sealedSecrets: docs/workloads.md)"
                )
        security = c.get("securityContext") or {}
        if (security.get("capabilities") or {}).get("add"):
            problems.append(
                f"{loc.field(field, i, 'securityContext', 'capabilities', 'add')}: the agent "
                "policy admits only containerd's default capabilities"
            )
        if not policy.allow_exec:
            for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
                if "exec" in (c.get(probe) or {}):
                    problems.append(
                        f"{loc.field(field, i, probe, 'exec')}: an exec probe is an "
                        "ExecProcessRequest, which the policy denies; use httpGet/tcpSocket/grpc "
                        "or set agentPolicy.allowExec with execCommands"
                    )
            for hook in ("postStart", "preStop"):
                if "exec" in ((c.get("lifecycle") or {}).get(hook) or {}):
                    problems.append(
                        f"{loc.field(field, i, 'lifecycle', hook, 'exec')}: an exec hook is an "
                        "ExecProcessRequest, which the policy denies; set agentPolicy.allowExec"
                    )
    return problems


def _host_file_volumes(spec: Mapping[str, Any]) -> dict[str, int]:
    """Name -> index of the pod's configMap/secret/projected volumes."""
    return {
        v.get("name", ""): i
        for i, v in enumerate(spec.get("volumes") or [])
        if any(k in v for k in HOST_FILE_VOLUMES)
    }


def _is_memory_empty_dir(volume: Mapping[str, Any]) -> bool:
    return "emptyDir" in volume and (volume["emptyDir"] or {}).get("medium") == "Memory"


def _is_disk_empty_dir(volume: Mapping[str, Any]) -> bool:
    return "emptyDir" in volume and (volume["emptyDir"] or {}).get("medium") in (None, "")


def _memory_empty_dirs(spec: Mapping[str, Any]) -> set[str]:
    """Names of the pod's `medium: Memory` emptyDirs (a guest tmpfs, pinned by the policy)."""
    return {v.get("name", "") for v in spec.get("volumes") or [] if _is_memory_empty_dir(v)}


def _disk_empty_dirs(spec: Mapping[str, Any]) -> set[str]:
    """Names of the pod's disk emptyDirs (a guest-encrypted block device, pinned)."""
    return {v.get("name", "") for v in spec.get("volumes") or [] if _is_disk_empty_dir(v)}


def _mode_problems(loc: Located, i: int, volume: Mapping[str, Any]) -> list[str]:
    """File modes with execute bits: CopyFile admits no executable file (a host-written file
    the container could run), so the agent would refuse the copy."""
    problems = []
    kind = next(k for k in HOST_FILE_VOLUMES if k in volume)
    source = volume[kind] or {}
    modes: list[tuple[tuple[str | int, ...], Any]] = [
        ((kind, "defaultMode"), source.get("defaultMode"))
    ]
    for j, item in enumerate(source.get("items") or []):
        modes.append(((kind, "items", j, "mode"), item.get("mode")))
    for k, src in enumerate(source.get("sources") or []):
        for sub, body in src.items():
            for j, item in enumerate((body or {}).get("items") or []):
                modes.append(((kind, "sources", k, sub, "items", j, "mode"), item.get("mode")))
    for path, mode in modes:
        if isinstance(mode, int) and mode & 0o111:
            problems.append(
                f"{loc.field('volumes', i, *path)}: mode {mode:#o} has execute bits; the agent "
                "policy copies host files in only without them (drop the x bits)"
            )
    return problems


def _host_file_mount_problems(loc: Located) -> list[str]:
    """volumeMounts of configMap/secret/projected volumes the policy cannot pin as a plain
    read-only shared-dir bind."""
    spec = loc.pod_spec
    volumes = _host_file_volumes(spec)
    problems = []
    for i in volumes.values():
        problems += _mode_problems(loc, i, spec["volumes"][i])
    taken = {m.destination for m in CONTAINER_MOUNTS}
    pinned = set(volumes) | _memory_empty_dirs(spec) | _disk_empty_dirs(spec)
    for field, i, c in containers(spec):
        for j, vm in enumerate(c.get("volumeMounts") or []):
            if vm.get("name") not in pinned:
                continue
            where = loc.field(field, i, "volumeMounts", j)
            path = str(vm.get("mountPath", ""))
            if vm.get("subPath") or vm.get("subPathExpr"):
                problems.append(
                    f"{where}.subPath: a subPath mount's source is a kubelet bind the policy "
                    "cannot pin; mount the whole volume (use items to pick keys)"
                )
            if vm.get("mountPropagation") not in (None, "None"):
                problems.append(
                    f"{where}.mountPropagation: the policy pins `rprivate` mounts (a shared or "
                    "slave mount would see what the host mounts later); drop mountPropagation"
                )
            if not _MOUNT_PATH.fullmatch(path) or "/../" in path + "/" or "/./" in path + "/":
                problems.append(
                    f"{where}.mountPath: {path!r}: the policy pins absolute paths of plain "
                    "segments (letters, digits, '_', '.', '-'; no '..')"
                )
            elif path in taken:
                problems.append(f"{where}.mountPath: {path} is a mount the runtime makes already")
    return problems


def template_problems(
    loc: Located, policy: AgentPolicySpec, sealed: SealedRefs = NO_SEALED
) -> list[str]:
    """What a TEE cannot honour and what the agent policy cannot pin, in one list."""
    return tee_problems(loc) + policy_problems(loc, policy, sealed)


def check(
    obj: Mapping[str, Any], policy: AgentPolicySpec, sealed: SealedRefs = NO_SEALED
) -> Located:
    """Every problem with a workload object at once, or its located pod template."""
    problems = schema_problems(obj)
    if problems:
        raise PodSpecError(problems)
    loc = locate(obj)
    problems = template_problems(loc, policy, sealed)
    if problems:
        raise PodSpecError(problems)
    return loc


def _literal_env(loc: Located, field: str, i: int, c: Mapping[str, Any]) -> list[tuple[str, str]]:
    return [(e["name"], e.get("value", "")) for e in c.get("env") or [] if "valueFrom" not in e]


def container_pins(loc: Located, sealed: SealedRefs = NO_SEALED) -> dict[str, ContainerPin]:
    """Container name -> the env, working dir, user/group and read-only root the pod spec
    gives it (init containers too: each is a CreateContainerRequest of its own), and the
    sealed values its env reads (`sealed`)."""
    pod_security = loc.pod_spec.get("securityContext") or {}
    host_files = _host_file_volumes(loc.pod_spec)
    memory = _memory_empty_dirs(loc.pod_spec)
    disk = _disk_empty_dirs(loc.pod_spec)
    pins = {}
    for field, i, c in containers(loc.pod_spec):
        security = c.get("securityContext") or {}
        try:
            env = declared_env(_literal_env(loc, field, i, c), f"{field}[{i}]")
        except ValueError as err:
            raise PodSpecError([f"{loc.where}: {err}"]) from None
        mounts = c.get("volumeMounts") or []
        pins[c["name"]] = ContainerPin(
            env=env,
            working_dir=c.get("workingDir"),
            uid=security.get("runAsUser", pod_security.get("runAsUser")),
            gid=security.get("runAsGroup", pod_security.get("runAsGroup")),
            read_only_root=bool(security.get("readOnlyRootFilesystem", False)),
            sealed_env=tuple(
                sealed_env_pattern(e["name"], path)
                for e in c.get("env") or []
                if (path := sealed_ref(e, sealed)) is not None
            ),
            volume_mounts=tuple(
                _volume_mount_pin(vm, host_files, memory, disk)
                for vm in mounts
                if vm.get("name") in {*host_files, *memory, *disk}
            ),
            ephemeral_volumes=tuple(
                sorted({vm["name"] for vm in mounts if vm.get("name") in memory})
            ),
            block_volumes=sum(1 for vm in mounts if vm.get("name") in disk),
            fs_group=pod_security.get("fsGroup") or None,
            **hardening.policy_pins(c, loc.pod_spec),
        )
    return pins


def _volume_mount_pin(
    vm: Mapping[str, Any], host_files: Mapping[str, int], memory: set[str], disk: set[str]
) -> MountPin:
    """The mount one pinned volumeMount becomes in the OCI spec (by its volume's kind)."""
    name, path, read_only = vm["name"], vm["mountPath"], bool(vm.get("readOnly"))
    if name in host_files:
        return host_file_volume_mount(path)
    if name in memory:
        return memory_empty_dir_mount(path, name, read_only)
    assert name in disk
    return block_empty_dir_mount(path, read_only)


def container_commands(loc: Located) -> dict[str, list[list[str]]]:
    """Image -> the argvs its containers start with, for images whose every container sets
    `command`.

    One container of an image without `command` leaves that image unpinned: its argv comes
    from the image config, which only the registry knows, and pinning the others would
    refuse it."""
    argvs: dict[str, list[list[str]]] = {}
    unpinnable: set[str] = set()
    for field, i, c in containers(loc.pod_spec):
        image = c.get("image", "")
        if not c.get("command"):
            unpinnable.add(image)
            continue
        try:
            # kubelet expands command/args with the env it has already expanded
            # (kubelet_pods.go makeEnvironmentVariables, then ExpandContainerCommandAndArgs).
            expanded = declared_env(_literal_env(loc, field, i, c), f"{field}[{i}]")
            env = dict(e.split("=", 1) for e in expanded)
            argv = kubernetes_argv(c["command"], c.get("args"), env)
        except ValueError as err:
            raise PodSpecError([f"{loc.field(field, i)}: {err}"]) from None
        if not argv or not argv[0]:
            # The agent policy pins argv[0] as the program (policies/agent.py _checked_argv).
            raise PodSpecError(
                [f"{loc.field(field, i)}.command: command[0] is empty: name the program to run"]
            )
        argvs.setdefault(image, []).append(argv)
    return {image: found for image, found in argvs.items() if image not in unpinnable}


def images(loc: Located) -> list[str]:
    return [c.get("image", "") for _, _, c in containers(loc.pod_spec)]
