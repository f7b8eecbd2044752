"""Shared building blocks of the settings models: the base model, constrained strings, and the
Kubernetes target that more than one setting names.

Kept apart from `stack_settings.py` so the per-cloud peer-pods settings and the topology can
use them without an import cycle.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel

_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_CONFIG_KEY = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]*(:[A-Za-z][A-Za-z0-9_.-]*)?$")


def _dns_label(value: str) -> str:
    if len(value) > 63 or not _DNS1123_LABEL.match(value):
        raise ValueError(
            f"{value!r} is not a DNS-1123 label: use lowercase letters, digits and '-', "
            "starting and ending with a letter or digit, at most 63 characters"
        )
    return value


def _config_key(value: str) -> str:
    if not _CONFIG_KEY.match(value):
        raise ValueError(
            f"{value!r} is not a config key name: use e.g. 'dbPassword' (set it with "
            "`pulumi config set --secret dbPassword ...`)"
        )
    return value


DnsLabel = Annotated[str, AfterValidator(_dns_label)]
SecretKeyRef = Annotated[str, AfterValidator(_config_key)]
"""The name of another config key in the stack, which must be set as a Pulumi secret."""


class Model(BaseModel):
    """Base: camelCase keys in stack files, snake_case in Python, unknown keys rejected."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        frozen=True,
        validate_default=True,
    )


class KubernetesTarget(Model):
    """Where the Kubernetes objects go: a folder of YAML (GitOps, no cluster) or a cluster."""

    render_dir: str | None = Field(
        default=None,
        description="Render every manifest as YAML into this folder instead of applying it.",
    )
    kubeconfig: str | None = Field(
        default=None, description="Path to a kubeconfig; default: the ambient KUBECONFIG."
    )
    context: str | None = None

    @model_validator(mode="after")
    def _one_target(self) -> KubernetesTarget:
        if self.render_dir and (self.kubeconfig or self.context):
            raise ValueError(
                "renderDir and kubeconfig/context are exclusive: remove renderDir to deploy to "
                "a cluster, or remove kubeconfig/context to render manifests"
            )
        return self

    @property
    def rendering(self) -> bool:
        return self.render_dir is not None
