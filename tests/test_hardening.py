"""Hardened by default (components/hardening.py): what a pod template gets, what stays the
user's, what each named option relaxes, and that the agent policy pins the hardened spec."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from pydantic import ValidationError

from components import podspec
from components.hardening import (
    HardeningSettings,
    harden_pod_spec,
    network_policy_spec,
    policy_pins,
    registry_ports,
    url_port,
)
from components.settings import SettingsError, WorkloadSettings, parse
from components.transform import ConfidentialOptions, make_confidential, prepare
from components.workload import effective_agent_policy, rendered_pod_spec
from policies.initdata import KbsEndpoint

APP = "registry.example.com/app@sha256:" + "a" * 64
DEFAULTS = HardeningSettings()


def bare() -> dict[str, Any]:
    return {
        "initContainers": [{"name": "init", "image": APP}],
        "containers": [{"name": "app", "image": APP, "ports": [{"containerPort": 8080}]}],
    }


def test_a_bare_pod_gets_every_default() -> None:
    spec = harden_pod_spec(bare(), DEFAULTS)
    assert spec["automountServiceAccountToken"] is False
    assert spec["securityContext"] == {
        "runAsNonRoot": True,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    for c in [*spec["initContainers"], *spec["containers"]]:
        assert c["securityContext"] == {
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
        }
        assert c["resources"] == {
            "limits": {"memory": "512Mi"},
            "requests": {"cpu": "100m", "memory": "512Mi"},
        }


def test_the_input_is_not_changed_and_hardening_is_idempotent() -> None:
    original = bare()
    kept = copy.deepcopy(original)
    once = harden_pod_spec(original, DEFAULTS)
    assert original == kept
    assert harden_pod_spec(once, DEFAULTS) == once


def test_what_the_spec_says_wins() -> None:
    spec = bare()
    spec["automountServiceAccountToken"] = True
    spec["securityContext"] = {"seccompProfile": {"type": "Localhost", "localhostProfile": "p"}}
    spec["containers"][0]["securityContext"] = {
        "allowPrivilegeEscalation": True,
        "capabilities": {"drop": ["NET_RAW"]},
    }
    spec["containers"][0]["resources"] = {"limits": {"memory": "2Gi", "cpu": "2"}}
    spec["initContainers"][0]["resources"] = {"requests": {"memory": "64Mi"}}
    out = harden_pod_spec(spec, DEFAULTS)
    assert out["automountServiceAccountToken"] is True
    assert out["securityContext"]["seccompProfile"]["type"] == "Localhost"
    app, init = out["containers"][0], out["initContainers"][0]
    assert app["securityContext"] == {
        "allowPrivilegeEscalation": True,
        "capabilities": {"drop": ["NET_RAW"]},
    }
    # One of request or limit given: the other follows it (the VM is sized by the limit).
    assert app["resources"] == {
        "limits": {"cpu": "2", "memory": "2Gi"},
        "requests": {"cpu": "2", "memory": "2Gi"},
    }
    assert init["resources"]["limits"] == {"memory": "64Mi"}


def test_root_where_the_spec_asks_for_it() -> None:
    """runAsNonRoot only where the image may run as non-root: a uid 0 in the spec keeps it
    off (the kubelet would refuse the pod otherwise)."""
    spec = bare()
    spec["containers"][0]["securityContext"] = {"runAsUser": 0}
    assert "runAsNonRoot" not in harden_pod_spec(spec, DEFAULTS)["securityContext"]
    spec = bare()
    spec["securityContext"] = {"runAsUser": 10001}
    assert harden_pod_spec(spec, DEFAULTS)["securityContext"]["runAsNonRoot"] is True


def test_privileged_or_sys_admin_keeps_escalation_unset() -> None:
    """Kubernetes refuses allowPrivilegeEscalation: false beside these; the TEE and policy
    checks refuse them with their own reasons (components/podspec.py)."""
    spec = bare()
    spec["containers"][0]["securityContext"] = {"capabilities": {"add": ["SYS_ADMIN"]}}
    out = harden_pod_spec(spec, DEFAULTS)["containers"][0]["securityContext"]
    assert "allowPrivilegeEscalation" not in out


@pytest.mark.parametrize(
    ("option", "value", "check"),
    [
        (
            "allowPrivilegeEscalation",
            True,
            lambda s: "allowPrivilegeEscalation" not in s["containers"][0]["securityContext"],
        ),
        (
            "dropAllCapabilities",
            False,
            lambda s: "capabilities" not in s["containers"][0]["securityContext"],
        ),
        ("seccompRuntimeDefault", False, lambda s: "seccompProfile" not in s["securityContext"]),
        ("runAsNonRoot", False, lambda s: "runAsNonRoot" not in s["securityContext"]),
        (
            "automountServiceAccountToken",
            True,
            lambda s: "automountServiceAccountToken" not in s,
        ),
        ("memory", None, lambda s: "memory" not in s["containers"][0]["resources"]["requests"]),
        ("memory", "4Gi", lambda s: s["containers"][0]["resources"]["limits"]["memory"] == "4Gi"),
        ("cpuRequest", None, lambda s: "cpu" not in s["containers"][0]["resources"]["requests"]),
    ],
)
def test_each_default_has_a_named_option(option: str, value: Any, check: Any) -> None:
    options = HardeningSettings.model_validate({option: value})
    assert check(harden_pod_spec(bare(), options))


@pytest.mark.parametrize(
    ("option", "value"),
    [("memory", "512"), ("memory", "1.5Gi"), ("memory", "0Mi"), ("cpuRequest", "0"),
     ("cpuRequest", "lots"), ("egress", "closed"), ("dropAllCapabilities", "maybe")],
)  # fmt: skip
def test_bad_options_are_keyed_errors(option: str, value: Any) -> None:
    data = {
        "environment": "dev",
        "cluster": {"kind": "baremetal", "tee": "none"},
        "workloads": [
            {"name": "app", "containers": [{"name": "app", "image": APP}], "hardening": {}}
        ],
    }
    data["workloads"][0]["hardening"] = {option: value}  # type: ignore[index]
    with pytest.raises(SettingsError) as exc:
        parse(data)
    assert f"coco:workloads[0].hardening.{option}" in str(exc.value)
    with pytest.raises(ValidationError):
        HardeningSettings.model_validate({option: value})


def test_policy_pins_follow_genpolicy() -> None:
    spec = harden_pod_spec(bare(), DEFAULTS)
    assert policy_pins(spec["containers"][0], spec) == {
        "no_new_privileges": True,
        "capabilities": (),
        "service_account_token": False,
    }
    partial = {"securityContext": {"capabilities": {"drop": ["NET_RAW", "CAP_KILL"]}}}
    pins = policy_pins(partial, {})
    assert pins["capabilities"] is not None
    assert "CAP_NET_RAW" not in pins["capabilities"] and "CAP_KILL" not in pins["capabilities"]
    assert "CAP_CHOWN" in pins["capabilities"]
    assert pins["no_new_privileges"] is False and pins["service_account_token"] is True
    assert policy_pins({}, {})["capabilities"] is None


def test_the_workload_policy_pins_its_hardened_spec() -> None:
    wl = WorkloadSettings.model_validate(
        {"name": "app", "containers": [{"name": "app", "image": APP, "command": ["/app"]}]}
    )
    pin = effective_agent_policy(wl).containers["app"]
    assert (pin.no_new_privileges, pin.capabilities, pin.service_account_token) == (
        True,
        (),
        False,
    )
    relaxed = WorkloadSettings.model_validate(
        {
            "name": "app",
            "containers": [{"name": "app", "image": APP}],
            "hardening": {
                "allowPrivilegeEscalation": True,
                "dropAllCapabilities": False,
                "automountServiceAccountToken": True,
            },
        }
    )
    pin = effective_agent_policy(relaxed).containers["app"]
    assert (pin.no_new_privileges, pin.capabilities, pin.service_account_token) == (
        False,
        None,
        True,
    )
    spec = rendered_pod_spec(relaxed, "kata-qemu-tdx")
    assert spec["runtimeClassName"] == "kata-qemu-tdx"


def deployment(spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "shop"},
        "spec": {
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": spec},
        },
    }


def test_the_transform_renders_and_pins_the_hardened_spec() -> None:
    options = ConfidentialOptions("kata-qemu-tdx")
    obj = deployment({"containers": [{"name": "web", "image": APP, "command": ["/web"]}]})
    out, _, _ = make_confidential(obj, options, KbsEndpoint(url="https://kbs:8080"))
    spec = out["spec"]["template"]["spec"]
    assert spec == {
        **harden_pod_spec(obj["spec"]["template"]["spec"], DEFAULTS),
        "runtimeClassName": "kata-qemu-tdx",
    }
    assert podspec.schema_problems(out) == []
    pins = podspec.container_pins(prepare(obj, options).loc)
    assert pins["web"].no_new_privileges and pins["web"].capabilities == ()
    relaxed = ConfidentialOptions(
        "kata-qemu-tdx", hardening=HardeningSettings(drop_all_capabilities=False)
    )
    out, _, _ = make_confidential(obj, relaxed, KbsEndpoint(url="https://kbs:8080"))
    assert "capabilities" not in out["spec"]["template"]["spec"]["containers"][0]["securityContext"]


def test_network_policy_and_ports() -> None:
    spec = network_policy_spec({"app": "web"}, [8080, 8080], [443, 8080], DEFAULTS)
    assert spec["policyTypes"] == ["Ingress", "Egress"]
    assert spec["ingress"] == [{"ports": [{"protocol": "TCP", "port": 8080}]}]
    ports = spec["egress"][0]["ports"]
    assert {"protocol": "UDP", "port": 53} in ports and {"protocol": "TCP", "port": 443} in ports
    assert network_policy_spec({"a": "b"}, [], [], DEFAULTS)["ingress"] == []
    open_ = network_policy_spec({"a": "b"}, [], [], HardeningSettings(egress="open"))
    assert open_["egress"] == [{}]
    assert url_port("https://kbs.example.com") == 443
    assert url_port("https://kbs.trustee.svc:8080") == 8080
    assert url_port("http://vcek-cache") == 80
    assert registry_ports([APP, "registry.local:5000/app:1", "nginx:1.27", "localhost:5001/x"]) == [
        5000,
        5001,
    ]
