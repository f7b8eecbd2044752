"""Sealed secrets, signed images and encrypted images: settings, rendering, wiring.

The formats themselves are judged by the guest's own code in
tests/conformance/test_guest_cdh.py; these tests pin what the program does with them.
"""

from __future__ import annotations

import base64
import copy
import json
import os
import re
import tomllib
from typing import Any

import pulumi
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from mocks import DYNAMIC, RecordingMocks, config_values, p256_from_seed, run_program
from pulumi.runtime import rpc

from components import trustee as kbs
from components.settings import SettingsError, parse, secret_refs
from components.tls import _SelfSignedProvider
from policies.image_policy import image_scope, render_image_policy
from policies.initdata import decode_annotation
from policies.sealed import (
    SIGNING_KEY_RESOURCE,
    public_jwk,
    seal,
    sealed_env_pattern,
    signing_input,
)

DIGEST = "registry.example.com/coco/app@sha256:" + "1d" * 32


def _b64d(s: str) -> bytes:
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def p256() -> tuple[str, str]:
    """A fresh P-256 key pair (private PKCS#8 PEM, public PEM): a random seed each call."""
    return p256_from_seed(os.urandom(16).hex())


# --------------------------------------------------------------------------- sealed form


def test_sealed_secret_is_a_signed_vault_reference() -> None:
    private, public = p256()
    sealed = seal("default/db/password", private)
    assert sealed.startswith("sealed.")
    header_b64, payload_b64, sig_b64 = sealed.removeprefix("sealed.").split(".")
    assert json.loads(_b64d(header_b64)) == {
        "alg": "ES256",
        "kid": f"kbs:///{SIGNING_KEY_RESOURCE}",
    }
    assert json.loads(_b64d(payload_b64)) == {
        "version": "0.1.0",
        "type": "vault",
        "name": "kbs:///default/db/password",
        "provider": "kbs",
        "provider_settings": {},
        "annotations": {},
    }
    raw = _b64d(sig_b64)
    assert len(raw) == 64
    der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
    key = serialization.load_pem_public_key(public.encode())
    assert isinstance(key, ec.EllipticCurvePublicKey)
    key.verify(der, f"{header_b64}.{payload_b64}".encode(), ec.ECDSA(hashes.SHA256()))
    assert seal("default/db/password", private) == sealed, "deterministic (RFC 6979)"


def test_public_jwk_is_the_p256_public_key() -> None:
    _, public = p256()
    jwk = json.loads(public_jwk(public))
    assert jwk["kty"] == "EC" and jwk["crv"] == "P-256" and "d" not in jwk
    key = serialization.load_pem_public_key(public.encode())
    assert isinstance(key, ec.EllipticCurvePublicKey)
    assert int.from_bytes(_b64d(jwk["x"]), "big") == key.public_numbers().x
    with pytest.raises(ValueError, match="P-256"):
        seal("a/b/c", rsa_pem())


def rsa_pem() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def test_sealed_env_pattern_pins_reference_not_signature() -> None:
    private, _ = p256()
    pattern = sealed_env_pattern("DB_PASSWORD", "default/db/password")
    assert re.fullmatch(pattern, "DB_PASSWORD=" + seal("default/db/password", private))
    assert not re.fullmatch(pattern, "DB_PASSWORD=" + seal("default/db/other", private))
    assert not re.fullmatch(pattern, "OTHER=" + seal("default/db/password", private))
    assert not re.fullmatch(pattern, f"DB_PASSWORD=sealed.{signing_input('default/db/password')}.")


# --------------------------------------------------------------------------- image policy


def test_image_scope_expands_like_image_rs() -> None:
    assert image_scope("busybox@sha256:" + "0" * 64) == "docker.io/library/busybox"
    assert image_scope("quay.io/a/b:1.0") == "quay.io/a/b"
    assert image_scope("localhost:5000/x@sha256:" + "0" * 64) == "localhost:5000/x"
    assert image_scope("team/app") == "docker.io/team/app"


