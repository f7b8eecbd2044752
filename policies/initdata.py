"""Init-data: the document that tells a confidential guest where Trustee is and which agent
policy to enforce, bound to hardware evidence by its digest.

Why this module is careful about bytes: the Kata runtime hashes the *exact* TOML text of the
document (not a parsed or re-serialised form) and puts the fitted digest into a TEE field
(TDX MRCONFIGID, SNP HOSTDATA, ...). The attestation token then carries that field as the
`init_data` claim, and the KBS resource policy releases secrets only to that value. So one
changed space means a different digest, a different claim and no secrets: the rendering here
is canonical (fixed key order, fixed quoting), and every other module hashes what it renders.

Upstream formats, as checked:
- Document: trustee `kbs/docs/initdata.md` (fields `version`, `algorithm`, `data`; CoCo uses
  TOML) and kata-containers `src/libs/kata-types/src/initdata.rs` (`INITDATA_VERSION =
  "0.1.0"`, `SUPPORTED_ALGORITHMS = ["sha256", "sha384", "sha512"]`).
- Digest: kata-types `initdata.rs` `calculate_digest(algorithm, initdata_toml)` hashes the raw
  TOML string; `adjust_digest` truncates to, or zero-pads up to, the platform field (TDX 48,
  SNP 32, CCA 64 bytes; unprotected: unchanged).
- Annotation: kata-types `annotations` `io.katacontainers.config.hypervisor.cc_init_data`;
  kata-types `initdata.rs` `add_hypervisor_initdata_overrides` decodes it with
  `base64::STANDARD` then `GzDecoder`, so the value is base64(gzip(text)).
- Claim: trustee `deps/verifier/src/tdx/claims.rs` emits `init_data` as `hex::encode` of
  MR_CONFIG_ID (lowercase hex); the SNP verifier (`deps/verifier/src/snp/mod.rs`) emits
  `hex::encode(report.host_data)` in current releases and `STANDARD.encode` (base64) in older
  ones, which is why `initdata_claim_base64` exists too.
- aa.toml: guest-components `attestation-agent/attestation-agent/src/config/mod.rs`
  (`[token_configs.kbs]`) and `config/kbs.rs` (`url`, `cert`).
- cdh.toml: guest-components `confidential-data-hub/hub/src/config/mod.rs` (`[kbc]` with
  `name`, `url`, `kbs_cert`; `[image]` with `image_security_policy_uri` from image-rs
  `ImageConfig`).
"""

from __future__ import annotations

import base64
import binascii
import gzip
import hashlib
import re
from collections.abc import Sequence
from typing import Literal
from urllib.parse import urlparse

from pydantic import BaseModel, ConfigDict, field_validator, model_validator
from pydantic.alias_generators import to_camel

from components.vocabulary import is_kbs_uri

INITDATA_ANNOTATION = "io.katacontainers.config.hypervisor.cc_init_data"
"""Pod annotation the Kata runtime reads init-data from (kata-types `annotations`)."""

INITDATA_VERSION = "0.1.0"
"""The only init-data version Kata accepts (kata-types `initdata.rs` `INITDATA_VERSION`)."""

DigestAlgorithm = Literal["sha256", "sha384", "sha512"]

DIGEST_SIZES: dict[str, int] = {"sha256": 32, "sha384": 48, "sha512": 64}
"""Digest length in bytes per algorithm, for callers that size fields."""

KBC_NAME = "cc_kbc"
"""The KBC that talks the KBS (RCAR) protocol; the only one that reaches Trustee."""

_PEM_CERT = re.compile(
    r"\A(-----BEGIN CERTIFICATE-----\n[A-Za-z0-9+/=\n]+-----END CERTIFICATE-----\n?)+\Z"
)


class KbsEndpoint(BaseModel):
    """Where the guest's attestation agent and data hub find Trustee's KBS.

    `cert_pem` is the CA (or self-signed server) certificate the guest pins for the HTTPS
    connection: it travels inside measured init-data, so a host cannot redirect the guest to
    another KBS without changing the init-data digest.
    """

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True
    )

    url: str
    cert_pem: str | None = None
    allow_insecure_http: bool = False
    """Plain HTTP leaks the attestation exchange to the host; only for throw-away dev stacks."""

    @field_validator("url")
    @classmethod
    def _url_shape(cls, v: str) -> str:
        parsed = urlparse(v)
        if parsed.scheme not in ("https", "http") or not parsed.hostname:
            raise ValueError(f"{v!r} is not a KBS URL: use https://<host>[:port]")
        if parsed.query or parsed.fragment or any(c.isspace() or c in '"\\' for c in v):
            raise ValueError(f"{v!r}: a KBS URL has no query, fragment, quotes or spaces")
        return v.rstrip("/")

    @field_validator("cert_pem")
    @classmethod
    def _pem_shape(cls, v: str | None) -> str | None:
        if v is None:
            return None
        text = v.replace("\r\n", "\n").strip() + "\n"
        if not _PEM_CERT.match(text):
            raise ValueError("cert_pem must be one or more PEM 'CERTIFICATE' blocks")
        return text

    @model_validator(mode="after")
    def _https_unless_waived(self) -> KbsEndpoint:
        if urlparse(self.url).scheme == "http" and not self.allow_insecure_http:
            raise ValueError(
                f"{self.url!r} is plain HTTP: the guest would attest to whoever answers; use "
                "https:// (or set allow_insecure_http for a throw-away dev stack)"
            )
        return self


