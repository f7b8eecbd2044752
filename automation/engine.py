"""How the engine process is run, interrupted and recovered after a crash.

Why this exists: the SDK's `PulumiCommand.run` starts `pulumi` in the caller's process group
and, on Ctrl-C, lets `KeyboardInterrupt` unwind through `subprocess.Popen.__exit__`, which waits
a quarter of a second and returns. Python then exits, the engine's stdout pipe closes under
it, and the engine dies mid-cancel: the stack stays locked, with pending operations and its
plugin processes orphaned. `pulumi up` run by hand cancels cleanly instead: the first ^C asks
the engine to finish the operations in flight, write the state and release the lock.

So here:
- `InterruptibleCommand` runs the engine in a session of its own (a terminal's ^C reaches
  only us) and, while it runs, turns each SIGINT or SIGTERM into one SIGINT to the engine,
  as a terminal would, then keeps reading its output until it has exited; the caller then
  gets `EngineInterrupted`, never a half-run engine. `interrupt_running()` does the same from any
  thread (a service's shutdown hook; the fleet).
- After a crash (`kill -9` of the engine or of this process), the next operation finds the
  stack locked. `stale_holders` reads the lock error (pulumi pkg/backend/diy/lock.go:
  "<lock file>: created by <user>@<host> (pid <pid>) at <time>"); when every holder ran on
  this host and is dead, `recover` ends the dead engine's orphaned plugins (the processes of
  its session: we started it as a session leader), removes the lock (`pulumi cancel`, which
  on a DIY backend deletes the lock files: backend.go `CancelCurrentUpdate`) and clears
  the state's pending operations, so the operation can simply run again. A holder that is
  alive, or on another host, is never touched: that is a concurrent deployment.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import sys
import tempfile
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pulumi import automation as auto
from pulumi.automation._cmd import CommandResult, _fixup_path
from pulumi.automation.errors import create_command_error

from automation.errors import CocoAutomationError

OnOutput = Callable[[str], None]

INTERRUPT_NOTICE = (
    "interrupt: asking the engine to cancel (operations in flight finish, the state is "
    "saved and the stack unlocked); interrupt again to make the engine stop at once"
)

_running: set[Any] = set()
_interrupted: set[int] = set()
"""Pids of engines `interrupt_running` has interrupted (their `run` raises EngineInterrupted)."""
_running_guard = threading.Lock()


class EngineInterrupted(CocoAutomationError):
    """The operation was interrupted and the engine has exited after cancelling."""

    def __init__(self, stack: str = "", operation: str = "", output: str = "") -> None:
        self.stack = stack
        self.operation = operation
        self.output = output
        what = f"{operation} of stack {stack!r}" if stack else "the engine operation"
        super().__init__(
            f"{what} was cancelled by an interrupt; the engine finished the operations in "
            "flight, saved the state and released the lock: run it again to continue"
        )


def interrupt_running(*, once: bool = False) -> int:
    """Send SIGINT to every engine process this process runs; how many there were.

    `once`: skip engines already interrupted, so a caller that sweeps repeatedly (a fleet,
    catching engines started after its interrupt) never sends one engine a second SIGINT,
    which makes `pulumi` stop at once instead of cancelling cleanly.
    """
    with _running_guard:
        processes = [p for p in _running if not (once and p.pid in _interrupted)]
        _interrupted.update(p.pid for p in processes)
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
    return len(processes)


class InterruptibleCommand(auto.PulumiCommand):
    """The `pulumi` CLI, run so an interrupt cancels it as `pulumi` itself does on ^C."""

    def run(
        self,
        args: list[str],
        cwd: str,
        additional_env: Mapping[str, str],
        on_output: OnOutput | None = None,
        on_error: OnOutput | None = None,
    ) -> CommandResult:
        import subprocess

        # As the SDK's run (pulumi/automation/_cmd.py, 3.272.0): non-interactive, same env.
        sep = args.index("--") if "--" in args else len(args)
        if "--non-interactive" not in args[:sep]:
            args.insert(0, "--non-interactive")
        env = {**os.environ, **additional_env, "PULUMI_AUTOMATION_API": "true"}
        if os.path.isabs(self.command):
            env = _fixup_path(env, os.path.dirname(self.command))
        stdout_chunks: list[str] = []
        stderr_chunks: list[str] = []

        def consume(stream: Any, callback: OnOutput | None, chunks: list[str]) -> None:
            for line in iter(stream.readline, ""):
                stripped = line.rstrip()
                if callback:
                    callback(stripped)
                chunks.append(stripped)
            stream.close()

        # While the engine runs, SIGINT (and SIGTERM) in the main thread are turned into one
        # SIGINT each to the engine by a handler, not a KeyboardInterrupt: an exception can
        # strike between any two statements (before the readers start, say) and escape as a
        # traceback, with the engine left running. Other threads get no signals at all
        # (Python delivers them to the main thread; the fleet forwards them).
        started: list[Any] = []
        interrupts = 0

        def on_signal(signum: int, frame: object) -> None:
            nonlocal interrupts
            interrupts += 1
            if started and started[0].poll() is None:
                started[0].send_signal(signal.SIGINT)
            (on_error or _stderr)(INTERRUPT_NOTICE if interrupts == 1 else "interrupt")

        previous: dict[signal.Signals, Any] = {}
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                previous[sig] = signal.signal(sig, on_signal)
        try:
            process = subprocess.Popen(
                [self.command, *args],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                cwd=cwd,
                env=env,
                encoding="utf-8",
                errors="replace",
                start_new_session=True,  # a terminal's ^C reaches us only; we forward it
            )
            started.append(process)
            if interrupts:  # interrupted while it was starting
                process.send_signal(signal.SIGINT)
            with _running_guard:
                _running.add(process)
            readers = [
                threading.Thread(target=consume, args=(process.stdout, on_output, stdout_chunks)),
                threading.Thread(target=consume, args=(process.stderr, on_error, stderr_chunks)),
            ]
            for reader in readers:
                reader.start()
            for reader in readers:
                reader.join()
            process.wait()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            if started:
                with _running_guard:
                    _running.discard(started[0])
                    if started[0].pid in _interrupted:
                        _interrupted.discard(started[0].pid)
                        interrupts += 1
        result = CommandResult(
            stderr="\n".join(stderr_chunks),
            stdout="\n".join(stdout_chunks),
            code=process.returncode,
        )
        if interrupts:
            raise EngineInterrupted(output=result.stderr[-4000:])
        if result.code != 0:
            raise create_command_error(result)
        return result


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


# --- crash recovery --------------------------------------------------------------------------

_HOLDER = re.compile(r"created by (?P<user>[^@\s]*)@(?P<host>\S+) \(pid (?P<pid>\d+)\)")
LOCKED = "the stack is currently locked by"


@dataclass(frozen=True)
class LockHolder:
    user: str
    host: str
    pid: int

    def __str__(self) -> str:
        return f"{self.user}@{self.host} (pid {self.pid})"

    @property
    def alive(self) -> bool:
        """True unless the holder ran on this host and its process is gone."""
        if self.host != socket.gethostname():
            return True
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return not _zombie(self.pid)


def _zombie(pid: int) -> bool:
    stat = _stat(pid)
    return stat is not None and stat[0] == "Z"


def _stat(pid: int) -> list[str] | None:
    """Fields of /proc/<pid>/stat after the command name (state, ppid, pgrp, session, ...)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    return text[text.rfind(")") + 2 :].split()


