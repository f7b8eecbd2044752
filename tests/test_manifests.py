"""`coco:manifests`: a stack deploys the user's own YAML folder as confidential workloads.

Under mocks, the real program (components/stack.py `build`) reads the folder, makes its
Deployment confidential with the cluster's runtime class, passes its Service unchanged, and
binds the KBS resource whose reader names the source to that Deployment's init-data digest.
Bad folders are refused while the settings are validated, naming the config key, the file,
the object and the field.
"""

from __future__ import annotations

import base64
import gzip
from pathlib import Path
from typing import Any

import pytest
import yaml
from mocks import DecodingMocks, RecordingMocks, config_values, run_program

from components import labels
from components.settings import SettingsError, parse
from policies.initdata import INITDATA_ANNOTATION

PINNED = "registry.example.com/shop/web@sha256:" + "ab" * 32
KEY = "coco:appKey"


def deployment(image: str = PINNED, **pod: Any) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": image}], **pod},
            },
        },
    }


SERVICE = {
    "apiVersion": "v1",
    "kind": "Service",
    "metadata": {"name": "web"},
    "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]},
}


def folder(tmp: Path, *objects: dict[str, Any]) -> Path:
    out = tmp / "manifests"
    out.mkdir()
    (out / "app.yaml").write_text(yaml.safe_dump_all(list(objects)))
    return out


def config(path: Path, environment: str = "dev", tee: str = "none") -> dict[str, Any]:
    return {
        "environment": environment,
        "kubernetes": {"renderDir": "out/test"},
        "cluster": {"kind": "baremetal", "tee": tee, "install": {"method": "preinstalled"}},
        "trustee": {
            "serviceType": "LoadBalancer",
            "url": "https://kbs.example.com:8080",
            "resources": [{"path": "default/key/1", "valueFrom": "appKey", "readers": ["shop"]}],
            "referenceValues": {"mr_td": ["aa" * 48]},
            "secretsDelivery": "reference",
        },
        "manifests": [{"name": "shop", "path": str(path), "namespace": "shop"}],
    }


def run(data: dict[str, Any]) -> RecordingMocks:
    parse(data)  # the same validation `load` runs
    mocks = DecodingMocks()
    run_program(mocks, "manifests", config_values(data, "coco:") | {KEY: "s3cret-value"}, [KEY])
    return mocks


def test_folder_workloads_are_confidential_and_bound_to_the_kbs(tmp_path: Path) -> None:
    mocks = run(config(folder(tmp_path, deployment(), SERVICE)))
    (web,) = [
        r for r in mocks.kubernetes() if r.kind == "Deployment" and r.metadata["name"] == "web"
    ]
    template = web.inputs["spec"]["template"]
    assert web.inputs["metadata"]["namespace"] == "shop"
    assert template["spec"]["runtimeClassName"] == "kata-qemu-coco-dev"
    digest = template["metadata"]["annotations"][labels.INITDATA_DIGEST_ANNOTATION]
    text = gzip.decompress(
        base64.b64decode(template["metadata"]["annotations"][INITDATA_ANNOTATION])
    )
    assert PINNED.encode() in text  # the agent policy allows exactly this image
    (svc,) = [r for r in mocks.kubernetes() if r.kind == "Service" and r.metadata["name"] == "web"]
    assert svc.inputs["spec"] == SERVICE["spec"]
    policies = [
        r
        for r in mocks.of_type("core/v1:ConfigMap")
        if r.metadata.get("labels", {}).get(labels.ROLE) == "resource-policy"
    ]
    assert digest in policies[0].inputs["data"]["policy.rego"]
    namespaces = [r.metadata["name"] for r in mocks.of_type("core/v1:Namespace")]
    assert "shop" in namespaces


def problems(data: dict[str, Any]) -> str:
    with pytest.raises(SettingsError) as err:
        parse(data)
    return str(err.value)


def test_invalid_manifest_names_key_file_object_and_field(tmp_path: Path) -> None:
    bad = deployment()
    bad["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"] = 3
    text = problems(config(folder(tmp_path, bad)))
    assert "coco:manifests[0].path" in text
    assert "app.yaml: Deployment shop/web: spec.template.spec.containers.0.imagePullPolicy" in text


def test_workload_the_tee_cannot_run_is_refused(tmp_path: Path) -> None:
    text = problems(config(folder(tmp_path, deployment(hostNetwork=True))))
    assert "coco:manifests[0].path" in text
    assert "spec.template.spec.hostNetwork: the pod VM has its own network stack" in text


def test_production_refuses_a_tag_without_digest(tmp_path: Path) -> None:
    data = config(folder(tmp_path, deployment(image="nginx:1.27")), "production", "tdx")
    text = problems(data)
    assert "spec.template.spec.containers.0.image: 'nginx:1.27' has a tag but no digest" in text


def test_not_yaml_and_unknown_reader(tmp_path: Path) -> None:
    path = tmp_path / "manifests"
    path.mkdir()
    (path / "broken.yaml").write_text("kind: [unclosed\n")
    data = config(path)
    data["trustee"]["resources"][0]["readers"] = ["nobody"]
    text = problems(data)
    assert "broken.yaml: not YAML" in text
    assert "'nobody' is not a workload in coco:workloads or coco:manifests" in text


def test_one_source_kind_only() -> None:
    text = problems({**config(Path("x")), "manifests": [{"name": "a", "path": "x", "chart": "y"}]})
    assert "coco:manifests[0]" in text and "exactly one of `path`" in text


def test_chart_that_is_not_a_chart_names_the_key(tmp_path: Path) -> None:
    data = config(tmp_path)
    data["manifests"] = [{"name": "shop", "chart": str(tmp_path / "nochart")}]
    text = problems(data)
    assert "coco:manifests[0].chart" in text and "no Chart.yaml" in text
