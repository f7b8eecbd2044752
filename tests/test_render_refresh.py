"""Render mode and charts: refresh of a render-mode stack is refused before the engine with
what to do instead; a chart's refused object is a keyed error; a non-dev render writes no
plaintext Secret."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pulumi
import pytest
import yaml

from automation.cli import run as cli
from automation.operations import RENDER_REFRESH
from automation.spec import PROJECT_DIR
from components import podspec
from components.manifest_settings import ManifestSource
from components.manifests import keyed_transformation, options_for
from components.transform import prepare


def test_refresh_of_a_render_stack_is_refused_with_the_alternative(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.setattr("automation.workspace.ensure_engine", lambda: pytest.fail("engine reached"))
    doc = yaml.safe_load((PROJECT_DIR / "stacks" / "Pulumi.dev.yaml").read_text())
    doc["config"]["coco:cluster"]["install"] = {"method": "preinstalled"}
    path = tmp_path / "Pulumi.dev.yaml"
    path.write_text(yaml.safe_dump(doc))
    assert cli(["refresh", "--stack-file", str(path), "--secret", "demoKey=x"]) == 2
    err = capsys.readouterr().err
    assert "coco:kubernetes.renderDir" in err and RENDER_REFRESH in err
    assert "Traceback" not in err


# --- charts and manifests: keyed refusals, no plaintext Secret in a non-dev render ----------

PVC_STATEFULSET = {
    "apiVersion": "apps/v1",
    "kind": "StatefulSet",
    "metadata": {"name": "db", "namespace": "shop"},
    "spec": {
        "serviceName": "db",
        "selector": {"matchLabels": {"app": "db"}},
        "template": {
            "metadata": {"labels": {"app": "db"}},
            "spec": {
                "containers": [
                    {
                        "name": "db",
                        "image": "postgres@sha256:" + "a" * 64,
                        "volumeMounts": [{"name": "data", "mountPath": "/data"}],
                    }
                ]
            },
        },
        "volumeClaimTemplates": [
            {
                "metadata": {"name": "data"},
                "spec": {
                    "accessModes": ["ReadWriteOnce"],
                    "resources": {"requests": {"storage": "1Gi"}},
                },
            }
        ],
    },
}
SECRET = {
    "apiVersion": "v1",
    "kind": "Secret",
    "metadata": {"name": "webapp-db", "namespace": "shop"},
    "stringData": {"password": "hunter2"},
}


SOURCE = ManifestSource(name="shop", chart="./chart")


def _check(obj: dict[str, Any], opts: pulumi.ResourceOptions) -> None:
    """What `Confidential` does with a chart object: workloads checked, the rest passed."""
    if podspec.is_workload(obj):
        prepare(
            obj, options_for(ManifestSource(name="shop", chart="./chart"), "kata-qemu-tdx", True)
        )


def test_a_refused_chart_object_is_keyed_not_a_traceback() -> None:
    t = keyed_transformation(
        _check, SOURCE, "coco:manifests[2]", "chart ./chart", refuse_secrets=False
    )
    with pytest.raises(pulumi.RunError) as err:
        t(copy.deepcopy(PVC_STATEFULSET), pulumi.ResourceOptions())
    text = str(err.value)
    assert text.startswith("coco:manifests[2] (chart ./chart): StatefulSet shop/db: ")
    assert "PersistentVolumeClaim" in text


def test_a_plaintext_secret_is_refused_in_a_non_dev_render_only() -> None:
    refusing = keyed_transformation(
        _check, SOURCE, "coco:manifests[0]", "chart ./c", refuse_secrets=True
    )
    with pytest.raises(pulumi.RunError) as err:
        refusing(copy.deepcopy(SECRET), pulumi.ResourceOptions())
    assert "coco:manifests[0] (chart ./c): Secret shop/webapp-db" in str(err.value)
    assert "plain text" in str(err.value) and "hunter2" not in str(err.value)
    # A Secret without values (filled by a secret manager) passes; so does dev.
    empty = {**SECRET, "stringData": {}}
    refusing(copy.deepcopy(empty), pulumi.ResourceOptions())
    dev = keyed_transformation(
        _check, SOURCE, "coco:manifests[0]", "chart ./c", refuse_secrets=False
    )
    dev(copy.deepcopy(SECRET), pulumi.ResourceOptions())
