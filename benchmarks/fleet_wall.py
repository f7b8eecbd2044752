"""Wall time of a fleet: M stacks one after another, then K at a time (not a test).

    .venv/bin/python -m benchmarks.fleet_wall                      # M = 2, 5, 10; K = 2; W = 5
    .venv/bin/python -m benchmarks.fleet_wall --sizes 2,4,8 --parallel 4 --workloads 20
    .venv/bin/python -m benchmarks.fleet_wall --operation preview
    .venv/bin/python -m benchmarks.fleet_wall --quick              # M = 2, W = 1: the code path
    .venv/bin/python -m benchmarks.fleet_wall --clusters 2 --sizes 5,10,20 --parallel 4 -w 50
    .venv/bin/python -m benchmarks.fleet_wall --clusters 1 --quick # the cluster mode's code path

What is timed is `automation.run_fleet` itself, the code `python -m automation fleet` runs:
for each M, M copies of the dev stack (render mode, so no cluster: each stack writes its
manifests into its own folder), each with W confidential workloads, are deployed with
`parallel=1` (the sequential run) and then, on a fresh state backend and fresh folders, with
`parallel=K`. Both are first deployments (every resource created), both run every stack
through the real engine, language host and Kubernetes provider. Reported: wall time of each
fleet, the speed-up (sequential / parallel), and the mean time per stack, which shows how the
cost grows with M. The machine's date, cores and load average at start and end are printed
with the table, since a shared machine's load moves every figure.

With `--clusters C`, the stacks are applied to C local control planes instead
(tests/conformance/kube_cluster.py: etcd, kube-apiserver, controller manager, scheduler and kwok,
as `benchmarks.kube` uses), stack i to cluster i mod C, each stack in namespaces of its own
(`trustee-<i>`, `demo-<i>`) and CoCo preinstalled (the RuntimeClass created first, as an
installer would, so the stacks only read it). Each side gets fresh clusters (their start is not
timed) and runs the whole life of a fleet on them: `preview`, `up` (every rollout awaited by
the provider), then `refresh`, each timed on its own.

The stacks are dev stacks, so any passphrase may encrypt their secrets; each run uses a
random one of its own (the fleet's backends live in a temporary folder for that run only).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import os
import secrets
import sys
import tempfile
from collections import Counter
from collections.abc import Sequence
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
CLUSTER_OPERATIONS: tuple[FleetOperation, ...] = ("preview", "up", "refresh")
"""What a fleet on clusters runs, in this order, each timed: a fleet's whole life."""


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


def on_cluster(config: dict[str, Any], index: int, kubeconfig: Path) -> dict[str, Any]:
    """`config` (a `stack_config`) applied to the cluster of `kubeconfig` instead of rendered:
    CoCo preinstalled, and namespaces of its own, since several stacks share each cluster."""
    config["coco:kubernetes"] = {"kubeconfig": str(kubeconfig), "context": "coco-test"}
    config["coco:cluster"]["install"] = {"method": "preinstalled"}
    trustee_ns = f"trustee-{index:03d}"
    trustee = config["coco:trustee"]
    trustee["namespace"] = trustee_ns
    # The URL init-data carries names the KBS Service in the stack's own namespace
    # (components/reachability.py checks it against the Service the stack creates).
    trustee["url"] = f"https://kbs.{trustee_ns}.svc.cluster.local:8080"
    for w in config["coco:workloads"]:
        w["namespace"] = f"{w['namespace']}-{index:03d}"
    return config


def write_fleet(root: Path, m: int, workloads: int, kubeconfigs: Sequence[Path] = ()) -> list[Path]:
    """M stack files under `root`: rendered, or stack i applied to `kubeconfigs[i % C]`."""
    files = []
    (root / "stacks").mkdir(parents=True)
    for i in range(m):
        name = f"fleet-{i:03d}"
        path = root / "stacks" / f"Pulumi.{name}.yaml"
        config = stack_config(root / "out" / name, workloads)
        if kubeconfigs:
            config = on_cluster(config, i, kubeconfigs[i % len(kubeconfigs)])
        path.write_text(yaml.safe_dump({"config": config}, sort_keys=False), encoding="utf-8")
        files.append(path)
    return files


@dataclass(frozen=True)
class Side:
    seconds: float
    ok: int
    stacks: int
    changes: dict[str, int]
    """The operation's resource changes by kind (create, same, ...), summed over the stacks."""

    @property
    def per_stack(self) -> float:
        return self.seconds / self.stacks


@dataclass(frozen=True)
class Row:
    m: int
    operation: FleetOperation
    sequential: Side
    parallel: Side

    @property
    def speedup(self) -> float:
        return self.sequential.seconds / self.parallel.seconds


def run_side(
    root: Path,
    m: int,
    workloads: int,
    parallel: int,
    operations: Sequence[FleetOperation],
    kubeconfigs: Sequence[Path] = (),
) -> dict[FleetOperation, Side]:
    """One fleet of `m` fresh stacks under `root`, `parallel` at a time: each operation in
    turn over the whole fleet, each timed."""
    from automation import Backend, run_fleet
    from automation.fleet_stacks import load_specs

    files = write_fleet(root, m, workloads, kubeconfigs)
    specs, refused = load_specs(files, {"demoKey": "bench-key"})
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

    sides: dict[FleetOperation, Side] = {}
    for operation in operations:
        say(f"  {operation}")
        result = run_fleet(
            specs, operation, parallel=parallel, backend=backend, on_progress=progress
        )
        if result.interrupted:
            raise SystemExit("interrupted")
        failed = {n: o.error for n, o in result.outcomes.items() if not o.ok}
        if failed:
            first = next(iter(failed.items()))
            raise SystemExit(
                f"{operation}: {len(failed)} stack(s) failed; first: {first[0]}: {first[1]}"
            )
        changes: Counter[str] = Counter()
        for r in result.results.values():
            changes.update(r.changes)
        sides[operation] = Side(result.seconds, len(result.results), m, dict(changes))
    return sides


