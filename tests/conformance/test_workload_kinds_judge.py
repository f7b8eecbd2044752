"""The Kata agent's policy engine judges the policy of a full-template `coco:workloads` entry.

Judge: scripts/judges/kata-policy (as tests/conformance/test_agent_judge.py). The entry is a
CronJob written as coco:workloads can now write it: a short-form container with a template
merged over it (pod-level user and group, an init container, a readiness probe), so its policy
comes from the recipe on the expanded template (components/confidential_pod.py). Its pod must
start (each container's real CreateContainerRequest is allowed), and the host changing what
the template pins (the init container's argv, the pod-level user, the image) must be denied.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_agent_judge import Judge, kata_policy_judge
from test_transform_judge import request as transform_request

from components.settings import WorkloadSettings
from components.workload import effective_agent_policy
from policies.agent import render_agent_policy

pytestmark = pytest.mark.conformance

IMAGE = "registry.example.com/batch/report@sha256:" + "c" * 64
INIT = "registry.example.com/batch/migrate@sha256:" + "d" * 64
POD = "report-29000000-abcde"


@pytest.fixture(scope="module")
def judge() -> Iterator[Judge]:
    with kata_policy_judge() as running:
        yield running


def cronjob() -> WorkloadSettings:
    return WorkloadSettings.model_validate(
        {
            "name": "report",
            "namespace": "batch",
            "kind": "CronJob",
            "spec": {"schedule": "0 3 * * *"},
            "containers": [
                {"name": "report", "image": IMAGE, "command": ["/report"], "env": {"OUT": "/x"}}
            ],
            "template": {
                "spec": {
                    "securityContext": {"runAsUser": 1001, "runAsGroup": 1002},
                    "initContainers": [
                        {"name": "migrate", "image": INIT, "command": ["/migrate", "--once"]}
                    ],
                    "containers": [
                        {
                            "name": "report",
                            "readinessProbe": {"httpGet": {"path": "/", "port": 8443}},
                        }
                    ],
                }
            },
        }
    )


def policy_file(tmp_path: Path) -> Path:
    path = tmp_path / "policy.rego"
    path.write_text(render_agent_policy(effective_agent_policy(cronjob())), encoding="utf-8")
    return path


def request(name: str, image: str, argv: list[str], env: list[str], uid: int = 1001) -> Any:
    return transform_request(name, image, argv, env, uid, "report", "batch", POD)


def test_the_cronjob_pod_starts(judge: Judge, tmp_path: Path) -> None:
    policy = policy_file(tmp_path)
    assert judge.allowed(
        policy, "CreateContainerRequest", request("migrate", INIT, ["/migrate", "--once"], [])
    )
    assert judge.allowed(
        policy, "CreateContainerRequest", request("report", IMAGE, ["/report"], ["OUT=/x"])
    )


@pytest.mark.parametrize("case", ["init argv", "pod-level user", "image", "env value"])
def test_tampering_is_denied(judge: Judge, tmp_path: Path, case: str) -> None:
    policy = policy_file(tmp_path)
    name, image, argv, env, uid = "report", IMAGE, ["/report"], ["OUT=/x"], 1001
    if case == "init argv":
        name, image, argv, env = "migrate", INIT, ["/bin/sh"], []
    elif case == "pod-level user":
        uid = 0
    elif case == "image":
        image = "registry.example.com/batch/report@sha256:" + "e" * 64
    else:
        env = ["OUT=/etc"]
    assert not judge.allowed(policy, "CreateContainerRequest", request(name, image, argv, env, uid))
