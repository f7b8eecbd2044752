"""Builders the tests share: a stack's config set for the program under mocks, the program's
exports resolved, the settings' refusals, an engine backend on a private passphrase, and the
topology tests' mocks, scans and keys.

One place, so that the tests of the topologies (test_zones.py, test_external_trustee.py,
test_layers.py), their engine tiers (test_e2e_zones.py, test_e2e_external_trustee.py) and the
KBS judge's admin tier (conformance/test_kbs_admin.py) run the program the same way: a change
in how a stack's config reaches the program (secret references, the `coco:` namespace) is
made once.
"""

from __future__ import annotations

import base64
import datetime
import gzip
import json
import shutil
import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pulumi
import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from mocks import CloudMocks, Recorded, resolve

from automation import Backend
from automation.spec import PROJECT_DIR
from components.layers import build_stack
from components.settings import (
    SettingsError,
    full_key,
    load,
    parse,
    secret_refs,
    strip_namespace,
)

KBS_IMAGE = "registry.example.com/key-broker-service@sha256:" + "cd" * 32
PINNED = "registry.example.com/app@sha256:" + "ab" * 32


def production_tdx_stack(**trustee: Any) -> dict[str, Any]:
    """A production TDX stack that parses: the Trustee in a trusted zone, its KBS image pinned,
    one resource read by the one workload, a complete TDX set of reference values
    (components/reference_coverage.py: production refuses less); `trustee` keys on top (how
    the KBS is exposed)."""
    return {
        "environment": "production",
        "cluster": {"kind": "baremetal", "tee": "tdx"},
        "topology": {"kind": "trusted-zone", "trusteeCluster": {"context": "trust"}},
        "trustee": {
            "image": KBS_IMAGE,
            **trustee,
            "resources": [{"path": "default/key/1", "valueFrom": "appKey", "readers": ["app"]}],
            "referenceValues": {
                "mr_td": ["aa" * 48],
                "rtmr_1": ["bb" * 48],
                "rtmr_2": ["cc" * 48],
                "xfam": ["e702060000000000"],
            },
        },
        "workloads": [{"name": "app", "containers": [{"name": "app", "image": PINNED}]}],
    }


def set_stack_config(
    config: Mapping[str, Any],
    secrets: Mapping[str, str] | None = None,
    secret_format: str = "test-secret-{}-value",
) -> dict[str, str]:
    """Give the program under mocks a stack file's `config:` (`coco:` keys), with a secret
    value for every key its settings reference (`secret_format` of the key, or `secrets`);
    the secret values, by full key."""
    settings = parse(strip_namespace(config))
    values = {full_key(ref): secret_format.format(ref) for _, ref in secret_refs(settings)}
    values.update(secrets or {})
    plain = {k: v if isinstance(v, str) else json.dumps(v) for k, v in config.items()}
    pulumi.runtime.set_all_config(plain | values, secret_keys=list(values))
    return values


def exports_of(program: Callable[[], object]) -> tuple[dict[str, Any], dict[str, bool]]:
    """Run `program` under the mocks already set, keeping what it `pulumi.export`s; the
    exports' resolved values and secretness. The stack config is cleared afterwards."""
    exported: dict[str, Any] = {}
    original = pulumi.export

    def build() -> dict[str, Any]:
        pulumi.export = lambda name, value: exported.__setitem__(name, value)  # type: ignore[assignment]
        try:
            program()
        finally:
            pulumi.export = original
        return exported

    try:
        return resolve(build)
    finally:
        pulumi.runtime.set_all_config({})


def settings_error(data: dict[str, Any], **kw: Any) -> SettingsError:
    """The `SettingsError` parsing `data` raises (the test fails when it parses)."""
    with pytest.raises(SettingsError) as exc:
        parse(data, **kw)
    return exc.value


