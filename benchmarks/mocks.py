"""The mocks both sides of the evaluation benchmark run under.

One class for the program and the baseline, so the engine-side cost each registration pays
(deserialising inputs, answering with state) is identical and the ratio isolates what the
program does itself. It echoes inputs as state and invents the few outputs the program reads
back (TLS key and certificate PEMs, from pulumi-tls or the cryptography dynamic provider).
Recording is off in timed runs: keeping every input alive would add memory that neither a
real preview nor the baseline has.
"""

from __future__ import annotations

import base64
import hashlib
import json
import textwrap
from dataclasses import dataclass
from typing import Any

import pulumi
from pulumi.runtime import rpc

_TLS_PRIVATE_KEY = "tls:index/privateKey:PrivateKey"
_TLS_SELF_SIGNED_CERT = "tls:index/selfSignedCert:SelfSignedCert"
_DYNAMIC_PREFIX = "pulumi-python:dynamic"
_DYNAMIC_PROVIDER_KEY = "__provider"


def fake_pem(label: str, seed: str) -> str:
    """A PEM-shaped block derived from `seed`: stable, so runs register identical inputs."""
    body = base64.b64encode(hashlib.sha512(seed.encode()).digest() * 2).decode()
    return (
        f"-----BEGIN {label}-----\n"
        + "\n".join(textwrap.wrap(body, 64))
        + f"\n-----END {label}-----\n"
    )


SEALED_SECRET_SIGNER = "sealed-secret-signer"
"""components/stack.py's ES256 key signs sealed secrets while the program runs: it must be a
real P-256 key (derived from the name, so runs stay identical)."""


def p256_from_seed(seed: str) -> tuple[str, str]:
    """(private PKCS#8 PEM, public PEM) of a P-256 key derived from `seed`."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    scalar = int.from_bytes(hashlib.sha256(seed.encode()).digest(), "big") % (2**255) + 1
    key = ec.derive_private_key(scalar, ec.SECP256R1())
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private, public


@dataclass(frozen=True)
class Registration:
    """One custom resource as the engine saw it (inputs with secret wrappers left in)."""

    type: str
    name: str
    inputs: dict[str, Any]


class BenchMocks(pulumi.runtime.Mocks):
    """Echo mocks; with `record=True` they also keep every custom resource's inputs."""

    def __init__(self, record: bool = False) -> None:
        self.record = record
        self.registrations: list[Registration] = []
        self.charts: list[dict[str, Any]] = []
        """Options of each `kubernetes:helm:template` invoke (a rendered `helm.v3.Chart`)."""
        self.count = 0
        self.components = 0

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str | None, dict]:  # type: ignore[type-arg]
        if not args.custom:
            self.components += 1
            return None, {}
        self.count += 1
        state = dict(args.inputs)
        if self.record:
            self.registrations.append(Registration(args.typ, args.name, dict(args.inputs)))
        if args.typ == _TLS_PRIVATE_KEY:
            state["private_key_pem"] = rpc.wrap_rpc_secret(fake_pem("PRIVATE KEY", args.name))
            state["public_key_pem"] = fake_pem("PUBLIC KEY", "pub:" + args.name)
        elif args.typ == _TLS_SELF_SIGNED_CERT:
            state["cert_pem"] = fake_pem("CERTIFICATE", "cert:" + args.name)
        elif args.typ.startswith(_DYNAMIC_PREFIX) and "key_algorithm" in state:
            # components.tls.SelfSignedTls: the key and certificate its provider would make.
            state.pop(_DYNAMIC_PROVIDER_KEY, None)
            state["private_key_pem"] = rpc.wrap_rpc_secret(fake_pem("PRIVATE KEY", args.name))
            state["public_key_pem"] = fake_pem("PUBLIC KEY", "pub:" + args.name)
            state["cert_pem"] = fake_pem("CERTIFICATE", "cert:" + args.name)
            if args.name == SEALED_SECRET_SIGNER:
                private, public = p256_from_seed(args.name)
                state["private_key_pem"] = rpc.wrap_rpc_secret(private)
                state["public_key_pem"] = public
        return f"{args.name}-id", state

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict, list[tuple[str, str]] | None]:  # type: ignore[type-arg]
        if args.token == "kubernetes:helm:template":
            # No objects under mocks (no Helm here); the engine benchmark's baseline renders
            # the same chart for real (baseline.py `CHART_TYPE`).
            if self.record:
                self.charts.append(json.loads(args.args["jsonOpts"]))
            return {"result": []}, []
        return dict(args.args), None
