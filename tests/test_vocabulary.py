"""The shared vocabulary (components/vocabulary.py): each rule, and every place that used to
spell it out on its own now refusing the same inputs.

Why both: the rules were written six (resource paths), three (digests) and three (secret
config) times, and two resource-path copies accepted a segment starting with `.`, which
Trustee v0.21.0 refuses (`ResourceDesc`, kbs/src/plugins/implementations/resource/backend.rs):
a resource stored under such a path is never served. A consumer that stopped using the shared
rule would fail here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from components.config_types import Model, SecretKeyRef
from components.guest_features import SealedEnvVar, decryption_key_path
from components.manifest_settings import SealedSecretRef
from components.settings import SettingsError, parse
from components.topology import ExternalTrustee
from components.vocabulary import (
    check_resource_path,
    full_key,
    is_kbs_uri,
    is_pinned,
    is_resource_path,
    kbs_uri,
    resource_path_of,
)
from policies.agent import AgentPolicySpec
from policies.initdata import KbsEndpoint, render_cdh_toml
from policies.registry import RegistryAccess
from policies.resource import ResourceGrant
from policies.sealed import kbs_uri as sealed_kbs_uri

DIGEST = "registry.example.com/app@sha256:" + "ab" * 32

GOOD_PATHS = ["default/key/1", "a/b.c/d_e-f", "repo/type/tag.json", "_x/-y/0"]
BAD_PATHS = [
    ".hidden/key/1",  # a segment starting with `.`: the KBS refuses it
    "default/.key/1",
    "default/key/.1",
    "default/../1",
    "default/./1",
    "default/key",
    "default/key/1/2",
    "default/key/1\n",
    "default//1",
    "default/k y/1",
    "",
]


@pytest.mark.parametrize("path", GOOD_PATHS)
def test_resource_paths_the_kbs_serves(path: str) -> None:
    assert is_resource_path(path)
    assert check_resource_path(path) == path
    assert kbs_uri(path) == f"kbs:///{path}"
    assert resource_path_of(f"kbs:///{path}") == path


@pytest.mark.parametrize("path", BAD_PATHS)
def test_resource_paths_the_kbs_refuses(path: str) -> None:
    assert not is_resource_path(path)
    with pytest.raises(ValueError, match="not a KBS resource path"):
        check_resource_path(path)
    with pytest.raises(ValueError, match="not a KBS resource path"):
        kbs_uri(path)
    assert resource_path_of(f"kbs:///{path}") is None


@pytest.mark.parametrize(
    "uri", ["kbs://host/default/key/1", "https:///default/key/1", "default/key/1", "kbs:///"]
)
def test_only_hostless_kbs_uris_name_a_resource(uri: str) -> None:
    assert resource_path_of(uri) is None
    assert not is_kbs_uri(uri)


def _registry(path: str) -> object:
    return RegistryAccess(credentials_resource=path)


def _grant(path: str) -> object:
    return ResourceGrant(path=path, initdata_digests=["ab" * 32], platforms=["snp"])


def _cdh(path: str) -> object:
    return render_cdh_toml(KbsEndpoint(url="https://kbs:8080"), f"kbs:///{path}")


def _sealed_env(path: str) -> object:
    return SealedEnvVar(name="TOKEN", sealed_from=path)


def _chart_sealed_secret(path: str) -> object:
    return SealedSecretRef(secret="db", key="password", sealed_from=path)


def _decryption_key(path: str) -> object:
    return decryption_key_path(f"kbs:///{path}")


def _settings(path: str) -> object:
    return parse(
        {
            "cluster": {"kind": "baremetal", "tee": "none"},
            "trustee": {
                "resources": [{"path": path, "valueFrom": "k", "readers": ["app"]}],
            },
            "workloads": [{"name": "app", "containers": [{"name": "app", "image": DIGEST}]}],
        }
    )


CONSUMERS: dict[str, Callable[[str], object]] = {
    "policies.registry RegistryAccess.credentialsResource": _registry,
    "policies.resource ResourceGrant.path": _grant,
    "policies.initdata cdh.toml image_security_policy_uri": _cdh,
    "policies.sealed kbs_uri": sealed_kbs_uri,
    "guest_features sealedFrom": _sealed_env,
    "manifest_settings sealedSecrets[].sealedFrom": _chart_sealed_secret,
    "guest_features imageDecryptionKeys": _decryption_key,
    "settings coco:trustee.resources[].path": _settings,
}


@pytest.mark.parametrize("consumer", list(CONSUMERS))
def test_every_consumer_accepts_a_good_path(consumer: str) -> None:
    CONSUMERS[consumer]("default/key/1")


@pytest.mark.parametrize("consumer", list(CONSUMERS))
@pytest.mark.parametrize("path", [".hidden/key/1", "default/key/.1", "default/key"])
def test_every_consumer_refuses_what_the_kbs_refuses(consumer: str, path: str) -> None:
    with pytest.raises((ValueError, SettingsError)):
        CONSUMERS[consumer](path)


@pytest.mark.parametrize(
    ("image", "pinned"),
    [
        (DIGEST, True),
        ("app@sha256:" + "0" * 64, True),
        ("registry.example.com/app:1.0", False),
        ("registry.example.com/app@sha256:" + "AB" * 32, False),  # upper-case hex
        ("registry.example.com/app@sha256:" + "ab" * 31, False),
        ("registry.example.com/app@sha512:" + "ab" * 64, False),
        ("a b@sha256:" + "ab" * 32, False),
        (DIGEST + "\n", False),
    ],
)
def test_pinned_images(image: str, pinned: bool) -> None:
    assert is_pinned(image) is pinned


def test_the_agent_policy_adds_rego_safety_to_the_pin() -> None:
    assert AgentPolicySpec(allowed_images=[DIGEST]).allowed_images == [DIGEST]
    for unsafe in ['x"y@sha256:' + "ab" * 32, "x\\y@sha256:" + "ab" * 32, "app:1.0"]:
        with pytest.raises(ValueError, match="not pinned by digest"):
            AgentPolicySpec(allowed_images=[unsafe])


def test_config_keys_and_secret_references() -> None:
    assert full_key("dbPassword") == "coco:dbPassword"
    assert full_key("other:key") == "other:key"

    class Ref(Model):
        ref: SecretKeyRef

    assert Ref(ref="dbPassword").ref == "dbPassword"
    with pytest.raises(ValueError, match="not a config key name"):
        Ref(ref="db password")


def test_the_external_admin_key_is_a_secret_reference() -> None:
    base: dict[str, Any] = {
        "url": "https://kbs.example.com:8080",
        "certificatePem": "unused",
        "adminKeyFrom": "kbs admin key",
    }
    with pytest.raises(ValueError, match="not a config key name"):
        ExternalTrustee.model_validate(base)