# --------------------------------------------------------------------------- TOML writing


_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
"""Characters a TOML multi-line literal string cannot hold (tab and newline can stay)."""
_CONTROL_ESCAPES = {c: f"\\u{c:04X}" for c in (*range(0x20), 0x7F)}
_BASIC_ESCAPES = str.maketrans(
    {**_CONTROL_ESCAPES, ord('"'): '\\"', ord("\\"): "\\\\", 0x0A: "\\n", 0x09: "\\t", 0x0D: "\\r"}
)
_MULTILINE_ESCAPES = str.maketrans(
    {
        **{k: v for k, v in _CONTROL_ESCAPES.items() if k not in (0x0A, 0x09)},
        ord('"'): '\\"',  # escaping every quote rules out a stray closing delimiter
        ord("\\"): "\\\\",
    }
)


def toml_basic_string(value: str) -> str:
    """A single-line TOML basic string: every character that needs it escaped.

    Hand-written rather than delegated so the output cannot drift with a library version:
    the bytes end up in a hardware-bound digest. One `str.translate` table does the escaping
    in C: it runs for every workload of every preview.
    """
    return '"' + value.translate(_BASIC_ESCAPES) + '"'


def _multiline_basic(value: str) -> str:
    """A TOML multi-line basic string (`\"\"\"`), starting on its own line.

    Only `\\`, `"` runs and control characters need escaping; newlines stay literal so PEM
    blocks and Rego stay readable in `kubectl get pod -o yaml | ... | base64 -d | gunzip`.
    """
    return '"""\n' + value.translate(_MULTILINE_ESCAPES) + '"""'


def _literal_ok(value: str) -> bool:
    """True when `value` survives a TOML multi-line literal string unchanged."""
    if "'''" in value or value.endswith("'") or value.startswith("\n"):
        return False
    return _CONTROL.search(value) is None


def toml_multiline_string(value: str) -> str:
    """The most readable exact TOML encoding of a multi-line value.

    Prefers a literal string (no escapes at all: Rego and nested TOML read as written); falls
    back to an escaped basic string for the rare value a literal cannot hold. The opening
    delimiter is followed by a newline, which TOML trims, so the value starts on its own line.
    """
    if _literal_ok(value):
        return "'''\n" + value + "'''"
    return _multiline_basic(value)


# --------------------------------------------------------------------------- guest configs


def render_aa_toml(kbs: KbsEndpoint) -> str:
    """The attestation agent's config: which KBS issues its attestation token.

    Keys from guest-components `attestation-agent/src/config/mod.rs` (`token_configs.kbs`) and
    `config/kbs.rs` (`url`, `cert`). Inner strings use basic quoting so the whole file can be
    embedded in init-data as a literal string.
    """
    lines = ["[token_configs]", "[token_configs.kbs]", f"url = {toml_basic_string(kbs.url)}"]
    if kbs.cert_pem is not None:
        lines.append(f"cert = {_multiline_basic(kbs.cert_pem)}")
    return "\n".join(lines) + "\n"


def image_table_lines(entries: Sequence[tuple[str, str | Sequence[str]]]) -> list[str]:
    """`key = value` lines of cdh.toml's `[image]` table (strings and string arrays), for
    the image-pull settings of policies/registry.py; kept apart from `render_cdh_toml`'s
    own keys so more `[image]` keys can join the same table."""
    lines = []
    for key, value in entries:
        if isinstance(value, str):
            lines.append(f"{key} = {toml_basic_string(value)}")
        else:
            items = ",\n".join(f"  {_multiline_basic(v)}" for v in value)
            lines.append(f"{key} = [\n{items},\n]")
    return lines


def render_cdh_toml(
    kbs: KbsEndpoint,
    image_security_policy_uri: str | None = None,
    image_pull: Sequence[tuple[str, str | Sequence[str]]] = (),
) -> str:
    """The confidential data hub's config: the KBS it fetches secrets (and image policy) from.

    Keys from guest-components `confidential-data-hub/hub/src/config/mod.rs`: `[kbc]` `name`,
    `url`, `kbs_cert`; `[image]` `image_security_policy_uri` (a `kbs:///repo/type/tag` URI, so
    the signature policy itself comes from Trustee after attestation). `socket` is left to
    CDH's default, which is the path the Kata agent dials.
    """
    lines = [
        "[kbc]",
        f"name = {toml_basic_string(KBC_NAME)}",
        f"url = {toml_basic_string(kbs.url)}",
    ]
    if kbs.cert_pem is not None:
        lines.append(f"kbs_cert = {_multiline_basic(kbs.cert_pem)}")
    if image_security_policy_uri is not None and not is_kbs_uri(image_security_policy_uri):
        raise ValueError(
            f"{image_security_policy_uri!r} is not a KBS resource URI (kbs:///<repo>/<type>/<tag>)"
        )
    image = image_table_lines(image_pull)
    if image_security_policy_uri is not None:
        image.insert(
            0, f"image_security_policy_uri = {toml_basic_string(image_security_policy_uri)}"
        )
    if image:
        lines += ["", "[image]", *image]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- the document


