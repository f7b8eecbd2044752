"""The external-Trustee topology (components/topology.py `external`,
components/external_trustee.py, components/kbs_admin*.py).

- settings: the shape of `coco:topology.external`, each bad value refused with its key;
- wiring (examples/external_trustee under mocks): no Trustee object on any cluster, the
  init-data points at the external KBS and pins its certificate, the workloads' digests reach
  the resource policy set through the admin API, the admin key and resource values stay
  secret, and nothing the KBS guards is in any Kubernetes object;
- the admin client and providers against a local HTTPS stand-in of the v0.21.0 admin API
  that checks what the real one checks (signature of the bearer JWT, `role`, `exp`, `iss`,
  `aud`) and keeps what it is sent: create, update, delete and read of each kind. The real
  KBS judges the same code in tests/conformance/test_kbs_admin.py.
"""

from __future__ import annotations

import base64
import contextlib
import copy
import http.server
import json
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from builders import (
    guarded,
    initdata_of,
    localhost_certificate,
    private_key_pem,
    problems_by_key,
    run_external,
    scan,
)
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from mocks import DYNAMIC

from components.kbs_admin import (
    DENY_ALL_RESOURCE_POLICY,
    AdminIdentity,
    KbsAdmin,
    KbsAdminError,
    KbsUnreachable,
    admin_public_key_pem,
)
from components.kbs_admin_resources import (
    AttestationPolicyProvider,
    KbsResourceProvider,
    ReferenceValueProvider,
    ResourcePolicyProvider,
)
from components.settings import parse, secret_refs

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "external_trustee" / "Pulumi.tdx-shared-kbs.yaml"


def example() -> dict[str, Any]:
    config: dict[str, Any] = dict(yaml.safe_load(EXAMPLE.read_text())["config"])
    return config


def settings_of(config: dict[str, Any]) -> dict[str, Any]:
    return {k.split(":", 1)[1]: v for k, v in config.items()}


# --------------------------------------------------------------------------- settings


def test_the_example_parses_as_an_external_trustee() -> None:
    s = parse(settings_of(example()))
    t = s.trustee_topology
    assert t.kind == "external" and t.external is not None and t.remote_trustee
    assert t.external.url == "https://kbs.trust.example.com:8080"


def test_local_nvidia_mode_sets_cocos_gpu_policy_on_the_external_kbs() -> None:
    """The KBS's built-in `default_gpu` never affirms the local verifier's claims, so a stack
    that says its KBS runs the local NVIDIA verifier sets coco's (policies/gpu_attestation.py)
    through the admin API, as the in-cluster KBS lays it out."""
    from components.external_trustee import attestation_policies_of
    from policies.gpu_attestation import LOCAL_GPU_POLICY

    data = settings_of(example())
    assert "default_gpu" not in attestation_policies_of(parse(data), ["tdx"])
    data["trustee"]["verifiers"] = {"nvidia": {"mode": "local"}}
    assert attestation_policies_of(parse(data), ["tdx"])["default_gpu"] == LOCAL_GPU_POLICY
    data["trustee"]["verifiers"] = {"nvidia": {"mode": "remote"}}
    assert "default_gpu" not in attestation_policies_of(parse(data), ["tdx"])


@pytest.mark.parametrize(
    ("change", "key", "text"),
    [
        (lambda e: e.pop("url"), "coco:topology.external.url", ""),
        (lambda e: e.update(url="http://kbs:8080"), "coco:topology.external.url", "https"),
        (lambda e: e.update(url="https://kbs:8080/x"), "coco:topology.external.url", "path"),
        (
            lambda e: e.update(certificatePem="nope"),
            "coco:topology.external.certificatePem",
            "PEM certificate",
        ),
        (lambda e: e.pop("adminKeyFrom"), "coco:topology.external.adminKeyFrom", ""),
        (lambda e: e.update(adminRole=" "), "coco:topology.external.adminRole", "role"),
    ],
)
def test_bad_external_settings_are_refused_with_their_key(change: Any, key: str, text: str) -> None:
    data = settings_of(example())
    change(data["topology"]["external"])
    found = problems_by_key(data)
    assert key in found, found
    assert text in found[key]


