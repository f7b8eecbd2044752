"""What an operation returns: typed, plain data a caller can log, compare or serialise.

The Automation API's own result objects mix CLI text, enum keys and secret wrappers; these
dataclasses keep only what a deployment tool acts on (how many resources changed, the
stack outputs, the policy findings), with secrets masked unless asked for.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from pulumi.automation import OutputMap

from automation.errors import PolicyViolation

Operation = Literal["preview", "up", "refresh", "destroy"]
SECRET_MASK = "[secret]"


@dataclass(frozen=True)
class StackOutputs:
    """A stack's outputs; `secret_keys` are the outputs Pulumi holds as secrets."""

    values: Mapping[str, Any] = field(default_factory=dict)
    secret_keys: frozenset[str] = frozenset()

    @classmethod
    def from_output_map(cls, outputs: OutputMap) -> StackOutputs:
        return cls(
            values={k: v.value for k, v in outputs.items()},
            secret_keys=frozenset(k for k, v in outputs.items() if v.secret),
        )

    def masked(self) -> dict[str, Any]:
        """The outputs with every secret replaced by `[secret]`: safe to print or log."""
        return {k: SECRET_MASK if k in self.secret_keys else v for k, v in self.values.items()}

    def to_json(self, show_secrets: bool = False) -> str:
        data = dict(self.values) if show_secrets else self.masked()
        return json.dumps(data, indent=2, sort_keys=True)

    def __getitem__(self, key: str) -> Any:
        return self.values[key]

    def __repr__(self) -> str:  # never leak secrets through a repr in a log line
        return f"StackOutputs({self.masked()!r})"


@dataclass(frozen=True)
class OperationResult:
    """The outcome of one successful operation on one stack."""

    stack: str
    operation: Operation
    changes: Mapping[str, int]
    """Resource counts per engine operation: `create`, `update`, `delete`, `same`, ..."""
    outputs: StackOutputs | None = None
    """Stack outputs after `up`; None for the other operations."""
    violations: tuple[PolicyViolation, ...] = ()
    """Policy findings that did not block the operation (advisory ones)."""
    stdout: str = field(default="", repr=False)

    @property
    def changed(self) -> bool:
        """True when any resource was (or, for preview, would be) created, updated or deleted."""
        return any(count for op, count in self.changes.items() if op != "same")

    def summary(self) -> str:
        """One line for logs: `up dev: 3 create, 5 same`."""
        counts = (
            ", ".join(f"{n} {op}" for op, n in sorted(self.changes.items()) if n) or "no changes"
        )
        return f"{self.operation} {self.stack}: {counts}"


def op_counts(raw: Mapping[Any, int] | None) -> dict[str, int]:
    """`{OpType.CREATE: 2}` (or plain strings) -> `{"create": 2}`."""
    return {str(getattr(k, "value", k)): int(v) for k, v in (raw or {}).items()}
