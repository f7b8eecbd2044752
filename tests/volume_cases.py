"""A pod spec with every volume kind the restrictive policy pins, the requests its pod makes,
and the tampered variants the agent policy must deny (shared by the OPA unit tests and the
judge tier).

Mount shapes follow genpolicy (kata-containers 4.1.0 `src/tools/genpolicy/src/
mount_and_storage.rs`):
- configMap/secret/projected/downwardAPI (get_config_map_mount_and_storage,
  get_shared_bind_mount, get_downward_api_mount; genpolicy-settings.json `volumes.configMap`):
  a bind from the shared-dir entry `<cid>-<16 hex>-<last segment of mountPath>`, options
  `rbind, rprivate, ro`, its files copied in with CopyFile;
- memory emptyDir (`volumes.emptyDir_memory`): a bind from the agent's guest tmpfs;
- disk emptyDir (`volumes.emptyDir_encrypted`, the CoCo default `emptydir_mode`): one blk
  storage per mount, encrypted in the guest, mounted at `<spath>/<base64url of the PCI path>`,
  and a bind from there; storage shape as genpolicy's captured
  `createcontainer/volumes/emptydir` and `security_context/fsgroup` requests.
The pod spec is genpolicy's captured `createcontainer/volumes/config_map/pod.yaml`, grown by a
secret, a projected, a downwardAPI volume and emptyDirs.
"""

from __future__ import annotations

import base64
import copy
from typing import Any

from agent_requests import copy_file, create_request, shared_source

from components import podspec
from components.confidential_pod import PodOptions, effective_policy
from policies.agent import render_agent_policy

IMAGE = "ghcr.io/acme/app@sha256:" + "a" * 64
FS_GROUP = 2000
RO = ["rbind", "rprivate", "ro"]
MOUNTS = {
    "/config": "config",
    "/var/run/creds": "creds",
    "/opt/bundle": "bundle",
    "/etc/podinfo": "podinfo",
}
"""mountPath -> the shared-dir entry the runtime names after its last segment."""


def pod() -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "dummy"},
        "spec": {
            "containers": [
                {
                    "name": "app",
                    "image": IMAGE,
                    "command": ["/app/server"],
                    "volumeMounts": [
                        {"name": "config", "mountPath": "/config", "readOnly": True},
                        {"name": "creds", "mountPath": "/var/run/creds"},
                        {"name": "bundle", "mountPath": "/opt/bundle"},
                        {"name": "scratch", "mountPath": "/scratch"},
                        {"name": "seed", "mountPath": "/seed", "readOnly": True},
                        {"name": "podinfo", "mountPath": "/etc/podinfo"},
                        {"name": "cache", "mountPath": "/cache"},
                        {"name": "cache", "mountPath": "/spool", "readOnly": True},
                    ],
                }
            ],
            "volumes": [
                {
                    "name": "config",
                    "configMap": {
                        "name": "config-map1",
                        "items": [{"key": "simple_value1", "path": "simple_value1"}],
                    },
                },
                {"name": "creds", "secret": {"secretName": "creds", "defaultMode": 0o400}},
                {
                    "name": "bundle",
                    "projected": {
                        "sources": [
                            {"configMap": {"name": "ca"}},
                            {"secret": {"name": "tls", "items": [{"key": "k", "path": "k"}]}},
                        ]
                    },
                },
                {"name": "scratch", "emptyDir": {"medium": "Memory", "sizeLimit": "64Mi"}},
                {"name": "seed", "emptyDir": {"medium": "Memory"}},
                {
                    "name": "podinfo",
                    "downwardAPI": {
                        "defaultMode": 0o444,
                        "items": [
                            {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
                            {
                                "path": "annotations",
                                "fieldRef": {"fieldPath": "metadata.annotations"},
                            },
                            {"path": "name", "fieldRef": {"fieldPath": "metadata.name"}},
                            {
                                "path": "cpu_limit",
                                "resourceFieldRef": {
                                    "containerName": "app",
                                    "resource": "limits.cpu",
                                },
                            },
                        ],
                    },
                },
                {"name": "cache", "emptyDir": {"sizeLimit": "1Gi"}},
            ],
            "securityContext": {"fsGroup": FS_GROUP},
        },
    }


def policy_text(obj: dict[str, Any] | None = None) -> str:
    """The restrictive policy coco renders for the pod (the workload path of components)."""
    options = PodOptions("kata-qemu-tdx")
    loc = podspec.check(obj or pod(), options.agent_policy)
    return render_agent_policy(effective_policy(loc, options))


EPHEMERAL = "/run/kata-containers/sandbox/ephemeral"
MEMORY = {"/scratch": ("scratch", "rw"), "/seed": ("seed", "ro")}
"""mountPath -> (memory emptyDir name, access): a bind from the guest tmpfs the agent makes
(kata runtime-rs `volume/ephemeral_volume.rs`; genpolicy `emptyDir_memory`)."""


def ephemeral_storage(name: str, options: list[str] | None = None) -> dict[str, Any]:
    return {
        "driver": "ephemeral",
        "driver_options": [],
        "fs_group": None,
        "fstype": "tmpfs",
        "mount_point": f"{EPHEMERAL}/{name}",
        "options": options or [],
        "source": "tmpfs",
    }


