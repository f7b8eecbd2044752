"""Wall time of a fleet: M stacks one after another, then K at a time (not a test).

    .venv/bin/python -m benchmarks.fleet_wall                      # M = 2, 5, 10; K = 2; W = 5
    .venv/bin/python -m benchmarks.fleet_wall --sizes 2,4,8 --parallel 4 --workloads 20
    .venv/bin/python -m benchmarks.fleet_wall --operation preview
    .venv/bin/python -m benchmarks.fleet_wall --quick              # M = 2, W = 1: the code path

What is timed is `automation.run_fleet` itself, the code `python -m automation fleet` runs:
for each M, M copies of the dev stack (render mode, so no cluster: each stack writes its
manifests into its own folder), each with W confidential workloads, are deployed with
`parallel=1` (the sequential run) and then, on a fresh state backend and fresh folders, with
`parallel=K`. Both are first deployments (every resource created), both run every stack
through the real engine, language host and Kubernetes provider. Reported: wall time of each
fleet, the speed-up (sequential / parallel), and the mean time per stack, which shows how the
cost grows with M. The machine's date, cores and load average at start and end are printed
with the table, since a shared machine's load moves every figure.

The stacks are dev stacks, so any passphrase may encrypt their secrets; each run uses a
random one of its own (the fleet's backends live in a temporary folder for that run only).
"""

from __future__ import annotations

import argparse
import copy
import os
import secrets
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import SecretStr

from automation.fleet import FleetEvent, FleetOperation
from benchmarks import measure

DEV_FILE = measure.REPO / "stacks" / "Pulumi.dev.yaml"
DEFAULT_SIZES = [2, 5, 10]
QUICK_SIZES = [2]
DEFAULT_PARALLEL = 2
DEFAULT_WORKLOADS = 5


def stack_config(render_dir: Path, workloads: int) -> dict[str, Any]:
    """The dev stack (its `demoKey` given by the fleet) with `workloads` copies of its
    workload, rendering into `render_dir`."""
    doc = yaml.safe_load(DEV_FILE.read_text(encoding="utf-8"))
    config: dict[str, Any] = doc["config"]
    config.pop("coco:demoKey", None)
    config["coco:kubernetes"] = {"renderDir": str(render_dir)}
    (first,) = config["coco:workloads"]
    copies = []
    for i in range(workloads):
        w = copy.deepcopy(first)
        if i:
            w["name"] = f"{first['name']}-{i}"
        copies.append(w)
    config["coco:workloads"] = copies
    return config


def write_fleet(root: Path, m: int, workloads: int) -> list[Path]:
    files = []
    (root / "stacks").mkdir(parents=True)
    for i in range(m):
        name = f"fleet-{i:03d}"
        path = root / "stacks" / f"Pulumi.{name}.yaml"
        config = stack_config(root / "out" / name, workloads)
        path.write_text(yaml.safe_dump({"config": config}, sort_keys=False), encoding="utf-8")
        files.append(path)
    return files


@dataclass(frozen=True)
class Side:
    seconds: float
    ok: int
    stacks: int
    resources: int
    """Resources the operation created (or would create), summed over the stacks."""

    @property
    def per_stack(self) -> float:
        return self.seconds / self.stacks


@dataclass(frozen=True)
class Row:
    m: int
    sequential: Side
    parallel: Side

    @property
    def speedup(self) -> float:
        return self.sequential.seconds / self.parallel.seconds


def run_side(root: Path, m: int, workloads: int, parallel: int, operation: FleetOperation) -> Side:
    """One fleet of `m` fresh stacks under `root`, `parallel` at a time."""
    from automation import Backend, run_fleet
    from automation.fleet_stacks import load_specs

    specs, refused = load_specs(write_fleet(root, m, workloads), {"demoKey": "bench-key"})
    if refused:
        raise SystemExit(f"the benchmark's stacks were refused: {refused}")
    backend = Backend.local(
        root / "state",
        passphrase=SecretStr(secrets.token_urlsafe(24)),
        secrets_provider="passphrase",
    )

    def progress(event: FleetEvent) -> None:
        if event.kind == "finished" and event.outcome is not None:
            o = event.outcome
            say(f"  {event.done}/{event.total} {o.stack}: {o.status} in {o.seconds:.1f}s")

    result = run_fleet(specs, operation, parallel=parallel, backend=backend, on_progress=progress)
    if result.interrupted:
        raise SystemExit("interrupted")
    failed = {n: o.error for n, o in result.outcomes.items() if not o.ok}
    if failed:
        first = next(iter(failed.items()))
        raise SystemExit(f"{len(failed)} stack(s) failed; first: {first[0]}: {first[1]}")
    created = sum(r.changes.get("create", 0) for r in result.results.values())
    return Side(result.seconds, len(result.results), m, created)


def say(message: str) -> None:
    print(f"[fleet bench] {message}", file=sys.stderr, flush=True)


def run_sizes(
    sizes: list[int], workloads: int, parallel: int, operation: FleetOperation
) -> list[Row]:
    rows = []
    for m in sizes:
        with tempfile.TemporaryDirectory(prefix=f"coco-fleet-bench-{m}-") as tmp:
            say(f"M = {m}: sequential")
            seq = run_side(Path(tmp) / "sequential", m, workloads, 1, operation)
            say(f"M = {m}: {parallel} at a time")
            par = run_side(Path(tmp) / "parallel", m, workloads, parallel, operation)
            rows.append(Row(m, seq, par))
    return rows


def table(rows: list[Row], parallel: int) -> str:
    lines = [
        f"| M stacks | sequential | {parallel} at a time | speed-up | per stack, sequential "
        f"| per stack, {parallel} at a time | resources created (each side) |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r.m} | {r.sequential.seconds:.1f} s | {r.parallel.seconds:.1f} s | "
            f"{r.speedup:.2f} | {r.sequential.per_stack:.1f} s | {r.parallel.per_stack:.1f} s | "
            f"{r.parallel.resources} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from benchmarks.engine import EngineUnavailable, engine_env
    from benchmarks.kube import _load, conditions

    parser = argparse.ArgumentParser(prog="python -m benchmarks.fleet_wall", description=__doc__)
    parser.add_argument("--sizes", help="comma-separated M (default 2,5,10)")
    parser.add_argument("--parallel", type=int, default=DEFAULT_PARALLEL, help="K (default 2)")
    parser.add_argument(
        "--workloads", type=int, default=DEFAULT_WORKLOADS, help="W per stack (default 5)"
    )
    parser.add_argument("--operation", choices=("up", "preview"), default="up")
    parser.add_argument(
        "--quick", action="store_true", help=f"M = {QUICK_SIZES}, W = 1 (no figure to keep)"
    )
    args = parser.parse_args(argv)
    if args.parallel < 1 or args.workloads < 1:
        parser.error("--parallel and --workloads are at least 1")
    sizes = [int(s) for s in args.sizes.split(",")] if args.sizes else None
    workloads = args.workloads
    if args.quick:
        sizes, workloads = sizes or QUICK_SIZES, 1
    try:
        # The engine and its plugins as scripts/env.sh puts them on PATH, for this process's
        # engines (run_fleet runs them from here).
        os.environ.update(engine_env())
    except EngineUnavailable as err:
        raise SystemExit(str(err)) from None
    started = conditions()
    rows = run_sizes(sizes or DEFAULT_SIZES, workloads, args.parallel, args.operation)
    print(
        f"{started}; at the end: load average {_load()}. `{args.operation}` of M dev stacks "
        f"(render mode), {workloads} workload(s) each, sequential vs {args.parallel} at a time."
    )
    print()
    print(table(rows, args.parallel))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
