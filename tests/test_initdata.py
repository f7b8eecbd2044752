"""Init-data: canonical TOML, digests checked by independent tools, fitting, annotation."""

from __future__ import annotations

import base64
import hashlib
import subprocess
import tomllib

import pytest
from pydantic import ValidationError

from policies import initdata
from policies.initdata import (
    INITDATA_ANNOTATION,
    INITDATA_VERSION,
    KbsEndpoint,
    annotation_value,
    decode_annotation,
    fit_digest,
    initdata_claim_base64,
    initdata_claim_hex,
    initdata_digest,
    render_aa_toml,
    render_cdh_toml,
    render_initdata,
    render_initdata_document,
)

CERT = (
    "-----BEGIN CERTIFICATE-----\n"
    "MIIBszCCAVmgAwIBAgIUQ2xvdWRDb0NvVGVzdENBMB4XDTI2MDEwMTAwMDAwMFow\n"
    "FjEUMBIGA1UEAwwLa2JzLnRydXN0ZWUwWTATBgcqhkjOPQIBBggqhkjOPQMBBwNC\n"
    "AAQ7c29tZS1mYWtlLWtleS1ieXRlcy1mb3ItdGVzdHM=\n"
    "-----END CERTIFICATE-----\n"
)
KBS = KbsEndpoint(url="https://kbs.trustee.svc.cluster.local:8080", cert_pem=CERT)
POLICY = "package agent_policy\n\nimport rego.v1\n\ndefault ExecProcessRequest := false\n"

# Published SHA-2 test vectors (FIPS 180-2 examples): the digest of "abc" and of "".
KNOWN = {
    ("sha256", b"abc"): "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
    ("sha384", b"abc"): "cb00753f45a35e8bb5a03d699ac65007272c32ab0eded1631a8b605a43ff5bed"
    "8086072ba1e7cc2358baeca134c825a7",
    ("sha512", b"abc"): "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a"
    "2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f",
    ("sha256", b""): "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
}


def _tool_digest(tool: str, data: bytes) -> str:
    """Digest by the coreutils tool, independent of Python's hashlib."""
    out = subprocess.run([tool], input=data, capture_output=True, check=True).stdout
    return out.split()[0].decode()


@pytest.fixture
def document() -> str:
    return render_initdata(KBS, POLICY, "sha384")


def test_constants_match_kata() -> None:
    assert INITDATA_ANNOTATION == "io.katacontainers.config.hypervisor.cc_init_data"
    assert INITDATA_VERSION == "0.1.0"


def test_document_layout_is_canonical(document: str) -> None:
    assert document.startswith('version = "0.1.0"\nalgorithm = "sha384"\n\n[data]\n"aa.toml" = ')
    assert (
        document.index('"aa.toml"') < document.index('"cdh.toml"') < document.index('"policy.rego"')
    )
    assert document.endswith("\n")
    assert render_initdata(KBS, POLICY, "sha384") == document


def test_document_parses_back_exactly(document: str) -> None:
    parsed = tomllib.loads(document)
    assert parsed["version"] == "0.1.0"
    assert parsed["algorithm"] == "sha384"
    assert set(parsed) == {"version", "algorithm", "data"}
    assert parsed["data"] == {
        "aa.toml": render_aa_toml(KBS),
        "cdh.toml": render_cdh_toml(KBS),
        "policy.rego": POLICY,
    }


def test_aa_toml_has_upstream_keys() -> None:
    aa = tomllib.loads(render_aa_toml(KBS))
    assert aa == {"token_configs": {"kbs": {"url": KBS.url, "cert": CERT}}}
    assert tomllib.loads(render_aa_toml(KbsEndpoint(url=KBS.url))) == {
        "token_configs": {"kbs": {"url": KBS.url}}
    }


def test_cdh_toml_has_upstream_keys() -> None:
    uri = "kbs:///default/security-policy/prod"
    cdh = tomllib.loads(render_cdh_toml(KBS, image_security_policy_uri=uri))
    assert cdh == {
        "kbc": {"name": "cc_kbc", "url": KBS.url, "kbs_cert": CERT},
        "image": {"image_security_policy_uri": uri},
    }
    with pytest.raises(ValueError, match="KBS resource URI"):
        render_cdh_toml(KBS, image_security_policy_uri="https://example.com/policy.json")


@pytest.mark.parametrize(
    "value",
    [
        "plain\n",
        "no trailing newline",
        "has ''' triple quotes\n",
        "ends with a quote'",
        'double "quotes" and \\backslashes\\ and """ triples\n',
        "tab\tand unicode é ✓\n",
        "windows\r\nline ends\r\n",
        "control \x01 \x1f \x7f chars",
        "\nstarts with a newline",
        "",
    ],
)
def test_any_value_round_trips(value: str) -> None:
    text = render_initdata_document({"x.txt": value, 'we"ird\\key': value}, "sha256")
    assert tomllib.loads(text)["data"] == {"x.txt": value, 'we"ird\\key': value}


