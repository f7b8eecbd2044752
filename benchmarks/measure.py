"""Run one measurement in a fresh subprocess and collect its figures.

Why a subprocess per measurement: a clean interpreter has no warm caches, no leftover
Pulumi runtime state (the SDK keeps process-wide settings and a root stack), and its peak
memory belongs to that one run. Peak RSS comes from `os.wait4`, which returns the rusage of
exactly the child it reaps (on Linux `ru_maxrss` in KiB, the largest of the child and the
descendants it waited for); `RUSAGE_CHILDREN` would only ever report the largest child so far.
No tracemalloc: it slows Python code two to three times and would distort the timings.
"""

from __future__ import annotations

import json
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

REPO = Path(__file__).resolve().parent.parent
RESULT_PREFIX = "BENCH-RESULT "
"""Workers print their figures as one line with this prefix; anything else is diagnostics."""


@dataclass(frozen=True)
class Run:
    """What one subprocess reported, plus what the parent saw of it."""

    result: dict[str, Any]
    """The worker's own figures (timed region), or {} when it printed none."""
    wall_s: float
    """Wall time of the whole subprocess, interpreter start-up included."""
    max_rss_kib: int
    """Peak resident set size of the subprocess (largest process, see module doc)."""
    stdout: str = ""


class MeasurementError(RuntimeError):
    """A measured subprocess failed; carries its stderr so the cause is visible."""


def _drain(stream: IO[bytes], sink: list[bytes]) -> None:
    sink.append(stream.read())


def default_sigint() -> None:
    """Let children start with SIGINT at its default action, even if we were started ignoring it.

    A job started in the background by a non-interactive shell (`nohup ... &`, many CI
    scripts) ignores SIGINT, and exec'd children inherit that. The Pulumi CLI stops each
    plugin with SIGINT and kills it only after a 5-second grace period, so a language host or
    dynamic provider that inherited the ignore adds 5 s per plugin to every preview: a
    measurement of the environment, not of the program. (Python keeps SIG_IGN at start-up;
    installing a handler here makes exec reset it to the default in every child.)
    """
    if (
        threading.current_thread() is threading.main_thread()
        and signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    ):
        signal.signal(signal.SIGINT, signal.default_int_handler)


def run(
    cmd: Sequence[str],
    *,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    timeout_s: float = 600.0,
) -> Run:
    """Run `cmd`, wait for it with `os.wait4`, and return its figures; raise on failure."""
    default_sigint()
    started = time.perf_counter()
    proc = subprocess.Popen(
        list(cmd),
        cwd=cwd or REPO,
        env=dict(env) if env is not None else None,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
    )
    assert proc.stdout is not None and proc.stderr is not None
    out: list[bytes] = []
    err: list[bytes] = []
    readers = [
        threading.Thread(target=_drain, args=(proc.stdout, out), daemon=True),
        threading.Thread(target=_drain, args=(proc.stderr, err), daemon=True),
    ]
    for reader in readers:
        reader.start()
    killer = threading.Timer(timeout_s, proc.kill)
    killer.start()
    try:
        _, status, usage = os.wait4(proc.pid, 0)
    finally:
        killer.cancel()
    wall = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    for reader in readers:
        reader.join()
    proc.stdout.close()
    proc.stderr.close()
    stdout = b"".join(out).decode(errors="replace")
    stderr = b"".join(err).decode(errors="replace")
    if proc.returncode != 0:
        tail = "\n".join((stdout + stderr).strip().splitlines()[-40:])
        raise MeasurementError(f"{' '.join(cmd)} exited {proc.returncode}:\n{tail}")
    result: dict[str, Any] = {}
    for line in stdout.splitlines():
        if line.startswith(RESULT_PREFIX):
            result = json.loads(line[len(RESULT_PREFIX) :])
    return Run(result=result, wall_s=wall, max_rss_kib=usage.ru_maxrss, stdout=stdout)


def python_worker(*args: str) -> list[str]:
    """The command line that runs `benchmarks.worker` with this interpreter."""
    return [sys.executable, "-m", "benchmarks.worker", *args]


def report(result: Mapping[str, Any]) -> None:
    """Called by a worker: print its figures for the parent to pick up."""
    print(RESULT_PREFIX + json.dumps(dict(result)), flush=True)


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def current_rss_kib() -> int:
    """This process's resident set size now (Linux `/proc/self/statm`), in KiB."""
    with open("/proc/self/statm") as statm:
        pages = int(statm.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") // 1024
