"""The Kata agent's own policy engine (kata-policy judge) on a pod with configMap, secret and
projected volumes: the pod starts, and every tampered mount or copy is denied.

The requests are deserialised into the agent's `protocols::agent` types before the policy
sees them, so a mount shape the agent would not accept fails here, not in a cluster.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from agent_requests import create_sandbox_request, pod_copy_files, sandbox_request
from test_agent_judge import Judge, kata_policy_judge
from volume_cases import bad_copies, good_copies, good_request, policy_text, tampered

pytestmark = pytest.mark.conformance


@pytest.fixture(scope="module")
def judge() -> Iterator[Judge]:
    with kata_policy_judge() as running:
        yield running


@pytest.fixture(scope="module")
def policy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("volumes") / "policy.rego"
    path.write_text(policy_text(), encoding="utf-8")
    return path


def test_pod_with_volumes_starts(judge: Judge, policy: Path) -> None:
    session = "volumes-start"
    assert judge.allowed(policy, "CreateSandboxRequest", create_sandbox_request(), session)
    assert judge.allowed(policy, "CreateContainerRequest", sandbox_request(), session)
    req = good_request()
    for c in [*pod_copy_files(req["container_id"]), *good_copies(req["container_id"])]:
        assert judge.allowed(policy, "CopyFileRequest", c, session), c
    assert judge.allowed(policy, "CreateContainerRequest", req, session)


@pytest.mark.parametrize("case", sorted(tampered()))
def test_tampered_mount_denied(judge: Judge, policy: Path, case: str) -> None:
    assert not judge.allowed(policy, "CreateContainerRequest", tampered()[case])


@pytest.mark.parametrize("case", sorted(bad_copies("0" * 64)))
def test_bad_copy_denied(judge: Judge, policy: Path, case: str) -> None:
    cid = good_request()["container_id"]
    assert not judge.allowed(policy, "CopyFileRequest", bad_copies(cid)[case])
