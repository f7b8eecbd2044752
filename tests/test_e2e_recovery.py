"""Crash recovery and `cancel` on the real engine, with a resource caught mid-create.

A tiny program whose one resource (a dynamic provider, which needs no plugin download) does
not finish creating until the test opens a gate: the engine has recorded a *pending create*
and holds the stack's lock, exactly the moment a crash hurts most. Then:
- `kill -9` of the engine: the lock and the pending create stay, the plugins are orphaned;
  `engine.recover` (what every coco operation runs on such a lock) ends the orphans, removes
  the lock and the pending create, and the next `up` completes;
- `engine.cancel` on a live engine interrupts it (SIGINT), waits for it to finish cancelling,
  and leaves the stack unlocked with no pending operation.
No plaintext state is left in the temporary folder (the SDK's own export/import would).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest
import yaml
from pulumi import automation as auto

from automation import engine
from automation.spec import PROJECT_DIR

pytestmark = pytest.mark.e2e

PROGRAM = """\
import os, time
import pulumi
from pulumi.dynamic import CreateResult, Resource, ResourceProvider


class Gated(ResourceProvider):
    def create(self, props):
        while not os.path.exists(props["gate"]):
            time.sleep(0.05)
        return CreateResult("gated", dict(props))


class Thing(Resource):
    def __init__(self, name, gate, secret):
        super().__init__(Gated(), name, {"gate": gate, "secret": secret})


cfg = pulumi.Config()
Thing("thing", cfg.require("gate"), cfg.require_secret("s"))
"""


@pytest.fixture
def project(tmp_path: Path) -> tuple[Path, dict[str, str], Path]:
    if shutil.which("pulumi") is None:
        pytest.fail("the Pulumi engine is missing: run `bash scripts/setup.sh`", pytrace=False)
    directory = tmp_path / "probe"
    directory.mkdir()
    (directory / "Pulumi.yaml").write_text(
        yaml.safe_dump(
            {
                "name": "probe",
                "runtime": {
                    "name": "python",
                    "options": {"virtualenv": str(PROJECT_DIR / ".venv")},
                },
            }
        )
    )
    (directory / "__main__.py").write_text(PROGRAM)
    state = tmp_path / "state"
    state.mkdir()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("PULUMI_CONFIG_PASSPHRASE")},
        "PULUMI_BACKEND_URL": f"file://{state}",
        "PULUMI_CONFIG_PASSPHRASE": "probe-passphrase",
    }
    gate = tmp_path / "gate"
    for args in (
        ["stack", "init", "dev"],
        ["config", "set", "gate", str(gate)],
        ["config", "set", "--secret", "s", "plaintext-must-not-leak"],
    ):
        subprocess.run(["pulumi", *args], cwd=directory, env=env, check=True, capture_output=True)
    return directory, env, gate


def start_up(directory: Path, env: dict[str, str]) -> subprocess.Popen[str]:
    """`pulumi up` as coco runs it: in a session of its own."""
    return subprocess.Popen(
        ["pulumi", "up", "--yes", "--non-interactive"],
        cwd=directory,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def state_of(directory: Path, env: dict[str, str]) -> dict[str, object]:
    out = subprocess.run(
        ["pulumi", "stack", "export"], cwd=directory, env=env, check=True, capture_output=True
    )
    deployment: dict[str, object] = json.loads(out.stdout)["deployment"]
    return deployment


def wait_for_pending_create(directory: Path, env: dict[str, str]) -> None:
    for _ in range(6000):  # until the engine records the pending create (readiness, not timing)
        if state_of(directory, env).get("pending_operations"):
            return
        time.sleep(0.05)
    pytest.fail("the engine never recorded the pending create")


def stack_of(directory: Path, env: dict[str, str]) -> auto.Stack:
    workspace = auto.LocalWorkspace(
        work_dir=str(directory), env_vars=env, pulumi_command=engine.InterruptibleCommand()
    )
    return auto.Stack.select("dev", workspace)


def locks(env: dict[str, str]) -> list[Path]:
    state = Path(env["PULUMI_BACKEND_URL"].removeprefix("file://"))
    return sorted((state / ".pulumi" / "locks").rglob("*.json"))


def no_plaintext_left(before: set[str]) -> None:
    for entry in set(os.listdir(tempfile.gettempdir())) - before:
        path = Path(tempfile.gettempdir()) / entry
        if path.is_file() and "plaintext-must-not-leak" in path.read_text(errors="replace"):
            pytest.fail(f"{path} holds the secret in plain text")


def test_kill_9_with_a_pending_create_is_recovered(
    project: tuple[Path, dict[str, str], Path],
) -> None:
    directory, env, gate = project
    up = start_up(directory, env)
    wait_for_pending_create(directory, env)
    up.kill()  # kill -9 of the engine, mid-create
    up.communicate()
    orphans = engine.session_processes(up.pid)
    assert orphans, "the killed engine's plugins outlive it (else this proves nothing)"
    assert locks(env)
    stack = stack_of(directory, env)
    temp_before = set(os.listdir(tempfile.gettempdir()))
    with pytest.raises(auto.CommandError) as err:
        stack.up()
    holders = engine.stale_holders(str(err.value))
    assert holders == [engine.LockHolder(holders[0].user, holders[0].host, up.pid)]
    said: list[str] = []
    engine.recover(stack, holders, said.append)
    assert engine.session_processes(up.pid) == []
    assert locks(env) == []
    assert not state_of(directory, env).get("pending_operations")
    assert "cleared 1 pending operation(s) the crash left in the state" in said
    no_plaintext_left(temp_before)
    gate.touch()
    result = stack.up()
    assert result.summary.result == "succeeded"
    assert not state_of(directory, env).get("pending_operations")


def test_cancel_interrupts_a_live_engine_and_waits(
    project: tuple[Path, dict[str, str], Path],
) -> None:
    directory, env, gate = project
    up = start_up(directory, env)
    wait_for_pending_create(directory, env)
    stack = stack_of(directory, env)
    said: list[str] = []
    done: list[str] = []

    def run_cancel() -> None:
        done.append(engine.cancel(stack, said.append))

    canceller = threading.Thread(target=run_cancel)
    canceller.start()
    for _ in range(6000):  # until cancel has interrupted the engine
        if said:
            break
        time.sleep(0.05)
    assert said and said[0].startswith("interrupting the running engine")
    gate.touch()  # the create in flight finishes; the engine then stops, as on ^C
    canceller.join()
    up.communicate()
    assert up.returncode != 0  # the up was cancelled
    assert done and "removed the lock of" in done[0], done
    assert locks(env) == []
    assert not state_of(directory, env).get("pending_operations")
    assert engine.session_processes(up.pid) == []
