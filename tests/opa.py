"""Run the real Open Policy Agent over the Rego our builders emit.

Policy tests must exercise a real engine, so a missing `opa` is a failure with instructions,
never a skip: a silently skipped policy test is how a broken policy reaches production.

Lookup order: `$COCO_OPA` (set by scripts/setup.sh), then `opa` on PATH.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

_NOT_FOUND = (
    "the OPA binary was not found: run scripts/setup.sh (it installs opa and exports COCO_OPA), "
    "or set COCO_OPA=/path/to/opa, or put `opa` on PATH "
    "(go install github.com/open-policy-agent/opa@v1.22.3)"
)


class OpaError(AssertionError):
    """OPA rejected a policy or a query; the message carries OPA's own output."""


@functools.cache
def opa_binary() -> str:
    """Path of the opa executable, or an assertion failure telling how to get one."""
    candidate = os.environ.get("COCO_OPA") or shutil.which("opa")
    if not candidate:
        raise OpaError(_NOT_FOUND)
    path = Path(candidate)
    if not path.is_file() or not os.access(path, os.X_OK):
        raise OpaError(
            f"COCO_OPA/opa points at {candidate!r}, which is not executable. {_NOT_FOUND}"
        )
    return str(path)


def _run(args: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [opa_binary(), *args], capture_output=True, text=True, cwd=cwd, timeout=120, check=False
    )


def opa_check(paths: Iterable[str | Path], *, strict: bool = True) -> None:
    """`opa check` (Rego v1, strict by default) over files or directories; raise on errors."""
    args = ["check", *(["--strict"] if strict else []), *map(str, paths)]
    proc = _run(args)
    if proc.returncode != 0:
        raise OpaError(f"opa check failed:\n{proc.stdout}{proc.stderr}")


def opa_check_text(policy_text: str, *, strict: bool = True, name: str = "policy.rego") -> None:
    """`opa check` over one policy given as text."""
    with tempfile.TemporaryDirectory(prefix="coco-opa-") as tmp:
        path = Path(tmp) / name
        path.write_text(policy_text, encoding="utf-8")
        opa_check([path], strict=strict)


def opa_test(*paths: str | Path) -> list[dict[str, Any]]:
    """`opa test` over files/directories; return the per-test JSON results, raise on failure."""
    proc = _run(["test", "--format=json", *map(str, paths)])
    try:
        results: list[dict[str, Any]] = json.loads(proc.stdout) if proc.stdout.strip() else []
    except json.JSONDecodeError as err:
        raise OpaError(f"opa test gave no JSON:\n{proc.stdout}{proc.stderr}") from err
    failed = [r for r in results if r.get("fail") or r.get("error")]
    if proc.returncode != 0 or failed or not results:
        raise OpaError(
            f"opa test failed ({len(failed)} of {len(results)}):\n"
            + json.dumps(failed, indent=2)
            + proc.stderr
        )
    return results


def opa_eval(
    policy_text: str,
    input: Any,
    data: Any | None,
    query: str,
) -> Any:
    """Evaluate `query` against one policy, an input document and root data.

    Returns the query's value, or None when it is undefined (OPA's "no result"). `data` is
    loaded at the root of `data`, like the KBS's `add_data` and the agent's policy state.
    """
    with tempfile.TemporaryDirectory(prefix="coco-opa-") as tmp:
        root = Path(tmp)
        (root / "policy.rego").write_text(policy_text, encoding="utf-8")
        (root / "input.json").write_text(json.dumps(input), encoding="utf-8")
        args = ["eval", "--format=json", "-d", "policy.rego"]
        if data is not None:
            (root / "data.json").write_text(json.dumps(data), encoding="utf-8")
            args += ["-d", "data.json"]
        args += ["-i", "input.json", query]
        proc = _run(args, cwd=root)
    if proc.returncode != 0:
        raise OpaError(f"opa eval {query!r} failed:\n{proc.stdout}{proc.stderr}")
    out = json.loads(proc.stdout)
    if "errors" in out:
        raise OpaError(f"opa eval {query!r} errors: {out['errors']}")
    result = out.get("result") or []
    if not result:
        return None
    return result[0]["expressions"][0]["value"]
