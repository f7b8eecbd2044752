"""The embedding API and its CLI, without the engine.

Covers what must hold before any engine runs: settings survive the trip into Pulumi config
and back through the program's own loader; the CLI's exit codes and messages; the fleet's
concurrency bound and failure isolation; and that engine failures are raised naming the
stack and the failing resource (fed synthetic engine events).
"""

from __future__ import annotations

import contextvars
import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml
from pulumi import automation as auto
from pulumi.automation import events as ev
from pydantic import SecretStr

import automation
from automation import (
    Backend,
    CocoDeploymentError,
    OperationResult,
    SecretsProviderError,
    SettingsError,
    StackFileError,
    StackOutputs,
    StackSpec,
    deploy_many,
    operations,
    workspace,
)
from automation.cli import run as cli
from automation.config import config_map, settings_to_config
from automation.events import EventLog
from automation.spec import PROJECT_DIR, load_stack_file
from components import settings as settings_module
from components.settings import BareMetalCluster, full_key, parse, secret_refs, strip_namespace

STACK_FILES = sorted((PROJECT_DIR / "stacks").glob("Pulumi.*.yaml"))
DEV = PROJECT_DIR / "stacks" / "Pulumi.dev.yaml"
STACK_URN = "urn:pulumi:prod::coco::pulumi:pulumi:Stack::coco-prod"
DEPLOY_URN = (
    "urn:pulumi:prod::coco::coco:index:ConfidentialWorkload$kubernetes:apps/v1:Deployment::api"
)


def with_secrets(path: Path) -> StackSpec:
    """The stack file's spec with a placeholder for every secret it references."""
    raw = strip_namespace(load_stack_file(path).config)
    refs = secret_refs(parse(raw))
    return StackSpec.from_file(path, secrets={full_key(ref): "placeholder" for _, ref in refs})


def write_stack(tmp_path: Path, name: str, config: dict[str, Any]) -> Path:
    path = tmp_path / f"Pulumi.{name}.yaml"
    path.write_text(yaml.safe_dump({"config": config}), encoding="utf-8")
    return path


def dev_config() -> dict[str, Any]:
    """The dev stack's config without its secure `demoKey` (tests add what they need)."""
    return {k: v for k, v in load_stack_file(DEV).config.items() if k != "coco:demoKey"}


# --- settings -> Pulumi config -> program


@pytest.mark.parametrize("path", STACK_FILES, ids=lambda p: p.name)
def test_config_round_trips_through_parse(path: Path) -> None:
    spec = with_secrets(path)
    values = config_map(spec.settings, {k: v.get_secret_value() for k, v in spec.secrets.items()})
    raw = {}
    for key, value in values.items():
        if value.secret:
            continue
        name = key.removeprefix("coco:")
        raw[name] = value.value if name == "environment" else json.loads(value.value)
    assert parse(raw) == spec.settings
    assert automation.validate(spec) == spec.settings


@pytest.mark.parametrize("path", STACK_FILES, ids=lambda p: p.name)
def test_config_round_trips_through_the_programs_loader(path: Path) -> None:
    """The program reads config with `components.settings.load()`: feed it what we set."""
    import pulumi.runtime

    spec = with_secrets(path)
    values = config_map(spec.settings, {k: v.get_secret_value() for k, v in spec.secrets.items()})
    # The project file declares `environment` with a default, which the engine always passes.
    engine_config = {"coco:environment": "dev"} | {k: v.value for k, v in values.items()}
    secret_keys = [k for k, v in values.items() if v.secret]

    def load() -> Any:
        pulumi.runtime.set_all_config(engine_config, secret_keys)
        return settings_module.load(stack=spec.name)

    loaded = contextvars.copy_context().run(load)  # the config lives in context variables
    assert loaded == spec.settings


def test_structured_values_are_json_and_strings_are_plain() -> None:
    spec = with_secrets(PROJECT_DIR / "stacks" / "Pulumi.baremetal-tdx.yaml")
    values = config_map(spec.settings, {"coco:apiDbPassword": "pw"})
    assert values["coco:environment"].value == "production"
    assert json.loads(values["coco:cluster"].value)["tee"] == "tdx"
    assert values["coco:apiDbPassword"].secret and not values["coco:cluster"].secret