def test_image_policy_rejects_by_default_and_requires_every_key() -> None:
    policy = json.loads(render_image_policy([DIGEST], ["coco/app-cosign/a", "coco/app-cosign/b"]))
    assert policy["default"] == [{"type": "reject"}]
    assert policy["transports"]["docker"]["registry.example.com/coco/app"] == [
        {"type": "sigstoreSigned", "keyPath": "kbs:///coco/app-cosign/a"},
        {"type": "sigstoreSigned", "keyPath": "kbs:///coco/app-cosign/b"},
    ]


# --------------------------------------------------------------------------- settings


def base_config(**workload: Any) -> dict[str, Any]:
    w = {
        "name": "app",
        "namespace": "demo",
        "containers": [{"name": "app", "image": DIGEST}],
        **workload,
    }
    return {
        "environment": "dev",
        "kubernetes": {"kubeconfig": "~/.kube/config"},
        "cluster": {"kind": "baremetal", "arch": "x86_64", "tee": "none"},
        "trustee": {
            "resources": [
                {"path": "default/db/password", "valueFrom": "dbPassword", "readers": ["app"]},
                {"path": "default/image-key/app", "valueFrom": "imageKey", "readers": ["app"]},
            ],
            "referenceValues": {"launch_digest": ["abcde"], "svn": ["1"]},
        },
        "workloads": [w],
    }


def sealed_container(path: str = "default/db/password") -> dict[str, Any]:
    return {
        "name": "app",
        "image": DIGEST,
        "sealedEnv": [{"name": "DB_PASSWORD", "sealedFrom": path}],
    }


def problems(config: dict[str, Any]) -> str:
    with pytest.raises(SettingsError) as err:
        parse(config)
    return str(err.value)


def test_sealed_secret_naming_an_unknown_resource_is_refused() -> None:
    text = problems(base_config(containers=[sealed_container("default/db/nope")]))
    assert "coco:workloads[0].containers[0].sealedEnv[0].sealedFrom" in text
    assert "not a resource in coco:trustee.resources" in text


def test_sealed_resource_must_go_only_to_its_users() -> None:
    config = base_config(containers=[sealed_container()])
    other = copy.deepcopy(config["workloads"][0]) | {"name": "other"}
    other["containers"] = [{"name": "app", "image": DIGEST}]
    config["workloads"].append(other)
    config["trustee"]["resources"][0]["readers"] = ["app", "other"]
    text = problems(config)
    assert "coco:trustee.resources[0].readers" in text and "other" in text


def test_invalid_public_key_is_refused() -> None:
    text = problems(
        base_config(imageSignatures={"keys": [{"name": "release", "publicKey": "not a key"}]})
    )
    assert "coco:workloads[0].imageSignatures.keys[0].publicKey" in text


def test_image_without_digest_is_refused_when_signatures_are_required() -> None:
    _, public = p256()
    config = base_config(
        imageSignatures={"keys": [{"name": "release", "publicKey": public}]},
        containers=[{"name": "app", "image": "registry.example.com/coco/app:1.0"}],
        agentPolicy={"preset": "allow-all"},
    )
    text = problems(config)
    assert "coco:workloads[0].containers[0].image" in text and "signature" in text


def test_encrypted_image_key_the_stack_does_not_hold_is_refused() -> None:
    text = problems(base_config(imageDecryptionKeys=["kbs:///default/image-key/missing"]))
    assert "coco:workloads[0].imageDecryptionKeys[0]" in text
    text = problems(base_config(imageDecryptionKeys=["https://example.com/key"]))
    assert "kbs:///repo/type/tag" in text


def test_decryption_key_shared_across_workloads_is_refused() -> None:
    config = base_config(imageDecryptionKeys=["kbs:///default/image-key/app"])
    other = copy.deepcopy(config["workloads"][0]) | {"name": "other"}
    config["workloads"].append(other)
    config["trustee"]["resources"][1]["readers"] = ["app", "other"]
    text = problems(config)
    assert "listed by app, other" in text