def lock_holders(message: str) -> list[LockHolder] | None:
    """The holders a lock error names; None when `message` is no lock error."""
    if LOCKED not in message:
        return None
    return [LockHolder(m["user"], m["host"], int(m["pid"])) for m in _HOLDER.finditer(message)]


def stale_holders(message: str) -> list[LockHolder] | None:
    """The holders of a lock left by crashed engines, when every holder is one; else None."""
    holders = lock_holders(message)
    if not holders or any(h.alive for h in holders):
        return None
    return holders


def session_processes(session: int) -> list[int]:
    """Live processes of `session` (a crashed engine's orphaned plugins), this one excepted."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        stat = _stat(int(entry.name))
        if stat is not None and len(stat) > 3 and stat[3] == str(session) and stat[0] != "Z":
            found.append(int(entry.name))
    return sorted(found)


def end_orphans(holders: list[LockHolder]) -> list[int]:
    """Kill the processes left in each dead holder's session (its plugins); their pids."""
    ended = []
    for holder in holders:
        for pid in session_processes(holder.pid):
            try:
                os.kill(pid, signal.SIGKILL)
                ended.append(pid)
            except ProcessLookupError:
                continue
    return ended


def recover(stack: auto.Stack, holders: list[LockHolder], notify: OnOutput | None) -> None:
    """After a crash: end the orphans, remove the dead lock, clear pending operations."""
    say = notify or _stderr
    ended = end_orphans(holders)
    say(
        f"recovering stack {stack.name!r}: its lock was left by a crashed engine "
        f"({', '.join(map(str, holders))})"
        + (f"; ended its orphaned plugin processes {ended}" if ended else "")
    )
    stack.cancel()
    cleared = _import_without_pending(stack)
    if cleared:
        say(f"cleared {cleared} pending operation(s) the crash left in the state")


