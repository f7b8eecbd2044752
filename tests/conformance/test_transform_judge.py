"""The Kata agent's policy engine judges policies the transform derives from full pod specs.

Judge: scripts/judges/kata-policy (as tests/conformance/test_agent_judge.py). The pod specs
here use what coco's own schema cannot express: env in declared (unsorted) order with a
`$(VAR)` reference, user and group from the pod-level securityContext, an init container, a
Job. The pod must start (each container's real CreateContainerRequest is allowed), and the
host changing what the pod spec pins (env value, user, argv, image) must be denied.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from agent_requests import container_id, create_request, presented_image
from test_agent_judge import Judge, kata_policy_judge

from components import podspec
from components.hardening import HardeningSettings
from components.transform import ConfidentialOptions, prepare

pytestmark = pytest.mark.conformance

IMAGE = "registry.example.com/shop/web@sha256:" + "c" * 64
INIT = "registry.example.com/shop/migrate@sha256:" + "d" * 64
POD = "web-0"


@pytest.fixture(scope="module")
def judge() -> Iterator[Judge]:
    with kata_policy_judge() as running:
        yield running


def statefulset() -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": "web", "namespace": "shop"},
        "spec": {
            "serviceName": "web",
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "securityContext": {"runAsUser": 1001, "runAsGroup": 1002},
                    "initContainers": [
                        {"name": "migrate", "image": INIT, "command": ["/migrate", "--once"]}
                    ],
                    "containers": [
                        {
                            "name": "web",
                            "image": IMAGE,
                            "command": ["/web"],
                            "args": ["--listen=$(ADDR)"],
                            "env": [
                                {"name": "PORT", "value": "8443"},
                                {"name": "ADDR", "value": ":$(PORT)"},
                            ],
                            "readinessProbe": {"httpGet": {"path": "/", "port": 8443}},
                        }
                    ],
                },
            },
        },
    }


def policy_file(tmp_path: Path) -> tuple[Path, dict[str, Any]]:
    obj = statefulset()
    prepared = prepare(obj, ConfidentialOptions("kata-qemu-tdx"))
    path = tmp_path / "policy.rego"
    path.write_text(prepared.policy_rego, encoding="utf-8")
    return path, obj


def request(
    name: str,
    image: str,
    argv: list[str],
    env: list[str],
    uid: int = 1001,
    workload: str = "web",
    namespace: str = "shop",
    pod: str = POD,
) -> dict[str, Any]:
    """The CreateContainerRequest of container `name` of a pod of `workload` (user `uid`,
    group 1002, working dir /srv)."""
    return create_request(
        presented_image(image),
        cid=container_id(workload, name, "0"),
        args=argv,
        name=name,
        env=env,
        namespace=namespace,
        pod=pod,
        sandbox=container_id(workload, "sandbox"),
        cwd="/srv",
        uid=uid,
        gid=1002,
    )


def test_pins_from_the_full_pod_spec(tmp_path: Path) -> None:
    _, obj = policy_file(tmp_path)
    pins = podspec.container_pins(podspec.locate(obj))
    assert pins["web"].env == ("ADDR=:8443", "PORT=8443")
    assert (pins["web"].uid, pins["web"].gid) == (1001, 1002)
    assert set(pins) == {"web", "migrate"}


def test_the_pod_starts(judge: Judge, tmp_path: Path) -> None:
    policy, _ = policy_file(tmp_path)
    web = request("web", IMAGE, ["/web", "--listen=:8443"], ["ADDR=:8443", "PORT=8443"])
    init = request("migrate", INIT, ["/migrate", "--once"], [])
    assert judge.allowed(policy, "CreateContainerRequest", init)
    assert judge.allowed(policy, "CreateContainerRequest", web)


@pytest.mark.parametrize(
    "case",
    ["env value", "pod-level user", "argv", "image", "init argv"],
)
def test_tampering_is_denied(judge: Judge, tmp_path: Path, case: str) -> None:
    policy, _ = policy_file(tmp_path)
    argv, env, uid, image, name = (
        ["/web", "--listen=:8443"],
        ["ADDR=:8443", "PORT=8443"],
        1001,
        IMAGE,
        "web",
    )
    if case == "env value":
        env = ["ADDR=:9999", "PORT=8443"]
    elif case == "pod-level user":
        uid = 0
    elif case == "argv":
        argv = ["/web", "--listen=:8443", "--debug"]
    elif case == "image":
        image = "registry.example.com/shop/web@sha256:" + "e" * 64
    else:
        argv, env, image, name = ["/bin/sh"], [], INIT, "migrate"
    tampered = request(name, image, copy.deepcopy(argv), env, uid)
    assert not judge.allowed(policy, "CreateContainerRequest", tampered)


def test_the_hardened_pod_is_what_the_agent_admits(judge: Judge, tmp_path: Path) -> None:
    """docs/hardening.md: the transform hardens the pod template before deriving the policy,
    so the agent admits the hardened container (no new privileges, no capabilities, no token
    mount) and refuses it started as a bare pod spec would be; relaxed by the named options,
    the policy admits the bare one."""
    obj = statefulset()
    hardened = tmp_path / "hardened.rego"
    hardened.write_text(prepare(obj, ConfidentialOptions("kata-qemu-tdx")).policy_rego)
    relaxed_options = ConfidentialOptions(
        "kata-qemu-tdx",
        hardening=HardeningSettings(
            allow_privilege_escalation=True,
            drop_all_capabilities=False,
            automount_service_account_token=True,
        ),
    )
    relaxed = tmp_path / "relaxed.rego"
    relaxed.write_text(prepare(obj, relaxed_options).policy_rego)
    web = request("web", IMAGE, ["/web", "--listen=:8443"], ["ADDR=:8443", "PORT=8443"])
    bare = create_request(
        presented_image(IMAGE),
        cid=container_id("web", "web", "0"),
        args=["/web", "--listen=:8443"],
        name="web",
        env=["ADDR=:8443", "PORT=8443"],
        namespace="shop",
        pod=POD,
        sandbox=container_id("web", "sandbox"),
        cwd="/srv",
        uid=1001,
        gid=1002,
        hardened=False,
    )
    assert judge.allowed(hardened, "CreateContainerRequest", web)
    assert not judge.allowed(hardened, "CreateContainerRequest", bare)
    assert judge.allowed(relaxed, "CreateContainerRequest", bare)
    assert judge.allowed(relaxed, "CreateContainerRequest", web)
