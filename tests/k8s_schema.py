"""Validate Kubernetes objects against the real Kubernetes OpenAPI schemas.

Pulumi's mocks accept any input shape, so a misspelt field (`nodeselector`, `podfixed`) would
pass every unit test and fail only against an API server. `kubernetes-validate` ships the
JSON schemas of each Kubernetes release (1.x up to its own version: 1.37 for the pinned
1.37.0); strict mode rejects unknown fields, which is exactly the class of mistake to catch.

The objects are checked against the oldest Kubernetes the stack supports (1.32, the minimum
of NVIDIA's Confidential Containers reference architecture) and the newest schema shipped, so
a field that only one of them knows fails here.

Usage, on what `tests.mocks.RecordingMocks` recorded:

    for r in mocks.kubernetes():
        if has_schema(as_manifest(r.inputs)):
            validate_manifest(r.inputs)
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import kubernetes_validate

OLDEST_SUPPORTED = "1.32"
"""NVIDIA's reference architecture supports Kubernetes 1.32 and later."""

VERSIONS: tuple[str, ...] = (OLDEST_SUPPORTED, kubernetes_validate.latest_version())


class ManifestError(AssertionError):
    """A manifest the Kubernetes API would reject; names the object, version and field."""


def as_manifest(obj: Any) -> Any:
    """A plain manifest from Pulumi-style inputs: `None` values and `__`-keys dropped.

    The Pulumi Kubernetes SDK already sends camelCase names and `apiVersion`/`kind`, so what a
    mock records is a manifest except for unset (`None`) properties and the engine's private
    `__`-prefixed bookkeeping keys, which strict validation would reject.
    """
    if isinstance(obj, dict):
        return {
            k: as_manifest(v)
            for k, v in obj.items()
            if v is not None and not (isinstance(k, str) and k.startswith("__"))
        }
    if isinstance(obj, list):
        return [as_manifest(v) for v in obj if v is not None]
    return obj


def _describe(obj: dict[str, Any]) -> str:
    meta = obj.get("metadata") or {}
    where = f"{meta.get('namespace')}/" if meta.get("namespace") else ""
    return f"{obj.get('apiVersion')} {obj.get('kind')} {where}{meta.get('name')}"


def has_schema(obj: dict[str, Any], version: str = OLDEST_SUPPORTED) -> bool:
    """True when Kubernetes itself defines the object's kind (false for CRDs' kinds)."""
    try:
        kubernetes_validate.validate(as_manifest(obj), version, strict=True)
    except kubernetes_validate.SchemaNotFoundError:
        return False
    except kubernetes_validate.ValidationError:
        return True
    return True


def validate_manifest(obj: dict[str, Any], versions: Iterable[str] = VERSIONS) -> None:
    """Raise `ManifestError` unless `obj` is valid, with no unknown field, in every version."""
    manifest = as_manifest(obj)
    for version in versions:
        try:
            kubernetes_validate.validate(manifest, version, strict=True)
        except kubernetes_validate.SchemaNotFoundError as err:
            raise ManifestError(
                f"{_describe(manifest)}: no Kubernetes {version} schema for this kind ({err})"
            ) from None
        except kubernetes_validate.ValidationError as err:
            path = ".".join(str(p) for p in err.absolute_path) or "<root>"
            raise ManifestError(
                f"{_describe(manifest)} is invalid for Kubernetes {version} at {path}: "
                f"{err.message}"
            ) from None
