"""Interrupts and crashes on the real engine: ^C cancels like `pulumi`, `kill -9` needs no
manual step.

Each test runs `python -m automation up` on a copy of the dev stack (rendering into a
temporary folder, state on a temporary file backend) in a session of its own, as a terminal
would, and interrupts it while the engine is creating resources:
- ^C (SIGINT to the foreground process group): exit 130 with a one-line message and no
  traceback; the stack is unlocked, has no pending operation, no engine process is left, and
  the next `up` completes;
- `kill -9` of the whole command (the CLI and its engine) at several points: the next `up`
  exits 0 with no manual step, and afterwards there is no lock, no pending operation, no
  orphaned plugin process of the killed engine, and a further `up` changes nothing.

    bash scripts/setup.sh && source scripts/env.sh && pytest -m e2e tests/test_e2e_interrupts.py
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from automation import engine as engine_module
from automation.spec import PROJECT_DIR

pytestmark = pytest.mark.e2e

DEV_FILE = PROJECT_DIR / "stacks" / "Pulumi.dev.yaml"


@dataclass
class Stack:
    """The dev stack on a temporary backend, rendering into a temporary folder."""

    dir: Path
    file: Path
    state: Path
    env: dict[str, str]

    @property
    def workspace(self) -> Path:
        return self.state / "workspaces" / "dev"

    def command(self, *args: str) -> list[str]:
        backend = f"file://{self.state}"
        return [sys.executable, "-m", "automation", *args, "--backend-url", backend]

    def up_args(self) -> list[str]:
        return [*self.command("up", "--stack-file", str(self.file)), "--secret", "demoKey=x"]

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            list(args) or self.up_args(),
            cwd=PROJECT_DIR,
            env=self.env,
            capture_output=True,
            text=True,
            check=False,
        )

    def start_up(self) -> subprocess.Popen[str]:
        return subprocess.Popen(
            self.up_args(),
            cwd=PROJECT_DIR,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,  # its own process group, as a terminal's foreground job
        )

    def export(self) -> dict[str, object]:
        out = subprocess.run(
            ["pulumi", "stack", "export", "--stack", "dev"],
            cwd=self.workspace,
            env={**self.env, "PULUMI_BACKEND_URL": f"file://{self.state}"},
            capture_output=True,
            text=True,
            check=True,
        )
        deployment: dict[str, object] = json.loads(out.stdout)["deployment"]
        return deployment

    def locks(self) -> list[Path]:
        return sorted((self.state / ".pulumi" / "locks").rglob("*.json"))


@pytest.fixture
def stack(engine: str, tmp_path: Path) -> Stack:
    doc = yaml.safe_load(DEV_FILE.read_text())
    doc["config"]["coco:kubernetes"] = {"renderDir": str(tmp_path / "out")}
    file = tmp_path / "Pulumi.dev.yaml"
    file.write_text(yaml.safe_dump(doc))
    env = dict(os.environ)
    env.setdefault("PULUMI_CONFIG_PASSPHRASE", "coco-local-dev")
    return Stack(tmp_path, file, tmp_path / "state", env)


def lines_until(process: subprocess.Popen[str], count: int, marker: str) -> Iterator[str]:
    """The process's output lines up to the `count`-th holding `marker`."""
    assert process.stdout is not None
    seen = 0
    for line in process.stdout:
        yield line
        if marker in line:
            seen += 1
            if seen == count:
                return
    pytest.fail(f"the up ended before {count} lines with {marker!r}")


def engines_in(directory: Path) -> list[int]:
    """Live processes working in `directory` (the engine and its plugins run there)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cwd = Path(os.readlink(entry / "cwd"))
        except OSError:
            continue
        stat = engine_module._stat(int(entry.name))
        if cwd == directory and stat is not None and stat[0] != "Z":
            found.append(int(entry.name))
    return found


def assert_clean(stack: Stack) -> None:
    assert stack.locks() == [], "the stack is still locked"
    assert not stack.export().get("pending_operations"), "pending operations left"


def test_ctrl_c_cancels_like_pulumi(stack: Stack) -> None:
    process = stack.start_up()
    head = list(lines_until(process, 2, "creating"))
    os.killpg(process.pid, signal.SIGINT)  # ^C in the terminal
    rest, _ = process.communicate()
    text = "".join(head) + rest
    assert process.returncode == 130, text[-3000:]
    assert "Traceback" not in text and "KeyboardInterrupt" not in text
    assert "cancelled: up of stack 'dev' was cancelled by an interrupt" in text
    assert engines_in(stack.workspace) == []
    assert_clean(stack)
    again = stack.run()
    assert again.returncode == 0, again.stderr[-3000:]


@pytest.mark.parametrize("point", [1, 6, 14], ids=lambda p: f"after-{p}-created")
def test_kill_9_mid_up_recovers_with_no_manual_step(stack: Stack, point: int) -> None:
    process = stack.start_up()
    list(lines_until(process, point, "created"))
    killed = engines_in(stack.workspace)
    engine_pids = [p for p in killed if Path(os.readlink(f"/proc/{p}/exe")).name == "pulumi"]
    assert engine_pids, "no engine process found"
    os.killpg(process.pid, signal.SIGKILL)  # the CLI
    for pid in engine_pids:  # and the engine (its own session): kill -9 of the whole `up`
        os.kill(pid, signal.SIGKILL)
    process.communicate()
    assert stack.locks(), "a crash mid-up leaves the lock (else this test proves nothing)"
    after = stack.run()
    assert after.returncode == 0, (after.stdout + after.stderr)[-3000:]
    assert "recovering stack 'dev'" in after.stdout + after.stderr
    for pid in engine_pids:
        assert engine_module.session_processes(pid) == [], "orphaned plugins left"
    assert_clean(stack)
    steady = stack.run()
    assert steady.returncode == 0 and "recovering" not in steady.stdout + steady.stderr
    assert re.search(r"^up dev: \d+ same$", steady.stderr, re.M), steady.stderr[-2000:]


def test_cancel_command_clears_a_crashed_stack(stack: Stack) -> None:
    process = stack.start_up()
    list(lines_until(process, 3, "created"))
    engine_pids = [
        p
        for p in engines_in(stack.workspace)
        if Path(os.readlink(f"/proc/{p}/exe")).name == "pulumi"
    ]
    os.killpg(process.pid, signal.SIGKILL)
    for pid in engine_pids:
        os.kill(pid, signal.SIGKILL)
    process.communicate()
    done = stack.run(*stack.command("cancel", "--stack", "dev"))
    assert done.returncode == 0, done.stderr[-3000:]
    assert "removed the lock of" in done.stdout
    assert_clean(stack)
