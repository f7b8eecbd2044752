"""A chart's refusals through the real engine: keyed by `coco:manifests[i]`, no traceback.

- a chart workload the TEE cannot run (a PersistentVolumeClaim volume), refused while the
  provider renders the chart: the error names `coco:manifests[0]`, the chart and the object;
- a chart's own Secret with values, in a staging render: refused (it would be plain text in
  the render folder); the same chart in a dev render keeps it.

    bash scripts/setup.sh && source scripts/env.sh && pytest -m e2e tests/test_e2e_chart_refusals.py
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from automation.spec import PROJECT_DIR

pytestmark = pytest.mark.e2e

WEBAPP = PROJECT_DIR / "tests" / "fixtures" / "charts" / "webapp"
SECRET_TEMPLATE = """\
apiVersion: v1
kind: Secret
metadata:
  name: {{ include "webapp.fullname" . }}-db
stringData:
  password: {{ .Values.dbPassword | quote }}
"""


def render(tmp_path: Path, environment: str, manifests: list[dict[str, Any]]) -> str:
    if shutil.which("pulumi") is None:
        pytest.fail("the Pulumi engine is missing: run `bash scripts/setup.sh`", pytrace=False)
    doc = yaml.safe_load((PROJECT_DIR / "stacks" / "Pulumi.dev.yaml").read_text())
    doc["config"]["coco:environment"] = environment
    doc["config"]["coco:manifests"] = manifests
    file = tmp_path / "Pulumi.dev.yaml"
    file.write_text(yaml.safe_dump(doc))
    env = {**os.environ, "PULUMI_CONFIG_PASSPHRASE": "coco-local-dev"}
    env["PULUMI_BACKEND_URL"] = f"file://{tmp_path / 'state'}"
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "automation",
            "render",
            "--stack-file",
            str(file),
            "--secret",
            "demoKey=x",
            "--out",
            str(tmp_path / "out"),
        ],
        cwd=PROJECT_DIR,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    text = out.stdout + out.stderr
    assert "Traceback" not in text, text[-4000:]
    return f"exit {out.returncode}\n{text}"


def test_a_refused_chart_workload_is_keyed(tmp_path: Path) -> None:
    values = {
        "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "data"}}],
        "volumeMounts": [{"name": "data", "mountPath": "/data"}],
    }
    text = render(
        tmp_path,
        "dev",
        [{"name": "shop", "chart": str(WEBAPP), "namespace": "shop", "values": values}],
    )
    assert text.startswith("exit 1"), text[-4000:]
    assert f"coco:manifests[0] (chart {WEBAPP}): Deployment shop/" in text, text[-4000:]
    assert "persistentVolumeClaim" in text


PINNED = "sha256:" + "c" * 64


def test_a_charts_plaintext_secret_is_refused_in_a_staging_render(tmp_path: Path) -> None:
    chart = tmp_path / "webapp"
    shutil.copytree(WEBAPP, chart)
    (chart / "templates" / "secret.yaml").write_text(SECRET_TEMPLATE)
    entry = {
        "name": "shop",
        "chart": str(chart),
        "namespace": "shop",
        # Pinned: the restrictive policy refuses a tag in dev too (components/confidential_pod.py
        # `image_problem`), and this test is about the Secret.
        "values": {
            "dbPassword": "hunter2-in-git",
            "image": {"repository": "registry.example.com/library/nginx", "digest": PINNED},
        },
    }
    (tmp_path / "staging").mkdir()
    (tmp_path / "dev").mkdir()
    staging = render(tmp_path / "staging", "staging", [entry])
    assert staging.startswith("exit 1"), staging[-4000:]
    assert "coco:manifests[0]" in staging and "would be written in plain text" in staging
    assert "hunter2-in-git" not in staging
    written = list((tmp_path / "staging" / "out").rglob("*.yaml"))
    assert not any("hunter2-in-git" in p.read_text() for p in written)
    dev = render(tmp_path / "dev", "dev", [entry])
    assert dev.startswith("exit 0"), dev[-4000:]
