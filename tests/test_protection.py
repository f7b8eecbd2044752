"""`protect` reaches the engine for what holds state or identity, and only in production.

The example stacks run under the mocks with the monitor's registration requests recorded,
so the test sees the `protect` flag exactly as the engine would receive it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from mocks import CloudMocks, RecordingMocks, config_values, run_program
from pulumi.runtime import mocks as runtime_mocks

from components.settings import parse, secret_refs, strip_namespace

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def registrations(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, bool]]:
    """`type::name -> protect` for every registration the mock monitor receives."""
    seen: dict[str, bool] = {}
    original = runtime_mocks.MockMonitor.RegisterResource

    def record(self: Any, request: Any) -> Any:
        seen[f"{request.type}::{request.name}"] = bool(request.protect)
        return original(self, request)

    monkeypatch.setattr(runtime_mocks.MockMonitor, "RegisterResource", record)
    yield seen


def run(name: str, overrides: dict[str, Any] | None = None) -> RecordingMocks:
    doc = yaml.safe_load((ROOT / "stacks" / f"Pulumi.{name}.yaml").read_text())
    config = {
        k: v for k, v in doc["config"].items() if not isinstance(v, dict) or "secure" not in v
    }
    config.update(overrides or {})
    settings = parse(strip_namespace(config))
    secrets = {
        ref if ":" in ref else f"coco:{ref}": f"test-{ref}" for _, ref in secret_refs(settings)
    }
    recorder = CloudMocks()
    run_program(recorder, name, config_values(config) | secrets, secrets)
    return recorder


def protected(seen: dict[str, bool]) -> set[str]:
    return {key for key, flag in seen.items() if flag}


def test_production_cloud_stack_protects_cluster_and_identities(
    registrations: dict[str, bool],
) -> None:
    run("aws-peerpods")
    types = {key.split("::")[0] for key in protected(registrations)}
    assert "aws:eks/cluster:Cluster" in types
    assert "aws:iam/role:Role" in types
    assert "aws:iam/openIdConnectProvider:OpenIdConnectProvider" in types
    assert not [k for k in protected(registrations) if k.startswith("aws:ec2/vpc:Vpc")]
    assert not [k for k in protected(registrations) if k.startswith("kubernetes:apps/v1")]


def test_gke_deletion_protection_follows_coco_protect(registrations: dict[str, bool]) -> None:
    recorder = run("gcp-peerpods")
    [gke] = recorder.of_type("gcp:container/cluster:Cluster")
    assert gke.inputs["deletionProtection"] is True
    assert any(k.startswith("gcp:container/cluster:Cluster") for k in protected(registrations))
    registrations.clear()
    recorder = run("gcp-peerpods", {"coco:protect": False})
    [gke] = recorder.of_type("gcp:container/cluster:Cluster")
    assert gke.inputs["deletionProtection"] is False
    assert protected(registrations) == set()


def test_kbs_keys_and_released_secrets_are_protected(registrations: dict[str, bool]) -> None:
    recorder = run("baremetal-tdx")  # production, applied to a cluster: Secrets are created
    roles = {
        r.name: r.metadata["labels"]["coco.confidentialcontainers.org/role"]
        for r in recorder.of_type("core/v1:Secret")
    }
    assert set(roles.values()) >= {"kbs-tls", "kbs-resource"}
    for name in roles:
        assert registrations[f"kubernetes:core/v1:Secret::{name}"], name
    assert not registrations["kubernetes:apps/v1:Deployment::payments-api"]


@pytest.mark.parametrize(
    ("name", "overrides"),
    [
        ("dev", {}),  # dev, rendering
        ("azure-peerpods", {}),  # staging
        ("baremetal-tdx", {"coco:kubernetes": {"renderDir": "out/x"}}),  # production, rendering
        ("baremetal-tdx", {"coco:protect": False}),  # switched off
    ],
)
def test_nothing_is_protected_outside_applied_production(
    registrations: dict[str, bool], name: str, overrides: dict[str, Any]
) -> None:
    if "coco:kubernetes" in overrides:
        overrides["coco:cluster"] = {
            "kind": "baremetal",
            "tee": "tdx",
            "install": {"method": "preinstalled"},
        }
    run(name, overrides)
    assert registrations and protected(registrations) == set()


def test_protect_can_be_forced_on_for_staging(registrations: dict[str, bool]) -> None:
    run("azure-peerpods", {"coco:protect": True})  # an existing AKS cluster: not coco's to protect
    types = {key.split("::")[0] for key in protected(registrations)}
    assert types == {
        "azure-native:managedidentity:UserAssignedIdentity",
        "kubernetes:core/v1:Secret",
    }
