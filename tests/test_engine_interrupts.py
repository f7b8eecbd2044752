"""Interrupts and crashes, without the engine: the mechanism of automation/engine.py.

A stand-in `pulumi` (a script that behaves as the CLI does on ^C: says it is cancelling,
finishes its work, exits) shows that an interrupt reaches the engine exactly once, that the
caller waits for it to finish and gets `EngineInterrupted` (no traceback, no orphan), and
that lock errors are read as the DIY backend writes them. tests/test_e2e_interrupts.py runs
the same against the real engine.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from automation import engine

FAKE = textwrap.dedent(
    """\
    #!{python}
    import os, signal, sys, time
    if sys.argv[1:] == ["version"]:
        print("v3.274.1"); sys.exit(0)
    out = os.environ["FAKE_OUT"]
    got = []
    signal.signal(signal.SIGINT, lambda *_: got.append(1))
    open(out + ".pid", "w").write(str(os.getpid()))
    print("started", flush=True)
    while not got:
        time.sleep(0.01)
    print("^C received; cancelling", flush=True)
    time.sleep(0.3)  # the operations in flight
    open(out + ".clean", "w").write(str(len(got)))
    print("cancelled cleanly", flush=True)
    sys.exit(255)
    """
)


@pytest.fixture
def fake_pulumi(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    (root / "bin").mkdir(parents=True)
    script = root / "bin" / "pulumi"
    script.write_text(FAKE.format(python=sys.executable))
    script.chmod(0o755)
    return root


def test_interrupt_is_forwarded_once_and_waited_for(fake_pulumi: Path, tmp_path: Path) -> None:
    command = engine.InterruptibleCommand(root=str(fake_pulumi), skip_version_check=True)
    out = tmp_path / "run"
    lines: list[str] = []

    def on_output(line: str) -> None:
        lines.append(line)
        if line == "started":  # the main thread gets ^C, as from a terminal
            os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(engine.EngineInterrupted) as err:
        command.run(["up"], str(tmp_path), {"FAKE_OUT": str(out)}, on_output, lines.append)
    # The engine got one SIGINT, finished its work and exited before run() returned.
    assert Path(f"{out}.clean").read_text() == "1"
    assert lines[-1] == "cancelled cleanly"
    assert engine.INTERRUPT_NOTICE in lines
    assert "was cancelled by an interrupt" in str(err.value)
    pid = int(Path(f"{out}.pid").read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_engine_runs_in_its_own_session(fake_pulumi: Path, tmp_path: Path) -> None:
    """A terminal's ^C (to the foreground process group) reaches only us; we forward it."""
    command = engine.InterruptibleCommand(root=str(fake_pulumi), skip_version_check=True)
    out = tmp_path / "run"
    seen: list[int] = []

    def on_output(line: str) -> None:
        if line == "started":
            pid = int(Path(f"{out}.pid").read_text())
            seen.append(os.getsid(pid))
            seen.append(pid)
            engine.interrupt_running()  # the API's way, from any thread

    with pytest.raises(engine.EngineInterrupted):
        command.run(["up"], str(tmp_path), {"FAKE_OUT": str(out)}, on_output)
    assert seen[0] == seen[1] != os.getsid(0)


LOCK_ERROR = (
    "error: the stack is currently locked by 2 lock(s). Either wait for the other process(es) "
    "to end or delete the lock file with `pulumi cancel`.\n"
    "  file:///s/.pulumi/locks/organization/coco/dev/a.json: created by root@{host} (pid {p1}) "
    "at 2026-12-06T21:00:00Z\n"
    "  file:///s/.pulumi/locks/organization/coco/dev/b.json: created by ci@{host} (pid {p2}) "
    "at 2026-12-06T21:00:01Z"
)


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", ""])
    proc.wait()
    return proc.pid


