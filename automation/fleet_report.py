"""What a person reads about a fleet: one progress line per start and finish, then a table.

Progress lines carry the elapsed time and the count done, so a long rollout shows where it
stands without the interleaved engine output of many stacks; the table has one row per stack
(status, wall time, resource counts or the error's keyed first line), then every error in
full, since a fleet report has to point at the culprit of each failure on its own.
"""

from __future__ import annotations

import time

from automation.fleet import FleetEvent, FleetResult, StackOutcome, Status

_DETAIL_WIDTH = 110


def _clip(text: str, width: int = _DETAIL_WIDTH) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


class Progress:
    """Formats `FleetEvent`s as lines, timed from when this object was made."""

    def __init__(self, operation: str) -> None:
        self.operation = operation
        self.started = time.perf_counter()

    def line(self, event: FleetEvent) -> str:
        elapsed = time.perf_counter() - self.started
        head = f"[fleet {elapsed:6.1f}s {event.done}/{event.total}]"
        if event.kind == "interrupted":
            return (
                f"{head} interrupted: {event.running} running engine(s) cancelling (operations "
                "in flight finish, state saved, locks released); queued stacks will not start"
            )
        if event.kind == "started" or event.outcome is None:
            return f"{head} {self.operation} {event.stack}: started ({event.running} running)"
        o = event.outcome
        detail = _clip(o.detail())
        return f"{head} {self.operation} {o.stack}: {o.status} in {o.seconds:.1f}s: {detail}"


def _row(o: StackOutcome) -> tuple[str, str, str, str]:
    return (o.stack, o.status, f"{o.seconds:.1f}s", _clip(o.detail()))


def table(result: FleetResult) -> str:
    """The summary: a row per stack, a totals line, then each error in full."""
    rows = [("STACK", "STATUS", "TIME", "RESULT")] + [_row(o) for o in result.outcomes.values()]
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    lines = [
        f"{r[0]:<{widths[0]}}  {r[1]:<{widths[1]}}  {r[2]:>{widths[2]}}  {r[3]}".rstrip()
        for r in rows
    ]
    counts = result.counts()
    order: tuple[Status, ...] = ("ok", "failed", "refused", "cancelled")
    tally = ", ".join(f"{counts[s]} {s}" for s in order if counts.get(s))
    lines.append(
        f"{result.operation}: {tally or 'no stacks'} of {len(result.outcomes)} stack"
        f"{'' if len(result.outcomes) == 1 else 's'} in {result.seconds:.1f}s "
        f"(at most {result.parallel} at a time)"
    )
    for o in result.outcomes.values():
        if o.error is not None:
            text = [f"  {x}" for x in str(o.error).splitlines()]
            lines += ["", f"{o.stack} ({o.status}):", *text]
    return "\n".join(lines)