def private_backend(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, passphrase: str) -> Backend:
    """A local file backend whose stacks use a private passphrase (a production stack never
    runs on the public dev one), failing when the pulumi CLI is not set up."""
    if shutil.which("pulumi") is None:
        pytest.fail(
            "the pulumi CLI is not on PATH: run `bash scripts/setup.sh; source scripts/env.sh`"
        )
    monkeypatch.delenv("PULUMI_CONFIG_PASSPHRASE_FILE", raising=False)
    monkeypatch.setenv("PULUMI_CONFIG_PASSPHRASE", passphrase)
    return Backend.local(tmp_path / "state")


def problems_by_key(data: dict[str, Any]) -> dict[str, str]:
    """key -> message of every problem the settings report."""
    found: dict[str, str] = {}
    for p in settings_error(data).problems:
        found[p.key] = f"{found[p.key]} | {p.message}" if p.key in found else p.message
    return found


# --------------------------------------------------------------------------- running stacks

STACK_REFERENCE = "pulumi:pulumi:StackReference"
INITDATA_ANNOTATION = "io.katacontainers.config.hypervisor.cc_init_data"


class ZoneMocks(CloudMocks):
    """Records each resource's provider, and answers StackReferences with given outputs."""

    def __init__(self, references: dict[str, dict[str, Any]]) -> None:
        super().__init__()
        self.references = references
        self.providers: dict[str, str] = {}

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str | None, dict]:  # type: ignore[type-arg]
        if args.typ == STACK_REFERENCE:
            outputs = self.references[str(args.resource_id)]
            return args.resource_id, {"name": args.resource_id, "outputs": outputs}
        rid, state = super().new_resource(args)
        self.providers[f"{args.typ}::{args.name}"] = args.provider or ""
        return rid, state

    def provider_of(self, r: Recorded) -> str:
        """`k8s` or `k8s-trustee`: the name of the provider the resource was created with."""
        ref = self.providers[f"{r.type}::{r.name}"]
        return ref.split("::")[3] if ref else ""


def stack_config(path: Path) -> dict[str, Any]:
    config: dict[str, Any] = dict(yaml.safe_load(path.read_text())["config"])
    return config


def run_stack(
    config: dict[str, Any], stack: str, references: dict[str, dict[str, Any]]
) -> tuple[ZoneMocks, dict[str, Any], dict[str, str]]:
    """Run the program under mocks; the mocks, its exported outputs (resolved), and the
    secret config values it was given."""
    mocks = ZoneMocks(references)
    pulumi.runtime.set_mocks(mocks, project="coco", stack=stack, preview=False)
    secrets = set_stack_config(config)
    outputs, _ = exports_of(lambda: build_stack(load()))
    return mocks, outputs, secrets


def initdata_of(r: Recorded) -> dict[str, Any]:
    annotations = r.inputs["spec"]["template"]["metadata"]["annotations"]
    text = gzip.decompress(base64.b64decode(annotations[INITDATA_ANNOTATION])).decode()
    return tomllib.loads(text)


def guarded(config: dict[str, Any], secrets: dict[str, str]) -> list[str]:
    """The strings whose presence on the untrusted side would leak what the Trustee guards:
    secret values, private keys, the policies' packages, every reference value."""
    found = [*list(secrets.values()), "PRIVATE KEY", "package policy", "authorization_mode"]
    trustee = config.get("coco:trustee") or {}
    for values in (trustee.get("referenceValues") or {}).values():
        found += [str(v) for v in (values if isinstance(values, list) else [values])]
    return found


def scan(objects: list[Recorded], outputs: dict[str, Any], needles: list[str]) -> list[str]:
    """Every (object or output, needle) where a guarded string shows up."""
    leaks = []
    for r in objects:
        text = json.dumps(r.inputs, sort_keys=True)
        leaks += [f"{r.type}::{r.name}: {n[:24]}" for n in needles if n in text]
        labels = r.metadata.get("labels") or {}
        role = labels.get("coco.confidentialcontainers.org/role", "")
        if role.startswith(("kbs", "resource-policy", "attestation-policy", "reference-values")):
            leaks.append(f"{r.type}::{r.name}: Trustee object (role {role})")
    text = json.dumps(outputs, sort_keys=True, default=str)
    leaks += [f"outputs: {n[:24]}" for n in needles if n in text]
    return leaks


