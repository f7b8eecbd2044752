"""Key pairs and a self-signed certificate for the KBS, as Pulumi dynamic resources.

Why not pulumi-tls: its provider plugin cannot be obtained on the machines this project
must run on (the registries we can reach do not serve any `pulumi-tls` provider module), and
a program that needs a plugin nobody can install is not deployable. The keys are made with
`cryptography` inside a dynamic provider, which runs through the Python language host the
project already needs. The resource generates its key once, at create time, and keeps it in
state as a Pulumi secret; later `pulumi up` runs see equal inputs and change nothing, so the
KBS certificate (and so every workload's init-data digest) is stable until its settings
change, or until it enters its renewal window (`early_renewal_hours` before it expires, as
pulumi-tls's `early_renewal_hours`): from then on `pulumi preview` shows a replacement and
`pulumi up` issues a new key and certificate, instead of letting guests meet an expired one.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
from typing import Any, Literal

import pulumi
from pulumi.dynamic import CreateResult, DiffResult, ResourceProvider, UpdateResult

_INPUT_KEYS = (
    "common_name",
    "organization",
    "dns_names",
    "ip_addresses",
    "validity_hours",
    "key_algorithm",
    "is_ca",
)
_GENERATED_KEYS = ("private_key_pem", "public_key_pem", "cert_pem")
KeyAlgorithm = Literal["ecdsa-p256", "rsa-3072", "ed25519"]


def generate(
    common_name: str,
    dns_names: list[str],
    validity_hours: int,
    key_algorithm: str,
    *,
    ip_addresses: list[str] | None = None,
    organization: str | None = None,
    is_ca: bool = False,
    now: dt.datetime | None = None,
) -> dict[str, str]:
    """A fresh key and a self-signed certificate for it, as PEM strings.

    A server certificate is a leaf (not a CA): the guest pins it directly and rustls refuses a
    CA certificate used as the server's own. A signer certificate (`is_ca`) may sign tokens.
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    key: ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey
    algorithm: hashes.SHA256 | None = hashes.SHA256()
    if key_algorithm == "ecdsa-p256":
        key = ec.generate_private_key(ec.SECP256R1())
    elif key_algorithm == "rsa-3072":
        key = rsa.generate_private_key(public_exponent=65537, key_size=3072)
    elif key_algorithm == "ed25519":
        key = ed25519.Ed25519PrivateKey.generate()
        algorithm = None
    else:
        raise ValueError(f"unsupported key algorithm {key_algorithm!r}")
    start = (now or dt.datetime.now(dt.UTC)).replace(microsecond=0)
    sans: list[x509.GeneralName] = [x509.DNSName(n) for n in dns_names]
    sans += [x509.IPAddress(ipaddress.ip_address(a)) for a in ip_addresses or []]
    attributes = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if organization:
        attributes.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    subject = x509.Name(attributes)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + dt.timedelta(hours=validity_hours))
        .add_extension(x509.BasicConstraints(ca=is_ca, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=key_algorithm == "rsa-3072" and not is_ca,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=is_ca,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
    )
    if not is_ca:
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
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


def renewal_due(
    cert_pem: str | None, early_renewal_hours: int, now: dt.datetime | None = None
) -> bool:
    """True once `now` is within `early_renewal_hours` of the certificate's expiry."""
    if not cert_pem:
        return False
    from cryptography import x509

    not_after = x509.load_pem_x509_certificate(cert_pem.encode()).not_valid_after_utc
    moment = now or dt.datetime.now(dt.UTC)
    return moment >= not_after - dt.timedelta(hours=early_renewal_hours)


class _SelfSignedProvider(ResourceProvider):
    """Creates once; replaces when the certificate's own settings change or it is due for
    renewal. Changing only the renewal window updates state in place."""

    def create(self, props: dict[str, Any]) -> CreateResult:
        made = generate(
            props["common_name"],
            list(props["dns_names"]),
            int(props["validity_hours"]),
            props["key_algorithm"],
            ip_addresses=list(props["ip_addresses"]),
            organization=props["organization"] or None,
            is_ca=bool(props["is_ca"]),
        )
        ident = hashlib.sha256(made["public_key_pem"].encode()).hexdigest()[:16]
        return CreateResult(id_=ident, outs={**props, **made})

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        changed = [k for k in _INPUT_KEYS if olds.get(k) != news.get(k)]
        if not changed and renewal_due(
            olds.get("cert_pem"), int(news.get("early_renewal_hours") or 0)
        ):
            changed = ["cert_pem"]
        window_changed = olds.get("early_renewal_hours") != news.get("early_renewal_hours")
        return DiffResult(
            changes=bool(changed) or window_changed,
            replaces=changed,
            delete_before_replace=False,
            stables=[],
        )

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        """Only the renewal window changes in place: the key and certificate made at create
        stay, whatever the new inputs hold for them (the resource declares them as empty
        placeholders)."""
        settings = {k: v for k, v in news.items() if k not in _GENERATED_KEYS}
        return UpdateResult(outs={**olds, **settings})


class SelfSignedTls(pulumi.dynamic.Resource):
    """A private key (kept as a Pulumi secret) and a self-signed certificate for it."""

    private_key_pem: pulumi.Output[str]
    public_key_pem: pulumi.Output[str]
    cert_pem: pulumi.Output[str]

    def __init__(
        self,
        name: str,
        common_name: str,
        validity_hours: int,
        dns_names: list[str] | None = None,
        ip_addresses: list[str] | None = None,
        key_algorithm: KeyAlgorithm = "ecdsa-p256",
        organization: str = "",
        is_ca: bool = False,
        early_renewal_hours: int = 0,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        secret = pulumi.ResourceOptions(additional_secret_outputs=["private_key_pem"])
        super().__init__(
            _SelfSignedProvider(),
            name,
            {
                "common_name": common_name,
                "organization": organization,
                "dns_names": sorted(set(dns_names or [])),
                "ip_addresses": sorted(set(ip_addresses or [])),
                "validity_hours": validity_hours,
                "key_algorithm": key_algorithm,
                "is_ca": is_ca,
                "early_renewal_hours": early_renewal_hours,
                **dict.fromkeys(_GENERATED_KEYS),
            },
            pulumi.ResourceOptions.merge(opts, secret),
        )
