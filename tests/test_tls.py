"""The KBS key/certificate generator, checked with an independent X.509 parser (openssl)."""

from __future__ import annotations

import subprocess

from components.tls import generate


def openssl_text(pem: str) -> str:
    return subprocess.run(
        ["openssl", "x509", "-noout", "-text"],
        input=pem,
        capture_output=True,
        text=True,
        check=True,
    ).stdout


def test_server_certificate_is_a_leaf_with_sans() -> None:
    made = generate(
        "kbs.example.com",
        ["kbs.example.com", "kbs.trustee.svc"],
        48,
        "ecdsa-p256",
        ip_addresses=["10.0.0.7"],
        organization="coco",
    )
    text = openssl_text(made["cert_pem"])
    assert "CA:FALSE" in text
    assert "TLS Web Server Authentication" in text
    assert "DNS:kbs.example.com" in text and "DNS:kbs.trustee.svc" in text
    assert "IP Address:10.0.0.7" in text
    assert "prime256v1" in text or "P-256" in text
    assert made["private_key_pem"].startswith("-----BEGIN PRIVATE KEY-----")


def test_signer_certificate_is_rsa_ca() -> None:
    made = generate("signer", [], 24, "rsa-3072", is_ca=True)
    text = openssl_text(made["cert_pem"])
    assert "CA:TRUE" in text and "Certificate Sign" in text
    assert "3072 bit" in text


def test_each_generation_is_a_new_key() -> None:
    a = generate("x", ["x"], 24, "ed25519")
    b = generate("x", ["x"], 24, "ed25519")
    assert a["private_key_pem"] != b["private_key_pem"]
