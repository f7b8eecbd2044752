"""coco's Python language host (scripts/engine/pulumi/cmd/pulumi-language-python) as a process.

The engine stops plugins with SIGINT and kills them only 5 s later. A host started from a
shell's background job inherits SIGINT as ignored; before the host re-enabled it, every
`pulumi preview` run that way took 5 s longer (docs/benchmarks.md). These tests start the
host the way the engine does (it prints its port first) and check that SIGINT stops it
whether or not the parent ignored the signal.
"""

from __future__ import annotations

import shutil
import signal
import subprocess

import pytest

pytestmark = pytest.mark.e2e

STOP_WAIT_S = 30
"""Generous: how long a stopped host may take to exit. An ignored SIGINT never stops it."""


def _host() -> str:
    host = shutil.which("pulumi-language-python")
    if host is None:
        pytest.fail(
            "pulumi-language-python is not on PATH: "
            "run `bash scripts/setup.sh; source scripts/env.sh`"
        )
    return host


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@pytest.mark.parametrize("parent_ignores_sigint", [False, True], ids=["default", "ignored"])
def test_sigint_stops_the_host(parent_ignores_sigint: bool) -> None:
    proc = subprocess.Popen(
        [_host()],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_ignore_sigint if parent_ignores_sigint else None,
    )
    try:
        assert proc.stdout is not None
        port = proc.stdout.readline().strip()
        assert port.isdigit(), f"the host must print its gRPC port first, printed {port!r}"
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=STOP_WAIT_S)
        except subprocess.TimeoutExpired:
            pytest.fail("the language host ignored SIGINT: the engine would wait 5 s to kill it")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
