"""ConfidentialWorkload's policy defaults: which images and argvs the agent policy pins."""

from __future__ import annotations

from typing import Any

from components.settings import WorkloadSettings
from components.workload import container_commands, effective_agent_policy

APP = "registry.example.com/app@sha256:" + "a" * 64
SIDECAR = "registry.example.com/sidecar@sha256:" + "b" * 64


def workload(*containers: dict[str, Any], **extra: Any) -> WorkloadSettings:
    return WorkloadSettings.model_validate({"name": "app", "containers": list(containers), **extra})


def test_containers_with_command_are_pinned() -> None:
    wl = workload(
        {
            "name": "a",
            "image": APP,
            "command": ["/app"],
            "args": ["--port=$(P)"],
            "env": {"P": "1"},
        },
        {"name": "b", "image": SIDECAR},
    )
    assert container_commands(wl) == {APP: [["/app", "--port=1"]]}
    spec = effective_agent_policy(wl)
    assert spec.allowed_images == sorted([APP, SIDECAR])
    assert spec.container_commands == {APP: [["/app", "--port=1"]]}


def test_one_container_without_command_leaves_its_image_unpinned() -> None:
    wl = workload(
        {"name": "a", "image": APP, "command": ["/app"]},
        {"name": "b", "image": APP},
    )
    assert container_commands(wl) == {}


def test_same_image_two_commands_both_allowed() -> None:
    wl = workload(
        {"name": "a", "image": APP, "command": ["/app", "serve"]},
        {"name": "b", "image": APP, "command": ["/app", "worker"]},
    )
    assert effective_agent_policy(wl).container_commands == {
        APP: [["/app", "serve"], ["/app", "worker"]]
    }


def test_unpinned_images_and_opt_out_pin_nothing() -> None:
    tagged = workload({"name": "a", "image": "nginx:1.27", "command": ["nginx"]})
    assert container_commands(tagged) == {}
    off = workload(
        {"name": "a", "image": APP, "command": ["/app"]}, agentPolicy={"pinCommands": False}
    )
    assert effective_agent_policy(off).container_commands == {}
