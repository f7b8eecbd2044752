"""The exceptions the embedding API raises, and nothing else.

Callers need to tell three situations apart, because each has a different remedy:

- the input is wrong (`SettingsError` from `components.settings`, `StackFileError`): fix the
  stack configuration; nothing was sent to the engine;
- the engine cannot run here (`EngineNotFoundError`, `SecretsProviderError`): fix the machine
  (run `scripts/setup.sh`, set the passphrase); nothing was sent either;
- the engine ran and the operation failed (`CocoDeploymentError`): it names the stack and
  the resources that failed, so a fleet report or a CI log points at the culprit directly.

All of them derive from `CocoAutomationError` except `SettingsError`, which is the project's
one settings exception (a `ValueError`) and is re-exported unchanged so there is exactly one
type to catch for "the configuration is wrong", whether it came through this API or not.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field


class CocoAutomationError(Exception):
    """Base class of every error this package raises (except `SettingsError`)."""


class StackFileError(CocoAutomationError, ValueError):
    """A stack file is missing, unreadable or not a Pulumi stack configuration."""


class EngineNotFoundError(CocoAutomationError):
    """The Pulumi CLI is not on PATH, so no engine operation can run."""


class SecretsProviderError(CocoAutomationError):
    """The secrets provider cannot work: e.g. passphrase provider without a passphrase."""


@dataclass(frozen=True)
class PolicyViolation:
    """One policy-pack finding reported by the engine during an operation."""

    policy: str
    pack: str
    enforcement: str
    """`mandatory` blocks the operation; `advisory` only reports."""
    message: str
    urn: str | None = None

    def __str__(self) -> str:
        where = f" on {describe_urn(self.urn)}" if self.urn else ""
        text = " ".join(line.strip() for line in self.message.strip().splitlines())
        return f"[{self.enforcement}] {self.pack}/{self.policy}{where}: {text}"


def describe_urn(urn: str) -> str:
    """`urn:...$kubernetes:apps/v1:Deployment::api` -> `kubernetes:apps/v1:Deployment 'api'`."""
    parts = urn.split("::")
    if len(parts) < 3:
        return urn
    return f"{parts[-2].rsplit('$', 1)[-1]} {parts[-1]!r}"


@dataclass(frozen=True)
class FailedResource:
    """A resource whose operation failed, with the engine's error text for it."""

    urn: str
    operation: str | None = None
    messages: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        """The resource's logical name: the last `::` segment of its URN."""
        return self.urn.rsplit("::", 1)[-1]

    @property
    def type(self) -> str:
        """The resource type token (`kubernetes:apps/v1:Deployment`), from the URN."""
        parts = self.urn.split("::")
        return parts[-2].rsplit("$", 1)[-1] if len(parts) >= 2 else ""


@dataclass(eq=False)
class CocoDeploymentError(CocoAutomationError):
    """An engine operation failed. Names the stack and every resource that failed.

    `resources` come from the engine's `res_op_failed_event`s and from error diagnostics
    that carry a URN; `errors` are the error diagnostics without one (program crashes,
    config errors); `violations` are the mandatory policy findings that blocked it.
    """

    stack: str
    operation: str
    resources: Sequence[FailedResource] = field(default_factory=tuple)
    errors: Sequence[str] = field(default_factory=tuple)
    violations: Sequence[PolicyViolation] = field(default_factory=tuple)
    detail: str = ""
    """The engine's own output (stderr tail) when events explain nothing."""

    def __post_init__(self) -> None:
        super().__init__(self._message())

    @property
    def resource(self) -> FailedResource | None:
        """The first failed resource (the usual root cause), if any."""
        return self.resources[0] if self.resources else None

    def _message(self) -> str:
        lines = [f"{self.operation} of stack {self.stack!r} failed"]
        mandatory = [v for v in self.violations if v.enforcement == "mandatory"]
        if self.resources:
            lines[0] += ": " + ", ".join(describe_urn(r.urn) for r in self.resources)
            for r in self.resources:
                lines.append(f"  - {r.urn}")
                lines += [_indent(m, "      ") for m in r.messages if m.strip()]
        elif mandatory:
            blocked = sorted({describe_urn(v.urn) for v in mandatory if v.urn})
            lines[0] += ", blocked by policy" + (" on " + ", ".join(blocked) if blocked else "")
        if mandatory:
            lines.append(f"  mandatory policy violations ({len(mandatory)}):")
            lines += [f"  - {v}" for v in mandatory]
        if self.errors:
            lines.append("  errors:")
            lines += [_indent(e, "  - ", "    ") for e in self.errors if e.strip()]
        if len(lines) == 1 and self.detail:
            lines.append(self.detail.strip())
        return "\n".join(lines)

    def __str__(self) -> str:
        return self._message()


def _indent(text: str, first: str, rest: str | None = None) -> str:
    rest = first if rest is None else rest
    lines = [line.rstrip() for line in text.strip().splitlines() if line.strip()]
    return "\n".join((first if i == 0 else rest) + line for i, line in enumerate(lines))
