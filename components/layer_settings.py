"""`coco:layer`: which half of a two-stack deployment this stack is (components/layers.py).

Kept apart from `settings.py` (which only embeds the model) so the layering rules live in one
small module.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from components.config_types import Model

_STACK_REF = re.compile(r"\A([A-Za-z0-9_.-]+/){0,2}[A-Za-z0-9_.-]+\Z")


class LayerSettings(Model):
    """A platform stack (the cluster side) or a trust stack (KBS TLS, workloads, Trustee)."""

    kind: Literal["platform", "trust"] = Field(
        description="platform: cluster side, exports what the trust stack reads; trust: KBS "
        "TLS, workloads and Trustee on the platform stack's cluster."
    )
    platform_stack: str | None = Field(
        default=None,
        description="trust only: the platform stack to read, `<org>/<project>/<stack>` "
        "(`organization/coco/<stack>` on a self-managed backend) or `<stack>` in this project.",
    )

    @field_validator("platform_stack")
    @classmethod
    def _stack_name(cls, v: str | None) -> str | None:
        if v is not None and not _STACK_REF.match(v):
            raise ValueError(f"{v!r} is not a stack name: use <org>/<project>/<stack> or <stack>")
        return v

    @model_validator(mode="after")
    def _trust_names_its_platform(self) -> LayerSettings:
        if self.kind == "trust" and not self.platform_stack:
            raise ValueError(
                "a trust stack reads its cluster from a platform stack: set platformStack, "
                "e.g. organization/coco/tdx-platform"
            )
        if self.kind == "platform" and self.platform_stack:
            raise ValueError("platformStack is for trust stacks; remove it from the platform one")
        return self