def test_external_topology_shape() -> None:
    data = settings_of(example())
    bare = copy.deepcopy(data)
    bare["topology"].pop("external")
    assert "external" in " ".join(problems_by_key(bare).values())
    mixed = copy.deepcopy(data)
    mixed["topology"]["trusteeCluster"] = {"context": "trust"}
    assert "no trusteeCluster" in " ".join(problems_by_key(mixed).values())
    stray = copy.deepcopy(data)
    stray["topology"]["kind"] = "co-located"
    assert "kind: external" in " ".join(problems_by_key(stray).values())


@pytest.mark.parametrize(
    ("change", "key"),
    [
        ({"url": "https://kbs.example.com:8080"}, "coco:trustee.url"),
        ({"nodePort": 30443}, "coco:trustee.nodePort"),
        ({"secretsDelivery": "create"}, "coco:trustee.secretsDelivery"),
    ],
)
def test_keys_of_a_deployed_kbs_are_refused(change: dict[str, Any], key: str) -> None:
    data = settings_of(example())
    data["trustee"].update(change)
    found = problems_by_key(data)
    assert key in found and "remove it" in found[key]


def test_generated_resources_and_layers_are_refused() -> None:
    data = settings_of(example())
    snp = yaml.safe_load((ROOT / "stacks" / "Pulumi.baremetal-snp.yaml").read_text())["config"]
    signed = next(w for w in snp["coco:workloads"] if w.get("imageSignatures"))
    data["workloads"][0]["imageSignatures"] = signed["imageSignatures"]
    found = problems_by_key(data)
    assert any(k.startswith("coco:workloads[0]") and "external" in v for k, v in found.items())
    layered = settings_of(example())
    layered["layer"] = {"kind": "platform"}
    assert "coco:layer" in problems_by_key(layered)


def test_production_still_needs_reference_values_and_a_secret_admin_key() -> None:
    data = settings_of(example())
    data["trustee"].pop("referenceValues")
    assert "coco:trustee.referenceValues" in problems_by_key(data)
    s = parse(settings_of(example()))

    assert ("coco:topology.external.adminKeyFrom", "kbsAdminKey") in secret_refs(s)


# --------------------------------------------------------------------------- wiring


def test_a_bad_admin_key_is_refused_with_its_key() -> None:
    with pytest.raises(
        Exception, match=r"coco:kbsAdminKey \(coco:topology.external.adminKeyFrom\)"
    ):
        run_external(example(), "tdx-shared-kbs", admin_key="not a key")
    p384 = private_key_pem(ec.generate_private_key(ec.SECP384R1()))
    with pytest.raises(Exception, match="P-256"):
        run_external(example(), "tdx-shared-kbs", admin_key=p384)


def dynamic_of(mocks: Any, field_name: str) -> list[Any]:
    return [r for r in mocks.resources if r.type == DYNAMIC and field_name in r.raw_inputs]


