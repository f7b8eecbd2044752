"""Reading the engine's event stream: what failed, where, and which policies objected.

The Automation API reports a failed operation as one `CommandError` whose text is the CLI's
whole output; the structured facts (which resource, which policy) only exist in the engine
events streamed while it ran. `EventLog` listens to that stream (and forwards every event to
the caller's own `on_event`), so a failure can be raised as a `CocoDeploymentError` naming
the stack and the failing resources instead of a wall of text.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from pulumi.automation import EngineEvent

from automation.errors import CocoDeploymentError, FailedResource, PolicyViolation

EventHandler = Callable[[EngineEvent], None]


class EventLog:
    """Collects failures and policy findings from engine events; thread-safe.

    Use it as the `on_event` callback of one operation. `forward` receives every event too.
    """

    def __init__(self, forward: EventHandler | None = None) -> None:
        self._forward = forward
        self._lock = threading.Lock()
        self._failed: dict[str, str | None] = {}
        self._messages: dict[str, list[str]] = {}
        self._errors: list[str] = []
        self._stderr: list[str] = []
        self.violations: list[PolicyViolation] = []
        self.resource_changes: dict[str, int] = {}

    def __call__(self, event: EngineEvent) -> None:
        with self._lock:
            self._record(event)
        if self._forward is not None:
            self._forward(event)

    def _record(self, event: EngineEvent) -> None:
        diag = event.diagnostic_event
        if diag is not None and diag.severity == "error":
            if diag.urn:
                self._messages.setdefault(diag.urn, []).append(diag.message)
                self._failed.setdefault(diag.urn, None)
            else:
                self._errors.append(diag.message)
        elif diag is not None and diag.severity == "info#err" and diag.message.strip():
            self._stderr.append(diag.message.rstrip())  # the program's stderr, line by line
        failed = event.res_op_failed_event
        if failed is not None and failed.metadata is not None and failed.metadata.urn:
            op = failed.metadata.op
            self._failed[failed.metadata.urn] = getattr(op, "value", str(op)) if op else None
        policy = event.policy_event
        if policy is not None:
            self.violations.append(
                PolicyViolation(
                    policy=policy.policy_name,
                    pack=policy.policy_pack_name,
                    enforcement=policy.enforcement_level,
                    message=policy.message,
                    urn=policy.resource_urn or None,
                )
            )
        summary = event.summary_event
        if summary is not None and summary.resource_changes:
            self.resource_changes = {
                getattr(k, "value", str(k)): int(v) for k, v in summary.resource_changes.items()
            }

    @property
    def failed_resources(self) -> list[FailedResource]:
        """Failed resources in the order the engine reported them.

        The stack resource (`pulumi:pulumi:Stack`) only fails because a child did, so it is
        listed last: the first entry is the root cause a person should look at.
        """
        with self._lock:
            items = [
                FailedResource(urn=urn, operation=op, messages=tuple(self._messages.get(urn, ())))
                for urn, op in self._failed.items()
            ]
        return sorted(items, key=lambda r: r.type == "pulumi:pulumi:Stack")

    @property
    def errors(self) -> list[str]:
        with self._lock:
            return list(self._errors)

    def error(self, stack: str, operation: str, detail: str = "") -> CocoDeploymentError:
        """The exception describing this operation's failure from what the events showed.

        When no error diagnostic explains the failure, the program's stderr is used (a crash
        before the Pulumi runtime is up prints its traceback there), else the `error:` lines
        of `detail`, the CLI's output (the engine stopped before the update, e.g. on invalid
        stack config).
        """
        resources = tuple(self.failed_resources)
        errors = tuple(self.errors)
        if not resources and not errors:
            with self._lock:
                stderr = "\n".join(self._stderr).removeprefix("error:").strip()
            errors = (stderr,) if stderr else tuple(cli_errors(detail))
        return CocoDeploymentError(
            stack=stack,
            operation=operation,
            resources=resources,
            errors=errors,
            violations=tuple(self.violations),
            detail="" if errors else detail,
        )


def cli_errors(output: str) -> list[str]:
    """The `error: ...` lines of the Pulumi CLI's output, without the prefix."""
    return [
        line.strip().removeprefix("error:").strip()
        for line in output.splitlines()
        if line.strip().startswith("error:")
    ]
