"""A chart's `secretKeyRef` served from the KBS (`coco:manifests[i].sealedSecrets`), judged by
the guest's own components and the real KBS.

The dev stack gets a chart source: the fixture chart `tests/fixtures/charts/webapp` with a
Secret template holding a password (the chart's default), whose Deployment reads that key
through `env[].valueFrom.secretKeyRef`; `sealedSecrets` maps the key to KBS resource
`default/shop/db`. The program runs under mocks whose `kubernetes:helm:template` invoke is
answered by real Helm (the helm judge's `helm template`, the options the program sends), so
the transformation works on the chart as Helm renders it. Then:

- the real Trustee v0.21.0 KBS (kbs judge) serves the rendered stack; the Confidential Data
  Hub and attestation agent of guest-components d4dce5c (cdh judge), started with the chart
  Deployment's rendered init-data, unseal the sealed reference the program wrote into the
  source's Secret to exactly the configured value;
- the chart's own default password is nowhere in what the program registered;
- the dev stack's `hello` workload (another init-data) gets neither the value nor the resource.

    bash scripts/judges.sh kbs cdh helm
    pytest -m conformance tests/conformance/test_chart_sealed.py
"""

from __future__ import annotations

import base64
import copy
import json
import os
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kbs_harness
import pytest
import yaml
from builders import webapp_chart_with_secret
from judges import judge_dir
from kbs_harness import KbsPod, Rendered, stack_config
from test_guest_cdh import CDH_RECIPE, Guest, _rendered_url

pytestmark = pytest.mark.conformance

ROOT = Path(__file__).resolve().parents[2]
RESOURCE = "default/shop/db"
CHART_DEFAULT = "chart-default-password-in-git"


def helm_objects(opts: dict[str, Any]) -> list[dict[str, Any]]:
    """`helm template` (helm judge) with the options of a `kubernetes:helm:template` invoke;
    each namespaced object gets the release namespace, as the provider's decode sets it."""
    helm = judge_dir("helm") / "bin" / "helm"
    with tempfile.TemporaryDirectory(prefix="coco-helm-") as tmp:
        values = Path(tmp) / "values.json"
        values.write_text(json.dumps(opts.get("values") or {}))
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": tmp}
        done = subprocess.run(
            [
                str(helm),
                "template",
                opts["release_name"],
                opts["path"],
                "--namespace",
                opts["namespace"],
                "--values",
                str(values),
            ],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
            check=False,
        )
    assert done.returncode == 0, done.stderr[-4000:]
    objects = [d for d in yaml.safe_load_all(done.stdout) if isinstance(d, dict)]
    for obj in objects:
        obj.setdefault("metadata", {}).setdefault("namespace", opts["namespace"])
    return objects


class HelmKeyMakingMocks(kbs_harness.KeyMakingMocks):
    """The harness's mocks, with charts rendered by real Helm."""

    def call(self, args: Any) -> tuple[dict, list[tuple[str, str]] | None]:  # type: ignore[type-arg]
        if args.token == "kubernetes:helm:template":
            return {"result": helm_objects(json.loads(args.args["jsonOpts"]))}, []
        return super().call(args)


def chart(tmp: Path) -> Path:
    return webapp_chart_with_secret(tmp)


def chart_config(chart_dir: Path) -> dict[str, Any]:
    config = copy.deepcopy(stack_config("dev"))
    tls = config["coco:trustee"].setdefault("tls", {})
    tls["dnsNames"] = sorted({*tls.get("dnsNames", []), "localhost"})
    config["coco:trustee"]["resources"].append(
        {"path": RESOURCE, "valueFrom": "shopDb", "readers": ["shop"]}
    )
    config["coco:manifests"] = [
        {
            "name": "shop",
            "chart": str(chart_dir),
            "namespace": "shop",
            "values": {
                "dbPassword": CHART_DEFAULT,
                "replicaCount": 1,
                "image": {"digest": "sha256:" + "cd" * 32},
                "env": [
                    {
                        "name": "DB_PASSWORD",
                        "valueFrom": {
                            "secretKeyRef": {"name": "shop-webapp-db", "key": "password"}
                        },
                    }
                ],
            },
            "sealedSecrets": [
                {"secret": "shop-webapp-db", "key": "password", "sealedFrom": RESOURCE}
            ],
        }
    ]
    return config


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Rendered:
    for name in ("kbs", "helm"):
        judge_dir(name)
    where = chart(tmp_path_factory.mktemp("chart"))
    original = kbs_harness.KeyMakingMocks
    kbs_harness.KeyMakingMocks = HelmKeyMakingMocks  # type: ignore[misc]
    try:
        return kbs_harness.render("dev", chart_config(where))
    finally:
        kbs_harness.KeyMakingMocks = original  # type: ignore[misc]


@pytest.fixture(scope="module")
def kbs_pod(rendered: Rendered) -> Iterator[KbsPod]:
    pod = KbsPod(rendered, judge_dir("kbs"))
    try:
        pod.start()
        yield pod
    finally:
        pod.stop()


def _guest(rendered: Rendered, kbs_pod: KbsPod, workload: str) -> Guest:
    if not os.access(CDH_RECIPE, os.X_OK):
        pytest.skip("judge cdh not enabled yet (scripts/judges/cdh/build.sh is not executable)")
    return Guest(
        judge_dir("cdh") / "bin", rendered.initdata[workload], kbs_pod.url, _rendered_url(rendered)
    )


def sealed_of(rendered: Rendered) -> str:
    return rendered.workload_secrets["shop-sealed-secrets"]["shop-webapp-db.password"]


def test_the_chart_never_carries_the_value(rendered: Rendered) -> None:
    """The chart's own Secret lost the key; the sealed Secret holds a reference only."""
    assert "password" not in rendered.workload_secrets.get("shop-webapp-db", {})
    sealed = sealed_of(rendered)
    assert sealed.startswith("sealed.")
    assert rendered.resource_values[RESOURCE] not in sealed
    for secret in rendered.workload_secrets.values():
        assert CHART_DEFAULT not in json.dumps(secret)


def test_the_cdh_unseals_the_charts_secret_from_the_kbs(
    rendered: Rendered, kbs_pod: KbsPod
) -> None:
    """With the chart Deployment's init-data: the CDH checks the signature with the key the
    KBS serves, fetches `default/shop/db` (released to that digest) and returns its value."""
    guest = _guest(rendered, kbs_pod, "shop-webapp")
    try:
        done = guest.unseal(sealed_of(rendered))
        assert done.returncode == 0, done.stderr[-4000:]
        value = base64.b64decode(done.stdout.strip().splitlines()[-1]).decode()
        assert value == rendered.resource_values[RESOURCE]
    finally:
        guest.stop()


def test_another_init_data_gets_nothing(rendered: Rendered, kbs_pod: KbsPod) -> None:
    guest = _guest(rendered, kbs_pod, "hello")
    try:
        assert guest.unseal(sealed_of(rendered)).returncode != 0
        assert guest.resource(RESOURCE).returncode != 0
    finally:
        guest.stop()
