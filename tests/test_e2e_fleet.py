"""`python -m automation fleet` on the real engine: many stacks, bounded, failures isolated.

Copies of the dev stack render into temporary folders on a temporary file backend, so no
cluster is needed. One stack of the fleet is refused before the engine (a secret nobody
gives), one fails in the engine (its render folder lies under a regular file); the others
deploy, and the command's table, JSON and exit code say which is which. Then an interrupt:
^C to a running fleet cancels every running engine cleanly (no lock, no pending operation
left) and the queued stacks never start. No time is asserted.

    bash scripts/setup.sh && source scripts/env.sh && pytest -m e2e tests/test_e2e_fleet.py
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from fleet_files import broken_stack, dev_stack, refused_stack

from automation.spec import PROJECT_DIR

pytestmark = pytest.mark.e2e


@pytest.fixture
def env(engine: str) -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("PULUMI_CONFIG_PASSPHRASE", "coco-e2e-fleet")
    return env


def fleet(tmp_path: Path, *args: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "automation",
        "fleet",
        *args,
        "--stacks-dir",
        str(tmp_path / "stacks"),
        "--backend-url",
        f"file://{tmp_path / 'state'}",
        "--secret",
        "demoKey=e2e-fleet-key",
    ]


def run(cmd: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        cmd, cwd=PROJECT_DIR, env=env, capture_output=True, text=True, timeout=1200, check=False
    )


def rows(table: str) -> dict[str, list[str]]:
    """The summary table's rows: stack -> [stack, status, time, result]."""
    lines = table.split("\n\n")[0].splitlines()
    return {line.split()[0]: line.split(None, 3) for line in lines[1:-1]}


def rendered(directory: Path) -> list[Path]:
    return sorted(p for p in directory.rglob("*.yaml") if p.is_file())


def test_fleet_up_preview_and_refresh_isolate_failures(env: dict[str, str], tmp_path: Path) -> None:
    stacks, out = tmp_path / "stacks", tmp_path / "out"
    for name in ("app-1", "app-2", "app-3"):
        dev_stack(stacks, name, out)
    refused_stack(stacks, "app-refused", out)
    broken_stack(stacks, "app-broken", out)
    results = tmp_path / "up.json"

    logs = tmp_path / "logs"
    options = ["--parallel", "2", "--json", str(results), "--log-dir", str(logs)]
    up = run(fleet(tmp_path, "up", "app-*", *options), env)
    text = up.stdout + up.stderr
    assert up.returncode == 1, text[-6000:]
    table = rows(up.stdout)
    assert {n: r[1] for n, r in table.items()} == {
        "app-1": "ok",
        "app-2": "ok",
        "app-3": "ok",
        "app-broken": "failed",
        "app-refused": "refused",
    }, up.stdout
    assert all("create" in table[f"app-{i}"][3] for i in (1, 2, 3))
    assert "up of stack 'app-broken' failed" in table["app-broken"][3]
    assert "coco:trustee.resources[0].valueFrom" in table["app-refused"][3]
    assert "up: 3 ok, 1 failed, 1 refused of 5 stacks" in up.stdout
    assert "(at most 2 at a time)" in up.stdout and "Traceback" not in text
    # Progress: every stack the engine ran started and finished; the refused one never started.
    for name in ("app-1", "app-2", "app-3", "app-broken"):
        assert f"up {name}: started" in up.stderr, name
    assert "up app-refused: started" not in up.stderr
    assert "up app-refused: refused in 0.0s" in up.stderr
    for name in ("app-1", "app-2", "app-3"):
        files = rendered(out / name)
        assert any("kind: Deployment" in f.read_text() for f in files), name
    # Each stack the engine ran has its own log of the engine's output; the refused one none.
    assert sorted(p.name for p in logs.iterdir()) == [
        "app-1.log",
        "app-2.log",
        "app-3.log",
        "app-broken.log",
    ]
    assert "Resources:" in (logs / "app-1.log").read_text()
    assert "not a directory" in (logs / "app-broken.log").read_text()
    doc = json.loads(results.read_text())
    assert doc["operation"] == "up" and doc["parallel"] == 2 and not doc["interrupted"]
    by_stack = {s["stack"]: s for s in doc["stacks"]}
    assert by_stack["app-1"]["changes"]["create"] > 0
    assert by_stack["app-refused"]["errorType"] == "SettingsError"
    assert by_stack["app-broken"]["errorType"] == "CocoDeploymentError"

    # The deployed ones again, listed in a file: preview proposes nothing.
    listing = tmp_path / "deployed.txt"
    listing.write_text("# deployed by the up above\napp-1\napp-2\nstacks/Pulumi.app-3.yaml\n")
    again = run([*fleet(tmp_path, "preview", "--from", str(listing), "--parallel", "3")], env)
    assert again.returncode == 0, (again.stdout + again.stderr)[-6000:]
    table = rows(again.stdout)
    assert sorted(table) == ["app-1", "app-2", "app-3"]
    for name, row in table.items():
        assert row[1] == "ok" and "same" in row[3] and "create" not in row[3], (name, row)
    assert "preview: 3 ok of 3 stacks" in again.stdout

    # Refresh has no cluster to read in render mode: each stack refused, keyed, engine not run.
    refresh = run(fleet(tmp_path, "refresh", "app-1", "app-2"), env)
    assert refresh.returncode == 1, refresh.stdout + refresh.stderr
    table = rows(refresh.stdout)
    assert sorted(table) == ["app-1", "app-2"]
    for row in table.values():
        assert row[1] == "refused" and row[3].startswith("coco:kubernetes.renderDir: refresh")
    assert refresh.stderr.count(": refused in 0.0s: coco:kubernetes.renderDir") == 2


