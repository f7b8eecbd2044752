"""What a container is, pinned in the agent policy: env, mounts, cwd, capabilities, sysctls.

The image digest and argv say which code runs; everything else in the OCI spec the host sends
decides what that code sees and may do. A host that can add a bind mount from the shared
directory over the binary, set `LD_PRELOAD`, add a capability or drop a read-only flag runs
its own code in the TEE with the pinned image and argv. So the restrictive policy compares
the whole `CreateContainerRequest` against what the pod spec coco renders implies, the way
genpolicy's `rules.rego` does (kata-containers 4.1.0 `src/tools/genpolicy/rules.rego` and
`genpolicy-settings.json`), but from a small readable table instead of a generated one.

What the runtime adds to every container, as the agent receives it (captured requests in
genpolicy's `tests/policy/testdata/createcontainer/*/testcases.json` and
`state/createcontainer`): the mounts in `CONTAINER_MOUNTS` / `SANDBOX_MOUNTS`, whose shared
sources are `/run/kata-containers/shared/containers/<container id>-<16 hex>-<name>`
(genpolicy's `sfprefix`), the env entries `HOSTNAME` (containerd) and the service links
(kubelet, when `enableServiceLinks` is on), the default capability set and masked paths of
containerd, and the two sysctls containerd sets for unprivileged ports and ping.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping, Sequence

from pydantic import BaseModel, ConfigDict

CPATH = r"/run/kata-containers/shared/containers(?:/passthrough)?"
"""genpolicy-settings.json `common.cpath`: where the runtime puts files it copies or shares."""

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
"""containerd's default PATH, which the image config of most images repeats."""

SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
TERMINATION_LOG = "/dev/termination-log"

SHARED_FILES = ("hosts", "hostname", "resolv.conf", "termination-log", "serviceaccount")
"""The shared-directory entries the runtime creates for a pod coco renders (no volumes): the
kubelet-managed files and the service-account token's projected volume."""

DEFAULT_CAPS = (
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
)
"""containerd's default capabilities (genpolicy-settings.json `common.default_caps`); a
privileged container or an added capability has more."""

MASKED_PATHS = (
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/sys/firmware",
    "/proc/scsi",
)
"""containerd's masked paths (genpolicy `pause_container.Linux.MaskedPaths`); a privileged
container has none."""

READONLY_PATHS = ("/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger")

SYSCTLS = {"net.ipv4.ip_unprivileged_port_start": "0", "net.ipv4.ping_group_range": "0 2147483647"}
"""The sysctls containerd sets in every pod (genpolicy-settings.json `Linux.Sysctl`)."""

SERVICE_LINK_ENV = (
    # kubelet's service links (genpolicy-settings.json request_defaults allow_env_regex).
    r"^[A-Z](?:[A-Z0-9_]{0,61}[A-Z0-9])?_PORT_[0-9]{1,5}_(TCP|UDP)=(tcp|udp)://[0-9.]{7,15}:[0-9]{1,5}$",
    r"^[A-Z](?:[A-Z0-9_]{0,61}[A-Z0-9])?_PORT_[0-9]{1,5}_(TCP|UDP)_PROTO=(tcp|udp)$",
    r"^[A-Z](?:[A-Z0-9_]{0,61}[A-Z0-9])?_PORT_[0-9]{1,5}_(TCP|UDP)_PORT=[0-9]{1,5}$",
    r"^[A-Z](?:[A-Z0-9_]{0,61}[A-Z0-9])?_PORT_[0-9]{1,5}_(TCP|UDP)_ADDR=[0-9.]{7,15}$",
    r"^[A-Z](?:[A-Z0-9_]{0,61}[A-Z0-9])?_SERVICE_HOST=[0-9.]{7,15}$",
    r"^[A-Z](?:[A-Z0-9_]{0,61}[A-Z0-9])?_SERVICE_PORT=[0-9]{1,5}$",
    r"^[A-Z](?:[A-Z0-9_]{0,61}[A-Z0-9])?_SERVICE_PORT_[A-Z0-9_]+=[0-9]{1,5}$",
    r"^[A-Z](?:[A-Z0-9_]{0,61}[A-Z0-9])?_PORT=(tcp|udp)://[0-9.]{7,15}:[0-9]{1,5}$",
)
HOSTNAME_ENV = r"^HOSTNAME=[a-zA-Z0-9_.\-]+$"
"""containerd sets HOSTNAME to the pod's hostname (genpolicy `dns_label`)."""


