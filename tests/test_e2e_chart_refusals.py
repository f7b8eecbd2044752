"""A chart's refusals through the real engine: keyed by `coco:manifests[i]`, no traceback,
and before any resource is created.

- a chart workload the TEE cannot run (a PersistentVolumeClaim volume), refused when the
  program starts (components/chart_check.py): the error names `coco:manifests[0]`, the chart
  and the object, and the render folder stays empty (`automation render` runs `up` without a
  preview); through `automation up`, the state holds no resource but the stack and providers
  (before the check ran first, the KBS key pair and two components were created);
- a chart's own Secret with values, in a staging render: refused (it would be plain text in
  the render folder); the same chart in a dev render keeps it;
- the same chart with `sealedSecrets`: the Secret key its pod reads comes from the KBS, so the
  staging render succeeds and no rendered file holds the value (the chart's default or the
  KBS resource's).

    bash scripts/setup.sh && source scripts/env.sh && pytest -m e2e tests/test_e2e_chart_refusals.py
"""

from __future__ import annotations

import base64
import gzip
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from builders import run_cli, webapp_chart_with_secret

from automation.spec import PROJECT_DIR
from policies.initdata import INITDATA_ANNOTATION

pytestmark = pytest.mark.e2e

DEV_PASSPHRASE = {"PULUMI_CONFIG_PASSPHRASE": "coco-local-dev"}
"""The dev stack's public passphrase (scripts/env.sh)."""

WEBAPP = PROJECT_DIR / "tests" / "fixtures" / "charts" / "webapp"


def render(
    tmp_path: Path,
    environment: str,
    manifests: list[dict[str, Any]],
    resources: list[dict[str, Any]] = (),  # type: ignore[assignment]
    secrets: dict[str, str] | None = None,
) -> str:
    doc = yaml.safe_load((PROJECT_DIR / "stacks" / "Pulumi.dev.yaml").read_text())
    doc["config"]["coco:environment"] = environment
    doc["config"]["coco:manifests"] = manifests
    doc["config"]["coco:trustee"].setdefault("resources", []).extend(resources)
    file = tmp_path / "Pulumi.dev.yaml"
    file.write_text(yaml.safe_dump(doc))
    _, text = run_cli(
        "render",
        file,
        tmp_path / "state",
        secrets={"demoKey": "x", **(secrets or {})},
        out=tmp_path / "out",
        env=DEV_PASSPHRASE,
    )
    return text


PVC_VALUES = {
    "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "data"}}],
    "volumeMounts": [{"name": "data", "mountPath": "/data"}],
}


def test_a_refused_chart_workload_is_keyed(tmp_path: Path) -> None:
    text = render(
        tmp_path,
        "dev",
        [{"name": "shop", "chart": str(WEBAPP), "namespace": "shop", "values": PVC_VALUES}],
    )
    assert text.startswith("exit 1"), text[-4000:]
    assert f"coco:manifests[0] (chart {WEBAPP}): Deployment shop/" in text, text[-4000:]
    assert "persistentVolumeClaim" in text
    # Refused when the program started: no object of the stack was created (rendered).
    written = sorted(p.name for p in (tmp_path / "out").rglob("*") if p.is_file())
    assert written == [], written


def test_a_refused_chart_creates_nothing_on_up(tmp_path: Path) -> None:
    """`python -m automation up` (no preview first) of a stack whose chart is refused: the
    state holds the stack and providers only. Before the program checked charts first, the
    KBS key pair, its component and the cluster component were created (5 resources) before
    the chart's refusal stopped the program."""
    doc = yaml.safe_load((PROJECT_DIR / "stacks" / "Pulumi.dev.yaml").read_text())
    doc["config"]["coco:kubernetes"] = {"renderDir": str(tmp_path / "out")}
    doc["config"]["coco:manifests"] = [
        {"name": "shop", "chart": str(WEBAPP), "namespace": "shop", "values": PVC_VALUES}
    ]
    file = tmp_path / "Pulumi.dev.yaml"
    file.write_text(yaml.safe_dump(doc))
    code, text = run_cli(
        "up", file, tmp_path / "state", secrets={"demoKey": "x"}, env=DEV_PASSPHRASE
    )
    assert code == 1, text[-4000:]
    assert f"coco:manifests[0] (chart {WEBAPP}): Deployment shop/" in text, text[-4000:]
    (checkpoint,) = (tmp_path / "state" / ".pulumi" / "stacks").rglob("dev.json")
    latest = json.loads(checkpoint.read_text())["checkpoint"]["latest"]
    types = sorted(r["type"] for r in latest.get("resources") or [])
    created = [
        t for t in types if t != "pulumi:pulumi:Stack" and not t.startswith("pulumi:providers:")
    ]
    assert created == [], types


