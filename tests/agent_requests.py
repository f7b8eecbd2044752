"""Kata agent request inputs, shaped as the agent serialises them for its policy.

Shared by the agent-policy tests and the stack tests, which ask the policy a workload
carries in its init-data whether it admits the workload's own containers.
"""

from __future__ import annotations

from typing import Any

CID = "9c2d7e1f0a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d"
SANDBOX = "1f8e4b7c3a2d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7"


def guest_pull(cid: str, source: str, ctype: str) -> dict[str, Any]:
    """The storage the Kata runtime builds for a guest-pulled rootfs."""
    return {
        "driver": "image_guest_pull",
        "driver_options": [
            'image_guest_pull={"metadata":{"io.kubernetes.cri.container-type":"' + ctype + '"}}'
        ],
        "source": source,
        "fstype": "overlay",
        "options": [],
        "mount_point": f"/run/kata-containers/{cid}/rootfs",
        "fs_group": None,
    }


def create_request(
    image_name: str,
    sources: list[str],
    ctype: str = "container",
    cid: str = CID,
    args: list[str] | None = None,
) -> dict[str, Any]:
    """A CreateContainerRequest input shaped like the agent serialises it for the policy."""
    return {
        "container_id": cid,
        "exec_id": cid,
        "string_user": None,
        "devices": [],
        "storages": [guest_pull(cid, s, ctype) for s in sources],
        "sandbox_pidns": False,
        "shared_mounts": [],
        "OCI": {
            "Version": "1.1.0",
            "Annotations": {
                "io.kubernetes.cri.container-type": ctype,
                "io.kubernetes.cri.image-name": image_name,
                "io.kubernetes.cri.sandbox-id": SANDBOX,
                "io.kubernetes.cri.sandbox-name": "app-7d9c-xk2lp",
                "io.kubernetes.cri.sandbox-namespace": "default",
                "io.katacontainers.pkg.oci.container_type": "pod_container"
                if ctype == "container"
                else "pod_sandbox",
            },
            "Hooks": None,
            "Root": {"Path": f"/run/kata-containers/{cid}/rootfs", "Readonly": False},
            "Process": {"Args": args or ["/app/server"], "Cwd": "/", "Env": ["PATH=/usr/bin"]},
            "Mounts": [],
            "Linux": {"Namespaces": [{"Type": "ipc", "Path": ""}], "MaskedPaths": ["/proc/kcore"]},
        },
    }
