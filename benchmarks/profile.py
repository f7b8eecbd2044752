"""`python -m benchmarks.profile`: where the program's time goes beyond the baseline's.

    python -m benchmarks.profile                 # N = 1000, cProfile, differential table
    python -m benchmarks.profile --n 100 --top 40
    python -m benchmarks.profile --pyinstrument  # call tree; needs benchmarks/requirements.txt

A plain profile of the program is dominated by the Pulumi SDK's own registration work,
which the baseline pays too. So both sides are profiled under the same mocks (each in its
own fresh interpreter) and the table lists, per function, the program's own time minus the
baseline's: what is left is the cost of coco's settings, policy rendering, init-data and
component wrappers, and the extra SDK work they cause (more Outputs, more registrations).
cProfile inflates tight pure-Python loops several times over; read the table for where to
look, and the benchmark's ratio for how much a fix is worth.
"""

from __future__ import annotations

import argparse
import pstats
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks import measure

_SITE = "site-packages/"

_CHILD = """
import cProfile, gc, json, sys
from pathlib import Path
from benchmarks import worker
side, n, specs, out, tool = sys.argv[1], int(sys.argv[2]), Path(sys.argv[3]), *sys.argv[4:6]
worker._preload_program()
worker._preload(json.loads(specs.read_text()))
if side == "program":
    worker._mocks_session()
    worker._set_fleet_config(n)
    func = worker._program
else:
    from benchmarks.baseline import load_specs, prepare
    prepared = prepare(load_specs(specs))
    worker._mocks_session()
    func = worker._baseline_program(prepared)
gc.collect()
gc.freeze()
if tool == "pyinstrument":
    import pyinstrument
    profiler = pyinstrument.Profiler(interval=0.0005)
    profiler.start()
    worker._run_program(func)
    profiler.stop()
    Path(out).write_text(profiler.output_text(unicode=False, color=False, show_all=False))
else:
    profiler = cProfile.Profile()
    profiler.enable()
    worker._run_program(func)
    profiler.disable()
    profiler.dump_stats(out)
"""


def _profile(side: str, n: int, specs: Path, out: Path, tool: str) -> None:
    subprocess.run(
        [sys.executable, "-c", _CHILD, side, str(n), str(specs), str(out), tool],
        cwd=measure.REPO,
        check=True,
    )


def _where(key: tuple[str, int, str]) -> str:
    filename, line, func = key
    if _SITE in filename:
        filename = filename.split(_SITE, 1)[1]
    elif filename.startswith(str(measure.REPO)):
        filename = filename[len(str(measure.REPO)) + 1 :]
    return f"{filename}:{line}({func})"


def differential(program: Path, baseline: Path, top: int) -> list[str]:
    """Functions ranked by program tottime minus baseline tottime (seconds)."""
    a = pstats.Stats(str(program)).stats  # type: ignore[attr-defined]
    b = pstats.Stats(str(baseline)).stats  # type: ignore[attr-defined]
    total_a = sum(v[2] for v in a.values())
    total_b = sum(v[2] for v in b.values())
    rows = []
    for key in set(a) | set(b):
        va = a.get(key, (0, 0, 0.0, 0.0))
        vb = b.get(key, (0, 0, 0.0, 0.0))
        rows.append((va[2] - vb[2], va[1], vb[1], va[3], key))
    rows.sort(reverse=True)
    lines = [
        f"profiled total: program {total_a:.2f} s, baseline {total_b:.2f} s",
        "",
        "| extra s | calls program | calls baseline | program cumulative s | function |",
        "|---:|---:|---:|---:|---|",
    ]
    for extra, calls_a, calls_b, cum, key in rows[:top]:
        lines.append(f"| {extra:.3f} | {calls_a} | {calls_b} | {cum:.2f} | `{_where(key)}` |")
    own = pstats.Stats(str(program))
    own_rows = [
        (v[3], v[1], key)
        for key, v in own.stats.items()  # type: ignore[attr-defined]
        if key[0].startswith(str(measure.REPO / "components"))
        or key[0].startswith(str(measure.REPO / "policies"))
    ]
    own_rows.sort(reverse=True)
    lines += ["", "coco's own functions by cumulative time:", ""]
    lines += ["| cumulative s | calls | function |", "|---:|---:|---|"]
    lines += [f"| {cum:.3f} | {calls} | `{_where(key)}` |" for cum, calls, key in own_rows[:top]]
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.profile", description=__doc__)
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--pyinstrument", action="store_true", help="call tree of the program")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="coco-profile-") as tmp:
        work = Path(tmp)
        specs = work / "specs.json"
        measure.run(measure.python_worker("capture", str(args.n), str(specs)))
        if args.pyinstrument:
            out = work / "program.txt"
            _profile("program", args.n, specs, out, "pyinstrument")
            print(out.read_text())
            return 0
        _profile("program", args.n, specs, work / "program.prof", "cprofile")
        _profile("baseline", args.n, specs, work / "baseline.prof", "cprofile")
        print("\n".join(differential(work / "program.prof", work / "baseline.prof", args.top)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
