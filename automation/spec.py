"""What a caller hands the API: a stack (`StackSpec`) and where its state lives (`Backend`).

A stack is described by the same typed settings the program reads (`StackSettings`), never
by YAML text, so an embedding program gets editor completion and validation instead of a
string template; `StackSpec.from_file` is the bridge for the stack files in `stacks/`.
Secret values travel beside the settings (config key -> value) as `SecretStr`, so they are
masked in reprs and logs and only ever reach the engine as Pulumi secrets.

Validation happens here, before any engine process starts: a wrong stack costs a
`SettingsError` listing every problem by config key, not a half-run deployment.
"""

from __future__ import annotations

import json
import os
import re
import secrets as _random
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from automation.config import settings_to_config
from automation.errors import SecretsProviderError, StackFileError
from components import secrets_provider as sp
from components import yaml_input
from components.secrets_provider import is_public, passphrase_from_env, read_stack_doc
from components.settings import (
    NAMESPACE,
    TOP_LEVEL_KEYS,
    Problem,
    SettingsError,
    StackSettings,
    full_key,
    parse,
    strip_namespace,
)

PROJECT_DIR = Path(__file__).resolve().parent.parent
"""The Pulumi project (the repo root): its `__main__.py` is the program every stack runs."""

STACKS_DIR = PROJECT_DIR / "stacks"
DEFAULT_STATE_DIR = PROJECT_DIR / ".state"

_STACK_NAME = re.compile(r"\A[A-Za-z0-9_.-]{1,100}\Z")
_CONFIG_KEY = re.compile(r"\A[^\s:]{1,200}(:\S{1,200})?\Z")
"""A stack file's config key: `name` or `namespace:name` (pulumi sdk config.ParseKey), no
whitespace, bounded."""
_SETTINGS_KEYS = frozenset(f"{NAMESPACE}:{k}" for k in TOP_LEVEL_KEYS)
ENCRYPTION_KEYS = ("secretsprovider", "encryptedkey", "encryptionsalt")
"""Stack-file keys that hold the secrets provider's state (not config)."""


def stack_file_path(name: str) -> Path:
    """Where the repo keeps the stack file of stack `name`."""
    return STACKS_DIR / f"Pulumi.{name}.yaml"


@dataclass(frozen=True)
class StackFile:
    """A parsed `Pulumi.<stack>.yaml`: its config and its secrets-provider state."""

    path: Path
    name: str
    config: Mapping[str, Any]
    encryption: Mapping[str, str] = field(default_factory=dict)

    @property
    def secure_keys(self) -> frozenset[str]:
        """Config keys the file holds as Pulumi secrets (`{secure: ...}` values)."""
        return frozenset(
            k for k, v in self.config.items() if isinstance(v, Mapping) and "secure" in v
        )

    @property
    def passthrough(self) -> dict[str, Any]:
        """Config entries that are not coco settings (secrets, provider config): kept as is."""
        return {k: v for k, v in self.config.items() if k not in _SETTINGS_KEYS}


def load_stack_file(path: str | os.PathLike[str], name: str | None = None) -> StackFile:
    """Read a stack file; the stack name defaults to the `<name>` of `Pulumi.<name>.yaml`.

    Read through the input boundary (`components.yaml_input`): size, encoding, nesting,
    aliases, duplicate and non-string keys and out-of-range values are `StackFileError`s
    naming the file and key, never a traceback.
    """
    p = Path(path)
    if name is None:
        match = re.fullmatch(r"Pulumi\.(.+)\.ya?ml", p.name)
        if not match:
            raise StackFileError(
                f"{yaml_input.clip(str(p), 200)}: cannot tell the stack name from the file "
                "name; name it Pulumi.<stack>.yaml or pass the stack name"
            )
        name = match.group(1)
    if not _STACK_NAME.match(name):
        raise StackFileError(
            f"{yaml_input.clip(str(p), 200)}: {yaml_input.show(name)} is not a stack name: use "
            "letters, digits, '-', '_' or '.' (max 100); rename the file or pass --stack"
        )
    try:
        data = yaml_input.read_file(p, limits=yaml_input.STACK_FILE)
    except FileNotFoundError:
        raise StackFileError(f"{yaml_input.clip(str(p), 200)}: stack file not found") from None
    except (yaml_input.InputError, OSError, ValueError) as err:
        raise StackFileError(yaml_input.clip(str(err), 600)) from None
    data = data or {}
    if not isinstance(data, dict):
        raise StackFileError(f"{p}: a stack file is a mapping with a `config:` key")
    config = data.get("config") or {}
    if not isinstance(config, dict):
        raise StackFileError(f"{p}: `config:` must be a mapping of `namespace:key` to values")
    for key in config:
        if not _CONFIG_KEY.match(key):
            raise StackFileError(
                f"{p}: config key {yaml_input.show(key)} is not a Pulumi config key: write "
                "`namespace:name`, e.g. coco:cluster, or a bare name such as demoKey"
            )
    encryption = {k: str(data[k]) for k in ENCRYPTION_KEYS if data.get(k)}
    return StackFile(path=p, name=name, config=config, encryption=encryption)