def test_lock_holders_are_read_from_the_lock_error() -> None:
    here = socket.gethostname()
    text = LOCK_ERROR.format(host=here, p1=os.getpid(), p2=123)
    holders = engine.lock_holders(text)
    assert holders == [
        engine.LockHolder("root", here, os.getpid()),
        engine.LockHolder("ci", here, 123),
    ]
    assert engine.lock_holders("error: something else") is None


def test_only_dead_local_holders_are_stale() -> None:
    here = socket.gethostname()
    gone = dead_pid()
    assert engine.stale_holders(LOCK_ERROR.format(host=here, p1=gone, p2=gone)) is not None
    # One holder alive: a concurrent deployment, never touched.
    assert engine.stale_holders(LOCK_ERROR.format(host=here, p1=gone, p2=os.getpid())) is None
    # Another host: its processes cannot be seen from here.
    assert engine.stale_holders(LOCK_ERROR.format(host="elsewhere", p1=gone, p2=gone)) is None


def test_orphans_of_a_dead_session_are_ended() -> None:
    """A crashed engine's plugins stay in its session: they are found by it and ended."""
    leader = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import subprocess, sys, time; "
            "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)']); "
            "print('ok', flush=True); time.sleep(600)",
        ],
        start_new_session=True,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert leader.stdout is not None and leader.stdout.readline() == "ok\n"
    leader.kill()  # the engine, kill -9
    leader.wait()
    orphans = engine.session_processes(leader.pid)
    assert len(orphans) == 1
    holder = engine.LockHolder("root", socket.gethostname(), leader.pid)
    assert not holder.alive
    assert engine.end_orphans([holder]) == orphans
    for _ in range(100):
        if not engine.session_processes(leader.pid):
            break
        time.sleep(0.05)
    assert engine.session_processes(leader.pid) == []


def test_an_interrupt_cancels_a_fleet(monkeypatch: pytest.MonkeyPatch) -> None:
    """^C during `deploy_many`: the running stack's engines are interrupted (and waited for),
    the queued stacks never start; each is reported, nothing is raised."""
    from automation import fleet
    from automation.results import OperationResult
    from automation.spec import StackSpec

    spec = StackSpec.from_stack("baremetal-tdx", secrets={"apiDbPassword": "x"})
    specs = [spec.model_copy(update={"name": n}) for n in ("a", "b", "c")]
    started: list[str] = []
    interrupts: list[int] = []
    monkeypatch.setattr(fleet, "interrupt_running", lambda **_: interrupts.append(1) or 0)

    def operation(s: StackSpec) -> OperationResult:
        started.append(s.name)
        os.kill(os.getpid(), signal.SIGINT)  # ^C reaches the main thread, waiting on us
        while not interrupts:
            time.sleep(0.01)
        raise engine.EngineInterrupted(s.name, "up")

    result = fleet.deploy_many(specs, max_concurrency=1, operation=operation)
    assert started == ["a"]
    assert sorted(result.failures) == ["a", "b", "c"]
    assert all(isinstance(e, engine.EngineInterrupted) for e in result.failures.values())


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_a_fleet_interrupt_reaches_an_engine_started_after_it(
    fake_pulumi: Path, tmp_path: Path, sig: signal.Signals
) -> None:
    """The interrupt comes while a stack's thread is between two engine commands (no engine
    running to forward it to): the engine it starts next is interrupted by the fleet's sweep,
    exactly once (a second SIGINT would make `pulumi` stop at once), and cancels cleanly; the
    queued stack never starts."""
    from automation import fleet
    from automation.results import OperationResult
    from automation.spec import StackSpec

    spec = StackSpec.from_stack("baremetal-tdx", secrets={"apiDbPassword": "x"})
    specs = [spec.model_copy(update={"name": n}) for n in ("a", "b")]
    command = engine.InterruptibleCommand(root=str(fake_pulumi), skip_version_check=True)
    out = tmp_path / "run"
    started: list[str] = []

    def operation(s: StackSpec) -> OperationResult:
        started.append(s.name)
        os.kill(os.getpid(), sig)  # reaches the main thread while no engine runs
        time.sleep(0.5)
        command.run(["up"], str(tmp_path), {"FAKE_OUT": str(out)})
        raise AssertionError("the engine started after the interrupt was not interrupted")

    result = fleet.run_fleet(specs, "up", parallel=1, run=operation)
    assert started == ["a"] and result.interrupted
    assert {n: o.status for n, o in result.outcomes.items()} == {"a": "cancelled", "b": "cancelled"}
    assert isinstance(result.failures["a"], engine.EngineInterrupted)
    assert result.outcomes["b"].seconds == 0
    assert Path(f"{out}.clean").read_text() == "1"  # one SIGINT, its work finished