def test_every_key_is_set_but_defaults_inside_are_left_out() -> None:
    dumped = settings_to_config(with_secrets(DEV).settings)
    # Pulumi.yaml declares all seven keys; a declared key without a default is required.
    assert list(dumped) == [
        "environment",
        "kubernetes",
        "cluster",
        "trustee",
        "workloads",
        "manifests",
        "waivers",
    ]
    assert dumped["environment"] == "dev" and dumped["waivers"] == []
    assert dumped["cluster"] == {
        "kind": "baremetal",
        "tee": "none",
        "install": {"chart": "./.charts/kata-deploy-4.1.0"},
    }


def test_secret_keys_are_normalised_and_masked() -> None:
    spec = StackSpec.from_file(DEV, secrets={"demoKey": "s3cret"})
    assert set(spec.secrets) == {"coco:demoKey"}
    assert "s3cret" not in repr(spec)


def test_a_secret_cannot_shadow_a_settings_key() -> None:
    with pytest.raises(ValueError, match="settings key"):
        StackSpec(name="x", settings=with_secrets(DEV).settings, secrets={"cluster": "x"})


def test_the_dev_stack_file_holds_its_secret() -> None:
    spec = StackSpec.from_stack("dev")
    assert spec.secret_keys == {"coco:demoKey"} and not spec.secrets
    assert spec.stack_file == DEV


def test_missing_secret_is_a_settings_error_before_the_engine() -> None:
    spec = StackSpec(name="dev", settings=with_secrets(DEV).settings)
    with pytest.raises(SettingsError, match=r"coco:trustee\.resources\[0\]\.valueFrom"):
        automation.up(spec)  # raises before any engine process or workspace is touched


def test_secure_values_in_the_stack_file_count_as_secrets(tmp_path: Path) -> None:
    config = dev_config() | {"coco:demoKey": {"secure": "v1:abc:def"}}
    spec = StackSpec.from_file(write_stack(tmp_path, "dev", config))
    assert spec.secret_keys == {"coco:demoKey"}
    automation.validate(spec)


def test_stack_file_errors() -> None:
    with pytest.raises(StackFileError, match="not found"):
        StackSpec.from_file(PROJECT_DIR / "stacks" / "Pulumi.nope.yaml")
    with pytest.raises(StackFileError, match="stack name"):
        load_stack_file(PROJECT_DIR / "Pulumi.yaml")


# --- CLI