class MountPin(BaseModel):
    """One OCI mount a container may have. `source` is a literal, or a shared-dir entry."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    destination: str
    type: str
    source: str | None = None
    shared: str | None = None
    """Name of the shared-directory entry (`<cid>-<16 hex>-<shared>`) the source must be."""
    options: tuple[str, ...]
    """Every option the mount may carry (the runtime varies these between releases)."""
    required: tuple[str, ...] = ()
    """Options that must be present: `ro` where the content must not be writable."""
    block: bool = False
    """The source must be the guest mount point of one of the request's encrypted block
    storages (a disk emptyDir, `block_empty_dir_mount`)."""


def _m(
    dest: str,
    type_: str,
    options: Sequence[str],
    *,
    source: str | None = None,
    shared: str | None = None,
    required: Sequence[str] = (),
) -> MountPin:
    return MountPin(
        destination=dest,
        type=type_,
        source=source,
        shared=shared,
        options=tuple(options),
        required=tuple(required),
    )


_KERNEL_MOUNTS = (
    _m("/proc", "proc", ["nosuid", "noexec", "nodev"], source="proc"),
    _m("/dev", "tmpfs", ["nosuid", "strictatime", "mode=755", "size=65536k"], source="tmpfs"),
    _m(
        "/dev/pts",
        "devpts",
        ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"],
        source="devpts",
    ),
    _m("/dev/mqueue", "mqueue", ["nosuid", "noexec", "nodev"], source="mqueue"),
    _m("/sys", "sysfs", ["nosuid", "noexec", "nodev", "ro"], source="sysfs", required=["ro"]),
    _m("/dev/shm", "bind", ["rbind"], source="/run/kata-containers/sandbox/shm"),
)
_BIND = ["rbind", "rprivate", "rw", "ro", "nosuid", "nodev", "noexec"]

SANDBOX_MOUNTS = (
    *_KERNEL_MOUNTS,
    _m("/etc/resolv.conf", "bind", _BIND, shared="resolv.conf", required=["ro"]),
)
"""The pause container's mounts (captured in genpolicy's `state/createcontainer`)."""

CONTAINER_MOUNTS = (
    *_KERNEL_MOUNTS,
    _m(
        "/sys/fs/cgroup",
        "cgroup",
        ["nosuid", "noexec", "nodev", "relatime", "ro", "nsdelegate", "memory_recursiveprot"],
        source="cgroup",
        required=["ro"],
    ),
    _m("/etc/hosts", "bind", _BIND, shared="hosts"),
    _m(TERMINATION_LOG, "bind", _BIND, shared="termination-log"),
    _m("/etc/hostname", "bind", _BIND, shared="hostname"),
    _m("/etc/resolv.conf", "bind", _BIND, shared="resolv.conf"),
    _m(
        SERVICE_ACCOUNT_DIR,
        "bind",
        ["rbind", "rprivate", "ro"],
        shared="serviceaccount",
        required=["ro"],
    ),
)
"""A workload container's mounts for the pod spec coco renders: no volumes, the default
service account's token automounted (captured in genpolicy's `createcontainer/env_vars`)."""


def image_volume(destination: str) -> MountPin:
    """The mount containerd adds for a VOLUME the image config declares: a bind from the
    shared dir entry named after its last path segment, read-write (genpolicy
    `mount_and_storage.rs` get_image_mount_and_storage, genpolicy-settings.json
    `volumes.image_volume`)."""
    name = destination.rstrip("/").rsplit("/", 1)[-1]
    return _m(destination, "bind", ["rbind", "rprivate", "rw"], shared=name)


HOST_FILE_VOLUMES = ("configMap", "secret", "projected", "downwardAPI")
"""Volume kinds whose files kubelet writes on the host and the runtime copies into the
shared dir (CopyFile under shared_fs=none; kata runtime-rs `volume/share_fs_volume.rs` copies
the directory and watches the four `kubernetes.io~{configmap,secret,projected,downward-api}`
kinds for updates): each volumeMount is a read-only bind from the shared-dir entry named
after the mount path's last segment (genpolicy `mount_and_storage.rs`
get_config_map_mount_and_storage, get_shared_bind_mount and get_downward_api_mount, all
"rbind", "rprivate", "ro"; genpolicy-settings.json `volumes.configMap`). kubelet mounts these
read-only whatever the pod spec says (AtomicWriter volumes), so `ro` is always required. A
downwardAPI volume's files (labels, annotations, names, resource limits) are host data like a
ConfigMap's: the API server and kubelet choose them and may rewrite them while the pod runs."""


