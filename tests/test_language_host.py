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
from pathlib import Path

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


BIG_PROGRAM = """
import hashlib

import pulumi

config = pulumi.Config()
values = [config.require(f"k{i:04d}") for i in range(int(config.require("count")))]
pulumi.export("digest", hashlib.sha256("".join(values).encode()).hexdigest())
pulumi.export("token", config.require_secret("token"))
"""


def test_a_configuration_over_128_kib_reaches_the_program(tmp_path: Path) -> None:
    """Linux refuses an environment string over 128 KiB (MAX_ARG_STRLEN): with the config in
    PULUMI_CONFIG, as the upstream host passes it, a stack of about 190 coco workloads failed
    with "argument list too long" before the program ran (benchmarks.kube at N = 1000). The
    host passes it through a pipe; here 1500 values of 200 bytes (about 330 KiB) and a secret
    go through `pulumi up` and come back as the program saw them."""
    import hashlib
    import os

    import yaml

    count = 1500
    values = [f"{i:04d}" + "x" * 196 for i in range(count)]
    project = tmp_path / "project"
    project.mkdir()
    venv = Path(__file__).resolve().parents[1] / ".venv"
    (project / "Pulumi.yaml").write_text(
        yaml.safe_dump(
            {
                "name": "bigconfig",
                "runtime": {"name": "python", "options": {"virtualenv": str(venv)}},
            }
        )
    )
    (project / "__main__.py").write_text(BIG_PROGRAM)
    config = {f"bigconfig:k{i:04d}": v for i, v in enumerate(values)} | {
        "bigconfig:count": str(count)
    }
    (project / "Pulumi.big.yaml").write_text(yaml.safe_dump({"config": config}))
    (tmp_path / "state").mkdir()
    env = {
        **os.environ,
        "PULUMI_BACKEND_URL": f"file://{tmp_path / 'state'}",
        "PULUMI_CONFIG_PASSPHRASE": "language-host-test",
    }
    env.pop("PULUMI_CONFIG_PASSPHRASE_FILE", None)

    def pulumi(*args: str) -> str:
        proc = subprocess.run(
            ["pulumi", *args, "--stack", "big", "--non-interactive"],
            cwd=project,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        return proc.stdout

    subprocess.run(
        ["pulumi", "stack", "init", "big", "--non-interactive"],
        cwd=project,
        env=env,
        check=True,
        capture_output=True,
    )
    pulumi("config", "set", "--secret", "token", "s3cr3t-token")
    assert len(yaml.safe_dump(config)) > 128 * 1024
    pulumi("up", "--yes", "--skip-preview")
    expected = hashlib.sha256("".join(values).encode()).hexdigest()
    assert pulumi("stack", "output", "digest").strip() == expected
    assert pulumi("stack", "output", "token", "--show-secrets").strip() == "s3cr3t-token"
