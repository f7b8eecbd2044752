"""Part 1: program evaluation under `pulumi.runtime.set_mocks`, N workloads vs the baseline.

For each N the real program runs once under recording mocks to capture what it registers
(the specs); then the program (`build(load())` on the N-workload fleet of
`benchmarks.fleet`) and the baseline (`benchmarks.baseline` registering those specs) are
timed alternately, each in a fresh interpreter, and the medians compared. Once per run of
the command, at the smallest N, the baseline is replayed under recording mocks and checked
to register exactly the program's resources (types, names, inputs, secretness), so the
ratio is known to compare like with like.

Targets (issue 7): ratio at most 1.25 at N = 1000; the program's time at N grows at most
11 times from N/10 to N (linear within measurement noise).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from benchmarks import measure

RATIO_TARGET = 1.25
GROWTH_TARGET = 11.0
GC_STUDY_THRESHOLDS = (0, 0, 0)
"""Collector thresholds of the optional `--gc-study` rows: 0 turns automatic collection off
(CPython's default: 700, 10, 10), on both sides, whatever `__main__.py` sets (the worker
makes its collector calls no-ops on these rows).

Why a study at all: the program's entry point turns the collector off, and the baseline as
written does not, so the headline ratio includes that tuning. Re-running both
sides with the collector off compares coco's own per-workload cost with the baseline's on
equal terms."""


@dataclass(frozen=True)
class Side:
    """Medians over the repeats of one side at one N."""

    seconds: float
    cpu_seconds: float
    runs: list[float]
    max_rss_mib: float
    growth_mib: float
    resources: int
    components: int


@dataclass(frozen=True)
class EvalRow:
    n: int
    program: Side
    baseline: Side
    gc_thresholds: tuple[int, int, int] | None = None
    """Set on the `--gc-study` rows: both sides ran with these collector thresholds."""

    @property
    def ratio(self) -> float:
        return self.program.seconds / self.baseline.seconds

    @property
    def cpu_ratio(self) -> float:
        return self.program.cpu_seconds / self.baseline.cpu_seconds


@dataclass
class EvalResult:
    rows: list[EvalRow]
    verified: dict[int, bool] = field(default_factory=dict)

    def row(self, n: int, gc: tuple[int, int, int] | None = None) -> EvalRow | None:
        return next((r for r in self.rows if r.n == n and r.gc_thresholds == gc), None)

    def growth(
        self, gc: tuple[int, int, int] | None = None
    ) -> tuple[int, int, float, float] | None:
        """(N/10, N, program growth, baseline growth) for the largest N that has its N/10."""
        for big in sorted((r.n for r in self.rows), reverse=True):
            small, large = self.row(big // 10, gc), self.row(big, gc)
            if small is not None and large is not None and big % 10 == 0:
                return (
                    small.n,
                    big,
                    large.program.seconds / small.program.seconds,
                    large.baseline.seconds / small.baseline.seconds,
                )
        return None


def _side(runs: list[measure.Run]) -> Side:
    results = [r.result for r in runs]
    return Side(
        seconds=measure.median([r["seconds"] for r in results]),
        cpu_seconds=measure.median([r["cpu_seconds"] for r in results]),
        runs=[r["seconds"] for r in results],
        max_rss_mib=measure.median([r.max_rss_kib for r in runs]) / 1024,
        growth_mib=measure.median([r["growth_kib"] for r in results]) / 1024,
        resources=int(results[-1]["resources"]),
        components=int(results[-1]["components"]),
    )


def measure_n(
    n: int,
    repeats: int,
    workdir: Path,
    verify: bool,
    gc_study: tuple[int, int, int] | None = None,
) -> tuple[list[EvalRow], bool | None]:
    specs = workdir / f"specs-{n}.json"
    captured = measure.run(measure.python_worker("capture", str(n), str(specs)))
    verified: bool | None = None
    if verify:
        check = measure.run(measure.python_worker("verify", str(n), str(specs)))
        verified = bool(check.result["equal"])
        if not verified:
            raise measure.MeasurementError(f"baseline does not replay the program: {check.result}")
    rows = []
    for gc in (None, gc_study) if gc_study else (None,):
        extra = [",".join(map(str, gc))] if gc else []
        runs: dict[str, list[measure.Run]] = {"program": [], "baseline": []}
        for i in range(repeats):
            order = ["program", "baseline"] if i % 2 == 0 else ["baseline", "program"]
            for side in order:
                cmd = measure.python_worker(side, str(n), str(specs), *extra)
                runs[side].append(measure.run(cmd))
        row = EvalRow(n, _side(runs["program"]), _side(runs["baseline"]), gc)
        expected = int(captured.result["resources"])
        if not row.program.resources == row.baseline.resources == expected:
            raise measure.MeasurementError(
                f"N={n}: program registered {row.program.resources} custom resources, "
                f"baseline {row.baseline.resources}, capture {expected}"
            )
        rows.append(row)
    specs.unlink()
    return rows, verified


def run_part(
    sizes: list[int],
    repeats: dict[int, int],
    workdir: Path,
    gc_study: tuple[int, int, int] | None = None,
) -> EvalResult:
    """Measure every N; with `gc_study`, also every N >= 100 with those GC thresholds."""
    result = EvalResult(rows=[])
    for n in sorted(sizes):
        study = gc_study if n >= 100 else None
        rows, verified = measure_n(n, repeats[n], workdir, n == min(sizes), study)
        result.rows += rows
        if verified is not None:
            result.verified[n] = verified
    return result
