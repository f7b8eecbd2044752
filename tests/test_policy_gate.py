"""The policy gate on the documented deploy paths, without the engine.

A non-dev stack always runs coco's pack with its stack's levels, and `up` previews first:
a mandatory violation in that preview stops it before `stack.up` is called. The engine-level
proof (scripts/up.sh and the Automation API against the real CLI) is tests/test_e2e_gate.py.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml
from pulumi import automation as auto
from test_automation import policy_violation

import automation
from automation import CocoDeploymentError, StackSpec, operations
from automation.cli import run as cli
from automation.operations import PACK_DIR, gate_packs, policy_config
from automation.spec import PROJECT_DIR

DEPLOY_URN = (
    "urn:pulumi:prod::coco::coco:index:ConfidentialWorkload$kubernetes:apps/v1:Deployment::app"
)


def spec_of(name: str, environment: str | None = None) -> StackSpec:
    spec = StackSpec.from_stack(name, secrets={"apiDbPassword": "x", "demoKey": "x"})
    if environment is None:
        return spec
    settings = spec.settings.model_copy(update={"environment": environment})
    return spec.model_copy(update={"settings": settings})


def test_non_dev_stacks_always_get_coco_pack() -> None:
    assert gate_packs(spec_of("dev"), []) == []
    assert gate_packs(spec_of("baremetal-tdx"), []) == [PACK_DIR]
    assert gate_packs(spec_of("baremetal-tdx", "staging"), [str(PACK_DIR)]) == [str(PACK_DIR)]


def test_policy_config_levels_follow_the_environment(tmp_path: Path) -> None:
    prod = policy_config(spec_of("baremetal-tdx").settings)
    optional = "images-signature-verified"  # coco:checklist, off unless the stack opts in
    assert prod.pop(optional) == {"enforcementLevel": "disabled"}
    assert {c["enforcementLevel"] for c in prod.values()} == {"mandatory"}
    staging = policy_config(spec_of("baremetal-tdx", "staging").settings)
    assert staging.pop(optional) == {"enforcementLevel": "disabled"}
    assert {c["enforcementLevel"] for c in staging.values()} == {"advisory"}
    exceptions = tmp_path / "exceptions.yaml"
    exceptions.write_text(
        yaml.safe_dump(
            {
                "reference-values-provisioned": {
                    "enforcementLevel": "advisory",
                    "reason": "measurements come from the vendor next quarter",
                }
            }
        )
    )
    waived = policy_config(spec_of("baremetal-tdx").settings, exceptions)
    assert waived["reference-values-provisioned"]["enforcementLevel"] == "advisory"
    assert waived["no-coco-dev-runtime"]["enforcementLevel"] == "mandatory"


def test_cli_policy_config_writes_the_file_and_prints_the_environment(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "cfg.json"
    assert cli(["policy-config", "--stack", "baremetal-tdx", "--out", str(out)]) == 0
    assert capsys.readouterr().out.strip() == "production"
    config = json.loads(out.read_text())
    assert config["runtime-class-matches-hardware"]["hardware"]["tee"] == "tdx"
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"no-coco-dev-runtime": {"enforcementLevel": "disabled"}}))
    argv = ["policy-config", "--stack", "dev", "--policy-exceptions", str(bad)]
    assert cli(argv) == 2
    assert "reason" in capsys.readouterr().err


class GatedStack:
    """Stands in for `auto.Stack`: records calls; its preview fails like a mandatory violation."""

    def __init__(self, preview_fails: bool) -> None:
        self.preview_fails = preview_fails
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def preview(self, on_event: Any = None, **kw: Any) -> Any:
        self.calls.append(("preview", kw))
        if self.preview_fails:
            on_event(policy_violation(DEPLOY_URN))
            raise auto.CommandError(
                auto.CommandResult(stdout="", stderr="error: preview failed", code=255)
            )
        return None

    def up(self, **kw: Any) -> Any:
        self.calls.append(("up", kw))
        raise auto.CommandError(auto.CommandResult(stdout="", stderr="stop here", code=255))


def run_up(monkeypatch: pytest.MonkeyPatch, spec: StackSpec, fake: GatedStack) -> Exception:
    @contextmanager
    def open_stack(target: Any, backend: Any) -> Iterator[GatedStack]:
        yield fake

    monkeypatch.setattr(operations, "open_stack", open_stack)
    with pytest.raises(CocoDeploymentError) as exc:
        automation.up(spec)
    return exc.value


def test_up_of_a_production_stack_stops_at_a_mandatory_violation(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake = GatedStack(preview_fails=True)
    err = run_up(monkeypatch, spec_of("baremetal-tdx"), fake)
    assert [c for c, _ in fake.calls] == ["preview"], "up never ran"
    assert str(err).startswith("preview of stack 'baremetal-tdx' failed, blocked by policy")
    packs = fake.calls[0][1]["policy_packs"]
    assert packs == [str(PACK_DIR)]


def test_up_of_a_passing_production_stack_previews_then_ups_with_the_pack(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake = GatedStack(preview_fails=False)
    run_up(monkeypatch, spec_of("baremetal-tdx"), fake)
    assert [c for c, _ in fake.calls] == ["preview", "up"]
    assert fake.calls[1][1]["policy_packs"] == [str(PACK_DIR)]


def test_dev_up_is_not_gated(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = GatedStack(preview_fails=True)
    run_up(monkeypatch, spec_of("dev"), fake)
    assert [c for c, _ in fake.calls] == ["up"]
    assert "policy_packs" not in fake.calls[0][1]


def test_up_script_gates_every_non_dev_stack() -> None:
    """scripts/up.sh: policy config from the stack, preview before up, exit on failure."""
    text = (PROJECT_DIR / "scripts" / "up.sh").read_text()
    assert "python -m automation policy-config" in text
    assert text.index("pulumi preview --stack") < text.index("pulumi up --stack")
    assert "--policy-pack policies/pack --policy-pack-config" in text
