"""`python -m benchmarks.kube --quick` runs end to end through a real control plane.

The real-apply benchmark (a production fleet stack applied by `pulumi up` to kube-apiserver and
kwok, against plain pulumi-kubernetes applying the same objects) once stopped running when the
production gate refused the public development passphrase, and no test noticed. This runs it at
its quick size and checks that both sides applied their stacks; no time is asserted.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from judges import judge_dir

from benchmarks import fleet_wall, kube

pytestmark = [pytest.mark.conformance, pytest.mark.e2e]

ROOT = Path(__file__).resolve().parents[2]


def run_benchmark(module: str, *args: str) -> subprocess.CompletedProcess[str]:
    """`python -m <module> <args>` from the repository root, which must exit 0."""
    judge_dir("kube")  # the control plane it starts (a skip, or a failure in CI, without it)
    if not os.environ.get("COCO_TOOLS_BIN"):
        pytest.fail("the engine is not set up: run `bash scripts/setup.sh; source scripts/env.sh`")
    proc = subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr[-6000:]
    return proc


def test_kube_benchmark_quick_run_applies_both_sides(tmp_path: Path) -> None:
    events = tmp_path / "events"
    proc = run_benchmark(
        "benchmarks.kube", "--quick", "--checkpoints", "end", "--event-log", str(events)
    )
    (n,) = kube.QUICK_SIZES
    rows = [x for x in proc.stdout.splitlines() if x.startswith(f"| {n} |")]
    assert len(rows) == 1, proc.stdout
    program, baseline = (int(x) for x in rows[0].split("|")[-2].split("/"))
    # Each side's state holds what it applied: the baseline every Kubernetes object the program
    # registers (its n Deployments among them) and the provider, the program those plus its
    # components, the stack and the KBS certificate's dynamic resources.
    assert baseline > 2 * n
    assert program > baseline
    assert "UTC; " in proc.stdout and "load average at start" in proc.stdout
    assert "state checkpoints: end" in proc.stdout
    # The engine's own record of each side's `up` (--event-log): a step started for every
    # resource the state holds, and on the program's side the KBS chain in the order its
    # dependencies force (token signer, its Secret, the KBS rollout). Where the signer falls
    # among the workloads' steps is not checked here: at N = 2 it races the workload
    # components' registrations (two concurrent runs lost it 1 time in 6); the unit tier
    # checks the registration order the fix is about (tests/test_stacks.py).
    for side, count in (("program", program), ("baseline", baseline)):
        started = [
            json.loads(line)["resourcePreEvent"]["metadata"]["urn"].rsplit("::", 1)[-1]
            for line in (events / f"{side}-{n}.jsonl").read_text().splitlines()
            if "resourcePreEvent" in line
        ]
        assert len(started) == count, (side, started)
        if side == "program":
            chain = ["trustee-token-signer-cert", "trustee-token-signer", "trustee-kbs"]
            assert [started.index(name) for name in chain] == sorted(
                started.index(name) for name in chain
            ), started


def test_fleet_benchmark_on_a_control_plane_quick_run() -> None:
    """`python -m benchmarks.fleet_wall --clusters 1 --quick`: two dev stacks, each in its own
    namespaces on one local control plane, through `preview`, `up` and `refresh`, one after
    another and then both at once (fresh control planes each side); no time is asserted."""
    proc = run_benchmark("benchmarks.fleet_wall", "--clusters", "1", "--quick")
    (m,) = fleet_wall.QUICK_SIZES
    rows = {
        cells[2]: cells
        for line in proc.stdout.splitlines()
        if line.startswith(f"| {m} |")
        for cells in [[c.strip() for c in line.split("|")]]
    }
    assert sorted(rows) == sorted(fleet_wall.CLUSTER_OPERATIONS), proc.stdout
    # The preview proposed what the up then created, on every stack of the fleet; the refresh
    # read every created resource back from the control plane (and the RuntimeClass each
    # stack reads, which it did not create).
    created = rows["up"][-2]
    assert created.startswith("create ") and int(created.split()[1]) > 10 * m, created
    assert rows["preview"][-2] == created
    refreshed = dict(c.split() for c in rows["refresh"][-2].split(", "))
    assert sum(int(v) for v in refreshed.values()) >= int(created.split()[1]), refreshed
    # Every stack succeeded in each of the 2 sides x 3 operations.
    assert proc.stderr.count(": ok in ") == 2 * len(fleet_wall.CLUSTER_OPERATIONS) * m
    assert "on 1 local control plane(s)" in proc.stdout
