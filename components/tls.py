"""Key pairs and a self-signed certificate for the KBS, as Pulumi dynamic resources.

Why not pulumi-tls: its provider plugin cannot be obtained on the machines this project
must run on (the registries we can reach do not serve any `pulumi-tls` provider module), and
a program that needs a plugin nobody can install is not deployable. The keys are made with
`cryptography` inside a dynamic provider, which runs through the Python language host the
project already needs. The resource generates its key once, at create time, and keeps it in
state as a Pulumi secret; later `pulumi up` runs see equal inputs and change nothing, so the
KBS certificate (and so every workload's init-data digest) is stable until its settings
change.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
from typing import Any

import pulumi
from pulumi.dynamic import CreateResult, DiffResult, ResourceProvider, UpdateResult

_INPUT_KEYS = ("common_name", "dns_names", "validity_hours", "key_algorithm")


def generate(
    common_name: str,
    dns_names: list[str],
    validity_hours: int,
    key_algorithm: str,
    now: dt.datetime | None = None,
) -> dict[str, str]:
    """A fresh key and a self-signed server certificate for it, as PEM strings."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    key: ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey
    algorithm: hashes.SHA256 | None
    if key_algorithm == "ecdsa-p256":
        key = ec.generate_private_key(ec.SECP256R1())
        algorithm = hashes.SHA256()
    elif key_algorithm == "ed25519":
        key = ed25519.Ed25519PrivateKey.generate()
        algorithm = None
    else:
        raise ValueError(f"unsupported key algorithm {key_algorithm!r}")
    start = (now or dt.datetime.now(dt.UTC)).replace(microsecond=0)
    sans: list[x509.GeneralName] = []
    for name in dns_names:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            sans.append(x509.DNSName(name))
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + dt.timedelta(hours=validity_hours))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    cert = builder.sign(key, algorithm)
    private_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    public_pem = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    cert_pem = cert.public_bytes(serialization.Encoding.PEM).decode()
    return {"private_key_pem": private_pem, "public_key_pem": public_pem, "cert_pem": cert_pem}


class _SelfSignedProvider(ResourceProvider):
    """Creates once; replaces only when the certificate's own settings change."""

    def create(self, props: dict[str, Any]) -> CreateResult:
        made = generate(
            props["common_name"],
            list(props["dns_names"]),
            int(props["validity_hours"]),
            props["key_algorithm"],
        )
        ident = hashlib.sha256(made["public_key_pem"].encode()).hexdigest()[:16]
        return CreateResult(id_=ident, outs={**props, **made})

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        changed = [k for k in _INPUT_KEYS if olds.get(k) != news.get(k)]
        return DiffResult(
            changes=bool(changed), replaces=changed, delete_before_replace=False, stables=[]
        )

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        return UpdateResult(outs={**olds, **news})


class SelfSignedTls(pulumi.dynamic.Resource):
    """A private key (kept as a Pulumi secret) and a self-signed certificate for it."""

    private_key_pem: pulumi.Output[str]
    public_key_pem: pulumi.Output[str]
    cert_pem: pulumi.Output[str]

    def __init__(
        self,
        name: str,
        common_name: str,
        dns_names: list[str],
        validity_hours: int,
        key_algorithm: str = "ecdsa-p256",
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        secret = pulumi.ResourceOptions(additional_secret_outputs=["private_key_pem"])
        super().__init__(
            _SelfSignedProvider(),
            name,
            {
                "common_name": common_name,
                "dns_names": sorted(set(dns_names)),
                "validity_hours": validity_hours,
                "key_algorithm": key_algorithm,
                "private_key_pem": None,
                "public_key_pem": None,
                "cert_pem": None,
            },
            pulumi.ResourceOptions.merge(opts, secret),
        )
