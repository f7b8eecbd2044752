"""Where the judges' builds are, for the conformance tests.

A judge is upstream's own code built from pinned sources by `scripts/judges/<name>/build.sh`
(run by `scripts/judges.sh`, which `scripts/test.sh` calls). Each recipe answers
`build.sh --print-dir` with the cache folder of the build its current inputs would produce, without
building anything, so a test finds exactly the build made from this checkout's recipe.

A judge that is not built is a skip with the reason on a user's machine, and a failure when
`COCO_REQUIRE_JUDGES=1` (as `.ci/run` sets): a silently skipped judge is how an unjudged render
reaches production.
"""

from __future__ import annotations

import functools
import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _required() -> bool:
    return os.environ.get("COCO_REQUIRE_JUDGES") == "1"


@functools.cache
def judge_dir(name: str) -> Path:
    """The finished build folder of judge `name`, or a skip (a failure in CI) saying why not."""
    recipe = REPO / "scripts" / "judges" / name / "build.sh"
    if not recipe.is_file():
        pytest.fail(f"no judge recipe {recipe.relative_to(REPO)}")
    proc = subprocess.run(
        ["bash", str(recipe), "--print-dir"],
        capture_output=True,
        text=True,
        env={**os.environ, "JUDGE": name},
        timeout=120,
        check=False,
    )
    if proc.returncode == 3:
        _unavailable(name, proc.stderr.strip() or "its upstream sources are not reachable")
    if proc.returncode != 0:
        pytest.fail(f"judge {name}: `build.sh --print-dir` failed: {proc.stderr.strip()}")
    path = Path(proc.stdout.strip())
    if not (path / "done").is_file():
        _unavailable(name, f"not built at {path}: run scripts/judges.sh {name}")
    return path


def _unavailable(name: str, why: str) -> None:
    message = f"judge {name} unavailable: {why}"
    if _required():
        pytest.fail(message + " (COCO_REQUIRE_JUDGES=1)")
    pytest.skip(message)
