"""The two-stack layout under mocks: platform + trust register exactly the single stack.

The platform stack runs first and its exported outputs are resolved; the trust stack then
runs with a `pulumi.StackReference` that the mocks answer with exactly those outputs. Their
Kubernetes objects together must be the single stack's, name for name and input for input,
and the trust stack must deploy with the platform's kubeconfig (a secret). The engine-level
proof (two real stacks in one file backend) is tests/test_e2e_layers.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import pulumi
import pytest
import yaml
from builders import exports_of, set_stack_config
from mocks import CloudMocks, Recorded

from components.layers import build_platform_layer, build_stack
from components.settings import (
    SettingsError,
    StackSettings,
    load,
    parse,
    strip_namespace,
)

ROOT = Path(__file__).resolve().parent.parent
STACK_REFERENCE = "pulumi:pulumi:StackReference"
PLATFORM = "organization/coco/tdx-platform"
M = TypeVar("M", bound=CloudMocks)


class LayerMocks(CloudMocks):
    """Answers the trust stack's StackReference with the platform stack's outputs."""

    def __init__(self, platform_outputs: dict[str, Any]) -> None:
        super().__init__()
        self.platform_outputs = platform_outputs
        self.references: list[str] = []

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str | None, dict]:  # type: ignore[type-arg]
        if args.typ == STACK_REFERENCE:
            self.references.append(str(args.resource_id))
            state = {
                "name": args.resource_id,
                "outputs": self.platform_outputs,
                "secretOutputNames": ["kubernetes", "kbsTls"],
            }
            return args.resource_id, state
        return super().new_resource(args)


def stack_config(tmp_path: Path, layer: dict[str, Any] | None, name: str) -> dict[str, Any]:
    """A repo stack's config as the single stack or one layer (a readable kubeconfig when the
    stack deploys to a given cluster)."""
    doc = yaml.safe_load((ROOT / "stacks" / f"Pulumi.{name}.yaml").read_text())
    config: dict[str, Any] = dict(doc["config"])
    if name == "baremetal-tdx":
        kubeconfig = tmp_path / "kubeconfig"
        kubeconfig.write_text("apiVersion: v1\nkind: Config\n# tdx-prod\n")
        config["coco:kubernetes"] = {"kubeconfig": str(kubeconfig), "context": "tdx-prod"}
    if layer is not None:
        config["coco:layer"] = layer
        if layer["kind"] == "trust":
            config["coco:kubernetes"] = {}  # deploy with the platform's kubeconfig
    return config


def tdx_config(tmp_path: Path, layer: dict[str, Any] | None) -> dict[str, Any]:
    return stack_config(tmp_path, layer, "baremetal-tdx")


def configure(config: dict[str, Any], stack: str) -> dict[str, str]:
    return set_stack_config(config, secret_format="test-secret-{}")


def run(config: dict[str, Any], stack: str, mocks: M) -> M:
    pulumi.runtime.set_mocks(mocks, project="coco", stack=stack, preview=False)
    configure(config, stack)

    @pulumi.runtime.test  # type: ignore[untyped-decorator]
    def program() -> None:
        build_stack(load())

    try:
        program()
    finally:
        pulumi.runtime.set_all_config({})
    return mocks


def platform_outputs(config: dict[str, Any]) -> tuple[dict[str, Any], dict[str, bool]]:
    """Run the platform stack under mocks; its exported outputs, resolved, and secretness."""
    mocks = CloudMocks()
    pulumi.runtime.set_mocks(mocks, project="coco", stack="tdx-platform", preview=False)
    configure(config, "tdx-platform")
    return exports_of(lambda: build_platform_layer(load()))


def objects(mocks: CloudMocks) -> dict[str, Recorded]:
    """Every resource the stack owns: Kubernetes objects, cloud resources, keys (not the
    components, which both layers may name alike, nor providers and stack references)."""
    return {
        f"{r.type}::{r.name}": r
        for r in mocks.resources
        if not r.type.startswith(("coco:", "pulumi:providers:", STACK_REFERENCE))
    }


def test_platform_and_trust_together_register_the_single_stack(tmp_path: Path) -> None:
    single = objects(run(tdx_config(tmp_path, None), "tdx", CloudMocks()))
    outputs, secret = platform_outputs(tdx_config(tmp_path, {"kind": "platform"}))
    platform = objects(run(tdx_config(tmp_path, {"kind": "platform"}), "p", CloudMocks()))
    trust_mocks = run(
        tdx_config(tmp_path, {"kind": "trust", "platformStack": PLATFORM}),
        "tdx-trust",
        LayerMocks(outputs),
    )
    trust = objects(trust_mocks)

    assert set(platform) & set(trust) == set(), "each object in exactly one stack"
    assert set(platform) | set(trust) == set(single)
    assert any("RuntimeClass" in k for k in platform) and any("helm" in k for k in platform)
    assert not any("Deployment" in k for k in platform), "no workload, no KBS on the platform"
    for key, recorded in trust.items():
        assert recorded.inputs == single[key].inputs, key

    assert outputs["runtimeClasses"] == ["kata-qemu-tdx"]
    assert outputs["hardware"] == {
        "host": "baremetal",
        "arch": "x86_64",
        "tee": "tdx",
        "gpu": False,
    }
    assert outputs["attestationPlatforms"] == {"kata-qemu-tdx": "tdx"}
    assert secret["kubernetes"] and not secret["hardware"]
    assert "kind: Config" in outputs["kubernetes"]["kubeconfig"]

    assert trust_mocks.references == [PLATFORM]
    providers = {
        r.name: r for r in trust_mocks.resources if r.type == "pulumi:providers:kubernetes"
    }
    assert sorted(providers) == ["k8s", "k8s-trustee"], "the Trustee goes to the trusted zone"
    provider = providers["k8s"]
    assert provider.inputs["kubeconfig"] == outputs["kubernetes"]["kubeconfig"]
    assert "kubeconfig" in provider.secret_paths, "the kubeconfig stays a secret"


def test_peer_pods_split_with_the_kbs_identity_on_the_platform(tmp_path: Path) -> None:
    name = "aws-peerpods"
    single = objects(run(stack_config(tmp_path, None, name), name, CloudMocks()))
    platform_cfg = stack_config(tmp_path, {"kind": "platform"}, name)
    outputs, secret = platform_outputs(platform_cfg)
    platform = objects(run(platform_cfg, "p", CloudMocks()))
    trust_cfg = stack_config(tmp_path, {"kind": "trust", "platformStack": PLATFORM}, name)
    trust = objects(run(trust_cfg, "t", LayerMocks(outputs)))

    assert set(platform) & set(trust) == set()
    assert set(platform) | set(trust) == set(single)
    assert any(k.startswith("aws:eks/cluster:Cluster") for k in platform)
    assert any(k.startswith("pulumi-python:dynamic:Resource::kbs-cert") for k in platform)
    for key, recorded in trust.items():
        assert recorded.inputs == single[key].inputs, key
    assert secret["kbsTls"] and "BEGIN" in outputs["kbsTls"]["privateKeyPem"]
    assert outputs["runtimeClasses"] == ["kata-remote"]
    assert outputs["attestationPlatforms"] == {"kata-remote": "snp"}


def test_trust_stack_refuses_a_platform_on_other_hardware(tmp_path: Path) -> None:
    outputs, _ = platform_outputs(tdx_config(tmp_path, {"kind": "platform"}))
    outputs["hardware"] = dict(outputs["hardware"], tee="snp")
    config = tdx_config(tmp_path, {"kind": "trust", "platformStack": PLATFORM})
    with pytest.raises(Exception, match=r"coco:layer.platformStack .*use the same coco:cluster"):
        run(config, "tdx-trust", LayerMocks(outputs))


def test_trust_stack_refuses_a_platform_without_its_runtime_class(tmp_path: Path) -> None:
    outputs, _ = platform_outputs(tdx_config(tmp_path, {"kind": "platform"}))
    outputs["runtimeClasses"] = []
    config = tdx_config(tmp_path, {"kind": "trust", "platformStack": PLATFORM})
    with pytest.raises(Exception, match=r"not \['kata-qemu-tdx'\]"):
        run(config, "tdx-trust", LayerMocks(outputs))


def parse_layer(layer: Any, cluster: str = "baremetal-tdx") -> StackSettings:
    doc = yaml.safe_load((ROOT / "stacks" / f"Pulumi.{cluster}.yaml").read_text())
    return parse(strip_namespace(doc["config"] | {"coco:layer": layer}))


def test_layer_settings_are_validated() -> None:
    assert parse_layer({"kind": "platform"}).layer is not None
    with pytest.raises(SettingsError, match=r"coco:layer: .*set platformStack"):
        parse_layer({"kind": "trust"})
    with pytest.raises(SettingsError, match=r"coco:layer: .*platformStack is for trust"):
        parse_layer({"kind": "platform", "platformStack": "x"})
    assert parse_layer({"kind": "platform"}, "aws-peerpods").layer is not None
