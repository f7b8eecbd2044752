"""Builders the tests share: a stack's config set for the program under mocks, the program's
exports resolved, the settings' refusal, and an engine backend on a private passphrase.

One place, so that the tests of the topologies (test_zones.py, test_external_trustee.py,
test_layers.py) and their engine tiers run the program the same way: a change in how a stack's
config reaches the program (secret references, the `coco:` namespace) is made once.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pulumi
import pytest
from mocks import resolve

from automation import Backend
from components.settings import SettingsError, full_key, parse, secret_refs, strip_namespace


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