class StackSpec(BaseModel):
    """One stack to operate on: its name, its settings and the secret config values it needs.

    `secrets` maps config keys (`demoKey` or `coco:demoKey`) to values; every `...From`
    reference in the settings must name one of them (or a secure value of `stack_file`).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(description="Pulumi stack name, e.g. dev or prod-eu-1.")
    settings: StackSettings
    secrets: dict[str, SecretStr] = Field(default_factory=dict)
    stack_file: Path | None = Field(
        default=None,
        description=(
            "Stack file the spec came from: its secure values and encryption salt are carried "
            "into the stack's workspace so secrets set with `pulumi config set --secret` work."
        ),
    )
    file_secret_keys: frozenset[str] = Field(
        default=frozenset(), description="Config keys `stack_file` holds as secrets."
    )

    @field_validator("name")
    @classmethod
    def _stack_name(cls, v: str) -> str:
        if not _STACK_NAME.match(v):
            raise ValueError(
                f"{v!r} is not a stack name: use letters, digits, '-', '_' or '.' (max 100)"
            )
        return v

    @field_validator("secrets", mode="before")
    @classmethod
    def _secret_keys(cls, v: Any) -> Any:
        if not isinstance(v, Mapping):
            return v
        out = {}
        for key, value in v.items():
            full = full_key(str(key))
            if full in _SETTINGS_KEYS:
                raise ValueError(f"{full!r} is a settings key, not a secret value")
            out[full] = value
        return out

    @property
    def secret_keys(self) -> frozenset[str]:
        """Every config key the stack will hold as a secret."""
        return frozenset(self.secrets) | self.file_secret_keys

    @classmethod
    def from_file(
        cls,
        path: str | os.PathLike[str],
        *,
        name: str | None = None,
        secrets: Mapping[str, str | SecretStr] | None = None,
    ) -> StackSpec:
        """A validated spec from a stack file (`stacks/Pulumi.<name>.yaml`).

        Raises `StackFileError` for an unreadable file and `SettingsError` (every problem,
        by config key) for invalid settings. Secure values in the file count as secrets.
        """
        sf = load_stack_file(path, name)
        secret_values = {full_key(k): v for k, v in (secrets or {}).items()}
        secret_keys = sf.secure_keys | frozenset(secret_values)
        settings = parse(
            strip_namespace(sf.config), is_secret=lambda k: k in secret_keys, stack=sf.name
        )
        return cls(
            name=sf.name,
            settings=settings,
            secrets=secret_values,
            stack_file=sf.path.resolve(),
            file_secret_keys=sf.secure_keys,
        )

    @classmethod
    def from_stack(
        cls, name: str, *, secrets: Mapping[str, str | SecretStr] | None = None
    ) -> StackSpec:
        """The spec of the repo's stack `name` (`stacks/Pulumi.<name>.yaml`)."""
        return cls.from_file(stack_file_path(name), name=name, secrets=secrets)


def validate(spec: StackSpec) -> StackSettings:
    """Run the full settings validation (cross-checks, secret references) on `spec`.

    Works on the exact config the engine will receive (the settings as dumped for Pulumi
    config), so it also proves that dump round-trips: what is validated is what is deployed.
    """
    settings = parse(
        settings_to_config(spec.settings),
        is_secret=lambda k: k in spec.secret_keys,
        stack=spec.name,
    )
    if settings != spec.settings:  # pragma: no cover - guards future settings-model changes
        raise SettingsError(
            [Problem(f"{NAMESPACE}:", "the settings change when dumped to config and read back")],
            spec.name,
        )
    return settings