def render_initdata_document(data: dict[str, str], algorithm: DigestAlgorithm = "sha384") -> str:
    """Any init-data document: `version`, `algorithm`, then `[data]` keys in sorted order.

    Sorted keys and fixed quoting make the text (and so the digest) a pure function of the
    inputs. Exposed for tools that carry extra data keys; workloads use `render_initdata`.
    """
    if algorithm not in DIGEST_SIZES:
        raise ValueError(f"unsupported init-data algorithm {algorithm!r}")
    parts = [
        f"version = {toml_basic_string(INITDATA_VERSION)}",
        f"algorithm = {toml_basic_string(algorithm)}",
        "",
        "[data]",
    ]
    for i, key in enumerate(sorted(data)):
        if i:
            parts.append("")
        parts.append(f"{toml_basic_string(key)} = {toml_multiline_string(data[key])}")
    return "\n".join(parts) + "\n"


def render_initdata(
    kbs: KbsEndpoint,
    policy_rego: str,
    algorithm: DigestAlgorithm = "sha384",
    image_security_policy_uri: str | None = None,
    image_pull: Sequence[tuple[str, str | Sequence[str]]] = (),
) -> str:
    """The workload's init-data TOML: KBS location and certificate, and the agent policy.

    `policy.rego` is the only agent policy bound to hardware evidence (the older
    `io.katacontainers.config.agent.policy` annotation is not measured), so production
    workloads always carry theirs here.
    """
    return render_initdata_document(
        {
            "aa.toml": render_aa_toml(kbs),
            "cdh.toml": render_cdh_toml(kbs, image_security_policy_uri, image_pull),
            "policy.rego": policy_rego,
        },
        algorithm,
    )


# --------------------------------------------------------------------------- digest & claim


def initdata_digest(text: str, algorithm: DigestAlgorithm) -> bytes:
    """Hash of the exact UTF-8 bytes of the document, as kata's `calculate_digest` does."""
    if algorithm not in DIGEST_SIZES:
        raise ValueError(f"unsupported init-data algorithm {algorithm!r}")
    return hashlib.new(algorithm, text.encode("utf-8")).digest()


def fit_digest(digest: bytes, field_len: int | None) -> bytes:
    """The digest as the TEE field holds it: truncated when longer, zero-padded when shorter.

    Mirrors kata-types `initdata.rs` `adjust_digest` (and trustee's verifier
    `regularize_data`). `None` means the platform has no binding field: unchanged.
    """
    if field_len is None:
        return digest
    if field_len <= 0:
        raise ValueError(f"field length must be positive, not {field_len}")
    if len(digest) >= field_len:
        return digest[:field_len]
    return digest + b"\x00" * (field_len - len(digest))


def initdata_claim_hex(text: str, algorithm: DigestAlgorithm, field_len: int | None) -> str:
    """The attestation token's `init_data` claim: lowercase hex of the fitted digest.

    This is the value a resource policy compares (trustee verifiers use `hex::encode`).
    """
    return fit_digest(initdata_digest(text, algorithm), field_len).hex()


def initdata_claim_base64(text: str, algorithm: DigestAlgorithm, field_len: int | None) -> str:
    """The same claim as older trustee SNP verifiers printed it (standard base64)."""
    return base64.b64encode(fit_digest(initdata_digest(text, algorithm), field_len)).decode()


def claim_hex_to_base64(claim_hex: str) -> str:
    """Re-encode a hex claim as standard base64 (same bytes, the other upstream spelling)."""
    return base64.b64encode(bytes.fromhex(claim_hex)).decode()


# --------------------------------------------------------------------------- annotation


def annotation_value(text: str) -> str:
    """The pod annotation value: base64 (standard alphabet) of gzip of the UTF-8 text.

    Deterministic: gzip header with mtime 0 and no file name, fixed compression level, so the
    same document always gives the same annotation (no spurious pod rollouts on preview).
    """
    compressed = gzip.compress(text.encode("utf-8"), compresslevel=9, mtime=0)
    return base64.b64encode(compressed).decode("ascii")


def decode_annotation(value: str) -> str:
    """Inverse of `annotation_value`, with the same decoding Kata applies."""
    try:
        raw = base64.b64decode(value.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError) as err:
        raise ValueError(f"init-data annotation is not standard base64: {err}") from err
    try:
        return gzip.decompress(raw).decode("utf-8")
    except (OSError, EOFError, UnicodeDecodeError) as err:
        raise ValueError(f"init-data annotation is not gzip'd UTF-8 text: {err}") from err
