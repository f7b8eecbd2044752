"""Staging and production stacks never encrypt their secrets with the public dev passphrase.

The rule is checked three ways, each before a resource exists: the pure classification of
stack files, the Pulumi program's own check (run here against stack files written in the
layout the engine hands the program), and the Automation API / CLI (`automation validate`,
`up`), which refuse before any engine process starts. The engine-level proof (the real CLI
running the program) is in tests/test_e2e_gate.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pulumi
import pytest
import yaml
from pydantic import SecretStr

import automation
from automation import Backend, SecretsProviderError, StackSpec
from automation.cli import run as cli
from automation.spec import PROJECT_DIR, check_secrets_provider, load_stack_file
from components import secrets_provider as sp

STACKS = PROJECT_DIR / "stacks"
SALT = "v1:gUOKfXSvyak=:v1:6/Bg1GW+qZaj7JxX:DJxnlAxcIop81T6UP6BqZBM9hh5SyA=="
PUBLIC = {"PULUMI_CONFIG_PASSPHRASE": "coco-local-dev"}


def prod_file(tmp_path: Path, extra: dict[str, Any], environment: str = "production") -> Path:
    """The baremetal-tdx stack (valid settings) with the given provider keys instead of its own."""
    doc = yaml.safe_load((STACKS / "Pulumi.baremetal-tdx.yaml").read_text())
    doc.pop("secretsprovider", None)
    doc["config"]["coco:environment"] = environment
    doc["config"]["coco:apiDbPassword"] = {"secure": "v1:abc"}
    doc.update(extra)
    path = tmp_path / "Pulumi.prod.yaml"
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    return path


# --- classification


@pytest.mark.parametrize(
    ("doc", "backend", "kind"),
    [
        ({"encryptionsalt": SALT}, None, "passphrase"),
        ({"secretsprovider": "passphrase", "encryptionsalt": SALT}, None, "passphrase"),
        (
            {"secretsprovider": "awskms://alias/k?region=eu-west-1", "encryptedkey": "x"},
            None,
            "kms",
        ),
        ({"secretsprovider": "hashivault://coco"}, None, "kms"),
        (
            {"secretsprovider": "gcpkms://projects/p/locations/l/keyRings/r/cryptoKeys/k"},
            None,
            "kms",
        ),
        ({"secretsprovider": "azurekeyvault://v.vault.azure.net/keys/k"}, None, "kms"),
        ({"config": {}}, "https://api.pulumi.com", "service"),
        ({"secretsprovider": "default"}, "https://api.pulumi.com", "service"),
        ({"secretsprovider": "default"}, "s3://bucket/state", "passphrase"),
        ({"config": {}}, "file:///tmp/state", "passphrase"),
        ({"config": {}}, None, "unknown"),
        (None, "file:///tmp/state", "unknown"),
    ],
)
def test_classify(doc: Any, backend: str | None, kind: str) -> None:
    assert sp.classify(doc, backend).kind == kind


def test_every_non_dev_example_names_a_key_service() -> None:
    for path in sorted(STACKS.glob("Pulumi.*.yaml")):
        doc = yaml.safe_load(path.read_text())
        env = doc["config"].get("coco:environment", "dev")
        provider = sp.classify(doc, "file:///state")
        if env == "dev":
            assert provider.kind == "passphrase", path.name
        else:
            assert provider.kind == "kms", f"{path.name}: {env} stack without a KMS provider"


@pytest.mark.parametrize("environment", ["staging", "production"])
def test_public_passphrase_is_refused_outside_dev(environment: str) -> None:
    why = sp.problem(environment, "prod", sp.SecretsProvider("passphrase"), "coco-local-dev")
    assert why is not None
    assert "pulumi stack change-secrets-provider --stack prod" in why and environment in why


def test_what_is_accepted() -> None:
    passphrase = sp.SecretsProvider("passphrase")
    assert sp.problem("dev", "dev", passphrase, "coco-local-dev") is None
    assert sp.problem("production", "p", passphrase, "a-passphrase-of-my-own") is None
    kms = sp.SecretsProvider("kms", "awskms://alias/k")
    assert sp.problem("production", "p", kms, "coco-local-dev") is None  # not the key in use


def test_passphrase_file_is_read(tmp_path: Path) -> None:
    f = tmp_path / "pass"
    f.write_text("coco-local-dev\n")
    value = sp.passphrase_from_env({"PULUMI_CONFIG_PASSPHRASE_FILE": str(f)})
    assert sp.is_public(value)
    assert sp.passphrase_from_env({}) is None


# --- the program's check (what __main__.py runs before registering anything)


def program_check(
    monkeypatch: pytest.MonkeyPatch, root: Path, stack: str, environ: dict[str, str]
) -> str | None:
    monkeypatch.setattr(pulumi, "get_root_directory", lambda: str(root))
    monkeypatch.setattr(pulumi, "get_stack", lambda: stack)
    for key in ("PULUMI_CONFIG_PASSPHRASE", "PULUMI_CONFIG_PASSPHRASE_FILE", "PULUMI_BACKEND_URL"):
        monkeypatch.delenv(key, raising=False)
    for key, value in environ.items():
        monkeypatch.setenv(key, value)
    return sp.check_running_stack("production")


def test_program_refuses_public_passphrase_and_reads_stack_config_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "Pulumi.yaml").write_text("name: coco\nstackConfigDir: stacks\n")
    (tmp_path / "stacks").mkdir()
    (tmp_path / "stacks" / "Pulumi.prod.yaml").write_text(yaml.safe_dump({"encryptionsalt": SALT}))
    why = program_check(monkeypatch, tmp_path, "prod", PUBLIC)
    assert why is not None and "change-secrets-provider" in why
    assert program_check(monkeypatch, tmp_path, "prod", {"PULUMI_CONFIG_PASSPHRASE": "own"}) is None
    kms = {"secretsprovider": "awskms://alias/k", "encryptedkey": "x"}
    (tmp_path / "stacks" / "Pulumi.prod.yaml").write_text(yaml.safe_dump(kms))
    assert program_check(monkeypatch, tmp_path, "prod", {}) is None


@pytest.mark.parametrize(
    "doc",
    [
        {"secretsprovider": "awskms://alias/k", "encryptedkey": "x"},  # `--config-file` elsewhere
        {"secretsprovider": "someday://new-provider"},  # an unknown provider
        None,  # no stack file in stacks/ at all
    ],
)
def test_program_refuses_the_public_passphrase_whatever_the_stack_file_says(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, doc: dict[str, str] | None
) -> None:
    """`pulumi up --config-file <file outside stacks/>` or another backend cannot bypass it:
    the program cannot see the file the engine reads, so outside dev the public passphrase
    in the engine's environment is refused by itself."""
    (tmp_path / "Pulumi.yaml").write_text("name: coco\nstackConfigDir: stacks\n")
    (tmp_path / "stacks").mkdir()
    if doc is not None:
        (tmp_path / "stacks" / "Pulumi.prod.yaml").write_text(yaml.safe_dump(doc))
    for environ in (
        PUBLIC,
        {"PULUMI_CONFIG_PASSPHRASE": "coco-local-dev", "PULUMI_BACKEND_URL": "s3://b"},
    ):
        why = program_check(monkeypatch, tmp_path, "prod", environ)
        assert why is not None and "unset PULUMI_CONFIG_PASSPHRASE" in why
    passfile = tmp_path / "pass"
    passfile.write_text("coco-local-dev\n")
    why = program_check(
        monkeypatch, tmp_path, "prod", {"PULUMI_CONFIG_PASSPHRASE_FILE": str(passfile)}
    )
    assert why is not None
    assert (
        program_check(monkeypatch, tmp_path, "prod", {"PULUMI_CONFIG_PASSPHRASE": "mine"}) is None
    )


