"""The Kubernetes API's JSON schemas as validators built once per process.

kubernetes-validate's `validate` (1.x, `kubernetes_validate/utils.py`) does all of its set-up
on every call: it lists its schema directory and sorts the versions with `packaging`, opens
and parses the kind's schema and the multi-megabyte `_definitions.json`, and builds a
`referencing` registry and a Draft 2020-12 validator. Checking a stack calls it twice per
workload per supported Kubernetes version, and that set-up was most of the program's own time
at 1000 workloads (docs/benchmarks.md). Here the same files and the same steps make one
validator per (Kubernetes version, apiVersion, kind), kept for the life of the process; each
check is then only the validation itself. `tests/test_kube_schemas.py` checks that the
answers are the library's, valid and invalid objects alike.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from typing import Any

import jsonschema
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


@functools.lru_cache(maxsize=256)
def _validator(version: str, api_version: str, kind: str) -> jsonschema.protocols.Validator:
    """The strict validator of one kind. Bounded: kinds come from user input, and a kind
    with no schema file raises (and lru_cache keeps no exceptions)."""
    schema_dir = f"kubernetes-json-schema/v{version}-local-strict"
    file_api = _API_GROUP.sub(r"\1-", api_version)
    try:
        schema = kv.schema_contents(f"{schema_dir}/{kind.lower()}-{file_api}.json", version)
    except FileNotFoundError:
        raise kubernetes_validate.SchemaNotFoundError(
            version=kv.major_minor(version), kind=kind, api_version=api_version
        ) from None
    definitions = _definitions(schema_dir, version)
    registry: Registry[Any] = Resource.from_contents(schema) @ Registry()
    registry = definitions @ registry
    validator: jsonschema.protocols.Validator = jsonschema.validators.Draft202012Validator(
        schema, registry=registry
    )
    return validator


@functools.lru_cache(maxsize=8)
def _definitions(schema_dir: str, version: str) -> Resource[Any]:
    return Resource.from_contents(kv.schema_contents(f"{schema_dir}/_definitions.json", version))


def validate_strict(obj: Mapping[str, Any], desired_version: str) -> None:
    """Raise what `kubernetes_validate.validate(obj, desired_version, strict=True)` raises:
    `SchemaNotFoundError` for an unknown kind, `ValidationError` (the first error the
    validator finds, as the library reports it) for an invalid object. `OSError` when the
    kind names no file the system can open (the library's behaviour too)."""
    version = schema_version(desired_version)
    validator = _validator(version, obj["apiVersion"], obj["kind"])
    try:
        validator.validate(obj)
    except jsonschema.ValidationError as err:
        raise kubernetes_validate.ValidationError(err, version=kv.major_minor(version)) from None