def test_validate_ok_with_a_secure_value(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_stack(tmp_path, "dev", dev_config() | {"coco:demoKey": {"secure": "v1:a:b"}})
    assert cli(["validate", "--stack-file", str(path)]) == 0
    assert capsys.readouterr().out.strip() == "ok"


def test_validate_ok_with_a_secret_argument(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_stack(tmp_path, "dev", dev_config())
    assert cli(["validate", "--stack-file", str(path), "--secret", "demoKey=x"]) == 0
    assert capsys.readouterr().out.strip() == "ok"
    assert cli(["validate", "--stack", "dev"]) == 0  # the repo's dev stack holds demoKey


def test_validate_names_the_key_of_every_problem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = dev_config()
    config["coco:workloads"] = [dict(config["coco:workloads"][0], runtimeClass="kata-qemu-tdx")]
    path = write_stack(tmp_path, "bad", config)
    assert cli(["validate", "--stack-file", str(path)]) == 1
    err = capsys.readouterr().err
    assert "in stack 'bad'" in err
    assert "coco:workloads[0].runtimeClass" in err
    assert "coco:trustee.resources[0].valueFrom" in err  # demoKey is not a secret here


def test_validate_unreadable_file_is_bad_input(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(["validate", "--stack-file", "stacks/Pulumi.missing.yaml"]) == 2
    assert "not found" in capsys.readouterr().err


def test_engine_commands_refuse_bad_settings_with_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_stack(tmp_path, "dev", dev_config())  # demoKey missing: no engine needed to know
    assert cli(["preview", "--stack-file", str(path)]) == 2
    assert "coco:trustee.resources[0].valueFrom" in capsys.readouterr().err


def test_bad_secret_argument_is_bad_input(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(["up", "--secret", "demoKey"]) == 2
    assert cli(["up", "--secret-env", "demoKey=COCO_TEST_UNSET"], environ={}) == 2
    assert "COCO_TEST_UNSET" in capsys.readouterr().err


def test_cli_runs_as_a_module() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "automation", "validate", "--stack", "dev", "--secret", "demoKey=x"],
        cwd=PROJECT_DIR,
        capture_output=True,
        text=True,
        check=False,
    )
    assert (proc.returncode, proc.stdout.strip()) == (0, "ok"), proc.stderr


def test_cli_maps_engine_failures_to_exit_1(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def failing(*_: Any, **__: Any) -> OperationResult:
        raise CocoDeploymentError(stack="dev", operation="up", errors=("boom",))

    monkeypatch.setattr("automation.cli.up", failing)
    assert cli(["up", "--stack", "dev", "--secret", "demoKey=x"]) == 1
    assert "up of stack 'dev' failed" in capsys.readouterr().err


def test_outputs_are_masked_unless_asked(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    values = StackOutputs(
        {"kbsUrl": "https://kbs", "kbsTlsPrivateKey": "PEM"}, frozenset({"kbsTlsPrivateKey"})
    )
    monkeypatch.setattr("automation.cli.outputs", lambda *_a, **_k: values)
    assert cli(["outputs"]) == 0
    assert json.loads(capsys.readouterr().out) == {
        "kbsUrl": "https://kbs",
        "kbsTlsPrivateKey": "[secret]",
    }
    assert cli(["outputs", "--show-secrets"]) == 0
    assert json.loads(capsys.readouterr().out)["kbsTlsPrivateKey"] == "PEM"
    assert "PEM" not in repr(values)


# --- fleet


def result_for(spec: StackSpec) -> OperationResult:
    return OperationResult(stack=spec.name, operation="up", changes={"create": 1})


def test_fleet_keeps_at_most_max_concurrency_in_flight() -> None:
    specs = [StackSpec(name=f"s{i}", settings=with_secrets(DEV).settings) for i in range(10)]
    lock = threading.Lock()
    in_flight = peak = 0

    def operation(spec: StackSpec) -> OperationResult:
        nonlocal in_flight, peak
        with lock:
            in_flight += 1
            peak = max(peak, in_flight)
        time.sleep(0.05)
        with lock:
            in_flight -= 1
        return result_for(spec)

    fleet = deploy_many(specs, max_concurrency=3, operation=operation)
    assert peak == 3
    assert fleet.ok and sorted(fleet.results) == sorted(s.name for s in specs)


def test_fleet_collects_failures_without_stopping_the_others() -> None:
    specs = [StackSpec(name=n, settings=with_secrets(DEV).settings) for n in ("a", "b", "c")]

    def operation(spec: StackSpec) -> OperationResult:
        if spec.name == "b":
            raise CocoDeploymentError(stack="b", operation="up", errors=("boom",))
        return result_for(spec)

    fleet = deploy_many(specs, max_concurrency=1, operation=operation)
    assert sorted(fleet.results) == ["a", "c"]
    assert isinstance(fleet.failures["b"], CocoDeploymentError)
    assert not fleet.ok and "FAILED b" in fleet.summary()


def test_fleet_default_operation_reports_settings_errors_per_stack() -> None:
    good = StackSpec(name="x", settings=with_secrets(DEV).settings)  # demoKey missing
    fleet = deploy_many([good], max_concurrency=2)
    assert isinstance(fleet.failures["x"], SettingsError)


def test_fleet_rejects_bad_arguments() -> None:
    spec = StackSpec(name="a", settings=with_secrets(DEV).settings)
    with pytest.raises(ValueError, match="unique"):
        deploy_many([spec, spec], operation=result_for)
    with pytest.raises(ValueError, match="at least 1"):
        deploy_many([spec], max_concurrency=0, operation=result_for)


# --- failures name the stack and the resource


def diagnostic(message: str, urn: str | None = None, severity: str = "error") -> ev.EngineEvent:
    return ev.EngineEvent(
        sequence=1,
        timestamp=0,
        diagnostic_event=ev.DiagnosticEvent(
            message=message, color="never", severity=severity, urn=urn
        ),
    )


def op_failed(urn: str) -> ev.EngineEvent:
    meta = ev.StepEventMetadata.from_json({"op": "create", "urn": urn, "type": "x", "provider": ""})
    return ev.EngineEvent(
        sequence=2, timestamp=0, res_op_failed_event=ev.ResOpFailedEvent(meta, 1, 1)
    )


def policy_violation(urn: str = DEPLOY_URN) -> ev.EngineEvent:
    """A mandatory `no-coco-dev-runtime` violation on `urn`, as the engine reports it."""
    return ev.EngineEvent(
        sequence=3,
        timestamp=0,
        policy_event=ev.PolicyEvent(
            message="runs without a TEE",
            color="never",
            policy_name="no-coco-dev-runtime",
            policy_pack_name="coco-production",
            policy_pack_version="0.1.0",
            policy_pack_version_tag="0.1.0",
            enforcement_level="mandatory",
            resource_urn=urn,
        ),
    )


def test_event_log_names_stack_and_failing_resource() -> None:
    seen: list[ev.EngineEvent] = []
    log = EventLog(seen.append)
    for event in (
        diagnostic("warning only", DEPLOY_URN, severity="warning"),
        diagnostic("update failed", STACK_URN),
        diagnostic('Deployment.apps "api" is invalid: spec.replicas', DEPLOY_URN),
        op_failed(DEPLOY_URN),
        policy_violation(),
    ):
        log(event)
    assert len(seen) == 5  # every event reaches the caller's own on_event
    err = log.error("prod", "up")
    assert err.stack == "prod"
    assert err.resource is not None and err.resource.name == "api"
    assert err.resource.type == "kubernetes:apps/v1:Deployment"
    assert err.resource.operation == "create"
    text = str(err)
    assert text.startswith("up of stack 'prod' failed: kubernetes:apps/v1:Deployment 'api'")
    assert "spec.replicas" in text and "warning only" not in text
    assert "no-coco-dev-runtime" in text


class FakeStack:
    """Stands in for `auto.Stack`: emits engine events, then fails like the CLI does."""

    def __init__(self, events: list[ev.EngineEvent]) -> None:
        self.events = events

    def up(self, on_event: Any = None, **_: Any) -> Any:
        for event in self.events:
            on_event(event)
        raise auto.CommandError(
            auto.CommandResult(stdout="", stderr="error: update failed", code=255)
        )


def test_up_raises_coco_deployment_error_from_engine_events(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake = FakeStack([diagnostic("admission webhook denied it", DEPLOY_URN), op_failed(DEPLOY_URN)])

    @contextmanager
    def open_stack(target: Any, backend: Any) -> Iterator[FakeStack]:
        yield fake

    monkeypatch.setattr(operations, "open_stack", open_stack)
    spec = StackSpec.from_file(DEV, secrets={"demoKey": "x"})
    forwarded: list[ev.EngineEvent] = []
    with pytest.raises(CocoDeploymentError) as exc:
        automation.up(spec, on_event=forwarded.append)
    assert exc.value.stack == "dev" and exc.value.operation == "up"
    assert exc.value.resource is not None and exc.value.resource.urn == DEPLOY_URN
    assert "admission webhook denied it" in str(exc.value)
    assert len(forwarded) == 2


def test_failure_without_events_keeps_the_engine_output() -> None:
    err = EventLog().error("dev", "preview", detail="error: no Pulumi.yaml project file found")
    assert "no Pulumi.yaml" in str(err)


# --- workspace and backend (no engine)


def test_workspace_runs_the_repo_program_and_keeps_repo_files(tmp_path: Path) -> None:
    backend = Backend.local(tmp_path)
    directory = workspace.workspace_dir(backend, "dev")
    before = DEV.read_bytes()
    workspace.prepare_directory(directory)
    project = yaml.safe_load((directory / "Pulumi.yaml").read_text())
    assert project["main"] == "program" and "stackConfigDir" not in project
    assert project["runtime"]["options"]["virtualenv"] == str(PROJECT_DIR / ".venv")
    assert (directory / "program").resolve() == PROJECT_DIR
    assert (directory / "program" / "__main__.py").exists()
    assert DEV.read_bytes() == before
    assert directory == tmp_path.resolve() / "workspaces" / "dev"


def test_stack_config_carries_secure_values_and_their_salt(tmp_path: Path) -> None:
    source = {
        "encryptionsalt": "v1:salt",
        "config": dev_config() | {"coco:demoKey": {"secure": "v1:x"}},
    }
    path = tmp_path / "Pulumi.dev.yaml"
    path.write_text(yaml.safe_dump(source))
    directory = tmp_path / "ws"
    directory.mkdir()
    (directory / "Pulumi.dev.yaml").write_text(
        yaml.safe_dump({"encryptionsalt": "v1:old", "config": {"coco:stale": "x"}})
    )
    workspace.write_stack_config(directory, "dev", load_stack_file(path), frozenset())
    written = yaml.safe_load((directory / "Pulumi.dev.yaml").read_text())
    assert written == {"encryptionsalt": "v1:salt", "config": {"coco:demoKey": {"secure": "v1:x"}}}
    # When the spec overrides every secure value, the workspace keeps its own salt.
    (directory / "Pulumi.dev.yaml").write_text(yaml.safe_dump({"encryptionsalt": "v1:old"}))
    workspace.write_stack_config(
        directory, "dev", load_stack_file(path), frozenset({"coco:demoKey"})
    )
    assert yaml.safe_load((directory / "Pulumi.dev.yaml").read_text()) == {
        "encryptionsalt": "v1:old"
    }


def test_backend_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PULUMI_BACKEND_URL", raising=False)
    assert Backend().resolved_url == f"file://{PROJECT_DIR / '.state'}"
    monkeypatch.setenv("PULUMI_BACKEND_URL", "s3://bucket/coco")
    assert Backend().resolved_url == "s3://bucket/coco"
    assert Backend().workspaces == PROJECT_DIR / ".state" / "workspaces"
    assert Backend(url="file:///tmp/x").workspaces == Path("/tmp/x/workspaces")


def test_passphrase_provider_without_passphrase_fails_early(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("PULUMI_CONFIG_PASSPHRASE", raising=False)
    monkeypatch.delenv("PULUMI_CONFIG_PASSPHRASE_FILE", raising=False)
    with pytest.raises(SecretsProviderError, match="PULUMI_CONFIG_PASSPHRASE"):
        Backend().engine_env()
    assert Backend(passphrase=SecretStr("p")).engine_env()["PULUMI_CONFIG_PASSPHRASE"] == "p"
    assert "PULUMI_CONFIG_PASSPHRASE" not in Backend(secrets_provider="awskms://k").engine_env()


def test_render_retargets_and_says_what_it_leaves_to_gitops(tmp_path: Path) -> None:
    spec = with_secrets(PROJECT_DIR / "stacks" / "Pulumi.gpu-tdx.yaml")
    rendered, notes = operations.render_settings(spec, tmp_path / "out")
    settings = rendered.settings
    assert settings.kubernetes.render_dir == str((tmp_path / "out").resolve())
    assert settings.kubernetes.context is None
    assert settings.workloads == spec.settings.workloads
    assert isinstance(settings.cluster, BareMetalCluster)
    assert settings.cluster.install.method == "preinstalled"
    assert settings.cluster.gpu is not None and not settings.cluster.gpu.operator.install
    assert any("kata-deploy" in n for n in notes) and any("GPU Operator" in n for n in notes)
    assert automation.validate(rendered).secrets_delivery() == "reference"


def test_render_keeps_the_trusted_zone_apart(tmp_path: Path) -> None:
    """A one-stack trusted zone (gpu-tdx): the Trustee's objects render into their own folder,
    for the trusted cluster's GitOps repository, never beside the confidential cluster's."""
    spec = with_secrets(PROJECT_DIR / "stacks" / "Pulumi.gpu-tdx.yaml")
    assert spec.settings.topology is not None and spec.settings.topology.trustee_cluster
    rendered, notes = operations.render_settings(spec, tmp_path / "out")
    topology = rendered.settings.topology
    assert topology is not None and topology.trustee_cluster is not None
    zone = (tmp_path / "out").resolve() / operations.TRUSTED_ZONE_RENDER_DIR
    assert topology.trustee_cluster.render_dir == str(zone)
    assert topology.trustee_cluster.context is None
    assert topology.trustee_cluster.kubeconfig is None
    assert any(str(zone) in n and "trusted cluster" in n for n in notes), notes
    automation.validate(rendered)


def test_render_keeps_kata_deploy_from_a_local_chart(tmp_path: Path) -> None:
    """The dev stack's kata-deploy comes from a local chart folder: rendered, not left out."""
    spec = with_secrets(DEV)
    rendered, notes = operations.render_settings(spec, tmp_path / "out")
    assert isinstance(rendered.settings.cluster, BareMetalCluster)
    assert rendered.settings.cluster.install.method == "chart"
    assert rendered.settings.cluster.install.chart == "./.charts/kata-deploy-4.1.0"
    assert any("rendered from ./.charts/kata-deploy-4.1.0" in n for n in notes), notes


def test_missing_stack_is_a_deployment_error_naming_it(monkeypatch: pytest.MonkeyPatch) -> None:
    @contextmanager
    def open_stack(target: Any, backend: Any) -> Iterator[Any]:
        raise auto.StackNotFoundError(auto.CommandResult(stdout="", stderr="no stack", code=255))
        yield  # pragma: no cover

    monkeypatch.setattr(operations, "open_stack", open_stack)
    with pytest.raises(CocoDeploymentError, match="stack 'gone' does not exist"):
        automation.outputs("gone")


def test_destroy_does_not_need_valid_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    class Destroyable:
        def destroy(self, **_: Any) -> Any:
            summary = auto.UpdateSummary.__new__(auto.UpdateSummary)
            summary.resource_changes = {auto.OpType.DELETE: 3}
            return auto.DestroyResult(stdout="", stderr="", summary=summary)

    @contextmanager
    def open_stack(target: Any, backend: Any) -> Iterator[Any]:
        yield Destroyable()

    monkeypatch.setattr(operations, "open_stack", open_stack)
    spec = StackSpec(name="dev", settings=with_secrets(DEV).settings)  # demoKey missing
    assert automation.destroy(spec).changes == {"delete": 3}


def test_render_takes_a_peer_pods_stack(tmp_path: Path) -> None:
    """A peer-pods stack renders (its cluster side); the note points at NOT-RENDERED.md."""
    spec = with_secrets(PROJECT_DIR / "stacks" / "Pulumi.aws-peerpods.yaml")
    rendered, notes = operations.render_settings(spec, tmp_path / "out")
    assert rendered.settings.kubernetes.render_dir == str((tmp_path / "out").resolve())
    assert rendered.settings.cluster == spec.settings.cluster
    assert any(operations.NOT_RENDERED_FILE in n and "aws" in n for n in notes), notes
    automation.validate(rendered)


def test_not_rendered_is_written_and_printed(tmp_path: Path) -> None:
    """The program's `notRendered` becomes NOT-RENDERED.md (with the notes) and output lines;
    a registry peerpods chart's values become peerpods-values.yaml; a render with nothing
    left out (bare metal) writes neither."""
    from automation.results import StackOutputs

    printed: list[str] = []
    outputs = StackOutputs(
        values={
            "notRendered": ["EC2 security group x-podvm", "Secret ns/peer-pods-secret"],
            "peerpodsChartValues": {"provider": "aws", "secrets": {"mode": "reference"}},
        }
    )
    operations.write_not_rendered(tmp_path, "pp", ["a note"], outputs, printed.append)
    text = (tmp_path / operations.NOT_RENDERED_FILE).read_text()
    assert "- a note\n- EC2 security group x-podvm\n- Secret ns/peer-pods-secret\n" in text
    assert printed == [
        "not rendered: EC2 security group x-podvm",
        "not rendered: Secret ns/peer-pods-secret",
    ]
    values = yaml.safe_load((tmp_path / operations.PEERPODS_VALUES_FILE).read_text())
    assert values == {"provider": "aws", "secrets": {"mode": "reference"}}
    bare = tmp_path / "bare"
    bare.mkdir()
    operations.write_not_rendered(bare, "dev", ["a note"], StackOutputs(values={}), None)
    assert list(bare.iterdir()) == []


def test_nothing_is_written_when_the_engine_cannot_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PULUMI_CONFIG_PASSPHRASE", raising=False)
    monkeypatch.delenv("PULUMI_CONFIG_PASSPHRASE_FILE", raising=False)
    backend = Backend.local(tmp_path)
    with pytest.raises(SecretsProviderError):
        automation.preview(StackSpec.from_stack("dev"), backend=backend)
    assert not workspace.workspace_dir(backend, "dev").exists()