def host_file_volume_mount(destination: str) -> MountPin:
    """The mount a configMap/secret/projected volumeMount becomes in the OCI spec."""
    name = destination.rstrip("/").rsplit("/", 1)[-1]
    return _m(destination, "bind", ["rbind", "rprivate", "ro"], shared=name, required=["ro"])


EPHEMERAL_DIR = "/run/kata-containers/sandbox/ephemeral"
"""Where the agent mounts the guest tmpfs of a memory emptyDir (kata runtime-rs
`volume/ephemeral_volume.rs`, kata_types `KATA_EPHEMERAL_VOLUME_TYPE`)."""


def memory_empty_dir_mount(destination: str, volume: str, read_only: bool) -> MountPin:
    """The mount a `medium: Memory` emptyDir volumeMount becomes: a bind from the guest tmpfs
    the agent creates for the volume (its kubelet directory's last segment is the volume
    name), with containerd's `rbind, rprivate` and `ro` or `rw` as the pod spec says (genpolicy
    `mount_and_storage.rs` get_guest_empty_dir_mount_and_storage, genpolicy-settings.json
    `volumes.emptyDir_memory`). Guest memory never reaches the host."""
    access = "ro" if read_only else "rw"
    return _m(
        destination,
        "bind",
        ["rbind", "rprivate", access],
        source=f"{EPHEMERAL_DIR}/{volume}",
        required=[access] if read_only else (),
    )


STORAGE_DIR = "/run/kata-containers/sandbox/storage"
"""Where the agent mounts a block storage: `<dir>/<base64url of the storage source>` (kata
runtime-rs `volume/block_emptydir_volume.rs`; genpolicy-settings.json `common.spath` and
`$(b64_device_id)`)."""

BLOCK_EMPTY_DIR_DRIVER_OPTIONS = ("encryption_key=ephemeral", "create_filesystem")
"""A disk emptyDir's storage under `emptydir_mode = "block-encrypted"`, the default of kata
4.1.0's CoCo runtime classes (runtime-rs Makefile `DEFEMPTYDIRMODE_COCO`; genpolicy-settings.json
`cluster_config.emptydir_type` and `volumes.emptyDir_encrypted`): the runtime plugs a fresh
sparse disk image and the agent has the CDH format it as LUKS2 with a random key that never
leaves the guest (agent `storage/block_handler.rs` `cdh_secure_mount("block-device", ...,
"luks2", ...)`), so the host only ever holds ciphertext and cannot seed the volume's content."""


def block_empty_dir_mount(destination: str, read_only: bool) -> MountPin:
    """The mount a disk emptyDir volumeMount becomes under block-encrypted emptyDirs: a bind
    from the mount point of the guest-encrypted block storage, `rbind, rprivate` and `ro` or
    `rw` as the pod spec says (genpolicy `mount_and_storage.rs`
    get_guest_empty_dir_mount_and_storage with `emptyDir_encrypted`; rules.rego allow_mount 2
    admits exactly a source that is a blk/scsi storage's mount point)."""
    access = "ro" if read_only else "rw"
    return _m(
        destination,
        "bind",
        ["rbind", "rprivate", access],
        required=[access] if read_only else (),
    ).model_copy(update={"block": True})