def test_external_stack_deploys_no_trustee_and_binds_the_workloads() -> None:
    config = example()
    mocks, outputs, secrets = run_external(config, "tdx-shared-kbs")
    k8s = mocks.kubernetes()
    assert k8s, "the workloads and the cluster side are deployed"
    for r in k8s:
        role = (r.metadata.get("labels") or {}).get("coco.confidentialcontainers.org/role", "")
        assert not role.startswith(("kbs", "resource-policy", "attestation-policy")), r.name
    # Nothing the KBS guards in any object applied to the cluster.
    assert scan(k8s, {}, guarded(config, secrets)) == []

    [deployment] = [r for r in k8s if r.kind == "Deployment" and r.name == "payments-api"]
    initdata = initdata_of(deployment)
    ext = config["coco:topology"]["external"]
    cdh = json.dumps(initdata)
    assert ext["url"] in cdh
    assert ext["certificatePem"].strip().splitlines()[1] in cdh

    # The resource policy set through the admin API names the workload's init-data digest.
    [policy] = [r for r in dynamic_of(mocks, "policy") if "policy_id" not in r.inputs]
    digest = outputs["workloads"]["payments-api"]["initdataDigest"]
    assert digest in policy.inputs["policy"]
    assert policy.inputs["kbs"]["url"] == ext["url"]
    # The admin key and the resource value reach the providers as secrets only.
    for r in [r for r in mocks.resources if r.type == DYNAMIC and "admin" in r.raw_inputs]:
        assert "admin" in r.secret_paths, r.name
        assert r.inputs["admin"]["private_key_pem"] == secrets["coco:kbsAdminKey"]
        assert r.inputs["admin"]["role"] == "coco-tdx-shared"
    [resource] = dynamic_of(mocks, "path")
    assert "value" in resource.secret_paths
    assert resource.inputs["path"] == "payments/key/tls"
    assert resource.inputs["value"] == secrets["coco:paymentsKey"]
    rvs = {r.inputs["name"]: r.inputs["value"] for r in dynamic_of(mocks, "name")}
    assert sorted(rvs) == ["mr_td", "rtmr_1", "rtmr_2", "xfam"]
    # No KBS key, secret or policy among the stack's outputs.
    assert scan([], outputs, guarded(config, secrets)) == []


# --------------------------------------------------------------------------- admin API


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass
class FakeKbs:
    """What the stand-in holds, and the identity it accepts (public key, iss, aud, role)."""

    public_key: Any
    role: str
    issuer: str | None = None
    audience: str | None = None
    resource_policy: str | None = None
    attestation_policies: dict[str, str] = field(default_factory=dict)
    reference_values: dict[str, Any] = field(default_factory=dict)
    resources: dict[str, bytes] = field(default_factory=dict)
    calls: list[tuple[str, str]] = field(default_factory=list)

    def verify(self, header: str | None) -> str | None:
        """None when the token is accepted, else why not (as bearer_jwt.rs / jwt.rs check)."""
        if not header or not header.startswith("Bearer "):
            return "no bearer token"
        head, body, sig = header[len("Bearer ") :].split(".")
        alg = json.loads(_unb64(head))["alg"]
        signed, signature = f"{head}.{body}".encode(), _unb64(sig)
        try:
            if alg == "ES256":
                r, s = int.from_bytes(signature[:32]), int.from_bytes(signature[32:])
                self.public_key.verify(
                    encode_dss_signature(r, s), signed, ec.ECDSA(hashes.SHA256())
                )
            elif alg == "RS256":
                self.public_key.verify(signature, signed, padding.PKCS1v15(), hashes.SHA256())
            elif alg == "EdDSA":
                self.public_key.verify(signature, signed)
            else:
                return f"alg {alg}"
        except (InvalidSignature, TypeError, AttributeError):
            return "bad signature"
        claims = json.loads(_unb64(body))
        if claims.get("exp", 0) < time.time():
            return "expired or no exp"
        if self.issuer and claims.get("iss") != self.issuer:
            return "issuer"
        if self.audience and claims.get("aud") != self.audience:
            return "audience"
        if claims.get("role") != self.role:
            return "role"
        return None


