"""The benchmarks' code paths run, so a change elsewhere cannot silently break them again.

`python -m benchmarks.kube` stopped running when the production gate began refusing the public
development passphrase, and no test noticed. These run every part in its quick mode and check
what it reports (which parts ran, on what), never how long anything took.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from benchmarks import fleet_wall, kube, startup
from benchmarks.fleet import fleet_config
from components import secrets_provider

ROOT = Path(__file__).resolve().parent.parent


def run_module(*args: str, timeout: int = 600) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [sys.executable, "-m", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert proc.returncode == 0, f"{' '.join(args)}:\n{proc.stdout}\n{proc.stderr[-4000:]}"
    return proc


def test_the_kube_benchmark_stacks_pass_the_production_gate() -> None:
    # The fleet is a production stack: the public passphrase of scripts/env.sh is refused ...
    assert fleet_config(2)["environment"] == "production"
    provider = secrets_provider.SecretsProvider("passphrase")
    env_sh = {"PULUMI_CONFIG_PASSPHRASE": secrets_provider.PUBLIC_DEV_PASSPHRASE}
    public = secrets_provider.passphrase_from_env(env_sh)
    assert secrets_provider.problem("production", kube.STACK, provider, public)
    # ... and the benchmark's own environment has a private one, new for every run, with no
    # passphrase file left to take precedence over it.
    env = kube.bench_env({**env_sh, "PULUMI_CONFIG_PASSPHRASE_FILE": "/tmp/dev-passphrase"})
    assert "PULUMI_CONFIG_PASSPHRASE_FILE" not in env
    private = secrets_provider.passphrase_from_env(env)
    assert secrets_provider.problem("production", kube.STACK, provider, private) is None
    assert kube.bench_env(env_sh)["PULUMI_CONFIG_PASSPHRASE"] != private


def test_mocks_benchmark_quick_run_reports_every_part() -> None:
    """`python -m benchmarks` parts 1 and 2 (program vs baseline under mocks, start-up per
    stack) at the smallest size."""
    proc = run_module(
        "benchmarks", "--quick", "--parts", "eval,startup", "--sizes", "2", "--repeats", "1"
    )
    report = proc.stdout
    assert "### 1. Program evaluation under mocks" in report
    assert "- Baseline replay checked at N = 2: identical types, names, inputs and secrets" in (
        report
    )
    assert "### 2. Start-up per stack kind" in report
    rows = [line for line in report.splitlines() if line.startswith("| ")]
    # Quick mode measures `dev` and one stack of each other kind.
    stacks = startup.stacks_to_measure(quick=True)
    assert "dev" in stacks and len(stacks) > 2
    for stack in stacks:
        assert any(row.startswith(f"| {stack} |") for row in rows), stack
    assert "**NO**" not in report and "**missed**" not in report.split("### 2.")[1]


@pytest.mark.e2e
def test_engine_benchmark_quick_run() -> None:
    """Part 3: `pulumi preview` of the dev stack and of its plain pulumi-kubernetes baseline."""
    if not os.environ.get("COCO_TOOLS_BIN"):
        pytest.fail("the engine is not set up: run `bash scripts/setup.sh; source scripts/env.sh`")
    proc = run_module("benchmarks", "--quick", "--parts", "engine", "--repeats", "1")
    report = proc.stdout
    assert "### 3. `pulumi preview` of the dev stack through the engine" in report
    assert "Skipped:" not in report
    (program,) = [x for x in report.splitlines() if x.startswith("| program (coco dev stack) |")]
    (baseline,) = [x for x in report.splitlines() if x.startswith("| baseline |")]
    # Both previews counted what they would create (-1 when the summary was not found).
    assert int(program.split("|")[-2]) > 0 and int(baseline.split("|")[-2]) > 0


@pytest.mark.e2e
def test_fleet_benchmark_quick_run() -> None:
    """`python -m benchmarks.fleet_wall --quick`: two dev stacks deployed one after another,
    then both at once, through `run_fleet` and the real engine."""
    if not os.environ.get("COCO_TOOLS_BIN"):
        pytest.fail("the engine is not set up: run `bash scripts/setup.sh; source scripts/env.sh`")
    proc = run_module("benchmarks.fleet_wall", "--quick")
    assert "UTC; " in proc.stdout and "load average at start" in proc.stdout
    (m,) = fleet_wall.QUICK_SIZES
    (row,) = [x for x in proc.stdout.splitlines() if x.startswith(f"| {m} |")]
    # Both sides deployed every stack (a failed stack stops the benchmark with exit 1) and
    # created resources; the operation is the render mode's one.
    cells = [c.strip() for c in row.split("|")]
    assert cells[2] == "up", row
    kind, count = cells[-2].split()
    assert kind == "create" and int(count) > 0, row
    assert proc.stderr.count(": ok in ") == 2 * m


def test_fleet_benchmark_stacks_on_clusters_are_valid_and_apart(tmp_path: Path) -> None:
    """The cluster mode's stacks: each accepted by the program's own settings, stack i on
    control plane i mod C, and no two stacks on one cluster sharing a namespace (they would
    fight over its objects)."""
    from automation.fleet_stacks import load_specs

    kubeconfigs = []
    for j in range(2):
        path = tmp_path / f"kubeconfig-{j}"
        path.write_text("")
        kubeconfigs.append(path)
    files = fleet_wall.write_fleet(tmp_path / "fleet", 3, 2, kubeconfigs)
    specs, refused = load_specs(files, {"demoKey": "bench-key"})
    assert not refused and len(specs) == 3
    seen: dict[str, set[str]] = {}
    for i, path in enumerate(files):
        config = yaml.safe_load(path.read_text())["config"]
        assert config["coco:kubernetes"]["kubeconfig"] == str(kubeconfigs[i % 2])
        assert config["coco:cluster"]["install"] == {"method": "preinstalled"}
        trustee = config["coco:trustee"]
        assert trustee["url"] == f"https://kbs.{trustee['namespace']}.svc.cluster.local:8080"
        namespaces = {trustee["namespace"], *(w["namespace"] for w in config["coco:workloads"])}
        cluster = config["coco:kubernetes"]["kubeconfig"]
        assert not namespaces & seen.get(cluster, set()), (path, seen)
        seen.setdefault(cluster, set()).update(namespaces)
    assert len(config["coco:workloads"]) == 2