def test_generated_repository_is_reserved() -> None:
    config = base_config()
    config["trustee"]["resources"].append(
        {"path": "coco/x/y", "valueFrom": "dbPassword", "readers": ["app"]}
    )
    assert "coco:trustee.resources[2].path" in problems(config)


# --------------------------------------------------------------------------- wiring


class KeyMocks(RecordingMocks):
    """Key pairs from the program's own provider (the sealed form needs a real key)."""

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str | None, dict]:  # type: ignore[type-arg]
        ident, state = super().new_resource(args)
        if args.typ == DYNAMIC and "key_algorithm" in args.inputs:
            props = {k: v for k, v in args.inputs.items() if not k.startswith("__")}
            outs = dict(_SelfSignedProvider().create(props).outs or {})
            state.update(outs)
            state["private_key_pem"] = rpc.wrap_rpc_secret(outs["private_key_pem"])
        return ident, state


def render(config: dict[str, Any]) -> RecordingMocks:
    settings = parse(config)
    secrets = {f"coco:{ref}": f"value-of-{ref}" for _, ref in secret_refs(settings)}
    mocks = KeyMocks()
    run_program(mocks, "guest", config_values(config, "coco:") | secrets, secrets)
    return mocks


@pytest.fixture(scope="module")
def wired() -> RecordingMocks:
    _, public = p256()
    return render(
        base_config(
            containers=[sealed_container()],
            imageSignatures={"keys": [{"name": "release", "publicKey": public}]},
            imageDecryptionKeys=["kbs:///default/image-key/app"],
        )
    )


def test_pod_env_references_the_sealed_secret_and_the_host_never_sees_the_value(
    wired: RecordingMocks,
) -> None:
    (deployment,) = [r for r in wired.of_type("apps/v1:Deployment") if r.metadata["name"] == "app"]
    (container,) = deployment.inputs["spec"]["template"]["spec"]["containers"]
    assert container["env"] == [
        {
            "name": "DB_PASSWORD",
            "valueFrom": {"secretKeyRef": {"name": "app-sealed-secrets", "key": "app.DB_PASSWORD"}},
        }
    ]
    (secret,) = [r for r in wired.of_type("core/v1:Secret") if r.metadata["namespace"] == "demo"]
    sealed = secret.inputs["stringData"]["app.DB_PASSWORD"]
    assert sealed.startswith("sealed.")
    payload = json.loads(_b64d(sealed.split(".")[2]))
    assert payload["name"] == "kbs:///default/db/password"
    for r in wired.kubernetes():
        assert "value-of-dbPassword" not in json.dumps(r.inputs, default=str) or (
            r.metadata.get("namespace") == "trustee"
        )


def test_initdata_points_the_cdh_at_the_image_policy_and_pins_the_sealed_env(
    wired: RecordingMocks,
) -> None:
    (cm,) = [r for r in wired.of_type("core/v1:ConfigMap") if r.metadata["name"] == "app-initdata"]
    doc = tomllib.loads(cm.inputs["data"]["initdata.toml"])
    cdh = tomllib.loads(doc["data"]["cdh.toml"])
    assert cdh["image"] == {"image_security_policy_uri": "kbs:///coco/app-image-policy/policy.json"}
    assert "skip_sealed_secret_verification" not in cdh
    assert "sealed_env" in doc["data"]["policy.rego"]
    assert "DB_PASSWORD=sealed" in doc["data"]["policy.rego"]
    (deployment,) = [r for r in wired.of_type("apps/v1:Deployment") if r.metadata["name"] == "app"]
    annotation = deployment.inputs["spec"]["template"]["metadata"]["annotations"][
        "io.katacontainers.config.hypervisor.cc_init_data"
    ]
    assert decode_annotation(annotation) == cm.inputs["data"]["initdata.toml"]


