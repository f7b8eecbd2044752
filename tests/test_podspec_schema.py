"""components/podspec.py's schema check: the parsed Kubernetes schemas are kept per process
(kubernetes-validate re-reads them on every call), and keeping them changes no answer."""

from __future__ import annotations

import copy
from typing import Any

import kubernetes_validate.utils as kv_utils
import pytest
from test_transform import deployment

from components import podspec

DEPLOYMENT: dict[str, Any] = deployment()


def broken() -> dict[str, Any]:
    obj = copy.deepcopy(DEPLOYMENT)
    obj["spec"]["template"]["spec"]["containers"][0]["ports"] = [{"containerPort": "http"}]
    obj["spec"]["replicas"] = "two"
    obj["spec"]["template"]["spec"]["hostPID"] = "yes"
    return obj


def test_the_parsed_schemas_are_kept() -> None:
    assert hasattr(kv_utils.schema_contents, "cache_info")
    podspec._schema_problems(copy.deepcopy(DEPLOYMENT))
    assert kv_utils.schema_contents.cache_info().currsize >= 2  # the kind and the definitions


@pytest.mark.parametrize("obj", [DEPLOYMENT, broken()], ids=["valid", "invalid"])
def test_keeping_them_changes_no_answer(
    obj: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    kept = podspec._schema_problems(copy.deepcopy(obj))
    monkeypatch.setattr(kv_utils, "schema_contents", kv_utils.schema_contents.__wrapped__)
    assert podspec._schema_problems(copy.deepcopy(obj)) == kept
    assert bool(kept) == (obj is not DEPLOYMENT)


def test_a_kind_no_schema_file_can_name_is_a_problem_not_an_error() -> None:
    """kubernetes-validate opens `<kind>-<apiVersion>.json`: a 300-character apiVersion fails
    with OSError (file name too long), found by tests/test_hostile_input.py."""
    obj = copy.deepcopy(DEPLOYMENT)
    obj["apiVersion"] = "a" * 300
    assert any("has no such kind" in p for p in podspec._schema_problems(obj))
