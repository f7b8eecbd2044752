"""ConfidentialWorkload's policy defaults: which images and argvs the agent policy pins."""

from __future__ import annotations

from typing import Any

from components.settings import WorkloadSettings
from components.workload import effective_agent_policy
from components.workload_template import pod_template

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
    spec = effective_agent_policy(wl)
    assert spec.allowed_images == sorted([APP, SIDECAR])
    assert spec.container_commands == {APP: [["/app", "--port=1"]]}


def test_one_container_without_command_leaves_its_image_unpinned() -> None:
    wl = workload(
        {"name": "a", "image": APP, "command": ["/app"]},
        {"name": "b", "image": APP},
    )
    assert effective_agent_policy(wl).container_commands == {}


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
    assert effective_agent_policy(tagged).container_commands == {}
    off = workload(
        {"name": "a", "image": APP, "command": ["/app"]}, agentPolicy={"pinCommands": False}
    )
    assert effective_agent_policy(off).container_commands == {}


def test_each_container_pins_its_expanded_env() -> None:
    """kubelet expands $(VAR) in env values from the variables before it (sorted here)."""
    wl = workload(
        {"name": "a", "image": APP, "env": {"HOST": "db", "URL": "tcp://$(HOST):5432"}},
        {"name": "b", "image": SIDECAR},
    )
    spec = effective_agent_policy(wl)
    assert spec.containers["a"].env == ("HOST=db", "URL=tcp://db:5432")
    assert spec.containers["b"].env == ()
    assert spec.containers["a"].working_dir is None
    assert not spec.allow_devices


def test_env_the_program_cannot_know_is_an_error_naming_the_container() -> None:
    """A reference kubelet would fill from elsewhere (service links, a later variable) cannot
    be pinned: the settings refuse it, naming container and key."""
    import pytest
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match=r"containers\[0\] \(a\)\.env\.URL: \$\(DB_HOST\)"):
        workload({"name": "a", "image": APP, "env": {"URL": "tcp://$(DB_HOST):5432"}})
    with pytest.raises(ValidationError, match=r"env\.A: \$\(B\)"):
        workload({"name": "a", "image": APP, "env": {"A": "$(B)", "B": "x"}})


def test_gpu_workloads_allow_devices() -> None:
    wl = workload({"name": "a", "image": APP}, gpus=1, memory="64Gi")
    assert effective_agent_policy(wl).allow_devices


def test_relaxations_are_listed() -> None:
    wl = workload(
        {"name": "a", "image": APP},
        agentPolicy={"allowLogs": True, "imageEnvAny": ["BUILD_ID"], "allowServiceLinks": False},
    )
    relaxations = effective_agent_policy(wl).relaxations()
    assert "allowLogs" in relaxations and "imageEnvAny: BUILD_ID" in relaxations
    assert "allowServiceLinks" not in relaxations and "allowExec" not in relaxations


def test_working_dir_and_user_are_rendered_and_pinned() -> None:
    wl = workload(
        {
            "name": "a",
            "image": APP,
            "workingDir": "/app",
            "runAsUser": 10001,
            "runAsGroup": 10002,
            "readOnlyRootFilesystem": True,
        },
        {"name": "b", "image": SIDECAR},
    )
    [a, b] = pod_template(wl, "dev")["spec"]["containers"]
    assert a["workingDir"] == "/app"
    assert a["securityContext"] == {
        "runAsUser": 10001,
        "runAsGroup": 10002,
        "readOnlyRootFilesystem": True,
    }
    assert "workingDir" not in b and "securityContext" not in b
    pin = effective_agent_policy(wl).containers["a"]
    assert (pin.working_dir, pin.uid, pin.gid, pin.read_only_root) == ("/app", 10001, 10002, True)


def test_working_dir_must_be_absolute() -> None:
    import pytest
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="absolute path"):
        workload({"name": "a", "image": APP, "workingDir": "app/../x"})