def test_generated_resources_are_served_and_granted_to_the_workload(
    wired: RecordingMocks,
) -> None:
    (public,) = [
        r
        for r in wired.of_type("core/v1:ConfigMap")
        if r.metadata["name"] == kbs.PUBLIC_RESOURCES_MAP_NAME
    ]
    data = public.inputs["data"]
    jwk = json.loads(data[kbs.public_resource_key(SIGNING_KEY_RESOURCE)])
    assert jwk["crv"] == "P-256" and "d" not in jwk
    policy = json.loads(data[kbs.public_resource_key("coco/app-image-policy/policy.json")])
    assert policy["default"] == [{"type": "reject"}]
    assert "BEGIN PUBLIC KEY" in data[kbs.public_resource_key("coco/app-cosign/release")]
    (rp,) = [
        r
        for r in wired.of_type("core/v1:ConfigMap")
        if r.metadata["name"] == kbs.RESOURCE_POLICY_MAP_NAME
    ]
    text = rp.inputs["data"][kbs.RESOURCE_POLICY_KEY]
    for path in (
        SIGNING_KEY_RESOURCE,
        "coco/app-image-policy/policy.json",
        "coco/app-cosign/release",
        "default/image-key/app",
        "default/db/password",
    ):
        assert f"# {path}:" in text and f"# {path}: sample, affirming; bound" in text, path


# --------------------------------------------------------------------------- agent policy


def test_agent_policy_admits_exactly_the_sealed_reference() -> None:
    """On OPA: the pinned sealed reference passes; another reference, a plain value, or a
    missing variable is refused (the Kata agent sees kubelet's copy of the Secret value)."""
    from agent_requests import create_request
    from opa import opa_check_text, opa_eval

    from policies.agent import AgentPolicySpec, render_agent_policy
    from policies.agent_container import ContainerPin

    app = "ghcr.io/acme/app@sha256:" + "a" * 64
    pin = ContainerPin(sealed_env=(sealed_env_pattern("DB_PASSWORD", "default/db/password"),))
    text = render_agent_policy(
        AgentPolicySpec(allowed_images=[app]).with_containers({"app": pin}, devices=False)
    )
    opa_check_text(text)
    private, _ = p256()

    def ask(env: list[str]) -> Any:
        req = create_request(app, [app], env=env)
        return opa_eval(text, req, None, "data.agent_policy.CreateContainerRequest")

    assert ask(["DB_PASSWORD=" + seal("default/db/password", private)]) is True
    assert ask(["DB_PASSWORD=" + seal("default/db/other", private)]) is False
    assert ask(["DB_PASSWORD=hunter2"]) is False
    assert ask([]) is False


def test_the_documented_example_renders() -> None:
    """docs/guest-features.md's worked example, laid over the dev stack, passes the settings
    checks and renders a sealed Secret and the image policy resource."""
    from pathlib import Path

    import yaml

    root = Path(__file__).resolve().parent.parent
    doc = (root / "docs" / "guest-features.md").read_text()
    block = doc.split("<!-- guest-features-example -->\n```yaml\n", 1)[1].split("```", 1)[0]
    example = yaml.safe_load(block)["config"]
    dev = yaml.safe_load((root / "stacks" / "Pulumi.dev.yaml").read_text())["config"]
    config = {k.removeprefix("coco:"): v for k, v in dev.items() if k != "coco:demoKey"}
    config["trustee"] = {**config["trustee"], **example["coco:trustee"]}
    config["workloads"] = example["coco:workloads"]
    mocks = render(config)
    names = {r.metadata["name"] for r in mocks.of_type("core/v1:Secret")}
    assert "hello-sealed-secrets" in names
    (public,) = [
        r
        for r in mocks.of_type("core/v1:ConfigMap")
        if r.metadata["name"] == kbs.PUBLIC_RESOURCES_MAP_NAME
    ]
    assert kbs.public_resource_key("coco/hello-image-policy/policy.json") in public.inputs["data"]
