"""`coco:workloads[].service`: a Service selecting exactly the workload's confidential pods."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from k8s_schema import validate_manifest
from test_manifests import run
from test_settings import problems

from components import labels
from components.service import ServiceSettings

PINNED = "registry.example.com/shop/web@sha256:" + "ab" * 32

CONFIG: dict[str, Any] = {
    "environment": "dev",
    "kubernetes": {"renderDir": "out/test"},
    "cluster": {"kind": "baremetal", "tee": "none", "install": {"method": "preinstalled"}},
    "trustee": {
        "serviceType": "LoadBalancer",
        "url": "https://kbs.example.com:8080",
        "resources": [{"path": "default/key/1", "valueFrom": "appKey", "readers": ["web"]}],
        "secretsDelivery": "reference",
    },
    "workloads": [
        {
            "name": "web",
            "namespace": "shop",
            "containers": [{"name": "web", "image": PINNED, "ports": [8443]}],
            "service": {"type": "NodePort", "ports": [{"port": 443, "targetPort": 8443}]},
        }
    ],
}


def test_service_selects_the_workload_pods() -> None:
    mocks = run(CONFIG)
    (svc,) = [r for r in mocks.kubernetes() if r.kind == "Service" and r.metadata["name"] == "web"]
    validate_manifest({"apiVersion": "v1", "kind": "Service", **svc.inputs})
    assert svc.metadata["namespace"] == "shop"
    spec = svc.inputs["spec"]
    assert spec["type"] == "NodePort"
    assert spec["ports"] == [{"port": 443, "targetPort": 8443, "protocol": "TCP"}]
    (web,) = [
        r for r in mocks.kubernetes() if r.kind == "Deployment" and r.metadata["name"] == "web"
    ]
    pod_labels = web.inputs["spec"]["template"]["metadata"]["labels"]
    assert spec["selector"] == {labels.WORKLOAD: "web"}
    assert all(pod_labels[k] == v for k, v in spec["selector"].items())


def test_no_service_unless_asked() -> None:
    config = copy.deepcopy(CONFIG)
    del config["workloads"][0]["service"]
    mocks = run(config)
    assert not [
        r for r in mocks.kubernetes() if r.kind == "Service" and r.metadata["name"] == "web"
    ]


def test_bad_service_settings_name_the_key() -> None:
    config = copy.deepcopy(CONFIG)
    config["workloads"][0]["service"] = {"ports": [{"port": 80, "nodePort": 30080}]}
    assert "coco:workloads[0].service" in problems(config)
    with pytest.raises(ValueError, match="unique name"):
        ServiceSettings.model_validate({"ports": [{"port": 80}, {"port": 81}]})
