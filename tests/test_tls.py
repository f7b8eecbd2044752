"""The KBS key/certificate generator, checked with an independent X.509 parser (openssl)."""

from __future__ import annotations

import datetime as dt
import subprocess
from typing import Any

import pytest

from components.tls import _SelfSignedProvider, generate, renewal_due


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


# --------------------------------------------------------------------------- renewal

NOW = dt.datetime(2026, 11, 29, 12, 0, tzinfo=dt.UTC)


def cert_issued(hours_ago: int, validity_hours: int) -> str:
    made = generate(
        "x", ["x"], validity_hours, "ecdsa-p256", now=NOW - dt.timedelta(hours=hours_ago)
    )
    return made["cert_pem"]


def props(cert_pem: str | None, early_renewal_hours: int = 24, **changes: Any) -> dict[str, Any]:
    base = {
        "common_name": "x",
        "organization": "",
        "dns_names": ["x"],
        "ip_addresses": [],
        "validity_hours": 48,
        "key_algorithm": "ecdsa-p256",
        "is_ca": False,
        "early_renewal_hours": early_renewal_hours,
        "cert_pem": cert_pem,
    }
    return base | changes


@pytest.mark.parametrize(
    ("hours_ago", "due"),
    [(0, False), (23, False), (24, True), (47, True), (60, True)],
)
def test_renewal_due_inside_the_window(hours_ago: int, due: bool) -> None:
    # 48 h certificate, 24 h window: due from its 24th hour on, and after it expired.
    assert renewal_due(cert_issued(hours_ago, 48), 24, now=NOW) is due


def test_no_window_means_renew_only_once_expired() -> None:
    assert renewal_due(cert_issued(47, 48), 0, now=NOW) is False
    assert renewal_due(cert_issued(48, 48), 0, now=NOW) is True
    assert renewal_due(None, 24, now=NOW) is False


def test_provider_replaces_a_certificate_due_for_renewal() -> None:
    provider = _SelfSignedProvider()
    fresh = generate("x", ["x"], 48, "ecdsa-p256")["cert_pem"]
    stale = generate(
        "x", ["x"], 48, "ecdsa-p256", now=dt.datetime.now(dt.UTC) - dt.timedelta(hours=30)
    )["cert_pem"]
    quiet = provider.diff("id", props(fresh), props(None))
    assert not quiet.changes and not quiet.replaces
    due = provider.diff("id", props(stale), props(None))
    assert due.changes and due.replaces == ["cert_pem"]
    # A new window alone is an in-place update, not a new key.
    window = provider.diff("id", props(fresh), props(None, early_renewal_hours=12))
    assert window.changes and not window.replaces
    # A changed setting replaces, naming that setting.
    renamed = provider.diff("id", props(fresh), props(None, common_name="y"))
    assert renamed.replaces == ["common_name"]


def test_window_update_keeps_the_key_and_certificate() -> None:
    provider = _SelfSignedProvider()
    made = generate("x", ["x"], 48, "ecdsa-p256")
    olds = props(made["cert_pem"]) | made
    news = props(None, early_renewal_hours=12) | {"private_key_pem": None, "public_key_pem": None}
    outs = provider.update("id", olds, news).outs
    assert outs is not None
    assert outs["cert_pem"] == made["cert_pem"]
    assert outs["private_key_pem"] == made["private_key_pem"]
    assert outs["early_renewal_hours"] == 12
