"""Private registries under guest pull: credentials from the KBS, named in measured init-data."""

from __future__ import annotations

import base64
import copy
import json
import tomllib
from typing import Any

import pulumi
import pytest
from mocks import RecordingMocks, fake_pem, resolve
from test_settings import BASE, problems

from components import podspec
from components.settings import KbsResource, parse
from components.stack import registry_credentials
from components.transform import ConfidentialOptions, make_confidential, prepare
from policies.initdata import KbsEndpoint, render_cdh_toml
from policies.registry import RegistryAccess, check_docker_config, image_pull_entries

CA = fake_pem("CERTIFICATE", "registry-ca")
KBS = KbsEndpoint(url="https://kbs.example.com:8080", cert_pem=fake_pem("CERTIFICATE", "kbs"))
ACCESS = RegistryAccess(credentials_resource="default/registry/shop", ca_certificates=[CA])


def cdh(access: RegistryAccess | None, policy_uri: str | None = None) -> dict[str, Any]:
    return tomllib.loads(render_cdh_toml(KBS, policy_uri, image_pull_entries(access)))


def test_cdh_image_table_names_the_kbs_credentials_and_private_ca() -> None:
    # Keys of guest-components d4dce5c image-rs `ImageConfig` (CdhConfig.image).
    image = cdh(ACCESS)["image"]
    assert image == {
        "authenticated_registry_credentials_uri": "kbs:///default/registry/shop",
        "extra_root_certificates": [CA],
    }


def test_one_image_table_with_the_security_policy_uri_too() -> None:
    doc = cdh(ACCESS, "kbs:///default/security-policy/test")
    assert doc["image"]["image_security_policy_uri"] == "kbs:///default/security-policy/test"
    assert doc["image"]["authenticated_registry_credentials_uri"] == "kbs:///default/registry/shop"


def test_no_registry_leaves_cdh_toml_unchanged() -> None:
    assert render_cdh_toml(KBS) == render_cdh_toml(KBS, None, image_pull_entries(None))
    assert "[image]" not in render_cdh_toml(KBS)


def test_bad_access_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="not a KBS resource path"):
        RegistryAccess(credentials_resource="kbs:///default/registry/shop")
    with pytest.raises(ValueError, match=r"caCertificates\[0\]"):
        RegistryAccess(ca_certificates=["not a pem"])


def test_docker_config_shape() -> None:
    auth = base64.b64encode(b"robot:t0ken").decode()
    good = {"auths": {"registry.example.com": {"auth": auth}}}
    check_docker_config(json.dumps(good), registries=["registry.example.com"])
    with pytest.raises(ValueError, match=r'needs an "auths" object'):
        check_docker_config("{}")
    no_colon = base64.b64encode(b"nocolon").decode()
    with pytest.raises(ValueError, match=r"must be base64 of"):
        check_docker_config(json.dumps({"auths": {"r": {"auth": no_colon}}}))
    with pytest.raises(ValueError, match=r"no credentials for other\.example"):
        check_docker_config(json.dumps(good), registries=["other.example"])


def with_registry(readers: list[str]) -> dict[str, Any]:
    data = copy.deepcopy(BASE)
    data["workloads"][0]["registry"] = {"credentialsResource": "default/registry/shop"}
    data["trustee"]["resources"].append(
        {"path": "default/registry/shop", "valueFrom": "shopRegistry", "readers": readers}
    )
    return data


def test_credentials_go_to_exactly_the_pulling_workloads() -> None:
    parse(with_registry(["app"]))
    data = with_registry(["app", "other"])
    data["workloads"].append(copy.deepcopy(data["workloads"][0]) | {"name": "other"})
    data["workloads"][1].pop("registry")
    text = problems(data)
    assert "coco:trustee.resources[1].readers" in text
    assert "set readers to ['app']" in text


def test_credentials_resource_must_exist() -> None:
    data = copy.deepcopy(BASE)
    data["workloads"][0]["registry"] = {"credentialsResource": "default/registry/none"}
    text = problems(data)
    assert "coco:workloads[0].registry.credentialsResource" in text


def test_native_workload_initdata_carries_the_registry_uri() -> None:
    from components.settings import WorkloadSettings
    from components.workload import ConfidentialWorkload  # noqa: F401  (import check only)
    from policies.initdata import render_initdata

    w = WorkloadSettings.model_validate(
        {
            "name": "app",
            "containers": [{"name": "a", "image": "r/a"}],
            "registry": ACCESS.model_dump(),
        }
    )
    text = render_initdata(KBS, "package agent_policy\n", image_pull=image_pull_entries(w.registry))
    data = tomllib.loads(tomllib.loads(text)["data"]["cdh.toml"])
    assert data["image"]["authenticated_registry_credentials_uri"] == "kbs:///default/registry/shop"


def test_transform_puts_registry_in_initdata_and_refuses_pull_secrets() -> None:
    obj = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p"},
        "spec": {"containers": [{"name": "a", "image": "r/a@sha256:" + "a" * 64}]},
    }
    options = ConfidentialOptions("kata-qemu-tdx", registry=ACCESS)
    _, initdata, _ = make_confidential(obj, options, KBS)
    cdh_toml = tomllib.loads(tomllib.loads(initdata)["data"]["cdh.toml"])
    assert cdh_toml["image"]["extra_root_certificates"] == [CA]
    obj["spec"]["imagePullSecrets"] = [{"name": "regcred"}]
    with pytest.raises(podspec.PodSpecError, match=r"Pod p: spec\.imagePullSecrets"):
        prepare(obj, options)


def test_kbs_serves_only_a_usable_credentials_file_and_keeps_it_secret() -> None:
    resource = KbsResource(path="default/registry/shop", value_from="shopRegistry", readers=["a"])
    auth = base64.b64encode(b"robot:t0ken").decode()
    good = json.dumps({"auths": {"registry.example.com": {"auth": auth}}})
    pulumi.runtime.set_mocks(RecordingMocks(), preview=False)
    values, secret = resolve(
        lambda: {"v": registry_credentials(resource, pulumi.Output.secret(good))}
    )
    assert values["v"] == good and secret["v"]
    with pytest.raises(
        Exception, match=r"coco:shopRegistry: registry credentials for default/registry/shop"
    ):
        resolve(lambda: {"v": registry_credentials(resource, pulumi.Output.secret("{}"))})
