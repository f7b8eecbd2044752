"""Deploying many stacks at once, each in its own workspace, with a bound on how many run.

The Automation API blocks while the engine runs, so concurrency is a thread pool: each
thread drives one engine process for one stack. `max_concurrency` is the number of engine
processes in flight (each one runs the Python program and its provider plugins, so memory,
not CPU, is usually the limit). One stack's failure is recorded and the others go on: a
fleet rollout wants the full picture of what failed, not the first error.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import CancelledError, Future, ThreadPoolExecutor
from dataclasses import dataclass, field

from pulumi.automation import EngineEvent

from automation.engine import EngineInterrupted, interrupt_running
from automation.operations import PolicyPacks, up
from automation.results import OperationResult
from automation.spec import Backend, StackSpec

StackOperation = Callable[[StackSpec], OperationResult]
"""What to do to each stack (default: `up`); injectable for other operations and tests."""


@dataclass(frozen=True)
class FleetResult:
    """Per-stack outcomes: every stack is in exactly one of `results` or `failures`."""

    results: dict[str, OperationResult] = field(default_factory=dict)
    failures: dict[str, Exception] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.failures

    def summary(self) -> str:
        lines = [r.summary() for _, r in sorted(self.results.items())]
        lines += [f"FAILED {name}: {err}" for name, err in sorted(self.failures.items())]
        return "\n".join(lines)


def deploy_many(
    stacks: Sequence[StackSpec],
    max_concurrency: int = 4,
    *,
    backend: Backend | None = None,
    on_output: Callable[[str, str], None] | None = None,
    on_event: Callable[[str, EngineEvent], None] | None = None,
    policy_packs: PolicyPacks = (),
    operation: StackOperation | None = None,
) -> FleetResult:
    """Run `up` (or `operation`) on every stack, at most `max_concurrency` at a time.

    `on_output(stack, line)` and `on_event(stack, event)` say which stack a line or event
    belongs to, since they interleave. Failures of any kind (settings, engine) are
    collected in `FleetResult.failures`; nothing is raised for one stack's failure. An
    interrupt (^C) cancels the fleet: stacks not started never start, running engines cancel
    cleanly; each shows in `failures` as `EngineInterrupted`.
    """
    if max_concurrency < 1:
        raise ValueError(f"max_concurrency must be at least 1, not {max_concurrency}")
    names = [s.name for s in stacks]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        # Two runs of one stack would race on its workspace and its backend lock.
        raise ValueError(f"stack names must be unique in a fleet; repeated: {duplicates}")

    def default_operation(spec: StackSpec) -> OperationResult:
        return up(
            spec,
            backend=backend,
            on_output=(lambda line: on_output(spec.name, line)) if on_output else None,
            on_event=(lambda event: on_event(spec.name, event)) if on_event else None,
            policy_packs=policy_packs,
        )

    run = operation or default_operation
    result = FleetResult()
    if not stacks:
        return result
    with ThreadPoolExecutor(
        max_workers=min(max_concurrency, len(stacks)), thread_name_prefix="coco-fleet"
    ) as pool:
        futures: dict[str, Future[OperationResult]] = {}
        interrupted: list[bool] = []

        def on_interrupt(signum: int, frame: object) -> None:
            # ^C: queued stacks never start, running engines cancel as `pulumi` does
            # (automation/engine.py); the loop below waits for them to finish cancelling.
            interrupted.append(True)
            for future in list(futures.values()):
                future.cancel()
            interrupt_running()

        previous = None
        if threading.current_thread() is threading.main_thread():
            previous = signal.signal(signal.SIGINT, on_interrupt)
        try:
            for spec in stacks:
                if interrupted:
                    result.failures[spec.name] = EngineInterrupted(spec.name, "fleet")
                else:
                    futures[spec.name] = pool.submit(run, spec)
            for name, future in futures.items():
                try:
                    result.results[name] = future.result()
                except CancelledError:
                    result.failures[name] = EngineInterrupted(name, "fleet")
                except Exception as err:  # one stack's failure must not stop the others
                    result.failures[name] = err
        finally:
            if previous is not None:
                signal.signal(signal.SIGINT, previous)
    return result