def _import_without_pending(stack: auto.Stack) -> int:
    """Re-import the state without its pending operations (the import takes the stack's
    lock, so a lock shows up here as a `CommandError`); how many were dropped.

    Exported and imported as ciphertext, in a private temporary folder removed afterwards:
    the SDK's `export_stack` uses `--show-secrets` and its `import_stack` leaves that
    plaintext file behind when the import fails (as it does on a locked stack).
    """
    workspace = stack.workspace
    assert isinstance(workspace, auto.LocalWorkspace)
    env = {**workspace.env_vars}
    if workspace.pulumi_home:
        env["PULUMI_HOME"] = workspace.pulumi_home

    def cli(*args: str) -> str:
        return workspace.pulumi_command.run(list(args), workspace.work_dir, env).stdout

    with tempfile.TemporaryDirectory(prefix="coco-state-") as tmp:
        path = Path(tmp) / "state.json"
        cli("stack", "export", "--stack", stack.name, "--file", str(path))
        state = json.loads(path.read_text(encoding="utf-8"))
        deployment = state.get("deployment") or {}
        pending = deployment.get("pending_operations") or []
        deployment["pending_operations"] = []
        path.write_text(json.dumps(state), encoding="utf-8")
        cli("stack", "import", "--stack", stack.name, "--file", str(path))
    return len(pending)


CHECKPOINT_UNREADABLE = "failed to load checkpoint"


def restore_checkpoint(state_dir: Path, project: str, stack: str) -> bool:
    """After a crash mid-write: put back the file backend's previous checkpoint; True if done.

    The DIY file backend writes `<dir>/.pulumi/stacks/<project>/<stack>.json` in place and
    keeps the one before as `.json.bak` (and each blob's `.attrs` beside it); a `kill -9`
    during that write leaves a truncated checkpoint ("failed to load checkpoint: EOF"). Only
    an unreadable checkpoint is replaced, and only by a readable backup: the step lost with
    it is run again by the next operation (its object re-rendered, or adopted by server-side
    apply).
    """
    path = state_dir / ".pulumi" / "stacks" / project / f"{stack}.json"
    backup = path.with_name(path.name + ".bak")
    try:
        content = path.read_bytes()
        json.loads(content)
    except FileNotFoundError:
        return False  # absent: nothing to restore
    except (OSError, ValueError):
        pass
    else:
        return _repair_attrs(path, content)
    try:
        json.loads(backup.read_bytes())
    except (OSError, ValueError):
        return False
    shutil.copyfile(backup, path)
    attrs = backup.with_name(backup.name + ".attrs")
    if attrs.exists():
        shutil.copyfile(attrs, path.with_name(path.name + ".attrs"))
    return True


def _repair_attrs(path: Path, content: bytes) -> bool:
    """A readable checkpoint whose `.attrs` (gocloud fileblob's metadata sidecar, JSON with the
    content's base64 MD5) was cut short: written again for that content; True if it was."""
    attrs = path.with_name(path.name + ".attrs")
    try:
        json.loads(attrs.read_bytes())
        return False
    except FileNotFoundError:
        return False
    except (OSError, ValueError):
        pass
    doc = {
        "user.cache_control": "",
        "user.content_disposition": "",
        "user.content_encoding": "",
        "user.content_language": "",
        "user.content_type": "text/plain; charset=utf-8",
        "user.metadata": None,
        "md5": base64.b64encode(hashlib.md5(content).digest()).decode("ascii"),
    }
    attrs.write_text(json.dumps(doc, separators=(",", ":")), encoding="utf-8")
    return True


def cancel(stack: auto.Stack, notify: OnOutput | None = None, force: bool = False) -> str:
    """The `cancel` command: interrupt a live engine holding the lock on this host (and wait
    until it has cancelled), end a dead one's orphans, remove the lock and clear pending
    operations. What was done, in one line. A holder on another host may be a concurrent
    deployment: `EngineBusy`, nothing touched, unless `force` (the operator knows that host's
    engine is gone, e.g. a CI runner that was torn down)."""
    say = notify or _stderr
    try:
        cleared = _import_without_pending(stack)
        return f"stack {stack.name!r}: not locked; {cleared} pending operation(s) cleared"
    except auto.CommandError as err:
        holders = lock_holders(str(err))
        if holders is None:
            raise
    here = socket.gethostname()
    remote = [h for h in holders if h.host != here]
    if remote and not force:
        raise EngineBusy(stack.name, remote)
    for holder in holders:
        if holder.host == here and holder.alive:
            say(f"interrupting the running engine {holder}; waiting for it to cancel")
            os.kill(holder.pid, signal.SIGINT)
            _wait_gone(holder.pid)
    ended = end_orphans(holders)
    stack.cancel()
    cleared = _import_without_pending(stack)
    return (
        f"stack {stack.name!r}: removed the lock of {', '.join(map(str, holders))}"
        + (f", ended orphaned plugin processes {ended}" if ended else "")
        + f"; {cleared} pending operation(s) cleared"
    )


class EngineBusy(CocoAutomationError):
    """The stack is locked by an engine that is running (here or on another host)."""

    def __init__(self, stack: str, holders: list[LockHolder]) -> None:
        self.holders = holders
        super().__init__(
            f"stack {stack!r} is locked by a running deployment ({', '.join(map(str, holders))})"
            ": wait for it to finish; if it is known dead, `python -m automation cancel "
            f"--stack {stack}` on its host removes the lock (elsewhere: add --force)"
        )


def _wait_gone(pid: int) -> None:
    import time

    while LockHolder("", socket.gethostname(), pid).alive:
        time.sleep(0.2)
