"""`python -m benchmarks`: run every part and print one Markdown report.

    python -m benchmarks                      # all parts, full sizes (a few minutes)
    python -m benchmarks --quick              # smoke run: small N, fewer repeats (< 1 min)
    python -m benchmarks --parts eval,startup # a subset: eval, startup, engine
    python -m benchmarks --json out.json      # also keep the raw figures
    python -m benchmarks --gc-study           # also N >= 100 with the collector off on both sides

Progress goes to stderr, the report to stdout. Every figure is a median over repeats, each
repeat a fresh subprocess; ratios are computed within this one run, so they compare the
program and the baseline under the same machine load. The exit status is 0 whenever the
measurements ran, met or not: targets are reported, never asserted.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import os
import platform
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path
from typing import Any

from benchmarks import engine, evaluation, startup

PARTS = ("eval", "startup", "engine")


@dataclasses.dataclass(frozen=True)
class Plan:
    sizes: list[int]
    eval_repeats: dict[int, int]
    startup_repeats: int
    engine_repeats: int
    quick: bool
    gc_study: tuple[int, int, int] | None = None


def plan(args: argparse.Namespace) -> Plan:
    gc_study = evaluation.GC_STUDY_THRESHOLDS if args.gc_study else None
    if args.quick:
        sizes = args.sizes or [10, 100]
        # A smoke run: every code path once or thrice, well under a minute.
        repeats = {n: args.repeats or 3 for n in sizes}
        return Plan(sizes, repeats, args.repeats or 1, 1, True, gc_study)
    sizes = args.sizes or [10, 100, 1000]
    repeats = {n: args.repeats or (3 if n >= 1000 else 5) for n in sizes}
    return Plan(sizes, repeats, args.repeats or 5, args.repeats or 5, False, gc_study)


def progress(message: str) -> None:
    print(f"[benchmarks {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "?"


def header(p: Plan) -> list[str]:
    cpus = os.cpu_count()
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    return [
        "## coco benchmarks" + (" (quick smoke run)" if p.quick else ""),
        "",
        f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC; {platform.machine()}, {cpus} CPUs, "
        f"load average at start {load}; Python {platform.python_version()}, pulumi "
        f"{_version('pulumi')}, pulumi-kubernetes {_version('pulumi-kubernetes')}, "
        f"pydantic {_version('pydantic')}.",
        "",
    ]


def verdict(ok: bool) -> str:
    return "met" if ok else "**missed**"


def gc_label(thresholds: tuple[int, int, int] | None) -> str:
    """`off` for a zero first threshold (CPython's "automatic collection disabled")."""
    if not thresholds:
        return "default"
    return "off" if thresholds[0] == 0 else ",".join(map(str, thresholds))


def eval_table(r: evaluation.EvalResult, p: Plan) -> list[str]:
    reps = ", ".join(f"N={n}: {k}" for n, k in sorted(p.eval_repeats.items()))
    lines = [
        "### 1. Program evaluation under mocks (N workloads, each with agent policy, "
        "init-data and a KBS secret)",
        "",
        f"Median of {reps} runs; seconds are the timed region (the program, or the baseline "
        "registering the same objects, to quiescence); RSS is the subprocess peak (`os.wait4`), "
        "growth is peak RSS minus RSS when the clock started.",
        "",
        "| N | custom resources (+ components) | program s | baseline s | ratio | CPU ratio "
        "| program peak / growth MiB | baseline peak / growth MiB |",
        "|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for row in r.rows:
        pr, bl = row.program, row.baseline
        label = (
            f"{row.n}"
            if row.gc_thresholds is None
            else f"{row.n}, GC {gc_label(row.gc_thresholds)}"
        )
        lines.append(
            f"| {label} | {pr.resources} (+ {pr.components}) | {pr.seconds:.2f} | "
            f"{bl.seconds:.2f} | {row.ratio:.2f} | {row.cpu_ratio:.2f} | "
            f"{pr.max_rss_mib:.0f} / {pr.growth_mib:.0f} | {bl.max_rss_mib:.0f} / "
            f"{bl.growth_mib:.0f} |"
        )
    lines.append("")
    at = r.row(1000) or max((x for x in r.rows if x.gc_thresholds is None), key=lambda x: x.n)
    lines.append(
        f"- Ratio at N = {at.n}: {at.ratio:.2f} (target <= {evaluation.RATIO_TARGET}"
        f"{'' if at.n == 1000 else ', which is stated for N = 1000'}): "
        f"{verdict(at.ratio <= evaluation.RATIO_TARGET)}."
    )
    growth = r.growth()
    if growth:
        small, big, prog, base = growth
        lines.append(
            f"- Growth N = {small} -> {big}: program x{prog:.1f}, baseline x{base:.1f} "
            f"(target program <= x{evaluation.GROWTH_TARGET:.0f}"
            f"{'' if big == 1000 else ', stated for 100 -> 1000'}): "
            f"{verdict(prog <= evaluation.GROWTH_TARGET)}."
        )
    if p.gc_study:
        studied = r.growth(p.gc_study)
        at_gc = r.row(at.n, p.gc_study)
        if studied and at_gc:
            small, big, prog, base = studied
            lines.append(
                f"- GC study (both sides with the collector {gc_label(p.gc_study)}): "
                f"ratio at N = {at_gc.n} {at_gc.ratio:.2f}; growth N = {small} -> {big}: "
                f"program x{prog:.1f}, baseline x{base:.1f}."
            )
    for n, ok in r.verified.items():
        lines.append(
            f"- Baseline replay checked at N = {n}: "
            f"{'identical types, names, inputs and secrets' if ok else 'DIFFERENT'}."
        )
    return [*lines, ""]


def startup_table(rows: list[startup.StartupRow], p: Plan) -> list[str]:
    lines = [
        "### 2. Start-up per stack kind",
        "",
        f"Median of {p.startup_repeats} fresh interpreters. Import: `components.settings` + "
        "`components.stack`, parse the stack's settings and (peer pods) import the cloud "
        "module `build` loads; build: then `build` under mocks, where the cloud SDKs load the "
        "submodules they import lazily. Cloud SDKs are those in `sys.modules` at the end.",
        "",
        "| stack | kind | import s | RSS after import MiB | build s | peak RSS MiB "
        "| modules after import | cloud SDKs loaded | ok |",
        "|---|---|---:|---:|---:|---:|---:|---|---|",
    ]
    for row in rows:
        sdks = ", ".join(row.cloud_sdks) or "none"
        ok = "-" if row.kind == "-" else ("yes" if row.ok else "**NO**")
        build = "-" if row.build_s is None else f"{row.build_s:.2f}"
        lines.append(
            f"| {row.stack} | {row.kind} | {row.import_s:.2f} | {row.import_rss_mib:.0f} | "
            f"{build} | {row.max_rss_mib:.0f} | {row.modules} | {sdks} | {ok} |"
        )
    bare = [r for r in rows if r.kind == "baremetal"]
    clouds = [r for r in rows if r.kind.startswith("peerpods/")]
    lines += [
        "",
        f"- Bare-metal stacks import no cloud SDK: {verdict(all(r.ok for r in bare))} "
        f"({len(bare)} stacks); peer-pods stacks load only their own cloud's SDK: "
        f"{verdict(all(r.ok for r in clouds))} ({len(clouds)} stacks).",
        "",
    ]
    return lines


def engine_table(r: engine.EngineResult | str, p: Plan) -> list[str]:
    lines = ["### 3. `pulumi preview` of the dev stack through the engine", ""]
    if isinstance(r, str):
        return [*lines, f"Skipped: {r}", ""]
    lines += [
        f"Median of {p.engine_repeats} previews each (after one warm-up), alternating sides; "
        "wall time of the whole `pulumi preview --non-interactive` (CLI, language host, "
        "program, Kubernetes provider). Peak RSS is the largest single process.",
        "",
        "| side | preview s | runs s | peak RSS MiB | resources to create |",
        "|---|---:|---|---:|---:|",
    ]
    for name, side in (("program (coco dev stack)", r.program), ("baseline", r.baseline)):
        runs = ", ".join(f"{x:.2f}" for x in side.runs)
        lines.append(
            f"| {name} | {side.seconds:.2f} | {runs} | {side.max_rss_mib:.0f} | {side.to_create} |"
        )
    lines += [
        "",
        f"- Ratio program / baseline: {r.ratio:.2f} (baseline registers the same "
        f"{r.baseline_objects} Kubernetes objects and provider; no target set).",
        "",
    ]
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smoke run: small N, few repeats")
    parser.add_argument(
        "--parts", default=",".join(PARTS), help=f"comma-separated subset of {', '.join(PARTS)}"
    )
    parser.add_argument(
        "--sizes", type=lambda s: [int(x) for x in s.split(",")], help="N values, e.g. 10,100"
    )
    parser.add_argument("--repeats", type=int, help="repeats per figure (overrides defaults)")
    parser.add_argument("--json", type=Path, help="also write the raw figures to this file")
    parser.add_argument(
        "--gc-study",
        action="store_true",
        help="also run N >= 100 with the collector off on both sides",
    )
    args = parser.parse_args(argv)
    parts = [x.strip() for x in args.parts.split(",") if x.strip()]
    unknown = sorted(set(parts) - set(PARTS))
    if unknown:
        parser.error(f"unknown part(s) {unknown}; choose from {', '.join(PARTS)}")
    p = plan(args)
    report = header(p)
    raw: dict[str, Any] = {"plan": dataclasses.asdict(p)}
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="coco-bench-") as tmp:
        work = Path(tmp)
        if "eval" in parts:
            progress(f"part 1: evaluation under mocks, N = {p.sizes}")
            evaluated = evaluation.run_part(p.sizes, p.eval_repeats, work, p.gc_study)
            report += eval_table(evaluated, p)
            raw["eval"] = dataclasses.asdict(evaluated)
        if "startup" in parts:
            progress("part 2: start-up per stack kind")
            rows = startup.run_part(p.quick, p.startup_repeats)
            report += startup_table(rows, p)
            raw["startup"] = [dataclasses.asdict(r) for r in rows]
        if "engine" in parts:
            progress("part 3: pulumi preview through the engine")
            engine_dir = work / "engine"
            engine_dir.mkdir()
            result: engine.EngineResult | str
            try:
                result = engine.run_part(engine_dir, p.engine_repeats)
                raw["engine"] = dataclasses.asdict(result)
            except engine.EngineUnavailable as err:
                result = str(err)
            report += engine_table(result, p)
    report.append(f"Total time of this run: {time.perf_counter() - started:.0f} s.")
    print("\n".join(report))
    if args.json:
        args.json.write_text(json.dumps(raw, indent=2, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
