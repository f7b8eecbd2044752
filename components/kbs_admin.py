"""A client of the KBS admin API of Trustee v0.21.0, with its admin authentication.

Why: an external Trustee (a shared company Trustee, Red Hat's build, the Trustee operator) is
not configured through files coco mounts; its policies, reference values and resources are
set through the KBS admin API, as the upstream guide does with `kbs-client`. Read in
trustee v0.21.0 (cited per call below):

- authentication (`kbs/src/admin/authentication/bearer_jwt.rs`, `kbs/docs/admin.md`):
  `[admin] authorization_mode = "AuthenticatedAuthorization"` with `bearer_jwt` verifies
  `Authorization: Bearer <JWT>` against each `identity_providers` entry's PEM public key
  (`kbs/src/crypto/jwt.rs` `decoding_key_from_public_key_pem`: EC, then RSA, then Ed25519;
  the algorithm is the token header's `alg`). `jsonwebtoken::Validation::new` requires `exp`
  and checks it; the `role` claim is required (`claims_from_value`); `iss` and `aud` are
  checked when the identity provider names them. The role is then matched by
  `regex_acl` against the request path.
- endpoints (`kbs/src/api_server.rs` `api`, `tools/kbs-client/src/lib.rs`), under `/kbs/v0`:
  `POST resource-policy` `{"policy": base64url-nopad(rego)}`; `GET resource-policy` -> the
  policy ids (`list_policies`), not their text; `POST attestation-policy`
  `{"policy_id", "policy": base64url-nopad(rego)}` (kbs/src/attestation/backend.rs
  `SetPolicyInput`), no GET; `POST reference-value` `{"version": "0.1.0", "type": "sample",
  "payload": base64(json {name: value})}` (rvps `extractors/sample`); `GET
  reference-value/<name>` -> the value as JSON (error when absent); `POST resource/<path>`
  (raw bytes) and `DELETE resource/<path>` (the resource plugin's `validate_auth` makes both
  admin calls; a GET needs an attestation token instead).
"""

from __future__ import annotations

import base64
import json
import ssl
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

API = "kbs/v0"
RESOURCE_POLICY_ID = "resource-policy"
"""`kbs/src/api_server.rs` `KBS_POLICY_ID`: the one resource policy the KBS evaluates."""
DENY_ALL_RESOURCE_POLICY = "package policy\n\ndefault allow = false\n"
"""What deleting coco's resource policy leaves: the API has no delete, and no policy at all
would not be safer (the KBS warns and denies); a deny-all says so explicitly."""
SAMPLE_RV_VERSION = "0.1.0"
TOKEN_LIFETIME_S = 300
TIMEOUT_S = 30.0


class KbsUnreachable(RuntimeError):
    """No answer from the KBS: not reachable, or its certificate is not the one configured."""


class KbsAdminError(RuntimeError):
    """The admin API refused or failed a call (status and the KBS's own message)."""

    def __init__(self, method: str, path: str, status: int, body: str) -> None:
        super().__init__(f"KBS admin API {method} /{path}: HTTP {status}: {body.strip()[:500]}")
        self.status = status
        self.body = body


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _algorithm(key: Any) -> str:
    if isinstance(key, ec.EllipticCurvePrivateKey):
        if not isinstance(key.curve, ec.SECP256R1):
            raise ValueError("EC admin keys must be P-256 (ES256)")
        return "ES256"
    if isinstance(key, rsa.RSAPrivateKey):
        return "RS256"
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return "EdDSA"
    raise ValueError("the admin key must be an EC P-256, RSA or Ed25519 private key (PEM)")


def load_admin_key(pem: str) -> Any:
    """The admin private key, or a ValueError saying what kind it must be."""
    try:
        key = serialization.load_pem_private_key(pem.encode(), password=None)
    except (ValueError, TypeError) as err:
        raise ValueError(f"not an unencrypted PEM private key ({err})") from None
    _algorithm(key)
    return key


def admin_public_key_pem(private_key_pem: str) -> str:
    """The PEM public key an operator configures as the identity provider's `public_key_uri`."""
    key = load_admin_key(private_key_pem)
    pem: bytes = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return pem.decode()