def say(message: str) -> None:
    print(f"[fleet bench] {message}", file=sys.stderr, flush=True)


def _kube() -> tuple[Any, Any, Path]:
    """The local control plane's helpers (tests/conformance) and its binaries."""
    from benchmarks.kube import _cluster_module, kube_bin

    kube_cluster = _cluster_module()  # puts tests/conformance on sys.path
    import kube_stack

    return kube_cluster, kube_stack, kube_bin()


def run_on_clusters(
    root: Path, m: int, workloads: int, parallel: int, clusters: int
) -> dict[FleetOperation, Side]:
    """One side of the cluster mode: `clusters` fresh control planes (started and stopped
    outside the clock), the fleet's `preview`, `up` and `refresh` on them."""
    from components import tee

    kube_cluster, kube_stack, bin_dir = _kube()
    config = stack_config(root, 1)
    # The class the dev stack's workload resolves to (it names none), as an installer makes it.
    runtime_class = tee.default_class(kube_stack.cluster_settings(config).hardware)
    with contextlib.ExitStack() as running:
        started = []
        for j in range(clusters):
            say(f"  starting control plane {j + 1}/{clusters}")
            cluster = running.enter_context(
                kube_cluster.start_cluster(bin_dir, root / f"cluster-{j}")
            )
            kube_stack.preinstall_runtime_classes(cluster, config, [runtime_class])
            started.append(cluster)
        kubeconfigs = [c.kubeconfig for c in started]
        return run_side(root, m, workloads, parallel, CLUSTER_OPERATIONS, kubeconfigs)


def run_sizes(
    sizes: list[int],
    workloads: int,
    parallel: int,
    operation: FleetOperation,
    clusters: int = 0,
) -> list[Row]:
    """Per M, the sequential side then the parallel one, each on fresh stacks (and, with
    `clusters`, fresh control planes)."""
    rows = []
    for m in sizes:
        with tempfile.TemporaryDirectory(prefix=f"coco-fleet-bench-{m}-") as tmp:
            sides = []
            for label, k in (("sequential", 1), (f"{parallel} at a time", parallel)):
                say(f"M = {m}: {label}")
                root = Path(tmp) / label.replace(" ", "-")
                if clusters:
                    sides.append(run_on_clusters(root, m, workloads, k, clusters))
                else:
                    sides.append(run_side(root, m, workloads, k, (operation,)))
            seq, par = sides
            rows += [Row(m, op, seq[op], par[op]) for op in seq]
    return rows


def _changes(side: Side) -> str:
    return ", ".join(f"{kind} {count}" for kind, count in sorted(side.changes.items()))


def table(rows: list[Row], parallel: int) -> str:
    lines = [
        f"| M stacks | operation | sequential | {parallel} at a time | speed-up "
        f"| per stack, sequential | per stack, {parallel} at a time "
        "| resource changes (each side) |",
        "|---:|---|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r.m} | {r.operation} | {r.sequential.seconds:.1f} s | "
            f"{r.parallel.seconds:.1f} s | {r.speedup:.2f} | {r.sequential.per_stack:.1f} s | "
            f"{r.parallel.per_stack:.1f} s | {_changes(r.parallel)} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from benchmarks.engine import EngineUnavailable, engine_env
    from benchmarks.kube import _load, conditions

    parser = argparse.ArgumentParser(prog="python -m benchmarks.fleet_wall", description=__doc__)
    parser.add_argument("--sizes", help="comma-separated M (default 2,5,10)")
    parser.add_argument("--parallel", type=int, default=DEFAULT_PARALLEL, help="K (default 2)")
    parser.add_argument(
        "-w", "--workloads", type=int, default=DEFAULT_WORKLOADS, help="W per stack (default 5)"
    )
    parser.add_argument(
        "--operation",
        choices=("up", "preview"),
        default="up",
        help="render mode's operation (with --clusters: preview, up and refresh, in turn)",
    )
    parser.add_argument(
        "--clusters",
        type=int,
        default=0,
        help="apply the stacks to this many local control planes (default 0: render)",
    )
    parser.add_argument(
        "--quick", action="store_true", help=f"M = {QUICK_SIZES}, W = 1 (no figure to keep)"
    )
    args = parser.parse_args(argv)
    if args.parallel < 1 or args.workloads < 1:
        parser.error("--parallel and --workloads are at least 1")
    if args.clusters < 0:
        parser.error("--clusters is 0 (render) or more")
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
    rows = run_sizes(
        sizes or DEFAULT_SIZES, workloads, args.parallel, args.operation, args.clusters
    )
    if args.clusters:
        what = (
            f"`preview`, `up` and `refresh` of M dev stacks on {args.clusters} local control "
            f"plane(s), stack i on plane i mod {args.clusters}"
        )
    else:
        what = f"`{args.operation}` of M dev stacks (render mode)"
    print(
        f"{started}; at the end: load average {_load()}. {what}, {workloads} workload(s) each, "
        f"sequential vs {args.parallel} at a time."
    )
    print()
    print(table(rows, args.parallel))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
