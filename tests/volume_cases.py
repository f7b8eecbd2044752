"""A pod spec with configMap/secret/projected volumes, the requests its pod makes, and the
tampered variants the agent policy must deny (shared by the OPA unit tests and the judge tier).

Mount shapes follow genpolicy (kata-containers 4.1.0 `src/tools/genpolicy/src/
mount_and_storage.rs` get_config_map_mount_and_storage / get_shared_bind_mount and
genpolicy-settings.json `volumes.configMap`): a bind from the shared-dir entry
`<cid>-<16 hex>-<last segment of mountPath>`, options `rbind, rprivate, ro`. The pod spec is
genpolicy's captured `createcontainer/volumes/config_map/pod.yaml`, grown by a secret and a
projected volume.
"""

from __future__ import annotations

import copy
from typing import Any

from agent_requests import copy_file, create_request, shared_source

from components import podspec
from policies.agent import AgentPolicySpec, render_agent_policy

IMAGE = "ghcr.io/acme/app@sha256:" + "a" * 64
RO = ["rbind", "rprivate", "ro"]
MOUNTS = {"/config": "config", "/var/run/creds": "creds", "/opt/bundle": "bundle"}
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
            ],
        },
    }


def policy_text(obj: dict[str, Any] | None = None) -> str:
    """The restrictive policy coco renders for the pod (the workload path of components)."""
    base = AgentPolicySpec()
    loc = podspec.check(obj or pod(), base)
    return render_agent_policy(podspec.effective_policy(loc, base, devices=False))


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
    return req


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