def rendered_objects(out: Path) -> list[dict[str, Any]]:
    return [
        doc
        for p in sorted(out.rglob("*.yaml"))
        for doc in yaml.safe_load_all(p.read_text())
        if isinstance(doc, dict)
    ]


def test_a_charts_secret_key_ref_is_served_from_the_kbs(tmp_path: Path) -> None:
    """sealedSecrets: the chart's Deployment reads its password through env secretKeyRef of
    its own Secret; coco serves it from the KBS resource instead. The staging render passes,
    the Deployment reads the source's sealed Secret (a signed reference), the chart's Secret
    has lost the key, the init-data pins the sealed reference, and neither the chart's default
    nor the KBS value is in any rendered file. Every object is valid Kubernetes."""
    from k8s_schema import as_manifest, has_schema, validate_manifest

    chart = webapp_chart_with_secret(tmp_path)
    entry = {
        "name": "shop",
        "chart": str(chart),
        "namespace": "shop",
        "values": {
            "dbPassword": "hunter2-chart-default",
            "image": {"digest": "sha256:" + "ab" * 32},
            "env": [
                {
                    "name": "DB_PASSWORD",
                    "valueFrom": {"secretKeyRef": {"name": "shop-webapp-db", "key": "password"}},
                }
            ],
        },
        "sealedSecrets": [
            {"secret": "shop-webapp-db", "key": "password", "sealedFrom": "default/shop/db"}
        ],
    }
    resource = {"path": "default/shop/db", "valueFrom": "shopDb", "readers": ["shop"]}
    text = render(tmp_path, "staging", [entry], [resource], {"shopDb": "kbs-only-s3cret"})
    assert text.startswith("exit 0"), text[-4000:]
    assert "hunter2-chart-default" not in text and "kbs-only-s3cret" not in text
    out = tmp_path / "out"
    for p in out.rglob("*"):
        if p.is_file():
            body = p.read_text(errors="replace")
            assert "hunter2-chart-default" not in body and "kbs-only-s3cret" not in body, p
    objects = rendered_objects(out)
    for obj in objects:
        if has_schema(as_manifest(obj)):
            validate_manifest(obj)
    by = {(o["kind"], o["metadata"]["name"]): o for o in objects}
    (web,) = [
        o for o in objects if o["kind"] == "Deployment" and o["metadata"]["name"] == "shop-webapp"
    ]
    env = web["spec"]["template"]["spec"]["containers"][0]["env"]
    assert env == [
        {
            "name": "DB_PASSWORD",
            "valueFrom": {
                "secretKeyRef": {"name": "shop-sealed-secrets", "key": "shop-webapp-db.password"}
            },
        }
    ]
    sealed = by[("Secret", "shop-sealed-secrets")]
    values = sealed.get("stringData") or {
        k: base64.b64decode(v).decode() for k, v in sealed["data"].items()
    }
    assert values["shop-webapp-db.password"].startswith("sealed.")
    assert not (by[("Secret", "shop-webapp-db")].get("stringData") or {}).get("password")
    assert not (by[("Secret", "shop-webapp-db")].get("data") or {}).get("password")
    annotations = web["spec"]["template"]["metadata"]["annotations"]
    initdata = gzip.decompress(base64.b64decode(annotations[INITDATA_ANNOTATION])).decode()
    assert "DB_PASSWORD=sealed" in initdata


PINNED = "sha256:" + "c" * 64


def test_a_charts_plaintext_secret_is_refused_in_a_staging_render(tmp_path: Path) -> None:
    chart = webapp_chart_with_secret(tmp_path)
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