def _handler(kbs: FakeKbs) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *_args: Any) -> None:
            pass

        def _answer(self, status: int, body: bytes = b"") -> None:
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _handle(self) -> None:
            path = self.path.removeprefix("/kbs/v0/")
            kbs.calls.append((self.command, path))
            why = kbs.verify(self.headers.get("Authorization"))
            if why:
                self._answer(401, f"Admin auth error: {why}".encode())
                return
            size = int(self.headers.get("Content-Length") or 0)
            data = self.rfile.read(size) if size else b""
            method = self.command
            if path == "resource-policy" and method == "POST":
                kbs.resource_policy = _unb64(json.loads(data)["policy"]).decode()
                self._answer(200)
            elif path == "resource-policy" and method == "GET":
                ids = ["resource-policy"] if kbs.resource_policy is not None else []
                self._answer(200, json.dumps(ids).encode())
            elif path == "attestation-policy" and method == "POST":
                body = json.loads(data)
                kbs.attestation_policies[body["policy_id"]] = _unb64(body["policy"]).decode()
                self._answer(200)
            elif path == "reference-value" and method == "POST":
                body = json.loads(data)
                assert body["type"] == "sample" and body["version"] == "0.1.0"
                kbs.reference_values.update(json.loads(base64.b64decode(body["payload"])))
                self._answer(200)
            elif path.startswith("reference-value/") and method == "GET":
                name = path.split("/", 1)[1]
                if name not in kbs.reference_values:
                    msg = f"No reference value found for the given id: {name}"
                    self._answer(500, msg.encode())
                else:
                    self._answer(200, json.dumps(kbs.reference_values[name]).encode())
            elif path.startswith("resource/") and method == "POST":
                kbs.resources[path.split("/", 1)[1]] = data
                self._answer(200)
            elif path.startswith("resource/") and method == "DELETE":
                kbs.resources.pop(path.split("/", 1)[1], None)
                self._answer(200)
            else:
                self._answer(404)

        do_GET = do_POST = do_DELETE = _handle

    return Handler


@dataclass
class Served:
    kbs: FakeKbs
    url: str
    certificate_pem: str
    key_pem: str


@contextlib.contextmanager
def serve(key: Any, directory: Path) -> Iterator[Served]:
    """A stand-in KBS admin API on https://localhost:<port>, trusting `key`'s public key."""
    # The public key as coco hands it to the Trustee's operator (`public_key_uri`).
    public = serialization.load_pem_public_key(admin_public_key_pem(private_key_pem(key)).encode())
    kbs = FakeKbs(public, role="coco", issuer="coco-iss", audience="kbs-admin")
    cert_pem, tls_key_pem = localhost_certificate()
    (directory / "cert.pem").write_text(cert_pem)
    (directory / "key.pem").write_text(tls_key_pem)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _handler(kbs))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(directory / "cert.pem", directory / "key.pem")
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        port = server.server_address[1]
        yield Served(kbs, f"https://localhost:{port}", cert_pem, private_key_pem(key))
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(params=["ec", "rsa", "ed25519"])
def served(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Served]:
    key: Any = {
        "ec": lambda: ec.generate_private_key(ec.SECP256R1()),
        "rsa": lambda: rsa.generate_private_key(65537, 2048),
        "ed25519": ed25519.Ed25519PrivateKey.generate,
    }[request.param]()
    with serve(key, tmp_path) as s:
        yield s


def props(
    s: Served, key_pem: str | None = None, role: str = "coco", **extra: Any
) -> dict[str, Any]:
    return {
        "kbs": {"url": s.url, "certificate_pem": s.certificate_pem},
        "admin": {
            "private_key_pem": key_pem or s.key_pem,
            "role": role,
            "issuer": "coco-iss",
            "audience": "kbs-admin",
        },
        **extra,
    }


def test_resource_policy_create_update_delete_read(served: Served) -> None:
    p = ResourcePolicyProvider()
    created = p.create(props(served, policy="package policy\ndefault allow = true\n"))
    assert created.id == "resource-policy"
    assert served.kbs.resource_policy == "package policy\ndefault allow = true\n"
    new = props(served, policy="package policy\ndefault allow = false\n# v2\n")
    p.update(created.id, created.outs, new)
    assert served.kbs.resource_policy is not None and "# v2" in served.kbs.resource_policy
    assert p.read("resource-policy", new).id == "resource-policy"
    p.delete("resource-policy", new)
    assert served.kbs.resource_policy == DENY_ALL_RESOURCE_POLICY
    served.kbs.resource_policy = None  # removed behind coco's back: refresh sees it gone
    assert not p.read("resource-policy", new).id


