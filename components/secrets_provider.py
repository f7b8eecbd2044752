"""Which secrets provider encrypts a stack's secrets, and whether its environment may use it.

Why this exists: `scripts/env.sh` exports the passphrase `coco-local-dev` when none is set, so
that the dev stack (and its committed `demoKey` secret) works out of the box. That passphrase
is written in the repository: a staging or production stack encrypted with it has, in
effect, plain-text secrets in its state and stack file. So a non-dev stack whose secrets
provider is the passphrase provider with that public passphrase is refused, by the program
(`__main__.py`, backstop for every path) and by the Automation API before the engine starts
(`automation validate`, `automation up`), with the command that switches it.

Where the provider is read: a stack file (`Pulumi.<stack>.yaml`, pulumi
sdk/go/common/workspace/project.go `ProjectStack`: `secretsprovider`, `encryptedkey`,
`encryptionsalt`), decided the way the CLI decides it (pkg/cmd/pulumi/stack/secrets.go
`GetSecretsManager`, v3.274.1): a `secretsprovider` other than `passphrase`/`default` is a
key service (awskms://, azurekeyvault://, gcpkms://, hashivault://); else an
`encryptionsalt` means the passphrase provider; else the backend's default, which is the
service provider on Pulumi Cloud and the passphrase provider on a self-managed backend.
The passphrase comes from `PULUMI_CONFIG_PASSPHRASE` or the file
`PULUMI_CONFIG_PASSPHRASE_FILE`, which the engine hands to the program's environment.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from components import yaml_input

PUBLIC_DEV_PASSPHRASE = "coco-local-dev"
"""The passphrase `scripts/env.sh` exports for local dev stacks: public, dev only."""

KMS_SCHEMES = ("awskms://", "azurekeyvault://", "gcpkms://", "hashivault://")
"""Secrets providers backed by a key service (the Go CDK URLs Pulumi accepts)."""

SELF_MANAGED_BACKENDS = ("file://", "s3://", "gs://", "azblob://", "postgres://")
"""Backends without a service secrets provider: no `secretsprovider` there means passphrase."""

ProviderKind = Literal["passphrase", "kms", "service", "unknown"]

SWITCH_HINT = (
    "switch it with `pulumi stack change-secrets-provider --stack {stack} "
    "awskms://alias/<key>?region=<region>` (or azurekeyvault://, gcpkms://, hashivault://, "
    "or `default` on Pulumi Cloud), or, for a self-managed passphrase, export your own "
    "PULUMI_CONFIG_PASSPHRASE(_FILE) and run `pulumi stack change-secrets-provider --stack "
    "{stack} passphrase`; see docs/production.md"
)


@dataclass(frozen=True)
class SecretsProvider:
    """A stack's secrets provider as its stack file records it."""

    kind: ProviderKind
    url: str | None = None


def classify(
    stack_doc: Mapping[str, Any] | None, backend_url: str | None = None
) -> SecretsProvider:
    """The provider a stack file records (`stack_doc` is the parsed file, None if absent)."""
    if stack_doc is None:
        return SecretsProvider("unknown")
    url = stack_doc.get("secretsprovider")
    if isinstance(url, str) and url and url not in ("passphrase", "default"):
        return SecretsProvider("kms" if url.startswith(KMS_SCHEMES) else "unknown", url)
    if stack_doc.get("encryptionsalt") or url == "passphrase":
        return SecretsProvider("passphrase")
    if backend_url and backend_url.startswith(SELF_MANAGED_BACKENDS):
        # A self-managed backend has no service provider: this stack will get (or has not yet
        # written) a passphrase salt.
        return SecretsProvider("passphrase")
    if backend_url:
        return SecretsProvider("service")
    return SecretsProvider("unknown")


