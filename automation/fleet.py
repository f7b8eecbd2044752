"""Running one operation (preview, up, refresh) over many stacks, a bounded number at a time.

The Automation API blocks while the engine runs, so concurrency is a thread pool: each
thread drives one engine process for one stack, in that stack's own workspace. `parallel`
is the number of engine processes in flight (each runs the Python program and its provider
plugins, so memory and cores, not threads, are the limit). One stack's failure is recorded
and the others go on: a fleet rollout wants the full picture of what failed, not the first
error. Every stack ends as one `StackOutcome` (ok, failed, refused before the engine ran,
or cancelled by an interrupt), with its wall time, so a caller can print a table, retry the
failed ones, or serialise the lot.

Interrupts: ^C (or SIGTERM) during a fleet cancels it as `pulumi` cancels one stack. Queued
stacks never start; every engine already running gets exactly one SIGINT and is waited for
while it finishes the operations in flight, saves its state and releases its lock. A stack
whose thread was between two engine commands when the interrupt came is caught by a sweep
that repeats until the fleet ends (`interrupt_running(once=True)`: an engine is never sent a
second SIGINT by the sweep, which would make it stop at once). A second ^C is passed on to
every engine, as a second ^C to `pulumi` makes it stop at once.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any, Literal

from pulumi.automation import EngineEvent

from automation.engine import EngineInterrupted, interrupt_running
from automation.errors import SecretsProviderError, StackFileError
from automation.operations import PolicyPacks, preview, refresh, up
from automation.results import OperationResult
from automation.spec import Backend, StackSpec
from components.settings import SettingsError
from policies.pack.production import PolicyExceptionsError

StackOperation = Callable[[StackSpec], OperationResult]
"""What to do to each stack; injectable for other operations and tests."""

FleetOperation = Literal["preview", "up", "refresh"]
FLEET_OPERATIONS: tuple[FleetOperation, ...] = ("preview", "up", "refresh")

Status = Literal["ok", "failed", "refused", "cancelled"]
"""`refused`: stopped before any engine ran (settings, stack file, secrets provider);
`failed`: the engine ran and the operation failed; `cancelled`: an interrupt."""

REFUSALS: tuple[type[Exception], ...] = (
    SettingsError,
    StackFileError,
    SecretsProviderError,
    PolicyExceptionsError,
)
"""Errors raised before any engine process starts: nothing was changed."""

SWEEP_SECONDS = 0.2
"""How often, after an interrupt, engines started since are interrupted too."""


def status_of(error: BaseException) -> Status:
    if isinstance(error, EngineInterrupted):
        return "cancelled"
    if isinstance(error, REFUSALS):
        return "refused"
    return "failed"


@dataclass(frozen=True)
class StackOutcome:
    """How one stack of a fleet ended: its result, or the error that stopped it."""

    stack: str
    operation: str
    status: Status
    seconds: float
    """Wall time of this stack's operation (0 for a stack that never started)."""
    result: OperationResult | None = None
    error: Exception | None = None

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def detail(self) -> str:
        """One line: the resource counts, or the error's first informative line."""
        if self.result is not None:
            return self.result.summary().split(": ", 1)[-1]
        return first_line(self.error)

    def to_dict(self) -> dict[str, Any]:
        """Plain data (JSON-ready); outputs are left out (they may hold secrets)."""
        return {
            "stack": self.stack,
            "operation": self.operation,
            "status": self.status,
            "seconds": round(self.seconds, 3),
            "changes": dict(self.result.changes) if self.result else None,
            "error": str(self.error) if self.error is not None else None,
            "errorType": type(self.error).__name__ if self.error is not None else None,
        }


def first_line(error: BaseException | None) -> str:
    """One line for a table: a settings error's first keyed problem (`coco:...: ...`), else
    the headline (which names the failed resources), plus the first listed error if any."""
    if error is None:
        return ""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    if not lines:
        return type(error).__name__
    if isinstance(error, SettingsError) and len(lines) > 1 and lines[1].startswith("- "):
        return lines[1][2:]  # the problem names the config key: the useful part
    if "errors:" in lines:
        after = lines[lines.index("errors:") + 1 :]
        if after and after[0].startswith("- "):
            return f"{lines[0]}: {after[0][2:]}"
    return lines[0]