def current_login(environ: Mapping[str, str] | None = None) -> str | None:
    """The backend of the CLI's `pulumi login`, None without one: `current` in
    $PULUMI_HOME/credentials.json, as `pulumi login` 3.274.1 writes it (tests/test_backend_choice.py
    runs it)."""
    env = os.environ if environ is None else environ
    home = Path(env.get("PULUMI_HOME") or Path.home() / ".pulumi")
    try:
        doc = json.loads((home / "credentials.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    current = doc.get("current") if isinstance(doc, dict) else None
    return current if isinstance(current, str) and current else None


class Backend(BaseModel):
    """Where stack state lives, and how its secrets are encrypted.

    Defaults mirror `scripts/env.sh`: `PULUMI_BACKEND_URL` when set, else the local file
    backend in `<repo>/.state`; the passphrase secrets provider with
    `PULUMI_CONFIG_PASSPHRASE` (or `_FILE`) from the environment. Any backend URL works
    (`s3://...`, `azblob://...`, `https://api.pulumi.com`).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    url: str | None = None
    secrets_provider: str | None = Field(
        default=None,
        description=(
            "passphrase, default (Pulumi Cloud), or a KMS URL (awskms://..., azurekeyvault://..., "
            "gcpkms://..., hashivault://...). Default: the stack file's `secretsprovider`, else "
            "passphrase. Used when the stack is created."
        ),
    )
    passphrase: SecretStr | None = Field(
        default=None, description="Default: PULUMI_CONFIG_PASSPHRASE(_FILE) from the environment."
    )
    workspace_root: Path | None = Field(
        default=None,
        description=(
            "Where each stack's workspace (project file, stack config) is kept. Default: "
            "`<dir>/workspaces` for a file:// backend, else `<repo>/.state/workspaces`."
        ),
    )
    env: dict[str, str] = Field(
        default_factory=dict, description="Extra environment for the engine processes."
    )

    @classmethod
    def local(cls, directory: str | os.PathLike[str], **kw: Any) -> Backend:
        """A file backend in `directory` (created when missing)."""
        return cls(url=f"file://{Path(directory).expanduser().resolve()}", **kw)

    @classmethod
    def throwaway(cls, directory: str | os.PathLike[str], environment: str = "dev") -> Backend:
        """A file backend for a stack nobody keeps, always with the passphrase provider.

        The ambient passphrase when there is one (it decrypts secure values carried from a
        stack file), else a random one; never the public dev passphrase for a non-dev stack.
        """
        ambient = passphrase_from_env(os.environ)
        keep = ambient is not None and (environment == "dev" or not is_public(ambient))
        passphrase = None if keep else SecretStr(_random.token_urlsafe(24))
        return cls.local(directory, passphrase=passphrase, secrets_provider="passphrase")

    @property
    def resolved_url(self) -> str:
        """This backend's URL, else PULUMI_BACKEND_URL, else the CLI's `pulumi login`, else
        the repo's `.state` (what `scripts/env.sh` decides too)."""
        return (
            self.url
            or os.environ.get("PULUMI_BACKEND_URL")
            or current_login()
            or f"file://{DEFAULT_STATE_DIR}"
        )

    @property
    def file_dir(self) -> Path | None:
        """The directory of a file:// backend, None for any other backend."""
        url = self.resolved_url
        if not url.startswith("file://"):
            return None
        return Path(url[len("file://") :]).expanduser()

    @property
    def workspaces(self) -> Path:
        if self.workspace_root is not None:
            return self.workspace_root
        base = self.file_dir
        return (base if base is not None else DEFAULT_STATE_DIR) / "workspaces"

    def provider_for(self, stack_file: str | os.PathLike[str] | None) -> str:
        """The secrets provider a stack gets: this backend's, else its stack file's, else
        passphrase (so a production stack file's `secretsprovider: awskms://...` is honoured)."""
        if self.secrets_provider:
            return self.secrets_provider
        if stack_file is not None:
            doc = read_stack_doc(Path(stack_file))
            provider = (doc or {}).get("secretsprovider")
            if isinstance(provider, str) and provider:
                return provider
        return "passphrase"

    def engine_env(self, provider: str | None = None) -> dict[str, str]:
        """Environment for every engine process of this backend (on top of os.environ).

        Raises `SecretsProviderError` when the passphrase provider has no passphrase: the
        engine would otherwise stop and prompt for one, which hangs a non-interactive run.
        """
        env = {"PULUMI_BACKEND_URL": self.resolved_url, "PULUMI_SKIP_UPDATE_CHECK": "true"}
        env.update(self.env)
        if (provider or self.provider_for(None)) == "passphrase":
            if self.passphrase is not None:
                env["PULUMI_CONFIG_PASSPHRASE"] = self.passphrase.get_secret_value()
            elif not (
                env.get("PULUMI_CONFIG_PASSPHRASE")
                or env.get("PULUMI_CONFIG_PASSPHRASE_FILE")
                or os.environ.get("PULUMI_CONFIG_PASSPHRASE")
                or os.environ.get("PULUMI_CONFIG_PASSPHRASE_FILE")
            ):
                raise SecretsProviderError(
                    "the passphrase secrets provider needs PULUMI_CONFIG_PASSPHRASE (or "
                    "PULUMI_CONFIG_PASSPHRASE_FILE): `source scripts/env.sh` sets the local dev "
                    "one, or pass Backend(passphrase=...)"
                )
        return env


def check_secrets_provider(spec: StackSpec, backend: Backend, provider: str | None = None) -> None:
    """Refuse a non-dev stack whose secrets would be encrypted with the public dev passphrase.

    The same rule the program applies (`components.secrets_provider`), checked before the
    engine starts: `provider` is what the stack gets (`Backend.provider_for`), the passphrase
    is the backend's or the environment's.
    """
    provider = provider or backend.provider_for(spec.stack_file)
    kind = sp.classify({"secretsprovider": provider}, backend.resolved_url)
    if backend.passphrase is not None:
        passphrase: str | None = backend.passphrase.get_secret_value()
    else:
        passphrase = passphrase_from_env({**os.environ, **backend.env})
    why = sp.problem(spec.settings.environment, spec.name, kind, passphrase)
    if why is not None:
        raise SecretsProviderError(why)
