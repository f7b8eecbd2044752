"""The words every layer shares, each defined once: KBS resource paths and URIs, image digests,
and secret references to config keys.

Why one module: these rules were written out six (resource paths), three (digests) and three
(secret config) times, and the copies had drifted (two accepted a resource path segment
starting with `.`, which the KBS refuses). Everything here is a pure function of its
arguments and imports nothing of coco, so the pure policy builders (`policies/`) can use it
as well as the settings and the components (docs/architecture.md).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Annotated

from pydantic import AfterValidator

if TYPE_CHECKING:
    import pulumi

NAMESPACE = "coco"
"""The stack configuration's namespace: `coco:cluster`, `coco:trustee`, ..."""

# --------------------------------------------------------------------------- KBS resources

# trustee v0.21.0 kbs/src/plugins/implementations/resource/backend.rs `ResourceDesc`: each segment
# starts with [a-zA-Z0-9_-] (never `.`), then [a-zA-Z0-9_.-]*; the KBS refuses any other path, so
# a resource declared with one would be stored but never served.
RESOURCE_SEGMENT = r"[A-Za-z0-9_-][A-Za-z0-9_.-]*"
RESOURCE_PATH = re.compile(rf"\A{RESOURCE_SEGMENT}/{RESOURCE_SEGMENT}/{RESOURCE_SEGMENT}\Z")
KBS_URI_PREFIX = "kbs:///"
"""A KBS resource named without a host (`resource_uri`'s form the guest's CDH resolves)."""


def is_resource_path(path: str) -> bool:
    """True for a `repo/type/tag` path the KBS serves."""
    return bool(RESOURCE_PATH.match(path))


def check_resource_path(path: str) -> str:
    """A KBS resource path the KBS will serve, or a ValueError saying how to write one."""
    if not is_resource_path(path):
        raise ValueError(
            f"{path!r} is not a KBS resource path: use repo/type/tag, e.g. default/key/1, "
            "each part made of letters, digits, `_`, `-`, `.` and not starting with `.`"
        )
    return path


ResourcePath = Annotated[str, AfterValidator(check_resource_path)]
"""A settings field holding a KBS resource path (a resource's own, or the one a sealed value
comes from): one rule and one message for every such key."""


def kbs_uri(path: str) -> str:
    """`repo/type/tag` -> `kbs:///repo/type/tag`, or a ValueError for a path the KBS refuses."""
    return KBS_URI_PREFIX + check_resource_path(path)


def resource_path_of(uri: str) -> str | None:
    """The `repo/type/tag` a `kbs:///repo/type/tag` URI names, or None for anything else."""
    if not uri.startswith(KBS_URI_PREFIX):
        return None
    path = uri[len(KBS_URI_PREFIX) :]
    return path if is_resource_path(path) else None


def is_kbs_uri(uri: str) -> bool:
    return resource_path_of(uri) is not None


# --------------------------------------------------------------------------- images

DIGEST_REF = re.compile(r"\A[^\s@]+@sha256:[0-9a-f]{64}\Z")
"""An image reference pinned by content: `name@sha256:<64 lowercase hex>`."""


def is_pinned(image: str) -> bool:
    """True when an image reference names its content by sha256 digest."""
    return bool(DIGEST_REF.match(image))


# --------------------------------------------------------------------------- secret references


def full_key(ref: str) -> str:
    """A config key as the stack file writes it: `dbPassword` -> `coco:dbPassword`."""
    return ref if ":" in ref else f"{NAMESPACE}:{ref}"


def secret_config(ref: str) -> pulumi.Output[str]:
    """The value of the config key a `...From` setting names, always as a Pulumi secret.

    Settings validation already refused non-secret keys; `require_secret` makes sure even a
    test or an Automation API caller that skipped it never gets a plain value. Pulumi is
    imported here, not at the top: the pure policy builders import this module.
    """
    import pulumi

    namespace, key = full_key(ref).split(":", 1)
    return pulumi.Config(namespace).require_secret(key)