STORAGE_DIR = "/run/kata-containers/sandbox/storage"
BLOCK = {"/cache": ("02/00", "rw"), "/spool": ("03/00", "ro")}
"""mountPath -> (virtio-blk PCI path of its disk, access): one encrypted block storage per
disk-emptyDir mount (genpolicy's captured `createcontainer/volumes/emptydir`)."""


def block_mount_point(source: str) -> str:
    return f"{STORAGE_DIR}/{base64.urlsafe_b64encode(source.encode()).decode()}"


def block_storage(source: str, fs_group: int | None = FS_GROUP) -> dict[str, Any]:
    """A disk emptyDir's storage as kata runtime-rs `block_emptydir_volume.rs` sends it under
    `emptydir_mode = "block-encrypted"`."""
    return {
        "driver": "blk",
        "driver_options": ["encryption_key=ephemeral", "create_filesystem"],
        "fs_group": None if fs_group is None else {"group_id": fs_group},
        "fstype": "ext4",
        "mount_point": block_mount_point(source),
        "options": [],
        "shared": True,
        "source": source,
    }


def good_request() -> dict[str, Any]:
    req = create_request(IMAGE, [IMAGE], args=["/app/server"], name="app")
    cid = req["container_id"]
    for dest, entry in MOUNTS.items():
        req["OCI"]["Mounts"].append(
            {
                "destination": dest,
                "options": list(RO),
                "source": shared_source(cid, entry),
                "type_": "bind",
            }
        )
    for dest, (name, access) in MEMORY.items():
        req["OCI"]["Mounts"].append(
            {
                "destination": dest,
                "options": ["rbind", "rprivate", access],
                "source": f"{EPHEMERAL}/{name}",
                "type_": "bind",
            }
        )
    req["storages"] += [ephemeral_storage("scratch", ["fsgid=2000"]), ephemeral_storage("seed")]
    for dest, (source, access) in BLOCK.items():
        req["OCI"]["Mounts"].append(
            {
                "destination": dest,
                "options": ["rbind", "rprivate", access],
                "source": block_mount_point(source),
                "type_": "bind",
            }
        )
        req["storages"].append(block_storage(source))
    return req


def _storage(req: dict[str, Any], source: str) -> dict[str, Any]:
    found: dict[str, Any] = next(s for s in req["storages"] if s["source"] == source)
    return found


def _mount(req: dict[str, Any], dest: str) -> dict[str, Any]:
    found: dict[str, Any] = next(m for m in req["OCI"]["Mounts"] if m["destination"] == dest)
    return found