class ContainerPin(BaseModel):
    """What the policy pins for one container of the pod spec, by container name."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    env: tuple[str, ...] = ()
    """`NAME=value` entries from the pod spec after kubelet's expansion: each must be present
    exactly, and no other entry may use one of these names."""
    working_dir: str | None = None
    """The pod spec's `workingDir`; None: the image's WORKDIR (any absolute path, no `..`)."""
    uid: int | None = None
    """`runAsUser`; None: the image's USER (not pinned)."""
    gid: int | None = None
    """`runAsGroup`; None: the image's group (not pinned)."""
    read_only_root: bool = False
    """`readOnlyRootFilesystem`: the OCI `Root.Readonly` the container must have."""
    sealed_env: tuple[str, ...] = ()
    """Anchored regexes, one per sealed-secret env var (`policies/sealed.py`
    `sealed_env_pattern`): an entry matching each must be present, and it is the only value
    that name may have. The value comes from a Secret (`secretKeyRef`), so the pod spec does
    not say it; the pattern pins the sealed reference and key id, not the signature."""
    volume_mounts: tuple[MountPin, ...] = ()
    """The container's volumeMounts of host-file volumes (`host_file_volume_mount`): these
    destinations, and no others, besides the runtime's `CONTAINER_MOUNTS`."""
    ephemeral_volumes: tuple[str, ...] = ()
    """Names of the memory emptyDirs the container mounts: each may come with its guest-tmpfs
    storage in the CreateContainerRequest."""
    block_volumes: int = 0
    """How many disk-emptyDir volumeMounts the container has: at most that many encrypted
    block storages may come with its CreateContainerRequest (the runtime sends one per
    mount, genpolicy's captured `createcontainer/volumes/emptydir`)."""
    fs_group: int | None = None
    """The pod's `securityContext.fsGroup` (None for 0 or unset): the `fs_group.group_id` each
    block storage must carry (kubelet gives the emptyDir directory that group, and the
    runtime copies the directory's group, `block_emptydir_volume.rs`), or none at all."""
    no_new_privileges: bool = False
    """`allowPrivilegeEscalation: false` (components/hardening.py sets it by default): the OCI
    `Process.NoNewPrivileges` must be true (genpolicy `pod.rs` get_process_fields derives it
    from the same field, and rules.rego allow_process_common compares it). False: either."""
    capabilities: tuple[str, ...] | None = None
    """The capabilities `securityContext.capabilities` leaves (`drop: [ALL]`: none, as
    genpolicy `pod.rs` apply_capabilities clears the Bounding, Permitted and Effective sets):
    those sets may hold only these. None: containerd's defaults (`DEFAULT_CAPS`)."""
    service_account_token: bool = True
    """False when the pod spec has `automountServiceAccountToken: false`: the token's mount
    (`SERVICE_ACCOUNT_DIR`) is refused, so the host cannot hand the container a token."""


def _rego(value: object) -> str:
    return json.dumps(value, ensure_ascii=True)


def _mount_table(mounts: Sequence[MountPin]) -> str:
    lines = []
    for m in mounts:
        entry = {
            "type": m.type,
            "source": m.source,
            "shared": m.shared,
            "options": sorted(m.options),
            "required": sorted(m.required),
        }
        lines.append(f"\t{_rego(m.destination)}: {json.dumps(entry, sort_keys=True)},\n")
    return "{\n" + "".join(lines) + "}"


