"""components/podspec.py's schema check goes through components/kube_schemas.py, which builds
each kind's validator once per process where kubernetes-validate builds it on every call:
the answers must be the library's own, for valid and invalid objects, unknown kinds and names
no file can have."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import kubernetes_validate
import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from kubernetes_validate import utils as kv
from test_hostile_input import PROPERTY, VALUES, _paths, _replace
from test_transform import deployment

from components import kube_schemas, podspec

DEPLOYMENT: dict[str, Any] = deployment()
VERSIONS = list(podspec.SCHEMA_VERSIONS)


def broken() -> dict[str, Any]:
    obj = copy.deepcopy(DEPLOYMENT)
    obj["spec"]["template"]["spec"]["containers"][0]["ports"] = [{"containerPort": "http"}]
    obj["spec"]["replicas"] = "two"
    obj["spec"]["template"]["spec"]["hostPID"] = "yes"
    return obj


def unknown_field() -> dict[str, Any]:
    obj = copy.deepcopy(DEPLOYMENT)
    obj["spec"]["template"]["spec"]["containers"][0]["imagePullPolicyy"] = "Always"
    return obj


def unknown_kind() -> dict[str, Any]:
    return {**copy.deepcopy(DEPLOYMENT), "kind": "Deploymint"}


def answer(
    validate: Callable[[dict[str, Any], str], object], obj: dict[str, Any], version: str
) -> tuple[str, str]:
    """What `validate` says of `obj`: (exception type, message and path), or "valid"."""
    try:
        validate(copy.deepcopy(obj), version)
    except kubernetes_validate.ValidationError as err:
        return ("ValidationError", f"{list(err.absolute_path)} {err.message} {err.version}")
    except kubernetes_validate.SchemaNotFoundError as err:
        return ("SchemaNotFoundError", err.message)
    return ("valid", "")


def library_answer(obj: dict[str, Any], version: str) -> tuple[str, str]:
    """What kubernetes-validate itself says."""
    return answer(lambda o, v: kubernetes_validate.validate(o, v, strict=True), obj, version)


def kept_answer(obj: dict[str, Any], version: str) -> tuple[str, str]:
    return answer(kube_schemas.validate_strict, obj, version)


CASES = {
    "valid": DEPLOYMENT,
    "invalid": broken(),
    "unknown-field": unknown_field(),
    "unknown-kind": unknown_kind(),
    "namespace": {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "a"}},
    "networkpolicy": {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": "a"},
        "spec": {"podSelector": "all pods"},
    },
}


@pytest.mark.parametrize("version", podspec.SCHEMA_VERSIONS)
@pytest.mark.parametrize("case", sorted(CASES))
def test_the_answers_are_the_librarys(case: str, version: str) -> None:
    expected = library_answer(CASES[case], version)
    assert kept_answer(CASES[case], version) == expected
    assert kept_answer(CASES[case], version) == expected  # and again, from the kept validator
    assert (expected[0] == "valid") == (case in {"valid", "namespace"})


def test_each_kind_is_built_once() -> None:
    kube_schemas._validator.cache_clear()
    for _ in range(3):
        podspec.schema_problems(copy.deepcopy(DEPLOYMENT))
    info = kube_schemas._validator.cache_info()
    assert info.misses == len(podspec.SCHEMA_VERSIONS)
    assert info.hits == 2 * len(podspec.SCHEMA_VERSIONS)


def test_schema_version_is_the_librarys_rule() -> None:
    latest = kubernetes_validate.latest_version()
    assert kube_schemas.schema_version(latest) == latest
    assert kube_schemas.schema_version(f"v{latest}") == latest
    assert kube_schemas.schema_version("1.32.7").startswith("1.32")
    with pytest.raises(kv.VersionNotSupportedError):
        kube_schemas.schema_version("9.99")


def test_a_kind_no_schema_file_can_name_is_a_problem_not_an_error() -> None:
    """kubernetes-validate opens `<kind>-<apiVersion>.json`: a 300-character apiVersion fails
    with OSError (file name too long), found by tests/test_hostile_input.py."""
    obj = copy.deepcopy(DEPLOYMENT)
    obj["apiVersion"] = "a" * 300
    assert any("has no such kind" in p for p in podspec.schema_problems(obj))


def _full_object() -> dict[str, Any]:
    from test_workload_kinds import FULL_TEMPLATE

    from components import workload_template
    from components.settings import WorkloadSettings

    entry = WorkloadSettings.model_validate(
        {"name": "web", "kind": "StatefulSet", "template": FULL_TEMPLATE}
    )
    return workload_template.workload_object(entry, "dev")


FULL_OBJECT = _full_object()
FULL_PATHS = [p for p in _paths(FULL_OBJECT) if p and p[0] not in ("apiVersion", "kind")]


@PROPERTY
@given(path=st.sampled_from(FULL_PATHS), value=VALUES, version=st.sampled_from(VERSIONS))
@example(path=("spec", "replicas"), value=2.0, version=VERSIONS[0])
@example(path=("spec", "replicas"), value=2**70, version=VERSIONS[0])
@example(path=("spec", "replicas"), value=float("nan"), version=VERSIONS[-1])
def test_the_quick_check_never_passes_what_jsonschema_refuses(
    path: tuple[Any, ...], value: Any, version: str
) -> None:
    """jsonschema-rs answers "valid?" before Python's jsonschema: a random value anywhere in a
    full StatefulSet must get the same answer from both (and jsonschema-rs must never call
    valid what Python's refuses, which would let a broken object through)."""
    obj = _replace(FULL_OBJECT, path, value)
    kind = kube_schemas._validator(
        kube_schemas.schema_version(version), obj["apiVersion"], obj["kind"]
    )
    python_says = kind.reporter.is_valid(obj)
    quick_says = kube_schemas._quickly_valid(kind, obj)
    assert not (quick_says and not python_says), (path, value)
    assert quick_says == python_says, (path, value)