def tampered() -> dict[str, dict[str, Any]]:
    """Name -> a CreateContainerRequest the policy must deny."""
    out = {}
    good = good_request()
    cid = good["container_id"]

    req = copy.deepcopy(good)
    _mount(req, "/config")["destination"] = "/app/config"
    out["destination changed"] = req

    req = copy.deepcopy(good)
    _mount(req, "/config")["source"] = shared_source(cid, "creds")
    out["source: another volume's entry"] = req

    req = copy.deepcopy(good)
    _mount(req, "/var/run/creds")["source"] = "/run/kata-containers/sandbox/shm"
    out["source: outside the shared dir"] = req

    req = copy.deepcopy(good)
    _mount(req, "/config")["source"] = shared_source("f" * 64, "config")
    out["source: another container's entry"] = req

    req = copy.deepcopy(good)
    _mount(req, "/opt/bundle")["options"] = ["rbind", "rprivate"]
    out["ro dropped"] = req

    req = copy.deepcopy(good)
    _mount(req, "/opt/bundle")["options"] = ["rbind", "rprivate", "ro", "rw"]
    out["rw option added"] = req

    req = copy.deepcopy(good)
    _mount(req, "/config")["type_"] = "tmpfs"
    out["type changed"] = req

    req = copy.deepcopy(good)
    req["OCI"]["Mounts"].append(
        {
            "destination": "/extra",
            "options": list(RO),
            "source": shared_source(cid, "extra"),
            "type_": "bind",
        }
    )
    out["extra mount"] = req

    req = copy.deepcopy(good)
    req["OCI"]["Mounts"].append(copy.deepcopy(_mount(good, "/config")))
    out["mount twice"] = req

    req = copy.deepcopy(good)
    _mount(req, "/seed")["options"] = ["rbind", "rprivate", "rw"]
    out["memory emptyDir: readOnly dropped"] = req

    req = copy.deepcopy(good)
    _mount(req, "/scratch")["source"] = shared_source(cid, "scratch")
    out["memory emptyDir: host shared dir instead of guest tmpfs"] = req

    req = copy.deepcopy(good)
    req["storages"].append(ephemeral_storage("other"))
    out["storage: tmpfs of no volume"] = req

    req = copy.deepcopy(good)
    req["storages"][-1]["driver_options"] = ["create_filesystem"]
    out["storage: driver option added"] = req

    req = copy.deepcopy(good)
    req["storages"][-1]["options"] = ["mode=0777", "exec"]
    out["storage: option other than fsgid"] = req

    req = copy.deepcopy(good)
    req["storages"][-1]["driver"] = "local"
    out["storage: other driver"] = req

    req = copy.deepcopy(good)
    req["storages"].append(copy.deepcopy(req["storages"][0]))
    req["storages"][-1]["source"] = "ghcr.io/evil/miner@sha256:" + "b" * 64
    out["storage: second guest pull"] = req

    req = copy.deepcopy(good)
    _mount(req, "/etc/podinfo")["options"] = ["rbind", "rprivate", "rw"]
    out["downwardAPI: ro dropped"] = req

    req = copy.deepcopy(good)
    _mount(req, "/etc/podinfo")["source"] = shared_source(cid, "config")
    out["downwardAPI: another volume's entry"] = req

    req = copy.deepcopy(good)
    _mount(req, "/cache")["source"] = shared_source(cid, "cache")
    out["disk emptyDir: host shared dir instead of the encrypted disk"] = req

    req = copy.deepcopy(good)
    _mount(req, "/cache")["source"] = block_mount_point("09/00")
    out["disk emptyDir: storage dir of no storage"] = req

    req = copy.deepcopy(good)
    _mount(req, "/spool")["options"] = ["rbind", "rprivate", "rw"]
    out["disk emptyDir: readOnly dropped"] = req

    req = copy.deepcopy(good)
    _mount(req, "/cache")["destination"] = "/app/bin"
    out["disk emptyDir: destination changed"] = req

    req = copy.deepcopy(good)
    _storage(req, "02/00")["driver_options"] = ["create_filesystem"]
    _storage(req, "02/00")["options"] = ["discard"]
    out["block storage: unencrypted (block-plain)"] = req

    req = copy.deepcopy(good)
    _storage(req, "02/00")["driver_options"] = []
    out["block storage: host-written filesystem, not created in the guest"] = req

    req = copy.deepcopy(good)
    _storage(req, "02/00")["driver_options"] = ["encryption_key=ephemeral"]
    out["block storage: encrypted but no fresh filesystem"] = req

    req = copy.deepcopy(good)
    _storage(req, "02/00")["mount_point"] = block_mount_point("03/00")
    out["block storage: mount point of another device"] = req

    req = copy.deepcopy(good)
    _storage(req, "02/00")["fs_group"] = {"group_id": 0}
    out["block storage: host-chosen group"] = req

    req = copy.deepcopy(good)
    _storage(req, "02/00")["fs_group"] = None
    out["block storage: pod fsGroup dropped"] = req

    req = copy.deepcopy(good)
    _storage(req, "02/00")["options"] = ["exec"]
    out["block storage: mount option added"] = req

    req = copy.deepcopy(good)
    _storage(req, "02/00")["fstype"] = "xfs"
    out["block storage: other filesystem"] = req

    req = copy.deepcopy(good)
    _storage(req, "02/00")["source"] = "../../../dev/sda"
    _storage(req, "../../../dev/sda")["mount_point"] = block_mount_point("../../../dev/sda")
    _mount(req, "/cache")["source"] = block_mount_point("../../../dev/sda")
    out["block storage: source not a PCI path"] = req

    req = copy.deepcopy(good)
    req["storages"].append(block_storage("04/00"))
    out["block storage: one more than the disk mounts"] = req

    req = copy.deepcopy(good)
    req["OCI"]["Annotations"]["io.kubernetes.cri.container-name"] = "other"
    out["another container name"] = req
    return out


def good_copies(cid: str) -> list[dict[str, Any]]:
    """What the runtime copies for the volumes (kubelet's AtomicWriter layout)."""
    stamp = "..2026_11_30_11_00_00.123456789"
    out = []
    for entry, keys in (
        ("config", ["simple_value1"]),
        ("creds", ["password"]),
        ("bundle", ["ca.crt", "k"]),
        ("podinfo", ["annotations", "cpu_limit", "labels", "name"]),
    ):
        root = shared_source(cid, entry)
        out += [copy_file(root, "Directory"), copy_file(f"{root}/{stamp}", "Directory")]
        out += [copy_file(f"{root}/{stamp}/{k}") for k in keys]
        out.append(copy_file(f"{root}/..data", "Symlink", stamp))
        out += [copy_file(f"{root}/{k}", "Symlink", f"..data/{k}") for k in keys]
    secret = copy_file(f"{shared_source(cid, 'creds')}/{stamp}/password")
    secret["file_mode"] = 0o100400
    out.append(secret)
    return out


def bad_copies(cid: str) -> dict[str, dict[str, Any]]:
    stamp = "..2026_11_30_11_00_00.123456789"
    exe = copy_file(f"{shared_source(cid, 'config')}/{stamp}/run.sh")
    exe["file_mode"] = 0o100755
    return {
        "executable file": exe,
        "entry of no volume": copy_file(f"{shared_source(cid, 'extra')}/x"),
        "symlink out of the entry": copy_file(
            f"{shared_source(cid, 'config')}/x", "Symlink", "/etc/shadow"
        ),
    }
