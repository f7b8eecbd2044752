"""Kata agent request inputs, shaped exactly as the agent serialises them for its policy.

The shapes are genpolicy's captured requests (kata-containers 4.1.0
`src/tools/genpolicy/tests/policy/testdata`: `state/createcontainer` for the pause sandbox,
`createcontainer/env_vars` for a workload container, `copyfile` and `createsandbox`),
rewritten to a given workload: its namespace, pod name, container names, images, argv and env.
The judge tier (tests/conformance/test_agent_judge.py) feeds them to the agent's own policy
engine after deserialising them into `protocols::agent` types, which refuses any field name the
agent does not have; the OPA unit tests use the same builders.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any

from policies.agent import image_spellings
from policies.agent_container import DEFAULT_CAPS, DEFAULT_PATH

CID = "9c2d7e1f0a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5"
SANDBOX = "1f8e4b7c3a2d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7"
POD_UID = "31df313a-931f-4979-a405-cc3f3ccb6a56"
SHARED = "/run/kata-containers/shared/containers"
SA_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"

# containerd's masked paths as captured (the sandbox capture also masks powercap).
_MASKED = [
    "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
    "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware",
    "/sys/devices/virtual/powercap", "/proc/scsi",
]  # fmt: skip
_READONLY = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]
SYSCTLS = {"net.ipv4.ip_unprivileged_port_start": "0", "net.ipv4.ping_group_range": "0 2147483647"}


def container_id(*parts: str) -> str:
    """A deterministic 64-hex container id (containerd's ids are 64 lowercase hex)."""
    return hashlib.sha256("/".join(parts).encode()).hexdigest()


def shared_source(cid: str, name: str, salt: str = "") -> str:
    """`<cpath>/<cid>-<16 hex>-<name>`: how the runtime names a copied/shared file."""
    rand = hashlib.sha256(f"{cid}/{name}/{salt}".encode()).hexdigest()[:16]
    return f"{SHARED}/{cid}-{rand}-{name}"


def guest_pull(cid: str, source: str, annotations: dict[str, str]) -> dict[str, Any]:
    """The storage the Kata runtime builds for a guest-pulled rootfs: its metadata carries
    every container annotation (kata runtime `handleImageGuestPullBlockVolume`)."""
    meta = json.dumps({"metadata": annotations}, separators=(",", ":"), sort_keys=True)
    return {
        "driver": "image_guest_pull",
        "driver_options": [f"image_guest_pull={meta}"],
        "fs_group": None,
        "fstype": "overlay",
        "mount_point": f"/run/kata-containers/{cid}/rootfs",
        "options": [],
        "source": source,
    }


def _mount(dest: str, type_: str, source: str, options: list[str]) -> dict[str, Any]:
    return {"destination": dest, "options": options, "source": source, "type_": type_}


def _kernel_mounts() -> list[dict[str, Any]]:
    return [
        _mount("/proc", "proc", "proc", ["nosuid", "noexec", "nodev"]),
        _mount("/dev", "tmpfs", "tmpfs", ["nosuid", "strictatime", "mode=755", "size=65536k"]),
        _mount(
            "/dev/pts",
            "devpts",
            "devpts",
            ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"],
        ),
        _mount("/dev/mqueue", "mqueue", "mqueue", ["nosuid", "noexec", "nodev"]),
        _mount("/sys", "sysfs", "sysfs", ["nosuid", "noexec", "nodev", "ro"]),
    ]


def container_mounts(cid: str, service_account: bool = True) -> list[dict[str, Any]]:
    """A workload container's mounts (capture `createcontainer/env_vars`)."""
    rw = ["rbind", "rprivate", "rw"]
    mounts = [
        *_kernel_mounts(),
        _mount(
            "/sys/fs/cgroup", "cgroup", "cgroup", ["nosuid", "noexec", "nodev", "relatime", "ro"]
        ),
        _mount("/etc/hosts", "bind", shared_source(cid, "hosts"), rw),
        _mount("/dev/termination-log", "bind", shared_source(cid, "termination-log"), rw),
        _mount("/etc/hostname", "bind", shared_source(cid, "hostname"), rw),
        _mount("/etc/resolv.conf", "bind", shared_source(cid, "resolv.conf"), rw),
        _mount("/dev/shm", "bind", "/run/kata-containers/sandbox/shm", ["rbind"]),
    ]
    if service_account:
        mounts.append(
            _mount(
                SA_DIR, "bind", shared_source(cid, "serviceaccount"), ["rbind", "rprivate", "ro"]
            )
        )
    return mounts


def _caps() -> dict[str, list[str]]:
    caps = list(DEFAULT_CAPS)
    return {
        "Ambient": [],
        "Bounding": caps,
        "Effective": caps,
        "Inheritable": [],
        "Permitted": list(caps),
    }


def _linux(cgroups_path: str) -> dict[str, Any]:
    return {
        "CgroupsPath": cgroups_path,
        "Devices": [],
        "GIDMappings": [],
        "IntelRdt": None,
        "MaskedPaths": list(_MASKED),
        "MountLabel": "",
        "Namespaces": [
            {"Path": "", "Type": "ipc"},
            {"Path": "", "Type": "uts"},
            {"Path": "", "Type": "mount"},
        ],
        "ReadonlyPaths": list(_READONLY),
        "Resources": {
            "BlockIO": None,
            "CPU": {
                "Cpus": "",
                "Mems": "",
                "Period": 100000,
                "Quota": 0,
                "RealtimePeriod": 0,
                "RealtimeRuntime": 0,
                "Shares": 2,
            },
            "Devices": [],
            "HugepageLimits": [],
            "Memory": None,
            "Network": None,
            "Pids": None,
        },
        "RootfsPropagation": "",
        "Seccomp": None,
        "Sysctl": dict(SYSCTLS),
        "UIDMappings": [],
    }


def _process(
    args: Sequence[str], env: Sequence[str], cwd: str, uid: int, gid: int | None = None
) -> dict[str, Any]:
    gid = uid if gid is None else gid
    return {
        "ApparmorProfile": "cri-containerd.apparmor.d",
        "Args": list(args),
        "Capabilities": _caps(),
        "ConsoleSize": None,
        "Cwd": cwd,
        "Env": list(env),
        "NoNewPrivileges": False,
        "OOMScoreAdj": 994,
        "Rlimits": [],
        "SelinuxLabel": "",
        "Terminal": False,
        "User": {"AdditionalGids": [gid], "GID": gid, "UID": uid, "Username": ""},
    }


def _sandbox_annotations(namespace: str, pod: str, sandbox: str) -> dict[str, str]:
    return {
        "io.kubernetes.cri.sandbox-id": sandbox,
        "io.kubernetes.cri.sandbox-name": pod,
        "io.kubernetes.cri.sandbox-namespace": namespace,
        "io.kubernetes.cri.sandbox-uid": POD_UID,
    }


def _create(
    cid: str,
    annotations: dict[str, str],
    source: str,
    process: dict[str, Any],
    mounts: list[dict[str, Any]],
    hostname: str,
    readonly_root: bool,
) -> dict[str, Any]:
    return {
        "OCI": {
            "Annotations": annotations,
            "Hooks": None,
            "Hostname": hostname,
            "Linux": _linux(f"/kubepods/burstable/pod{POD_UID}/{cid}"),
            "Mounts": mounts,
            "Process": process,
            "Root": {"Path": f"/run/kata-containers/{cid}/rootfs", "Readonly": readonly_root},
            "Solaris": None,
            "Version": "1.1.0",
            "Windows": None,
        },
        "container_id": cid,
        "devices": [],
        "exec_id": cid,
        "sandbox_pidns": False,
        "shared_mounts": [],
        "stderr_port": 0,
        "stdin_port": 0,
        "stdout_port": 0,
        "storages": [guest_pull(cid, source, annotations)],
        "string_user": None,
    }


def sandbox_request(
    namespace: str = "default", pod: str = "app-7d9c-xk2lp", sandbox: str = SANDBOX
) -> dict[str, Any]:
    """The pause container as the agent sees it (capture `state/createcontainer`): no
    image-name annotation, container-type `sandbox` / `pod_sandbox`, guest-pull source
    `pause`, read-only rootfs, only /dev/shm and resolv.conf bound in."""
    annotations = {
        "io.katacontainers.pkg.oci.bundle_path": (
            f"/run/containerd/io.containerd.runtime.v2.task/k8s.io/{sandbox}"
        ),
        "io.katacontainers.pkg.oci.container_type": "pod_sandbox",
        "io.kubernetes.cri.container-type": "sandbox",
        "io.kubernetes.cri.podsandbox.image-name": "registry.k8s.io/pause:3.10",
        "io.kubernetes.cri.sandbox-cpu-period": "100000",
        "io.kubernetes.cri.sandbox-cpu-quota": "0",
        "io.kubernetes.cri.sandbox-cpu-shares": "102",
        "io.kubernetes.cri.sandbox-log-directory": f"/var/log/pods/{namespace}_{pod}_{POD_UID}",
        "io.kubernetes.cri.sandbox-memory": "0",
        **_sandbox_annotations(namespace, pod, sandbox),
    }
    mounts = [
        *_kernel_mounts(),
        _mount("/dev/shm", "bind", "/run/kata-containers/sandbox/shm", ["rbind"]),
        _mount(
            "/etc/resolv.conf",
            "bind",
            shared_source(sandbox, "resolv.conf"),
            ["rbind", "ro", "nosuid", "nodev", "noexec"],
        ),
    ]
    process = _process(["/pause"], [f"PATH={DEFAULT_PATH}"], "/", 65535)
    process["NoNewPrivileges"] = True
    process["OOMScoreAdj"] = -998
    return _create(sandbox, annotations, "pause", process, mounts, pod, True)


def presented_image(image: str) -> str:
    """The image name containerd puts in the annotation: a `name:tag@digest` without its tag."""
    return min(image_spellings(image), key=lambda s: (":" in s.split("@")[0].rsplit("/", 1)[-1], s))


def container_env(pinned: Sequence[str], pod: str) -> list[str]:
    """The env a container receives: image PATH, containerd's HOSTNAME, the pod spec's env."""
    names = {e.split("=", 1)[0] for e in pinned}
    out = [] if "PATH" in names else [f"PATH={DEFAULT_PATH}"]
    return [*out, f"HOSTNAME={pod}", *pinned]


def create_request(
    image_name: str,
    sources: list[str] | None = None,
    ctype: str = "container",
    cid: str = CID,
    args: list[str] | None = None,
    *,
    name: str = "app",
    env: Sequence[str] = (),
    namespace: str = "default",
    pod: str = "app-7d9c-xk2lp",
    sandbox: str = SANDBOX,
    cwd: str = "/",
    uid: int = 0,
    gid: int | None = None,
    read_only_root: bool = False,
    hardened: bool = True,
) -> dict[str, Any]:
    """A workload container's CreateContainerRequest (capture `createcontainer/env_vars`).

    `hardened`: the container of a pod spec with coco's hardened defaults
    (components/hardening.py): `allowPrivilegeEscalation: false` gives `NoNewPrivileges`,
    `capabilities.drop: [ALL]` empty capability sets (containerd's WithCapabilities, as
    genpolicy `pod.rs` apply_capabilities models it) and `automountServiceAccountToken:
    false` no service-account mount; False: containerd's defaults for a bare pod spec.

    `env` is the pod spec's env (`NAME=value`, after kubelet's expansion); the image's PATH
    and containerd's HOSTNAME are added as the runtime adds them. `sources`: the guest-pull
    source (default: the image name); `ctype="sandbox"` gives the pause sandbox instead.
    """
    if ctype == "sandbox":
        pause = sandbox_request(namespace, pod, cid)
        if sources is not None:
            meta = pause["OCI"]["Annotations"]
            pause["storages"] = [guest_pull(cid, s, meta) for s in sources]
        return pause
    annotations = {
        "io.katacontainers.pkg.oci.bundle_path": (
            f"/run/containerd/io.containerd.runtime.v2.task/k8s.io/{cid}"
        ),
        "io.katacontainers.pkg.oci.container_type": "pod_container",
        "io.kubernetes.cri.container-name": name,
        "io.kubernetes.cri.container-type": ctype,
        "io.kubernetes.cri.image-name": image_name,
        **_sandbox_annotations(namespace, pod, sandbox),
    }
    process = _process(args or ["/app/server"], container_env(env, pod), cwd, uid, gid)
    mounts = container_mounts(cid, service_account=not hardened)
    if hardened:
        process["NoNewPrivileges"] = True
        process["Capabilities"] = {k: [] for k in process["Capabilities"]}
    request = _create(cid, annotations, image_name, process, mounts, "", read_only_root)
    if sources is not None:
        request["storages"] = [guest_pull(cid, s, annotations) for s in sources]
    return request


def create_sandbox_request(sandbox: str = SANDBOX, pod: str = "app-7d9c-xk2lp") -> dict[str, Any]:
    """CreateSandboxRequest (capture `createsandbox`, with the /dev/shm storage of
    genpolicy-settings.json `sandbox.storages`)."""
    return {
        "dns": [],
        "guest_hook_path": "",
        "hostname": pod,
        "kernel_modules": [],
        "sandbox_id": sandbox,
        "sandbox_pidns": False,
        "storages": [
            {
                "driver": "ephemeral",
                "driver_options": [],
                "fs_group": None,
                "fstype": "tmpfs",
                "mount_point": "/run/kata-containers/sandbox/shm",
                "options": ["noexec", "nosuid", "nodev", "mode=1777", "size=67108864"],
                "source": "shm",
            }
        ],
    }


def copy_file(path: str, file_type: str = "Regular", target: str | None = None) -> dict[str, Any]:
    """CopyFileRequest as the policy sees it (the agent's PolicyCopyFileRequest: no data)."""
    modes = {"Regular": 0o100644, "Directory": 0o40755, "Symlink": 0o120777}
    out: dict[str, Any] = {"path": path, "file_type": file_type, "file_mode": modes[file_type]}
    if target is not None:
        out["symlink_target"] = target
    return out


def pod_copy_files(cid: str) -> list[dict[str, Any]]:
    """What the runtime copies for one container under shared_fs=none: kubelet's files and the
    service-account token's projected volume (a directory with `..data` symlinked to a
    timestamped directory, and each key a symlink into `..data`)."""
    sa = shared_source(cid, "serviceaccount")
    stamp = "..2026_11_30_11_00_00.123456789"
    out = [copy_file(shared_source(cid, n)) for n in ("hosts", "hostname", "resolv.conf")]
    out.append(copy_file(shared_source(cid, "termination-log")))
    out += [
        copy_file(sa, "Directory"),
        copy_file(f"{sa}/{stamp}", "Directory"),
        *(copy_file(f"{sa}/{stamp}/{k}") for k in ("ca.crt", "namespace", "token")),
        copy_file(f"{sa}/..data", "Symlink", stamp),
        *(
            copy_file(f"{sa}/{k}", "Symlink", f"..data/{k}")
            for k in ("ca.crt", "namespace", "token")
        ),
    ]
    return out


def exec_request(args: list[str], cid: str = CID) -> dict[str, Any]:
    """ExecProcessRequest (capture `state/execprocess`)."""
    return {
        "container_id": cid,
        "exec_id": "a1b2c3",
        "string_user": None,
        "process": {
            "Args": args,
            "Capabilities": None,
            "ConsoleSize": None,
            "Cwd": "/",
            "Env": [f"PATH={DEFAULT_PATH}", "HOSTNAME=app-7d9c-xk2lp"],
            "NoNewPrivileges": False,
            "OOMScoreAdj": 0,
            "Rlimits": [],
            "SelinuxLabel": "",
            "Terminal": False,
            "User": {"AdditionalGids": [0], "GID": 0, "UID": 0, "Username": ""},
        },
    }


def as_spec_says(
    request: dict[str, Any], container: dict[str, Any], pod_spec: dict[str, Any]
) -> dict[str, Any]:
    """`request` (built with `hardened=False`) changed as containerd and the kubelet change
    it for this container of this pod spec: `allowPrivilegeEscalation: false` sets
    `NoNewPrivileges`; `capabilities.drop` removes capabilities from every set (`ALL`: all
    of them); `automountServiceAccountToken: false` leaves out the token's mount."""
    security = container.get("securityContext") or {}
    process = request["OCI"]["Process"]
    if security.get("allowPrivilegeEscalation") is False:
        process["NoNewPrivileges"] = True
    drop = {f"CAP_{c}" for c in (security.get("capabilities") or {}).get("drop") or []}
    for key, caps in process["Capabilities"].items():
        process["Capabilities"][key] = (
            [] if "CAP_ALL" in drop else [c for c in caps if c not in drop]
        )
    if pod_spec.get("automountServiceAccountToken") is False:
        mounts = request["OCI"]["Mounts"]
        request["OCI"]["Mounts"] = [m for m in mounts if m["destination"] != SA_DIR]
    return request