def test_the_repo_program_refuses_before_building(monkeypatch: pytest.MonkeyPatch) -> None:
    """__main__.py runs the check right after loading settings, before building anything."""
    text = (PROJECT_DIR / "__main__.py").read_text()
    assert text.index("check_running_stack(settings.environment)") < text.index(
        "build_stack(settings)"
    )


# --- Automation API and CLI: refused before any engine process


def test_cli_validate_refuses_a_production_stack_on_the_public_passphrase(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = prod_file(tmp_path, {"encryptionsalt": SALT})
    assert cli(["validate", "--stack-file", str(path)], environ=PUBLIC) == 1
    err = capsys.readouterr().err
    assert "public development passphrase" in err and "change-secrets-provider" in err
    own = {"PULUMI_CONFIG_PASSPHRASE": "a-passphrase-of-my-own"}
    assert cli(["validate", "--stack-file", str(path)], environ=own) == 0


def test_cli_validate_accepts_the_example_kms_stacks_whatever_the_passphrase(
    capsys: pytest.CaptureFixture[str],
) -> None:
    secret = ["--secret", "apiDbPassword=x"]
    assert cli(["validate", "--stack", "baremetal-tdx", *secret], environ=PUBLIC) == 0


@pytest.mark.parametrize("environment", ["staging", "production"])
def test_up_refuses_before_the_engine(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, environment: str
) -> None:
    monkeypatch.setattr("automation.workspace.ensure_engine", lambda: pytest.fail("engine reached"))
    spec = StackSpec.from_file(prod_file(tmp_path, {"encryptionsalt": SALT}, environment))
    backend = Backend.local(tmp_path / "state", passphrase=SecretStr("coco-local-dev"))
    with pytest.raises(SecretsProviderError, match="change-secrets-provider"):
        automation.up(spec, backend=backend)
    assert not (tmp_path / "state" / "workspaces").exists(), "nothing written"


def test_the_stack_files_kms_provider_is_the_one_the_stack_gets(tmp_path: Path) -> None:
    spec = StackSpec.from_stack("baremetal-tdx", secrets={"apiDbPassword": "x"})
    assert load_stack_file(spec.stack_file or "").encryption["secretsprovider"]
    backend = Backend.local(tmp_path)
    assert backend.provider_for(spec.stack_file) == "hashivault://coco-tdx-prod"
    check_secrets_provider(spec, backend)  # a key service: the passphrase is not in use
    assert Backend(secrets_provider="passphrase").provider_for(spec.stack_file) == "passphrase"
    with pytest.raises(SecretsProviderError):
        check_secrets_provider(
            spec, Backend.local(tmp_path, secrets_provider="passphrase", env=PUBLIC)
        )


def test_render_of_a_production_stack_never_uses_the_public_passphrase(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PULUMI_CONFIG_PASSPHRASE", "coco-local-dev")
    prod = Backend.throwaway(tmp_path, "production")
    assert prod.passphrase is not None and not sp.is_public(prod.passphrase.get_secret_value())
    assert Backend.throwaway(tmp_path, "dev").passphrase is None  # the ambient one


def test_render_keeps_the_stack_files_key_service(tmp_path: Path) -> None:
    """Render of a KMS stack whose file secrets are used: the render stack gets the file's
    provider (its `encryptedkey` opens only there); with every secret given on the command
    line, or a passphrase file, the throwaway passphrase provider."""
    from automation.operations import render_backend

    kms = {"secretsprovider": "awskms://alias/k?region=eu-west-1", "encryptedkey": "ZW5j"}
    spec = StackSpec.from_file(prod_file(tmp_path, kms))
    backend = render_backend(spec, tmp_path / "state")
    assert backend.secrets_provider == "awskms://alias/k?region=eu-west-1"
    assert backend.passphrase is None
    given = StackSpec.from_file(prod_file(tmp_path, kms), secrets={"apiDbPassword": "x"})
    assert render_backend(given, tmp_path / "state").secrets_provider == "passphrase"
    salted = StackSpec.from_file(prod_file(tmp_path, {"encryptionsalt": SALT}))
    assert render_backend(salted, tmp_path / "state").secrets_provider == "passphrase"


def test_the_api_keeps_the_public_passphrase_from_a_non_dev_key_service_engine(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The program refuses a non-dev engine that has the public passphrase; the API, which
    knows the stack's provider, never hands it one."""
    from automation import workspace

    seen: dict[str, str] = {}

    class Stop(Exception):
        pass

    def capture(directory: Path, backend: Backend, env: dict[str, str], provider: str) -> None:
        seen.update(env)
        raise Stop

    monkeypatch.setattr(workspace, "ensure_engine", lambda: "pulumi")
    monkeypatch.setattr(workspace, "_local_workspace", capture)
    monkeypatch.setenv("PULUMI_CONFIG_PASSPHRASE", "coco-local-dev")
    kms = {"secretsprovider": "awskms://alias/k?region=eu-west-1", "encryptedkey": "ZW5j"}
    spec = StackSpec.from_file(prod_file(tmp_path, kms))
    with pytest.raises(Stop), workspace.open_stack(spec, Backend.local(tmp_path / "s")):
        pass
    assert seen["PULUMI_CONFIG_PASSPHRASE"] == "" and seen["PULUMI_CONFIG_PASSPHRASE_FILE"] == ""
