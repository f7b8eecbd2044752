"""Cost of the closed agent policy: rendering N policies, and evaluating them in the agent's engine.

    source scripts/env.sh && python -m benchmarks.agent_policy [--base REV] [N ...]

Compares, in one run, the policy before the container closure (policies/agent.py at git
revision `--base`, loaded from `git show`) with the current one, for N workloads shaped like
`benchmarks/fleet.py`'s (one digest-pinned container with `command` and env each):

- render: building each workload's spec and Rego text (what the program does per workload);
- evaluate: loading each policy into the Kata agent's own engine (the kata-policy judge, as the
  agent loads init-data) and answering the pod's CreateSandbox, pause and container requests.
  Skipped when the judge is not built (`scripts/judges.sh kata-policy`).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BASE = "a74aa4c"
"""The last revision before the container closure (issue 12)."""


def _old_module(rev: str) -> ModuleType:
    source = subprocess.run(
        ["git", "-C", str(ROOT), "show", f"{rev}:policies/agent.py"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    tmp = Path(tempfile.mkdtemp(prefix="coco-bench-")) / "old_agent.py"
    tmp.write_text(source, encoding="utf-8")
    spec = importlib.util.spec_from_file_location("old_agent", tmp)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["old_agent"] = module  # pydantic resolves the annotations through it
    spec.loader.exec_module(module)
    return module


def _workloads(n: int) -> list[Any]:
    from components.settings import WorkloadSettings

    out = []
    for i in range(n):
        image = f"registry.example.com/team{i % 10}/app-{i:04d}@sha256:{i:064x}"
        out.append(
            WorkloadSettings.model_validate(
                {
                    "name": f"app-{i:04d}",
                    "namespace": f"team-{i % 10}",
                    "containers": [
                        {
                            "name": "app",
                            "image": image,
                            "command": ["/app/server"],
                            "args": ["--port=$(PORT)"],
                            "env": {"PORT": "8443", "LOG_LEVEL": "info"},
                        }
                    ],
                }
            )
        )
    return out


def render_old(old: ModuleType, workloads: list[Any]) -> list[str]:
    from policies.agent import kubernetes_argv

    texts = []
    for w in workloads:
        c = w.containers[0]
        # What the program's effective_agent_policy did at that revision.
        spec = old.AgentPolicySpec().with_workload_images([c.image])
        spec = spec.with_container_commands({c.image: [kubernetes_argv(c.command, c.args, c.env)]})
        texts.append(old.render_agent_policy(spec))
    return texts


def render_new(workloads: list[Any]) -> list[str]:
    from components.workload import effective_agent_policy
    from policies.agent import render_agent_policy

    return [render_agent_policy(effective_agent_policy(w)) for w in workloads]


def _judge() -> Path | None:
    proc = subprocess.run(
        ["bash", str(ROOT / "scripts/judges/kata-policy/build.sh"), "--print-dir"],
        capture_output=True,
        text=True,
        check=False,
    )
    out = Path(proc.stdout.strip())
    binary = out / "bin" / "kata-policy-judge"
    return binary if proc.returncode == 0 and (out / "done").is_file() else None


def evaluate(judge: Path, texts: list[str], workloads: list[Any]) -> tuple[float, int]:
    """Seconds to load every policy and answer its pod's start requests; allowed count."""
    sys.path.insert(0, str(ROOT / "tests"))
    from agent_requests import container_id, create_request, create_sandbox_request, sandbox_request

    from components.workload import effective_agent_policy

    tmp = Path(tempfile.mkdtemp(prefix="coco-bench-"))
    lines = []
    for i, (text, w) in enumerate(zip(texts, workloads, strict=True)):
        path = tmp / f"{i}.rego"
        path.write_text(text, encoding="utf-8")
        c = w.containers[0]
        spec = effective_agent_policy(w)
        pod, sandbox, cid = f"{w.name}-6674f9448-xjrzf", container_id(w.name), container_id(c.name)
        requests = [
            ("CreateSandboxRequest", create_sandbox_request(sandbox, pod)),
            ("CreateContainerRequest", sandbox_request(w.namespace, pod, sandbox)),
            (
                "CreateContainerRequest",
                create_request(
                    c.image,
                    cid=cid,
                    args=spec.container_commands[c.image][0],
                    name=c.name,
                    env=spec.containers[c.name].env,
                    namespace=w.namespace,
                    pod=pod,
                    sandbox=sandbox,
                ),
            ),
        ]
        for kind, request in requests:
            lines.append(json.dumps({"policy": str(path), "kind": kind, "request": request}))
    start = time.perf_counter()
    proc = subprocess.run(
        [str(judge)], input="\n".join(lines) + "\n", capture_output=True, text=True, check=True
    )
    seconds = time.perf_counter() - start
    allowed = sum(json.loads(line)["allowed"] for line in proc.stdout.splitlines())
    return seconds, allowed


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--base", default=BASE)
    parser.add_argument("sizes", nargs="*", type=int, default=[100, 1000])
    args = parser.parse_args(argv)
    old = _old_module(args.base)
    import components.workload  # noqa: F401  (imported before timing: pulumi's import is ~1 s)

    judge = _judge()
    print("| N | policy | render | mean size | evaluate (3 requests/pod) | allowed |")
    print("|---:|---|---:|---:|---:|---:|")
    for n in args.sizes:
        workloads = _workloads(n)
        for label in (f"before ({args.base})", "closed"):
            start = time.perf_counter()
            texts = render_old(old, workloads) if label != "closed" else render_new(workloads)
            rendered = time.perf_counter() - start
            size = sum(map(len, texts)) // len(texts)
            if judge:
                seconds, allowed = evaluate(judge, texts, workloads)
                ev, ok = f"{seconds:.2f} s", f"{allowed}/{3 * n}"
            else:
                ev, ok = "judge not built", "-"
            print(f"| {n} | {label} | {rendered:.2f} s | {size} B | {ev} | {ok} |")


if __name__ == "__main__":
    main()