def locks(state: Path) -> list[Path]:
    return sorted((state / ".pulumi" / "locks").rglob("*.json"))


def test_ctrl_c_cancels_every_running_stack_of_a_fleet(env: dict[str, str], tmp_path: Path) -> None:
    stacks, out, state = tmp_path / "stacks", tmp_path / "out", tmp_path / "state"
    names = ("run-1", "run-2", "queued")
    for name in names:
        dev_stack(stacks, name, out)
    cmd = [*fleet(tmp_path, "up", *names, "--parallel", "2", "--verbose")]
    process = subprocess.Popen(
        cmd,
        cwd=PROJECT_DIR,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group, as a terminal's foreground job
    )
    assert process.stdout is not None
    head: list[str] = []
    creating: set[str] = set()
    for line in process.stdout:
        head.append(line)
        if "creating" in line and line.startswith("[run-"):
            creating.add(line.split("]", 1)[0][1:])
            if len(creating) == 2:  # both running stacks have an engine mid-update
                break
    assert creating == {"run-1", "run-2"}, "".join(head)[-4000:]
    os.killpg(process.pid, signal.SIGINT)  # ^C in the terminal
    rest, _ = process.communicate(timeout=600)
    text = "".join(head) + rest
    assert process.returncode == 130, text[-6000:]
    assert "Traceback" not in text and "KeyboardInterrupt" not in text
    assert "running engine(s) cancelling" in text  # the fleet's notice
    table = rows(rest[rest.index("STACK") :])
    assert table["queued"][1] == "cancelled" and table["queued"][2] == "0.0s", rest[-3000:]
    assert "up queued: started" not in text
    for name in ("run-1", "run-2"):
        # Each engine finished cancelling before the command exited: the lock is released.
        assert table[name][1] == "cancelled", rest[-3000:]
    assert locks(state) == [], "a stack is still locked"
    # The next run completes every stack, with nothing to recover.
    again = run(fleet(tmp_path, "up", *names, "--parallel", "3"), env)
    assert again.returncode == 0, (again.stdout + again.stderr)[-6000:]
    assert "recovering" not in again.stdout + again.stderr
    assert "up: 3 ok of 3 stacks" in again.stdout
