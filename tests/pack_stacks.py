"""A stack the settings accept but the production policy pack refuses, for the engine tests
of the pack and of the non-dev deploy gate (test_e2e_automation.py, test_e2e_gate.py)."""

from __future__ import annotations

from typing import Any

IMAGE = "registry.example.com/coco/app@sha256:" + "1d" * 32


def gate_stack(environment: str, render_dir: str = "out/gate") -> dict[str, Any]:
    """A stack the settings accept (a reasoned coco-dev waiver) but the pack objects to."""
    return {
        "coco:environment": environment,
        "coco:kubernetes": {"renderDir": render_dir},
        "coco:cluster": {"kind": "baremetal", "tee": "none", "install": {"method": "preinstalled"}},
        # The Trustee in the trusted zone, its image pinned: only the coco-dev runtime is
        # left for the pack to object to.
        "coco:topology": {
            "kind": "trusted-zone",
            "trusteeCluster": {"renderDir": f"{render_dir}-trust"},
        },
        "coco:trustee": {
            "image": "registry.example.com/mirror/key-broker-service@sha256:" + "3c" * 32,
            "serviceType": "LoadBalancer",
            "url": "https://kbs.gate.example.com:8080",
            "resources": [{"path": "default/key/1", "valueFrom": "appKey", "readers": ["app"]}],
            "referenceValues": {
                "launch_digest": ["ab" * 48],
                # Typed as trustee's default policy compares them (== and >=): integers.
                "major_version": 1,
                "minimum_minor_version": 0,
                "svn": ["1"],
            },
        },
        "coco:workloads": [
            {"name": "app", "namespace": "prod", "containers": [{"name": "app", "image": IMAGE}]}
        ],
        "coco:waivers": [
            {
                "check": "coco-dev-runtime",
                "reason": "e2e: the settings waiver does not bind the pack",
            }
        ],
    }
