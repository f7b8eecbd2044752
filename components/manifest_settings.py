"""`coco:manifests`: the user's own manifests or Helm chart, made confidential by coco.

Kept apart from components/settings.py so the stack settings only gain one list field; the
work (loading, checking, transforming) is in components/manifests.py.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, model_validator

from components.config_types import DnsLabel, Model
from components.guest_features import ImageSignatures
from policies.agent import AgentPolicySpec
from policies.registry import RegistryAccess


class ManifestSource(Model):
    """A folder of YAML or a local Helm chart whose workloads coco makes confidential."""

    name: DnsLabel = Field(
        description="How KBS resource `readers` name every workload of this source."
    )
    path: str | None = Field(
        default=None, description="A folder of Kubernetes YAML (*.yaml, *.yml; kustomize output)."
    )
    chart: str | None = Field(default=None, description="A local Helm chart folder.")
    values: dict[str, Any] = Field(default_factory=dict, description="Helm values (chart only).")
    namespace: DnsLabel = "default"
    runtime_class: str | None = Field(
        default=None, description="Default: the secure class that fits the cluster hardware."
    )
    gpus: int = Field(default=0, ge=0, le=8)
    agent_policy: AgentPolicySpec = AgentPolicySpec()
    annotations: dict[str, str] = Field(default_factory=dict)
    registry: RegistryAccess | None = Field(
        default=None, description="Private registry under guest pull (policies/registry.py)."
    )
    image_signatures: ImageSignatures | None = Field(
        default=None,
        description="Keys that must have signed every image of every workload of the source "
        "(any image: a chart's images are known only once it renders); images must be pinned "
        "by digest (docs/guest-features.md).",
    )

    @model_validator(mode="after")
    def _one_source(self) -> ManifestSource:
        if (self.path is None) == (self.chart is None):
            raise ValueError("give exactly one of `path` (a folder of YAML) or `chart`")
        if self.values and self.chart is None:
            raise ValueError("`values` are Helm values: only with `chart`")
        return self