def test_attestation_policy_create_update_and_honest_read(served: Served) -> None:
    p = AttestationPolicyProvider()
    created = p.create(props(served, policy_id="default_cpu", policy="package policy\n# a\n"))
    assert created.id == "default_cpu"
    assert served.kbs.attestation_policies == {"default_cpu": "package policy\n# a\n"}
    p.update("default_cpu", created.outs, props(served, policy_id="default_cpu", policy="# b"))
    assert served.kbs.attestation_policies["default_cpu"] == "# b"
    # No GET in v0.21.0: read reports the state it set, and calls nothing.
    before = len(served.kbs.calls)
    assert p.read("default_cpu", created.outs).outs == created.outs
    assert len(served.kbs.calls) == before
    diff = p.diff("default_cpu", created.outs, props(served, policy_id="other", policy="# b"))
    assert diff.replaces == ["policy_id"]


def test_reference_value_round_trip_and_drift(served: Served) -> None:
    p = ReferenceValueProvider()
    created = p.create(props(served, name="mr_td", value=["aa"]))
    assert served.kbs.reference_values == {"mr_td": ["aa"]}
    p.update("mr_td", created.outs, props(served, name="mr_td", value=["bb"]))
    assert served.kbs.reference_values["mr_td"] == ["bb"]
    served.kbs.reference_values["mr_td"] = ["evil"]  # changed behind coco's back
    assert p.read("mr_td", props(served, name="mr_td", value=["bb"])).outs["value"] == ["evil"]
    p.delete("mr_td", props(served, name="mr_td", value=["bb"]))
    assert served.kbs.reference_values["mr_td"] == []
    assert not p.read("mr_td", props(served, name="mr_td", value=["bb"])).id
    assert not p.read("absent", props(served, name="absent", value=["x"])).id


def test_resource_set_replace_delete(served: Served) -> None:
    p = KbsResourceProvider()
    created = p.create(props(served, path="default/key/1", value="s3cret"))
    assert created.id == "default/key/1" and served.kbs.resources == {"default/key/1": b"s3cret"}
    p.update(created.id, created.outs, props(served, path="default/key/1", value="n3w"))
    assert served.kbs.resources["default/key/1"] == b"n3w"
    diff = p.diff(created.id, created.outs, props(served, path="default/key/2", value="n3w"))
    assert diff.replaces == ["path"] and diff.delete_before_replace
    p.delete(created.id, created.outs)
    assert served.kbs.resources == {}


def test_a_wrong_key_or_role_is_refused(served: Served) -> None:
    other = private_key_pem(ec.generate_private_key(ec.SECP256R1()))
    with pytest.raises(KbsAdminError) as err:
        KbsResourceProvider().create(props(served, other, path="a/b/c", value="x"))
    assert err.value.status == 401 and served.kbs.resources == {}
    with pytest.raises(KbsAdminError):
        ResourcePolicyProvider().create(props(served, role="intruder", policy="p"))
    assert served.kbs.resource_policy is None


def test_a_wrong_kbs_certificate_is_refused(served: Served) -> None:
    wrong, _ = localhost_certificate()
    admin = KbsAdmin(served.url, wrong, AdminIdentity(served.key_pem, "coco"))
    with pytest.raises(KbsUnreachable, match="CERTIFICATE_VERIFY_FAILED"):
        admin.set_resource("a/b/c", b"x")
    assert served.kbs.calls == []


def test_token_claims() -> None:
    key = private_key_pem(ec.generate_private_key(ec.SECP256R1()))
    token = AdminIdentity(key, "r", issuer="i", audience="a", lifetime_s=60).token(now=1000)
    head, body, _sig = token.split(".")
    assert json.loads(_unb64(head)) == {"alg": "ES256", "typ": "JWT"}
    assert json.loads(_unb64(body)) == {
        "aud": "a",
        "exp": 1060,
        "iat": 1000,
        "iss": "i",
        "role": "r",
    }
    bare = AdminIdentity(key, "r").token(now=0).split(".")[1]
    assert set(json.loads(_unb64(bare))) == {"role", "iat", "exp"}
    with pytest.raises(ValueError, match="P-256"):
        AdminIdentity(private_key_pem(ec.generate_private_key(ec.SECP384R1())), "r").token()