@dataclass(frozen=True)
class FleetEvent:
    """Progress: a stack started or finished (`outcome`), or the fleet was interrupted
    (`stack` empty: running engines are cancelling, queued stacks will not start)."""

    kind: Literal["started", "finished", "interrupted"]
    stack: str
    done: int
    total: int
    running: int
    outcome: StackOutcome | None = None


ProgressHandler = Callable[[FleetEvent], None]


@dataclass(frozen=True)
class FleetResult:
    """Every stack's outcome, in the order the stacks were given."""

    operation: str = "up"
    outcomes: Mapping[str, StackOutcome] = field(default_factory=dict)
    seconds: float = 0.0
    """Wall time of the whole fleet."""
    parallel: int = 1
    interrupted: bool = False

    @property
    def results(self) -> dict[str, OperationResult]:
        return {n: o.result for n, o in self.outcomes.items() if o.result is not None}

    @property
    def failures(self) -> dict[str, Exception]:
        return {n: o.error for n, o in self.outcomes.items() if o.error is not None}

    @property
    def ok(self) -> bool:
        return all(o.ok for o in self.outcomes.values())

    def counts(self) -> dict[Status, int]:
        out: dict[Status, int] = {}
        for o in self.outcomes.values():
            out[o.status] = out.get(o.status, 0) + 1
        return out

    def summary(self) -> str:
        """One line per stack: the operation's summary, or `FAILED <stack>: <error>`."""
        lines = [r.summary() for _, r in sorted(self.results.items())]
        lines += [f"FAILED {name}: {err}" for name, err in sorted(self.failures.items())]
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            "operation": self.operation,
            "seconds": round(self.seconds, 3),
            "parallel": self.parallel,
            "interrupted": self.interrupted,
            "counts": self.counts(),
            "stacks": [o.to_dict() for o in self.outcomes.values()],
        }


def run_fleet(
    stacks: Sequence[StackSpec],
    operation: FleetOperation = "up",
    *,
    parallel: int = 4,
    backend: Backend | None = None,
    on_output: Callable[[str, str], None] | None = None,
    on_event: Callable[[str, EngineEvent], None] | None = None,
    on_progress: ProgressHandler | None = None,
    policy_packs: PolicyPacks = (),
    refused: Mapping[str, Exception] | None = None,
    run: StackOperation | None = None,
) -> FleetResult:
    """Run `operation` on every stack, at most `parallel` at a time; never raises for a stack.

    `on_output(stack, line)` and `on_event(stack, event)` say which stack a line or event
    belongs to, since they interleave; `on_progress` hears each start and finish, one event
    at a time and in order (it runs under the fleet's lock: keep it quick, never raise).
    `refused` are stacks that could not even be loaded (name -> error, e.g. a `SettingsError`
    from their stack file): reported as outcomes beside the others, so one bad stack file
    is one line of the summary, not the end of the run. `run` replaces the operation
    (tests; other operations). `policy_packs` apply to preview and up.
    """
    if parallel < 1:
        raise ValueError(f"parallel must be at least 1, not {parallel}")
    if operation not in FLEET_OPERATIONS:
        raise ValueError(f"operation must be one of {FLEET_OPERATIONS}, not {operation!r}")
    bad = dict(refused or {})
    names = [s.name for s in stacks] + list(bad)
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        # Two runs of one stack would race on its workspace and its backend lock.
        raise ValueError(f"stack names must be unique in a fleet; repeated: {duplicates}")

    def default_run(spec: StackSpec) -> OperationResult:
        out = (lambda line: on_output(spec.name, line)) if on_output else None
        events = (lambda event: on_event(spec.name, event)) if on_event else None
        if operation == "refresh":
            return refresh(spec, backend=backend, on_output=out, on_event=events)
        step = preview if operation == "preview" else up
        return step(
            spec, backend=backend, on_output=out, on_event=events, policy_packs=policy_packs
        )

    return _Fleet(operation, len(names), parallel, run or default_run, on_progress).run(stacks, bad)


