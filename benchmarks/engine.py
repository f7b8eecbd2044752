"""Part 3: `pulumi preview` of the `dev` stack through the real engine, against a baseline.

The mocks part isolates the Python program; this part shows what a user waits for: the
CLI, the language host, the Python program, the Kubernetes provider's checks and the
diffs. The program side is a copy of this project (Pulumi.yaml, __main__.py, components/,
policies/, the dev stack file) with the repo's virtualenv and `.charts/` linked in; the
baseline is a bare project whose `__main__.py` registers the same Kubernetes objects (captured
from the dev stack under mocks, provider settings included) with plain pulumi-kubernetes, and
templates the same kata-deploy chart with a plain `helm.v3.Chart` (the dev stack renders it;
under mocks the chart's objects are not known, so the baseline does what the program does:
hand the chart to the provider's `helm template`). Both run on a
fresh temporary file backend with the engine built by scripts/setup.sh (scripts/env.sh sets
PATH, PULUMI_HOME and the local passphrase), each once to warm the disk cache, then
alternately, so load on the machine hits both sides alike.

What the baseline does not register: the KBS certificate's two dynamic resources (running
them needs coco's own modules, and loading the Python dynamic-provider plugin for them is a
real cost of the program) and the component wrappers. Under mocks every value is known, so
the baseline's init-data ConfigMap and pod annotations are complete text, where a first
preview of the program shows them as unknown (the certificate is made at `up`): if anything
that gives the baseline slightly more to check.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from benchmarks import measure

STACK = "dev"
PROJECT_FILES = ("Pulumi.yaml", "__main__.py")
PROJECT_DIRS = ("components", "policies")
_TO_CREATE = re.compile(r"\+\s+(\d+)\s+to create")

BASELINE_PULUMI_YAML = """\
name: coco-baseline
description: plain pulumi-kubernetes registration of the dev stack's objects (benchmark)
runtime:
  name: python
  options:
    toolchain: pip
    virtualenv: {venv}
"""
BASELINE_MAIN = """\
\"\"\"Benchmark baseline: register pre-rendered Kubernetes objects with pulumi-kubernetes.\"\"\"

import baseline

baseline.main("specs.json")
"""


class EngineUnavailable(RuntimeError):
    """The engine binaries are not built on this machine (run scripts/setup.sh)."""


def engine_env() -> dict[str, str]:
    """The environment scripts/env.sh sets up, read from a bash that sourced it."""
    env_sh = measure.REPO / "scripts" / "env.sh"
    out = subprocess.run(
        ["bash", "-c", f'source "{env_sh}" >/dev/null && env -0'],
        check=True,
        capture_output=True,
    ).stdout.decode()
    env = dict(item.split("=", 1) for item in out.split("\0") if "=" in item)
    if shutil.which("pulumi", path=env.get("PATH")) is None:
        raise EngineUnavailable("no `pulumi` on the PATH scripts/env.sh sets: run scripts/setup.sh")
    return env


@dataclass(frozen=True)
class EngineSide:
    seconds: float
    runs: list[float]
    max_rss_mib: float
    to_create: int


@dataclass(frozen=True)
class EngineResult:
    program: EngineSide
    baseline: EngineSide
    baseline_objects: int

    @property
    def ratio(self) -> float:
        return self.program.seconds / self.baseline.seconds


def _program_project(root: Path) -> Path:
    proj = root / "program"
    proj.mkdir()
    for name in PROJECT_FILES:
        shutil.copy2(measure.REPO / name, proj / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in PROJECT_DIRS:
        shutil.copytree(measure.REPO / name, proj / name, ignore=ignore)
    (proj / "stacks").mkdir()
    shutil.copy2(measure.REPO / "stacks" / f"Pulumi.{STACK}.yaml", proj / "stacks")
    (proj / ".venv").symlink_to(measure.REPO / ".venv")
    _link_charts(proj)
    return proj


def _link_charts(proj: Path) -> None:
    """The repo's `.charts/` (scripts/charts.sh): the dev stack renders kata-deploy from it."""
    charts = measure.REPO / ".charts"
    if charts.is_dir():
        (proj / ".charts").symlink_to(charts, target_is_directory=True)


def _baseline_project(root: Path) -> tuple[Path, int]:
    proj = root / "baseline"
    proj.mkdir()
    specs = proj / "specs.json"
    captured = measure.run(measure.python_worker("capture-stack", STACK, str(specs)))
    (proj / "Pulumi.yaml").write_text(BASELINE_PULUMI_YAML.format(venv=measure.REPO / ".venv"))
    (proj / "__main__.py").write_text(BASELINE_MAIN)
    shutil.copy2(Path(__file__).with_name("baseline.py"), proj / "baseline.py")
    _link_charts(proj)
    return proj, int(captured.result["resources"])


def _pulumi(args: list[str], proj: Path, env: dict[str, str]) -> measure.Run:
    return measure.run(["pulumi", *args], cwd=proj, env=env, timeout_s=300)


def run_part(workdir: Path, repeats: int) -> EngineResult:
    env = engine_env()
    env["PULUMI_BACKEND_URL"] = f"file://{workdir / 'state'}"
    (workdir / "state").mkdir()
    program = _program_project(workdir)
    baseline, objects = _baseline_project(workdir)
    for proj in (program, baseline):
        _pulumi(["stack", "init", STACK, "--non-interactive"], proj, env)
    runs: dict[str, list[measure.Run]] = {"program": [], "baseline": []}
    for proj in (program, baseline):  # warm-up: plugin binaries and .pyc into the page cache
        _pulumi(["preview", "--non-interactive", "--stack", STACK], proj, env)
    for i in range(repeats):
        order = [("program", program), ("baseline", baseline)]
        for side, proj in order if i % 2 == 0 else order[::-1]:
            runs[side].append(
                _pulumi(["preview", "--non-interactive", "--stack", STACK], proj, env)
            )

    def summarize(name: str) -> EngineSide:
        rs = runs[name]
        return EngineSide(
            seconds=measure.median([r.wall_s for r in rs]),
            runs=[r.wall_s for r in rs],
            max_rss_mib=measure.median([r.max_rss_kib for r in rs]) / 1024,
            to_create=_count(rs[-1]),
        )

    return EngineResult(summarize("program"), summarize("baseline"), objects)


def _count(run: measure.Run) -> int:
    found = _TO_CREATE.search(run.stdout)
    return int(found.group(1)) if found else -1
