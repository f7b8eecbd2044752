"""The Kubernetes API's JSON schemas as validators built once per process.

kubernetes-validate's `validate` (1.x, `kubernetes_validate/utils.py`) does all of its set-up
on every call: it lists its schema directory and sorts the versions with `packaging`, opens
and parses the kind's schema and the multi-megabyte `_definitions.json`, and builds a
`referencing` registry and a Draft 2020-12 validator. Checking a stack calls it twice per
workload per supported Kubernetes version, and that set-up was most of the program's own time
at 1000 workloads (docs/benchmarks.md). Here the same files and the same steps make one
validator per (Kubernetes version, apiVersion, kind), kept for the life of the process; each
check is then only the validation itself.

Even so, Python's jsonschema took 0.3 ms per object and version, most of what settings
validation costs for a large stack. So each kind also gets a jsonschema-rs validator (the
same Draft 2020-12 schemas and `$defs`, compiled in Rust, about a hundred times faster) that
answers "valid?" first; only an object it calls invalid goes through Python's jsonschema,
whose first error is the message the user sees, word for word the library's. jsonschema-rs is
trusted only to say "valid": where it says "invalid" and Python's does not, Python's answer
stands. `tests/test_podspec_schema.py` checks the answers against kubernetes-validate's own,
and, on many random values at random places of a full pod template, that jsonschema-rs never
calls valid what Python's jsonschema refuses.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import jsonschema
import jsonschema_rs
import kubernetes_validate
from kubernetes_validate import utils as kv
from referencing import Registry, Resource

_API_GROUP = re.compile(r"^([^./]*)(?:\.[^/]*)?/")
"""kubernetes-validate's file naming: `rbac.authorization.k8s.io/v1` -> `rbac-v1`."""


@functools.cache
def schema_version(desired: str) -> str:
    """The schema set kubernetes-validate uses for `desired`: the newest not newer than it
    (its own rule, compared as its code does, on "major.minor" strings)."""
    desired = desired.removeprefix("v")
    if kv.major_minor(desired) > kv.latest_version():
        raise kv.VersionNotSupportedError(version=kv.major_minor(desired))
    wanted = kv.major_minor(desired)
    newest: str = [v for v in kv.all_versions() if kv.major_minor(v) <= wanted][-1]
    return newest


@dataclass(frozen=True)
class _Kind:
    """One kind's schema, as the two validators see it."""

    checker: Any
    """jsonschema-rs validator: the quick "valid?"."""
    reporter: jsonschema.protocols.Validator
    """Python's jsonschema validator: the error message, as kubernetes-validate gives it."""


@functools.lru_cache(maxsize=256)
def _validator(version: str, api_version: str, kind: str) -> _Kind:
    """The strict validators of one kind. Bounded: kinds come from user input, and a kind
    with no schema file raises (and lru_cache keeps no exceptions)."""
    schema_dir = f"kubernetes-json-schema/v{version}-local-strict"
    file_api = _API_GROUP.sub(r"\1-", api_version)
    try:
        schema = kv.schema_contents(f"{schema_dir}/{kind.lower()}-{file_api}.json", version)
    except FileNotFoundError:
        raise kubernetes_validate.SchemaNotFoundError(
            version=kv.major_minor(version), kind=kind, api_version=api_version
        ) from None
    definitions = kv.schema_contents(f"{schema_dir}/_definitions.json", version)
    registry: Registry[Any] = Resource.from_contents(schema) @ Registry()
    registry = Resource.from_contents(definitions) @ registry
    reporter: jsonschema.protocols.Validator = jsonschema.validators.Draft202012Validator(
        schema, registry=registry
    )
    # Formats are annotations in Draft 2020-12 and Python's jsonschema checks none unless
    # asked: the same here. `$ref`s name the definitions by their `$id`.
    checker = jsonschema_rs.Draft202012Validator(
        schema,
        registry=jsonschema_rs.Registry([(definitions["$id"], definitions)]),
        validate_formats=False,
    )
    return _Kind(checker, reporter)


def _quickly_valid(kind: _Kind, obj: Mapping[str, Any]) -> bool:
    """jsonschema-rs's "valid", or False when it cannot take the object (a value with no
    JSON counterpart, a number out of its range): Python's jsonschema then decides."""
    try:
        return bool(kind.checker.is_valid(obj))
    except (ValueError, TypeError, OverflowError):
        return False


def validate_strict(obj: Mapping[str, Any], desired_version: str) -> None:
    """Raise what `kubernetes_validate.validate(obj, desired_version, strict=True)` raises:
    `SchemaNotFoundError` for an unknown kind, `ValidationError` (the first error the
    validator finds, as the library reports it) for an invalid object. `OSError` when the
    kind names no file the system can open (the library's behaviour too)."""
    version = schema_version(desired_version)
    kind = _validator(version, obj["apiVersion"], obj["kind"])
    if _quickly_valid(kind, obj):
        return
    try:
        kind.reporter.validate(obj)
    except jsonschema.ValidationError as err:
        raise kubernetes_validate.ValidationError(err, version=kv.major_minor(version)) from None