class _Fleet:
    """One fleet run: the pool, the interrupt handling and the outcome bookkeeping."""

    def __init__(
        self,
        operation: str,
        total: int,
        parallel: int,
        run: StackOperation,
        on_progress: ProgressHandler | None,
    ) -> None:
        self.operation = operation
        self.total = total
        self.parallel = parallel
        self.run_one = run
        self.on_progress = on_progress
        self.lock = threading.Lock()
        self.outcomes: dict[str, StackOutcome] = {}
        self.running = 0
        self.interrupts = 0
        self.cancelled = threading.Event()

    def _emit(
        self,
        kind: Literal["started", "finished", "interrupted"],
        stack: str,
        outcome: StackOutcome | None,
    ) -> None:
        """Called with `lock` held, so events arrive one at a time and in order (`done`
        counts up by one per finished stack)."""
        if self.on_progress is not None:
            done = len(self.outcomes)
            self.on_progress(FleetEvent(kind, stack, done, self.total, self.running, outcome))

    def start(self, stack: str) -> None:
        with self.lock:
            self.running += 1
            self._emit("started", stack, None)

    def finish(self, outcome: StackOutcome, started: bool) -> None:
        with self.lock:
            self.outcomes[outcome.stack] = outcome
            if started:
                self.running -= 1
            self._emit("finished", outcome.stack, outcome)

    def one(self, spec: StackSpec) -> None:
        """A pool thread: run one stack, record how it ended (never raises)."""
        if self.cancelled.is_set():  # interrupted while queued: never started
            self.finish(self.never_started(spec.name), started=False)
            return
        self.start(spec.name)
        began = time.perf_counter()
        try:
            result = self.run_one(spec)
        except Exception as err:  # one stack's failure must not stop the others
            outcome = StackOutcome(
                spec.name, self.operation, status_of(err), time.perf_counter() - began, error=err
            )
        else:
            outcome = StackOutcome(
                spec.name, self.operation, "ok", time.perf_counter() - began, result=result
            )
        self.finish(outcome, started=True)

    def never_started(self, name: str) -> StackOutcome:
        interrupted = EngineInterrupted(name, self.operation)
        return StackOutcome(name, self.operation, "cancelled", 0.0, error=interrupted)

    def on_interrupt(self, signum: int, frame: object) -> None:
        # ^C / SIGTERM in the main thread: only noted here; the loop in `run` acts on it
        # within SWEEP_SECONDS (a handler that took the engine registry's lock could
        # deadlock with the main thread's own sweep holding it).
        self.interrupts += 1
        self.cancelled.set()

    def run(self, stacks: Sequence[StackSpec], refused: Mapping[str, Exception]) -> FleetResult:
        began = time.perf_counter()
        for name, err in refused.items():
            self.finish(StackOutcome(name, self.operation, status_of(err), 0.0, error=err), False)
        previous: dict[signal.Signals, Any] = {}
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                previous[sig] = signal.signal(sig, self.on_interrupt)
        try:
            if stacks:
                workers = min(self.parallel, len(stacks))
                with ThreadPoolExecutor(workers, thread_name_prefix="coco-fleet") as pool:
                    pending: set[Future[None]] = {pool.submit(self.one, s) for s in stacks}
                    announced = forced = False
                    while pending:
                        _, pending = wait(
                            pending, timeout=SWEEP_SECONDS, return_when=FIRST_COMPLETED
                        )
                        if self.cancelled.is_set():
                            # Queued stacks never start (`one` checks the flag); running
                            # engines cancel as `pulumi` does on ^C (automation/engine.py),
                            # each interrupted once, including engines started since (their
                            # thread was between two engine commands). A second interrupt
                            # reaches every engine again: it stops at once, as `pulumi` does.
                            force = self.interrupts > 1 and not forced
                            forced = forced or force
                            interrupt_running(once=not force)
                            if not announced:
                                announced = True
                                with self.lock:
                                    self._emit("interrupted", "", None)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        order = [s.name for s in stacks] + list(refused)
        return FleetResult(
            operation=self.operation,
            outcomes={n: self.outcomes[n] for n in order},
            seconds=time.perf_counter() - began,
            parallel=self.parallel,
            interrupted=self.cancelled.is_set(),
        )


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
    """`up` (or `operation`) on every stack, at most `max_concurrency` at a time: `run_fleet`.

    Failures of any kind (settings, engine) are collected in `FleetResult.failures`; nothing
    is raised for one stack's failure. An interrupt (^C) cancels the fleet: stacks not
    started never start, running engines cancel cleanly; each shows in `failures` as
    `EngineInterrupted`.
    """
    if max_concurrency < 1:
        raise ValueError(f"max_concurrency must be at least 1, not {max_concurrency}")
    return run_fleet(
        stacks,
        "up",
        parallel=max_concurrency,
        backend=backend,
        on_output=on_output,
        on_event=on_event,
        policy_packs=policy_packs,
        run=operation,
    )
