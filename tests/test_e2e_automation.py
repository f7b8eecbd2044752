"""The embedding API, its CLI, the example program and the policy pack on the real engine.

Everything runs on a file backend in a temporary directory and renders into temporary
folders, so nothing here touches a cluster, the repo's `.state` or its stack files. A
missing engine is a failure with instructions, never a skip: an end-to-end suite that
silently skips is how a broken deployment path reaches users.

    bash scripts/setup.sh && source scripts/env.sh && pytest -m e2e tests/test_e2e_automation.py
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml
from pack_stacks import gate_stack
from pydantic import SecretStr

import automation
from automation import Backend, CocoDeploymentError, StackSpec
from automation.config import config_map
from automation.spec import PROJECT_DIR, load_stack_file
from automation.workspace import workspace_dir
from components.settings import KubernetesTarget, WorkloadSettings

pytestmark = pytest.mark.e2e

PACK = PROJECT_DIR / "policies" / "pack"
DEV_FILE = PROJECT_DIR / "stacks" / "Pulumi.dev.yaml"
LOCAL_DEV_PASSPHRASE = "coco-local-dev"
"""The public passphrase scripts/env.sh sets for local dev stacks (stacks/Pulumi.dev.yaml)."""


@pytest.fixture
def env(engine: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """A passphrase for the temporary stacks when the shell has none."""
    if not (
        os.environ.get("PULUMI_CONFIG_PASSPHRASE")
        or os.environ.get("PULUMI_CONFIG_PASSPHRASE_FILE")
    ):
        monkeypatch.setenv("PULUMI_CONFIG_PASSPHRASE", "coco-e2e-test")
    return dict(os.environ)


def dev_spec(render_dir: Path) -> StackSpec:
    spec = StackSpec.from_stack("dev", secrets={"demoKey": "e2e-demo-key"})
    target = KubernetesTarget(render_dir=str(render_dir))
    return spec.model_copy(
        update={"settings": spec.settings.model_copy(update={"kubernetes": target})}
    )


def rendered_files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.rglob("*") if p.is_file())


def production_stack_file(directory: Path, render_dir: Path) -> Path:
    """A production stack that settings accept (a reasoned coco-dev waiver) but the pack refuses."""
    config = gate_stack("production", str(render_dir))
    path = directory / "Pulumi.prod-render.yaml"
    path.write_text(yaml.safe_dump({"config": config}), encoding="utf-8")
    return path


def run(
    cmd: list[str], env: Mapping[str, str], cwd: Path | None = None, timeout: int = 900
) -> subprocess.CompletedProcess[str]:
    """A command's exit code and text output; the caller asserts on them."""
    return subprocess.run(
        cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


def pulumi_cli(args: list[str], cwd: Path, backend: Backend) -> subprocess.CompletedProcess[str]:
    return run(["pulumi", "--non-interactive", *args], os.environ | backend.engine_env(), cwd)


def test_example_deploys_and_destroys_the_dev_stack(env: dict[str, str], tmp_path: Path) -> None:
    state, out = tmp_path / "state", tmp_path / "out"
    # As after `source scripts/env.sh`: the dev stack's own demoKey secret is used.
    env = {k: v for k, v in env.items() if k not in ("DEMO_KEY", "PULUMI_CONFIG_PASSPHRASE_FILE")}
    env["PULUMI_CONFIG_PASSPHRASE"] = LOCAL_DEV_PASSPHRASE
    example = str(PROJECT_DIR / "examples" / "embed_dev.py")
    proc = run([sys.executable, example, "--state-dir", str(state), "--render-dir", str(out)], env)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert "up dev:" in proc.stdout and "KBS: https://" in proc.stdout
    assert not (state / ".pulumi" / "stacks" / "coco" / "dev.json").exists(), "stack removed"
    assert rendered_files(out) == [], "destroy removes the rendered manifests"


def test_up_is_stable_outputs_are_masked_and_destroy_cleans_up(
    env: dict[str, str], tmp_path: Path
) -> None:
    backend = Backend.local(tmp_path / "state")
    out = tmp_path / "out"
    spec = dev_spec(out)
    lines: list[str] = []
    events: list[Any] = []
    first = automation.up(spec, backend=backend, on_output=lines.append, on_event=events.append)
    assert first.changes.get("create", 0) > 0 and lines and events
    assert first.outputs is not None and "kbsTlsPrivateKey" in first.outputs.secret_keys
    assert first.outputs.masked()["kbsTlsPrivateKey"] == "[secret]"
    assert rendered_files(out), "the dev stack renders manifests"

    again = automation.preview(spec, backend=backend)
    assert not again.changed, again.changes  # the same settings give the same objects

    current = automation.outputs("dev", backend=backend)
    assert current.values["kbsUrl"] == first.outputs.values["kbsUrl"]
    assert "BEGIN" in str(current.values["kbsTlsPrivateKey"])

    gone = automation.destroy("dev", backend=backend, remove=True)
    assert gone.changes.get("delete", 0) > 0
    assert not workspace_dir(backend, "dev").exists()
    with pytest.raises(CocoDeploymentError, match="does not exist"):
        automation.outputs("dev", backend=backend)


def test_cli_render_writes_manifests_and_policies(env: dict[str, str], tmp_path: Path) -> None:
    out = tmp_path / "gitops"
    cli = [sys.executable, "-m", "automation", "render", "--stack", "dev"]
    proc = run([*cli, "--secret", "demoKey=x", "--out", str(out)], env, PROJECT_DIR)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert "Updating" in proc.stdout or "Resources" in proc.stdout  # engine progress streamed
    texts = "\n".join(p.read_text(errors="replace") for p in rendered_files(out))
    assert (
        "kind: Deployment" in texts and "io.katacontainers.config.hypervisor.cc_init_data" in texts
    )
    assert "coco.confidentialcontainers.org/role: resource-policy" in texts


def test_cli_preview_of_bad_settings_exits_2_before_the_engine(
    env: dict[str, str], tmp_path: Path
) -> None:
    config = {k: v for k, v in load_stack_file(DEV_FILE).config.items() if k != "coco:demoKey"}
    bad = tmp_path / "Pulumi.dev.yaml"
    bad.write_text(yaml.safe_dump({"config": config}), encoding="utf-8")
    cli = [sys.executable, "-m", "automation", "preview", "--stack-file", str(bad)]
    proc = run(cli, env, PROJECT_DIR, timeout=120)
    assert proc.returncode == 2 and "coco:trustee.resources[0].valueFrom" in proc.stderr


def test_the_stack_files_own_secret_reaches_the_program(
    env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """stacks/Pulumi.dev.yaml holds demoKey encrypted with the public local-dev passphrase."""
    monkeypatch.setenv("PULUMI_CONFIG_PASSPHRASE", LOCAL_DEV_PASSPHRASE)
    monkeypatch.delenv("PULUMI_CONFIG_PASSPHRASE_FILE", raising=False)
    backend = Backend.local(tmp_path / "state")
    spec = StackSpec.from_stack("dev")
    target = KubernetesTarget(render_dir=str(tmp_path / "out"))
    spec = spec.model_copy(
        update={"settings": spec.settings.model_copy(update={"kubernetes": target})}
    )
    assert not spec.secrets and spec.secret_keys == {"coco:demoKey"}
    result = automation.preview(spec, backend=backend)
    assert result.changes.get("create", 0) > 0
    automation.destroy(spec, backend=backend, remove=True)


def test_pack_passes_the_dev_stack_with_advisories_only(
    env: dict[str, str], tmp_path: Path
) -> None:
    backend = Backend.local(tmp_path / "state")
    spec = dev_spec(tmp_path / "out")
    automation.up(spec, backend=backend)  # known values: the pack sees the real init-data
    config = tmp_path / "dev-policy.json"
    config.write_text(json.dumps(automation.operations.policy_config(spec.settings)))
    pack = ["--policy-pack", str(PACK)]
    proc = pulumi_cli(
        ["preview", "--stack", "dev", *pack, "--policy-pack-config", str(config)],
        workspace_dir(backend, "dev"),
        backend,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-6000:]
    assert "coco-production" in output
    assert "[advisory]" in output and "no-coco-dev-runtime" in output
    assert "[mandatory]" not in output
    # Without the stack's config the pack fails closed: every policy is mandatory.
    bare = pulumi_cli(["preview", "--stack", "dev", *pack], workspace_dir(backend, "dev"), backend)
    assert bare.returncode != 0 and "[mandatory]" in bare.stdout + bare.stderr
    result = automation.preview(spec, backend=backend, policy_packs=[PACK])
    assert result.violations and all(v.enforcement == "advisory" for v in result.violations)
    automation.destroy(spec, backend=backend, remove=True)


def test_pack_fails_a_production_stack_that_breaks_a_rule(
    env: dict[str, str], tmp_path: Path
) -> None:
    # A production stack never runs on the public dev passphrase: this one has its own.
    backend = Backend.local(tmp_path / "state", passphrase=SecretStr("e2e-production-passphrase"))
    stack_file = production_stack_file(tmp_path, tmp_path / "out")
    spec = StackSpec.from_file(stack_file, secrets={"appKey": "e2e-app-key"})  # settings: ok

    with pytest.raises(CocoDeploymentError) as exc:
        automation.preview(spec, backend=backend, policy_packs=[PACK])
    err = exc.value
    assert err.stack == "prod-render"
    mandatory = [v for v in err.violations if v.enforcement == "mandatory"]
    assert any(v.policy == "no-coco-dev-runtime" for v in mandatory), str(err)
    assert any(v.urn and v.urn.endswith("::app") for v in mandatory), str(err)
    assert str(err).startswith(
        "preview of stack 'prod-render' failed, blocked by policy on "
        "kubernetes:apps/v1:Deployment 'app'"
    )

    # The same through the plain CLI, in the workspace the API prepared.
    proc = pulumi_cli(
        ["preview", "--stack", "prod-render", "--policy-pack", str(PACK)],
        workspace_dir(backend, "prod-render"),
        backend,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0, output[-6000:]
    assert "[mandatory]" in output and "no-coco-dev-runtime" in output
    assert load_stack_file(stack_file).config["coco:environment"] == "production"
    automation.destroy("prod-render", backend=backend, remove=True)


def test_fleet_deploys_stacks_concurrently_and_isolates_failures(
    env: dict[str, str], tmp_path: Path
) -> None:
    backend = Backend.local(tmp_path / "state")
    specs = [
        dev_spec(tmp_path / name).model_copy(update={"name": name})
        for name in ("fleet-a", "fleet-b", "fleet-c")
    ]
    broken = StackSpec(name="fleet-broken", settings=specs[0].settings)  # no demoKey secret
    lines: list[tuple[str, str]] = []
    fleet = automation.deploy_many(
        [*specs, broken],
        max_concurrency=2,
        backend=backend,
        on_output=lambda stack, line: lines.append((stack, line)),
    )
    assert sorted(fleet.results) == ["fleet-a", "fleet-b", "fleet-c"], fleet.summary()
    assert isinstance(fleet.failures["fleet-broken"], automation.SettingsError)
    assert {stack for stack, _ in lines} == {"fleet-a", "fleet-b", "fleet-c"}
    for spec in specs:
        assert rendered_files(tmp_path / spec.name), spec.name
        automation.destroy(spec, backend=backend, remove=True)


def test_a_stack_of_250_workloads_is_configured_and_previewed(
    env: dict[str, str], tmp_path: Path
) -> None:
    """`coco:workloads` of 250 entries is over 128 KiB of JSON: set with `pulumi config
    set-all` it is one command-line argument, which Linux refuses (E2BIG, "argument list too
    long"), and in the program's environment the same (scripts/ENGINE.md). The workspace
    writes plain values into the stack file and the host pipes the config to the program."""
    backend = Backend.local(tmp_path / "state")
    spec = dev_spec(tmp_path / "out")
    entry = spec.settings.workloads[0].model_dump(mode="json", by_alias=True)
    # A few settings per container, as real workloads have: about 600 bytes an entry.
    entry["containers"][0]["env"] = {f"SETTING_{k}": "v" * 48 for k in range(6)}
    many = [
        WorkloadSettings.model_validate(
            {**entry, "name": entry["name"] + (f"-{i:03d}" if i else "")}
        )
        for i in range(250)
    ]
    spec = spec.model_copy(
        update={"settings": spec.settings.model_copy(update={"workloads": many})}
    )
    assert len(config_map(spec.settings)["coco:workloads"].value) > 128 * 1024
    result = automation.preview(spec, backend=backend)
    assert result.changes.get("create", 0) > 3 * 250, result.changes