# --------------------------------------------------------------------------- an external Trustee

ADMIN_KEY = (
    ec.generate_private_key(ec.SECP256R1())
    .private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    .decode()
)
"""A real admin key (the program checks it parses), generated once per test session."""


def run_external(
    config: dict[str, Any], stack: str, admin_key: str = ADMIN_KEY
) -> tuple[ZoneMocks, dict[str, Any], dict[str, str]]:
    """Run the program under mocks (as `run_stack`), the admin key config
    value `admin_key`; the mocks, its exported outputs (resolved), and the secret values."""
    mocks = ZoneMocks({})
    pulumi.runtime.set_mocks(mocks, project="coco", stack=stack, preview=False)
    ext = parse(strip_namespace(config)).trustee_topology.external
    assert ext is not None
    secrets = set_stack_config(config, {full_key(ext.admin_key_from): admin_key})
    outputs, _ = exports_of(lambda: build_stack(load()))
    return mocks, outputs, secrets


def localhost_certificate() -> tuple[str, str]:
    """A self-signed certificate for `localhost` (PEM) and its key (PEM), valid for an hour."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    return cert.public_bytes(serialization.Encoding.PEM).decode(), key_pem


def private_key_pem(key: Any) -> str:
    """A private key as unencrypted PKCS#8 PEM."""
    text: str = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    return text


def run_cli(
    command: str,
    stack_file: Path,
    state: Path,
    *,
    secrets: Mapping[str, str] | None = None,
    out: Path | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float = 900,
) -> tuple[int, str]:
    """`python -m automation COMMAND --stack-file FILE` as a user runs it, on a private file
    backend at `state`: (exit code, "exit N" + stdout + stderr). Never a traceback, whatever
    the outcome (a refusal is a message)."""
    import os
    import subprocess
    import sys

    if shutil.which("pulumi") is None:
        pytest.fail("the Pulumi engine is missing: run `bash scripts/setup.sh`", pytrace=False)
    argv = [sys.executable, "-m", "automation", command, "--stack-file", str(stack_file)]
    argv += [f"--secret={k}={v}" for k, v in (secrets or {}).items()]
    if out is not None:
        argv += ["--out", str(out)]
    done = subprocess.run(
        argv,
        cwd=PROJECT_DIR,
        env={**os.environ, **(env or {}), "PULUMI_BACKEND_URL": f"file://{state}"},
        capture_output=True,
        text=True,
        check=False,
        timeout=timeout,
    )
    text = f"exit {done.returncode}\n{done.stdout}{done.stderr}"
    assert "Traceback" not in text, text[-4000:]
    return done.returncode, text


WEBAPP_CHART = PROJECT_DIR / "tests" / "fixtures" / "charts" / "webapp"
"""A small Helm chart (a Deployment whose env reads a Secret): the charts tiers' fixture."""

_WEBAPP_SECRET_TEMPLATE = """\
apiVersion: v1
kind: Secret
metadata:
  name: {{ include "webapp.fullname" . }}-db
stringData:
  password: {{ .Values.dbPassword | quote }}
"""


def webapp_chart_with_secret(tmp: Path) -> Path:
    """A copy of the webapp chart under `tmp` that also ships a plaintext Secret (its
    `dbPassword` value), as many public charts do: what a non-dev render must not write out,
    and what `sealedSecrets` serves from the KBS instead."""
    chart = tmp / "webapp"
    shutil.copytree(WEBAPP_CHART, chart)
    (chart / "templates" / "secret.yaml").write_text(_WEBAPP_SECRET_TEMPLATE)
    return chart
