"""`coco:manifests`: the user's own manifests or Helm chart, made confidential by coco.

Kept apart from components/stack_settings.py so the stack settings only gain one list field; the
work (loading, checking, transforming) is in components/manifests.py.
"""

from __future__ import annotations

import posixpath
import re
from typing import Any

from pydantic import Field, field_validator, model_validator

from components.config_types import DnsLabel, Model
from components.guest_features import ImageSignatures
from components.hardening import HardeningSettings
from components.vocabulary import ResourcePath
from policies.agent import AgentPolicySpec
from policies.registry import RegistryAccess

MAX_PATH_CHARS = 4096
"""PATH_MAX on Linux."""


_SECRET_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
"""A Secret's name: a DNS subdomain (Kubernetes `IsDNS1123Subdomain`)."""
_SECRET_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")
"""A Secret's data key (Kubernetes `IsConfigMapKey`)."""


class SealedSecretRef(Model):
    """A key of a Secret the source's containers read through `env[].valueFrom.secretKeyRef`,
    served by the KBS instead: the value never reaches the chart, the render or the host.

    coco points every such env entry at the source's `<name>-sealed-secrets` Secret, whose key
    holds a signed reference to the KBS resource (the CDH unseals it inside the TEE, as for
    `coco:workloads` `sealedEnv`), pins that reference in the agent policy, and drops the key
    from the chart's own Secret (docs/workloads.md "A chart's secretKeyRef from the KBS").
    """

    secret: str = Field(max_length=253, description="The Secret name the pods' secretKeyRef names.")
    key: str = Field(max_length=253, description="The key in that Secret.")
    sealed_from: ResourcePath = Field(
        description="The KBS resource (repo/type/tag, declared in coco:trustee.resources with "
        "this source among its readers) holding the value as a Pulumi secret."
    )

    @field_validator("secret")
    @classmethod
    def _secret(cls, v: str) -> str:
        if not _SECRET_NAME.match(v):
            raise ValueError(
                f"{v[:80]!r} is not a Secret name (a DNS subdomain: a-z, 0-9, '-', '.')"
            )
        return v

    @field_validator("key")
    @classmethod
    def _key(cls, v: str) -> str:
        if not _SECRET_KEY.match(v) or v in (".", ".."):
            raise ValueError(f"{v[:80]!r} is not a Secret key (letters, digits, '-', '_', '.')")
        return v

    @property
    def sealed_key(self) -> str:
        """Its key in the source's sealed Secret."""
        return f"{self.secret}.{self.key}"


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
    hardening: HardeningSettings = Field(
        default_factory=HardeningSettings,
        description="Hardened defaults of every workload's pods (docs/hardening.md).",
    )
    image_signatures: ImageSignatures | None = Field(
        default=None,
        description="Keys that must have signed every image of every workload of the source "
        "(any image: a chart's images are known only once it renders); images must be pinned "
        "by digest (docs/guest-features.md).",
    )
    sealed_secrets: list[SealedSecretRef] = Field(
        default_factory=list,
        max_length=256,
        description="Secret keys the source's containers read through env secretKeyRef, "
        "served by the KBS as sealed secrets (docs/workloads.md).",
    )

    @field_validator("path", "chart")
    @classmethod
    def _local_path(cls, v: str | None) -> str | None:
        """A folder path the filesystem can take, that a relative form keeps in the project.

        Checked before anything touches the filesystem: a 1 MB or NUL-holding path made
        `is_dir` raise, and `../..` reached folders the stack has no business reading (an
        absolute path is the operator's explicit choice, and its walk is bounded:
        components/manifests.py `yaml_files`).
        """
        if v is None:
            return v
        if not v or len(v) > MAX_PATH_CHARS or any(ord(c) < 32 for c in v):
            raise ValueError(
                f"not a usable folder path (empty, over {MAX_PATH_CHARS} characters, or holding "
                "control characters): give the folder relative to the project"
            )
        if any(len(part.encode("utf-8", "replace")) > 255 for part in v.split("/")):
            raise ValueError("a path component is longer than 255 bytes")
        if not posixpath.isabs(v) and posixpath.normpath(v).split("/")[0] == "..":
            raise ValueError(
                f"{v[:80]!r} leaves the project folder: keep manifests and charts inside the "
                "project (or give an absolute path on purpose)"
            )
        return v

    @model_validator(mode="after")
    def _one_source(self) -> ManifestSource:
        if (self.path is None) == (self.chart is None):
            raise ValueError("give exactly one of `path` (a folder of YAML) or `chart`")
        if self.values and self.chart is None:
            raise ValueError("`values` are Helm values: only with `chart`")
        seen: set[str] = set()
        for ref in self.sealed_secrets:
            if ref.sealed_key in seen:
                raise ValueError(
                    f"sealedSecrets: secret {ref.secret!r} key {ref.key!r} is listed twice (or "
                    f"gives the sealed key {ref.sealed_key!r} of another entry)"
                )
            seen.add(ref.sealed_key)
        return self

    @property
    def sealed_secret_name(self) -> str:
        """The Secret coco writes the source's sealed references into (never a value)."""
        return f"{self.name}-sealed-secrets"
