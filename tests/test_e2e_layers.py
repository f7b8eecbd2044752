"""The two-stack layout through the real engine: a platform stack's outputs feed a trust stack.

Both stacks render (no cluster) into temporary folders and keep their state in one local
file backend, so the trust stack's `pulumi.StackReference` reads the platform stack's real
state. The trust stack deploys, reports the platform's runtime classes, renders the
workloads and the KBS; both stacks are then destroyed.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

import automation
from automation import Backend, CocoDeploymentError, StackSpec
from components.layer_settings import LayerSettings
from components.settings import KubernetesTarget

pytestmark = pytest.mark.e2e


@pytest.fixture
def backend(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Backend:
    if shutil.which("pulumi") is None:
        pytest.fail(
            "the pulumi CLI is not on PATH: run `bash scripts/setup.sh; source scripts/env.sh`"
        )
    if not (
        os.environ.get("PULUMI_CONFIG_PASSPHRASE")
        or os.environ.get("PULUMI_CONFIG_PASSPHRASE_FILE")
    ):
        monkeypatch.setenv("PULUMI_CONFIG_PASSPHRASE", "coco-e2e-layers")
    return Backend.local(tmp_path / "state")


def layered(name: str, layer: LayerSettings, render_dir: Path) -> StackSpec:
    """The dev stack's settings as one layer, rendering into `render_dir`."""
    spec = StackSpec.from_stack("dev", secrets={"demoKey": "e2e-layers-demo-key"})
    settings = spec.settings.model_copy(
        update={"layer": layer, "kubernetes": KubernetesTarget(render_dir=str(render_dir))}
    )
    return spec.model_copy(update={"name": name, "settings": settings})


def files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.rglob("*") if p.is_file())


def test_platform_outputs_feed_the_trust_stack(backend: Backend, tmp_path: Path) -> None:
    platform = layered("layers-platform", LayerSettings(kind="platform"), tmp_path / "platform")
    trust_layer = LayerSettings(kind="trust", platform_stack="organization/coco/layers-platform")
    trust = layered("layers-trust", trust_layer, tmp_path / "trust")

    # Before the platform exists, the trust stack cannot read it: nothing is rendered.
    with pytest.raises(CocoDeploymentError):
        automation.up(trust, backend=backend)
    assert files(tmp_path / "trust") == []

    first = automation.up(platform, backend=backend)
    assert first.outputs is not None
    assert first.outputs["layer"] == "platform"
    assert first.outputs["runtimeClasses"] == ["kata-qemu-coco-dev"]
    assert first.outputs["hardware"]["tee"] == "none"
    assert "kubernetes" in first.outputs.secret_keys
    assert first.outputs["attestationPlatforms"] == {"kata-qemu-coco-dev": "sample"}

    second = automation.up(trust, backend=backend)
    assert second.outputs is not None
    assert second.outputs["layer"] == "trust"
    assert second.outputs["platformStack"] == "organization/coco/layers-platform"
    assert second.outputs["runtimeClasses"] == first.outputs["runtimeClasses"]
    assert second.outputs["workloads"]["hello"]["runtimeClass"] == "kata-qemu-coco-dev"
    rendered = "\n".join(p.read_text() for p in files(tmp_path / "trust"))
    assert "kind: Deployment" in rendered and "resource-policy" in rendered
    assert "kind: Deployment" not in "\n".join(p.read_text() for p in files(tmp_path / "platform"))

    # A workload edit re-plans only the trust stack; the platform proposes nothing.
    assert not automation.preview(platform, backend=backend).changed

    automation.destroy(trust, backend=backend, remove=True)
    assert files(tmp_path / "trust") == []
    automation.destroy(platform, backend=backend, remove=True)