@dataclass(frozen=True)
class AdminIdentity:
    """Who coco is to the KBS: the key that signs its admin tokens and the claims it states."""

    private_key_pem: str
    role: str
    issuer: str | None = None
    audience: str | None = None
    lifetime_s: int = TOKEN_LIFETIME_S

    def token(self, now: float | None = None) -> str:
        """A short-lived admin JWT (`role`, `iat`, `exp`, and `iss`/`aud` when set)."""
        key = load_admin_key(self.private_key_pem)
        alg = _algorithm(key)
        issued = int(time.time() if now is None else now)
        claims: dict[str, Any] = {"role": self.role, "iat": issued, "exp": issued + self.lifetime_s}
        if self.issuer:
            claims["iss"] = self.issuer
        if self.audience:
            claims["aud"] = self.audience
        header = {"alg": alg, "typ": "JWT"}
        signing_input = (
            _b64url(json.dumps(header, separators=(",", ":")).encode())
            + "."
            + _b64url(json.dumps(claims, separators=(",", ":"), sort_keys=True).encode())
        ).encode()
        if alg == "ES256":
            der = key.sign(signing_input, ec.ECDSA(hashes.SHA256()))
            r, s = decode_dss_signature(der)
            signature = r.to_bytes(32, "big") + s.to_bytes(32, "big")  # JWS: raw r || s
        elif alg == "RS256":
            signature = key.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
        else:
            signature = key.sign(signing_input)
        return signing_input.decode() + "." + _b64url(signature)


@dataclass(frozen=True)
class KbsAdmin:
    """The admin API of one KBS: its root URL, the certificate (or CA) it is checked against,
    and the identity that signs the calls."""

    url: str
    certificate_pem: str
    identity: AdminIdentity

    def _context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cadata=self.certificate_pem)

    def call(
        self, method: str, path: str, body: bytes | None = None, content_type: str | None = None
    ) -> bytes:
        """One authenticated call; an HTTP error becomes a `KbsAdminError`."""
        full = f"{API}/{path}"
        request = urllib.request.Request(f"{self.url.rstrip('/')}/{full}", data=body, method=method)
        request.add_header("Authorization", f"Bearer {self.identity.token()}")
        if content_type:
            request.add_header("Content-Type", content_type)
        try:
            with urllib.request.urlopen(
                request, timeout=TIMEOUT_S, context=self._context()
            ) as response:
                data: bytes = response.read()
                return data
        except urllib.error.HTTPError as err:
            raise KbsAdminError(
                method, full, err.code, err.read().decode(errors="replace")
            ) from None
        except urllib.error.URLError as err:
            raise KbsUnreachable(
                f"KBS admin API {method} {self.url}/{full}: {err.reason} (is the KBS reachable, "
                "and is coco:topology.external.certificatePem its certificate or CA?)"
            ) from None

    # ---- resource policy
    def set_resource_policy(self, rego: str) -> None:
        body = json.dumps({"policy": _b64url(rego.encode())}).encode()
        self.call("POST", "resource-policy", body, "application/json")

    def resource_policy_ids(self) -> list[str]:
        return [str(i) for i in json.loads(self.call("GET", "resource-policy") or b"[]")]

    # ---- attestation policy
    def set_attestation_policy(self, policy_id: str, rego: str) -> None:
        body = json.dumps({"policy_id": policy_id, "policy": _b64url(rego.encode())}).encode()
        self.call("POST", "attestation-policy", body, "application/json")

    # ---- reference values
    def set_reference_value(self, name: str, value: Any) -> None:
        payload = base64.b64encode(json.dumps({name: value}, sort_keys=True).encode()).decode()
        body = json.dumps(
            {"version": SAMPLE_RV_VERSION, "type": "sample", "payload": payload}
        ).encode()
        self.call("POST", "reference-value", body, "application/json")

    def reference_value(self, name: str) -> Any | None:
        """The stored value, or None when the RVPS has none under `name`."""
        try:
            return json.loads(self.call("GET", f"reference-value/{name}"))
        except KbsAdminError as err:
            if "No reference value found" in err.body:
                return None
            raise

    # ---- resources
    def set_resource(self, path: str, value: bytes) -> None:
        self.call("POST", f"resource/{path}", value, "application/octet-stream")

    def delete_resource(self, path: str) -> None:
        self.call("DELETE", f"resource/{path}")
