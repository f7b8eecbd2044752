"""Sealed secrets: a Kubernetes Secret the host can schedule but not read.

Why the `vault` type: a vault sealed secret is only a signed *reference* to a KBS resource
(`provider: kbs`, `name: kbs:///repo/type/tag`), so the host-side Secret holds no ciphertext of
the value at all, and the value itself stays where every other coco secret lives: a KBS
resource released by the resource policy to the workload's init-data digest only. `envelope`
would put ciphertext on the host and need a second key release path for the same guarantee.

Formats, as read in guest-components d4dce5c (what kata 4.1.0's guest runs):
- `confidential-data-hub/hub/src/secret/mod.rs`: `Secret {version, #[serde(flatten)] type}`,
  `SecretContent` tagged by `type` (lowercase), `VERSION = "0.1.0"`; the signed form is
  `sealed.` + compact JWS (`BASE64URL(header).BASE64URL(payload).BASE64URL(signature)`, URL-safe
  without padding), the header carrying `alg: ES256` and `kid`. Verification is on unless
  `SKIP_SEALED_SECRET_VERIFICATION` (`skip_sealed_secret_verification` in cdh.toml, never
  rendered by coco): `get_kid` fetches the key from the KBS when `kid` is a resource URI, and
  `validate_es256` parses it as a JWK (`jose_jwk`), requires EC P-256, and verifies the raw
  r||s signature over `header.payload`.
- `hub/src/secret/layout/vault.rs`: `VaultSecret {name, provider, provider_settings,
  annotations}` (all required); `kms` provider `kbs` reads `name` as a KBS resource URI.

Signatures are deterministic (RFC 6979), so the same key and reference give the same sealed
string on every preview (no spurious Secret updates).
"""

from __future__ import annotations

import base64
import json

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from components.vocabulary import kbs_uri as kbs_uri

SEALED_PREFIX = "sealed."
SEALED_VERSION = "0.1.0"
SIGNING_KEY_RESOURCE = "coco/sealed-secret/signing-key"
"""KBS resource (repo/type/tag) holding the public JWK that verifies every sealed secret."""


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _compact_json(value: object) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


def _p256_key(private_key_pem: str) -> ec.EllipticCurvePrivateKey:
    key = serialization.load_pem_private_key(private_key_pem.encode(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
        raise ValueError("the sealed-secret signing key must be an EC P-256 private key (ES256)")
    return key


def public_jwk(public_key_pem: str) -> str:
    """The verification key as the CDH reads it from the KBS: a P-256 public JWK (JSON)."""
    key = serialization.load_pem_public_key(public_key_pem.encode())
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
        raise ValueError("the sealed-secret verification key must be an EC P-256 public key")
    numbers = key.public_numbers()
    jwk = {
        "alg": "ES256",
        "crv": "P-256",
        "kty": "EC",
        "use": "sig",
        "x": _b64url(numbers.x.to_bytes(32, "big")),
        "y": _b64url(numbers.y.to_bytes(32, "big")),
    }
    return json.dumps(jwk, sort_keys=True)


def vault_secret(resource_path: str) -> dict[str, object]:
    """The unsigned sealed secret: a reference to KBS resource `resource_path`."""
    return {
        "version": SEALED_VERSION,
        "type": "vault",
        "name": kbs_uri(resource_path),
        "provider": "kbs",
        "provider_settings": {},
        "annotations": {},
    }


def signing_input(resource_path: str, kid_path: str = SIGNING_KEY_RESOURCE) -> str:
    """`BASE64URL(header).BASE64URL(payload)`: everything of the sealed form but the signature.

    Known without the key, so the agent policy can pin it at render time.
    """
    header = {"alg": "ES256", "kid": kbs_uri(kid_path)}
    return f"{_b64url(_compact_json(header))}.{_b64url(_compact_json(vault_secret(resource_path)))}"


def seal(resource_path: str, private_key_pem: str, kid_path: str = SIGNING_KEY_RESOURCE) -> str:
    """The signed sealed secret (`sealed.<jws>`) the Kubernetes Secret holds."""
    key = _p256_key(private_key_pem)
    to_sign = signing_input(resource_path, kid_path)
    der = key.sign(to_sign.encode(), ec.ECDSA(hashes.SHA256(), deterministic_signing=True))
    r, s = decode_dss_signature(der)
    return f"{SEALED_PREFIX}{to_sign}.{_b64url(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"


def sealed_env_pattern(name: str, resource_path: str, kid_path: str = SIGNING_KEY_RESOURCE) -> str:
    """An anchored regex for the env entry `NAME=sealed.<header>.<payload>.<signature>`.

    Header and payload are pinned exactly (this reference, this key id); the signature part is
    not, because the CDH verifies it against the key only the KBS serves: a host cannot swap in
    another reference without breaking it.
    """
    # Only `.` is a regex metacharacter in an env name, `sealed.` and base64url text.
    fixed = f"{name}={SEALED_PREFIX}{signing_input(resource_path, kid_path)}.".replace(".", "\\.")
    return f"^{fixed}[A-Za-z0-9_-]{{86}}$"