def render_container_rules(
    pins: Mapping[str, ContainerPin],
    image_env: Mapping[str, str],
    image_env_any: Sequence[str],
    service_links: bool,
    devices: bool,
    image_volumes: Sequence[str] = (),
) -> str:
    """Rego for the container-closure checks, used by the CreateContainerRequest rules."""
    env_regex = [HOSTNAME_ENV, *(SERVICE_LINK_ENV if service_links else ())]
    pin_lines = "".join(
        f"\t{_rego(name)}: {json.dumps(pin.model_dump(mode='json'), sort_keys=True)},\n"
        for name, pin in sorted(pins.items())
    )
    image_env_entries = sorted(f"{k}={v}" for k, v in image_env.items())
    parts = [
        "# Per container (by io.kubernetes.cri.container-name): env from the pod spec and",
        "# working dir. A policy rendered without a pod spec pins no pod env.",
        "container_pins := {\n" + pin_lines + "}" if pins else "container_pins := {}",
        "",
        "container_pin := container_pins[container_name] if {",
        "\tcount(container_pins) > 0",
        "}",
        "",
        'container_pin := {"env": [], "working_dir": null, "uid": null, "gid": null, '
        '"read_only_root": false, "sealed_env": [], "volume_mounts": [], '
        '"ephemeral_volumes": [], "block_volumes": 0, "fs_group": null, '
        '"no_new_privileges": false, "capabilities": null, "service_account_token": true} if {',
        "\tcount(container_pins) == 0",
        "}",
        "",
        'container_name := input.OCI.Annotations["io.kubernetes.cri.container-name"]',
        "",
        "# Env entries the image config sets, exactly; names that may have any value.",
        f"image_env := {_rego(image_env_entries)}",
        "",
        f"image_env_any := {_rego(sorted(image_env_any))}",
        "",
        "# Entries the runtime adds: HOSTNAME (containerd), service links (kubelet).",
        "runtime_env := [\n" + "".join(f"\t{_rego(r)},\n" for r in env_regex) + "]",
        "",
        f"devices_allowed := {'true' if devices else 'false'}",
        "",
        _container_mounts(tuple(image_volumes)),
        "",
        _static_rules(),
    ]
    return "\n".join(parts)


@functools.cache
def _container_mounts(image_volumes: tuple[str, ...]) -> str:
    mounts = [*CONTAINER_MOUNTS, *(image_volume(d) for d in image_volumes)]
    return f"container_mounts := {_mount_table(mounts)}"


@functools.cache
def _static_rules() -> str:
    """The tables and rules every policy shares, rendered once per process (a fleet renders
    the same text for each workload)."""
    parts = [
        f"sandbox_mounts := {_mount_table(SANDBOX_MOUNTS)}",
        f"default_caps := {_rego(list(DEFAULT_CAPS))}",
        f"masked_paths := {_rego(list(MASKED_PATHS))}",
        f"readonly_paths := {_rego(list(READONLY_PATHS))}",
        f"allowed_sysctls := {json.dumps(SYSCTLS, sort_keys=True)}",
        _CLOSURE_RULES,
    ]
    return "\n\n".join(parts)