def test_same_inputs_same_bytes_any_order() -> None:
    a = render_initdata_document({"b": "2\n", "a": "1\n"})
    b = render_initdata_document({"a": "1\n", "b": "2\n"})
    assert a == b


@pytest.mark.parametrize(("algorithm", "data"), sorted(KNOWN))
def test_digest_known_answers(algorithm: initdata.DigestAlgorithm, data: bytes) -> None:
    assert initdata_digest(data.decode(), algorithm).hex() == KNOWN[(algorithm, data)]


@pytest.mark.parametrize(
    ("algorithm", "tool"),
    [("sha256", "sha256sum"), ("sha384", "sha384sum"), ("sha512", "sha512sum")],
)
def test_digest_matches_coreutils(algorithm: initdata.DigestAlgorithm, tool: str) -> None:
    text = render_initdata(KBS, POLICY, algorithm)
    assert initdata_digest(text, algorithm).hex() == _tool_digest(tool, text.encode("utf-8"))


def test_digest_hashes_utf8_bytes() -> None:
    text = "é"
    assert initdata_digest(text, "sha256") == hashlib.sha256("é".encode()).digest()


def test_fit_digest_truncates_pads_and_keeps() -> None:
    d48 = bytes(range(1, 49))
    d32 = bytes(range(1, 33))
    assert fit_digest(d48, 32) == d48[:32]
    assert fit_digest(d32, 48) == d32 + b"\x00" * 16
    assert fit_digest(d48, 48) == d48
    assert fit_digest(d48, None) == d48
    assert fit_digest(d48, 256) == d48 + b"\x00" * 208
    with pytest.raises(ValueError):
        fit_digest(d48, 0)


def test_claims_per_tee_field(document: str) -> None:
    full = _tool_digest("sha384sum", document.encode())
    # TDX MRCONFIGID: 48 bytes, a sha384 digest fits exactly (the seed's `sha384sum` case).
    assert initdata_claim_hex(document, "sha384", 48) == full
    # SNP HOSTDATA: 32 bytes, the sha384 digest keeps its first 32 bytes.
    assert initdata_claim_hex(document, "sha384", 32) == full[:64]
    # No binding field: the digest as computed.
    assert initdata_claim_hex(document, "sha384", None) == full
    # A sha256 digest on TDX gains 16 zero bytes.
    doc256 = render_initdata(KBS, POLICY, "sha256")
    assert (
        initdata_claim_hex(doc256, "sha256", 48)
        == _tool_digest("sha256sum", doc256.encode()) + "00" * 16
    )
    claim = initdata_claim_hex(document, "sha384", 48)
    assert claim == claim.lower()
    assert base64.b64decode(initdata_claim_base64(document, "sha384", 32)).hex() == full[:64]


def test_annotation_round_trip_and_determinism(document: str) -> None:
    value = annotation_value(document)
    assert decode_annotation(value) == document
    assert annotation_value(document) == value
    raw = base64.b64decode(value, validate=True)
    assert raw[:2] == b"\x1f\x8b"  # gzip magic
    assert raw[3] & 0x08 == 0  # FNAME flag clear: no file name in the header
    assert raw[4:8] == b"\x00\x00\x00\x00"  # MTIME 0


def test_annotation_decodes_with_gzip_cli(document: str) -> None:
    raw = subprocess.run(
        ["base64", "-d"], input=annotation_value(document).encode(), capture_output=True, check=True
    ).stdout
    text = subprocess.run(["gzip", "-d", "-c"], input=raw, capture_output=True, check=True).stdout
    assert text == document.encode("utf-8")


def test_decode_annotation_rejects_garbage() -> None:
    with pytest.raises(ValueError, match="base64"):
        decode_annotation("This is not valid base64!")
    with pytest.raises(ValueError, match="gzip"):
        decode_annotation(base64.b64encode(b"raw uncompressed data").decode())


def test_kbs_endpoint_validation() -> None:
    assert KbsEndpoint(url="https://kbs.example.com:8080/").url == "https://kbs.example.com:8080"
    with pytest.raises(ValidationError, match="plain HTTP"):
        KbsEndpoint(url="http://kbs:8080")
    assert KbsEndpoint(url="http://kbs:8080", allow_insecure_http=True).url == "http://kbs:8080"
    with pytest.raises(ValidationError):
        KbsEndpoint(url="ftp://kbs")
    with pytest.raises(ValidationError):
        KbsEndpoint(url='https://kbs"injected')
    with pytest.raises(ValidationError, match="PEM"):
        KbsEndpoint(url="https://kbs", cert_pem="not a certificate")
    crlf = KbsEndpoint(url="https://kbs", cert_pem=CERT.replace("\n", "\r\n"))
    assert crlf.cert_pem == CERT


def test_unsupported_algorithm_rejected() -> None:
    with pytest.raises(ValueError):
        initdata_digest("x", "md5")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        render_initdata_document({}, "sha1")  # type: ignore[arg-type]
