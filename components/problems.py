"""A problem in a stack configuration, addressed by its config key, and the error listing them.

Kept apart from the settings models and their checks so that every check module (the
validation layer, components/checks/) reports in the same form without importing the module
that runs them all (docs/architecture.md).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from components.yaml_input import clip

MAX_SHOWN_PROBLEMS = 50
"""Problems a `SettingsError` lists (then a count): its text stays bounded."""


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the stack configuration, addressed by its config key."""

    key: str
    message: str

    def __str__(self) -> str:
        # Bounded: a problem never repeats a huge value (components/yaml_input.py).
        return f"  - {clip(self.key, 200)}: {clip(self.message)}"


class SettingsError(ValueError):
    """Every problem in a stack configuration, reported together."""

    def __init__(self, problems: Iterable[Problem], stack: str | None = None) -> None:
        self.problems = list(problems)
        where = f" in stack {clip(repr(stack), 120)}" if stack else ""
        shown = self.problems[:MAX_SHOWN_PROBLEMS]
        lines = "\n".join(str(p) for p in shown)
        if len(self.problems) > len(shown):
            lines += f"\n  ... and {len(self.problems) - len(shown)} more"
        super().__init__(
            f"invalid coco configuration{where} ({len(self.problems)} problem"
            f"{'s' if len(self.problems) != 1 else ''}):\n{lines}"
        )