def test_sigterm_to_the_cli_cancels_like_ctrl_c(fake_pulumi: Path, tmp_path: Path) -> None:
    """A cancelled CI job (SIGTERM) cancels the engine and exits 130, as ^C does."""
    out = tmp_path / "run"
    script = textwrap.dedent(
        f"""\
        import sys
        from automation import cli, engine

        def run(argv=None, environ=None):
            root = {str(fake_pulumi)!r}
            command = engine.InterruptibleCommand(root=root, skip_version_check=True)
            try:
                command.run(["up"], ".", {{"FAKE_OUT": {str(out)!r}}}, print, print)
            except engine.EngineInterrupted as err:
                print(f"cancelled: {{err}}", flush=True)
                return 130
            return 0

        cli.run = run
        cli.main()
        """
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", script],
        cwd=Path(engine.__file__).parents[1],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.strip() == "started":
            break
    proc.send_signal(signal.SIGTERM)
    rest, _ = proc.communicate()
    assert proc.returncode == 130, rest
    assert "cancelled cleanly" in rest and "Traceback" not in rest
    assert Path(f"{out}.clean").read_text() == "1"


def test_a_checkpoint_cut_short_is_restored_from_its_backup(tmp_path: Path) -> None:
    stacks = tmp_path / ".pulumi" / "stacks" / "coco"
    stacks.mkdir(parents=True)
    checkpoint = stacks / "dev.json"
    checkpoint.write_text('{"version": 3, "checkpoint": {"latest": {"resour')  # kill -9 mid-write
    (stacks / "dev.json.bak").write_text('{"version": 3, "checkpoint": {}}')
    (stacks / "dev.json.bak.attrs").write_text('{"md5": "bak"}')
    assert engine.restore_checkpoint(tmp_path, "coco", "dev")
    assert checkpoint.read_text() == '{"version": 3, "checkpoint": {}}'
    assert (stacks / "dev.json.attrs").read_text() == '{"md5": "bak"}'
    # An intact checkpoint, or no readable backup: nothing is touched.
    assert not engine.restore_checkpoint(tmp_path, "coco", "dev")
    checkpoint.write_text("")
    (stacks / "dev.json.bak").write_text("")
    assert not engine.restore_checkpoint(tmp_path, "coco", "dev")
    assert not engine.restore_checkpoint(tmp_path, "coco", "other")


def test_a_sidecar_cut_short_is_written_again(tmp_path: Path) -> None:
    import base64
    import hashlib
    import json

    stacks = tmp_path / ".pulumi" / "stacks" / "coco"
    stacks.mkdir(parents=True)
    content = b'{"version": 3, "checkpoint": {}}'
    (stacks / "dev.json").write_bytes(content)
    (stacks / "dev.json.attrs").write_text('{"user.cache_co')
    assert engine.restore_checkpoint(tmp_path, "coco", "dev")
    attrs = json.loads((stacks / "dev.json.attrs").read_text())
    assert attrs["md5"] == base64.b64encode(hashlib.md5(content).digest()).decode()
    assert not engine.restore_checkpoint(tmp_path, "coco", "dev")