_CLOSURE_RULES = r"""# Everything but image, argv, env and mounts, for the sandbox and every
# container.
oci_closed if {
	input.sandbox_pidns == false
	no_oci_hooks
	count(input.shared_mounts) == 0
	devices_closed
	regex.match("^[a-z0-9]{64}$", input.container_id)
	input.OCI.Root.Path == rootfs_path
	caps_closed(input.OCI.Process.Capabilities)
	every p in masked_paths {
		p in input.OCI.Linux.MaskedPaths
	}
	every p in readonly_paths {
		p in input.OCI.Linux.ReadonlyPaths
	}
	every k, v in input.OCI.Linux.Sysctl {
		allowed_sysctls[k] == v
	}
	termination_path_closed
}

rootfs_path := concat("/", ["/run/kata-containers", input.container_id, "rootfs"])

devices_closed if {
	count(input.devices) == 0
	count(input.OCI.Linux.Devices) == 0
}

devices_closed if {
	devices_allowed
}

caps_closed(caps) if {
	count(caps.Ambient) == 0
	count(caps.Inheritable) == 0
	every caps_set in [caps.Bounding, caps.Effective, caps.Permitted] {
		every cap in caps_set {
			cap in default_caps
		}
	}
}

# GetDiagnosticDataRequest reads the mount source behind this annotation.
termination_path_closed if {
	not input.OCI.Annotations["io.kubernetes.container.terminationMessagePath"]
}

termination_path_closed if {
	termination_path := "io.kubernetes.container.terminationMessagePath"
	input.OCI.Annotations[termination_path] == "/dev/termination-log"
}

# Mounts: only the listed destinations (the table's, and the container's own volume mounts),
# each at most once, with its type, source and options.
mounts_closed(table, volume_mounts) if {
	destinations := [m.destination | some m in input.OCI.Mounts]
	count(destinations) == count({d | some d in destinations})
	every m in input.OCI.Mounts {
		mount_listed(table, volume_mounts, m)
	}
}

mount_listed(table, _, m) if {
	mount_allowed(table[m.destination], m)
}

mount_listed(_, volume_mounts, m) if {
	some pin in volume_mounts
	pin.destination == m.destination
	mount_allowed(pin, m)
}

mount_allowed(pin, m) if {
	m.type_ == pin.type
	mount_source_allowed(pin, m.source)
	every o in m.options {
		o in pin.options
	}
	every o in pin.required {
		o in m.options
	}
}

mount_source_allowed(pin, source) if {
	pin.source != null
	source == pin.source
}

mount_source_allowed(pin, source) if {
	pin.block == true
	some s in input.storages
	s.driver in {"blk", "scsi"}
	s.mount_point == source
}

mount_source_allowed(pin, source) if {
	pin.shared != null
	prefix := concat("", ["^@CPATH@/(watchable/)?", input.container_id, "-[a-z0-9]{16}-"])
	regex.match(concat("", [prefix, regex_escape(pin.shared), "$"]), source)
}

regex_escape(s) := replace(s, ".", "\\.")

# Env: every pod-spec entry exactly; other entries only from the image config or the runtime.
env_closed(pinned) if {
	every e in pinned {
		e in input.OCI.Process.Env
	}
	pinned_names := {split(e, "=")[0] | some e in pinned}
	every e in input.OCI.Process.Env {
		env_entry_allowed(e, pinned, pinned_names)
	}
}

env_entry_allowed(e, pinned, _) if {
	e in pinned
}

env_entry_allowed(e, _, pinned_names) if {
	not split(e, "=")[0] in pinned_names
	env_unpinned_allowed(e)
}

env_unpinned_allowed(e) if {
	e in image_env
}

env_unpinned_allowed(e) if {
	some p in container_pin.sealed_env
	regex.match(p, e)
}

# Sealed secrets: each pinned sealed reference is present (the CDH unseals it in the guest).
sealed_env_closed(patterns) if {
	every p in patterns {
		some e in input.OCI.Process.Env
		regex.match(p, e)
	}
}

env_unpinned_allowed(e) if {
	split(e, "=")[0] in image_env_any
}

env_unpinned_allowed(e) if {
	some r in runtime_env
	regex.match(r, e)
}

# User and read-only root: pinned where the pod spec sets them (runAsUser, runAsGroup,
# readOnlyRootFilesystem); the image's USER otherwise.
user_closed(pin) if {
	id_closed(pin.uid, input.OCI.Process.User.UID)
	id_closed(pin.gid, input.OCI.Process.User.GID)
	input.OCI.Root.Readonly == pin.read_only_root
}

id_closed(want, _) if {
	want == null
}

id_closed(want, have) if {
	want != null
	have == want
}

# Privileges: pinned where the pod spec sets them (allowPrivilegeEscalation: false ->
# NoNewPrivileges; capabilities.drop -> the capabilities that remain), as genpolicy does.
privileges_closed(pin) if {
	no_new_privileges_closed(pin.no_new_privileges)
	pinned_caps_closed(pin.capabilities, input.OCI.Process.Capabilities)
}

no_new_privileges_closed(want) if {
	want == false
}

no_new_privileges_closed(want) if {
	want == true
	input.OCI.Process.NoNewPrivileges == true
}

pinned_caps_closed(allowed, _) if {
	allowed == null
}

pinned_caps_closed(allowed, caps) if {
	allowed != null
	every caps_set in [caps.Bounding, caps.Effective, caps.Permitted] {
		every cap in caps_set {
			cap in allowed
		}
	}
}

# automountServiceAccountToken: false -> no service-account token mount at all.
service_account_closed(pin) if {
	pin.service_account_token == true
}

service_account_closed(pin) if {
	pin.service_account_token == false
	every m in input.OCI.Mounts {
		m.destination != "@SA_DIR@"
	}
}

cwd_closed(dir) if {
	dir != null
	input.OCI.Process.Cwd == dir
}

cwd_closed(dir) if {
	dir == null
	startswith(input.OCI.Process.Cwd, "/")
	not regex.match("(^|/)\\.\\.($|/)", input.OCI.Process.Cwd)
}
""".replace("@CPATH@", CPATH.replace("\\", "\\\\")).replace("@SA_DIR@", SERVICE_ACCOUNT_DIR)