def passphrase_from_env(environ: Mapping[str, str]) -> str | None:
    """The passphrase the engine would use, from the environment (None when none is set)."""
    value = environ.get("PULUMI_CONFIG_PASSPHRASE")
    if value:
        return value
    path = environ.get("PULUMI_CONFIG_PASSPHRASE_FILE")
    if path:
        try:
            return Path(path).expanduser().read_text(encoding="utf-8")
        except OSError:
            return None
    return None


def is_public(passphrase: str | None) -> bool:
    """True for the public dev passphrase (a file holding it with a trailing newline too)."""
    return passphrase is not None and passphrase.strip() == PUBLIC_DEV_PASSPHRASE


def problem(
    environment: str, stack: str, provider: SecretsProvider, passphrase: str | None
) -> str | None:
    """Why `environment` may not use this provider and passphrase, with the fix; None if it may.

    Only dev stacks may use the public passphrase. A KMS/Vault provider, the Pulumi Cloud's,
    or a passphrase of the user's own are accepted (docs/production.md recommends KMS).
    """
    if environment == "dev":
        return None
    if provider.kind == "passphrase" and is_public(passphrase):
        return (
            f"{environment} stack {stack!r} encrypts its secrets with the passphrase provider "
            f"and the public development passphrase {PUBLIC_DEV_PASSPHRASE!r} (scripts/env.sh "
            "sets it for dev stacks only; it is written in the repository): "
            + SWITCH_HINT.format(stack=stack)
        )
    return None


def stack_file_of(root: Path, stack: str) -> Path:
    """The stack file of `stack` in the project at `root` (honours `stackConfigDir`)."""
    config_dir = root
    project = root / "Pulumi.yaml"
    if project.exists():
        doc = yaml_input.read_file(project) or {}
        if isinstance(doc, dict) and isinstance(doc.get("stackConfigDir"), str):
            config_dir = root / doc["stackConfigDir"]
    return config_dir / f"Pulumi.{stack}.yaml"


def read_stack_doc(path: Path) -> dict[str, Any] | None:
    """The parsed stack file, None when it does not exist or is not a mapping.

    Read through the input boundary (`components.yaml_input`): a hostile file is an
    `InputError` (a `ValueError`), not a hang."""
    try:
        doc = yaml_input.read_file(path)
    except FileNotFoundError:
        return None
    return doc if isinstance(doc, dict) else None


def check_running_stack(environment: str) -> str | None:
    """For the Pulumi program: the refusal for the stack being deployed, if any.

    The engine gives the program its project root (`pulumi.get_root_directory()`, where the
    stack files are) and the environment the CLI runs with (passphrase, backend URL).
    """
    import pulumi

    if environment == "dev":
        return None
    stack = pulumi.get_stack()
    root = Path(pulumi.get_root_directory() or os.getcwd())
    passphrase = passphrase_from_env(os.environ)
    try:
        doc = read_stack_doc(stack_file_of(root, stack))
    except ValueError:  # a hostile stack file: the engine's own reader decides about it
        doc = None
    provider = classify(doc, os.environ.get("PULUMI_BACKEND_URL"))
    why = problem(environment, stack, provider, passphrase)
    if why is None and is_public(passphrase):
        # The program cannot see which config file (`pulumi up --config-file`) or backend the
        # engine reads, so a stack file that names a key service proves nothing: outside
        # dev, the public passphrase never reaches the engine at all.
        why = engine_env_problem(environment, stack)
    return why


def engine_env_problem(environment: str, stack: str) -> str:
    """Why a non-dev engine may not run with the public passphrase in its environment."""
    return (
        f"{environment} stack {stack!r} runs with the public development passphrase "
        f"{PUBLIC_DEV_PASSPHRASE!r} in the engine's environment (scripts/env.sh exports it for "
        "dev stacks). Whatever the stack file says, the engine may be reading another config "
        "file or backend, so it is refused outside dev: `unset PULUMI_CONFIG_PASSPHRASE` (a "
        "key-service stack needs none; `scripts/up.sh` and `python -m automation` drop it for "
        "you), or export a passphrase of your own; see docs/operations.md"
    )
