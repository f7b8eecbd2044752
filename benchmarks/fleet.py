"""A synthetic stack of N confidential workloads, shaped like a production TDX stack.

Why synthetic: no stack file in `stacks/` has more than a handful of workloads, and the cost
we want to see is the one that grows with the fleet. Each workload is what a platform team
would really declare in production: one container pinned by digest, the restrictive agent
policy (so each gets its own rendered Rego and init-data), and one KBS secret that only it
may read (so the resource policy binds N init-data digests). The cluster side is fixed (bare
metal TDX, CoCo installed by the pinned chart, reference values present), so the only thing
that changes with N is the workloads and their secrets.

The settings go through the real `components.settings.load` in the program under test: this
module produces the raw `coco:` config values a stack file would hold, not models.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from components.settings import NAMESPACE

TEAMS = 10
"""Workloads are spread over this many namespaces (one per team), as a fleet would be."""


def workload_name(i: int) -> str:
    return f"app-{i:04d}"


def secret_key(i: int) -> str:
    """The config key holding workload i's KBS secret (a Pulumi secret)."""
    return f"app{i:04d}Key"


def _digest(seed: str) -> str:
    return hashlib.sha256(seed.encode()).hexdigest()


def _chart_install() -> dict[str, Any]:
    """Install CoCo by the kata-deploy chart, at the one version the cluster component pins.

    The pin lives in `components.cluster`; following it keeps the benchmark measuring the
    chart path after a version bump instead of failing on a stale version.
    """
    install: dict[str, Any] = {"method": "chart"}
    try:
        from components import cluster
    except ImportError:
        return install
    version = getattr(cluster, "KATA_DEPLOY_CHART_VERSION", None)
    if isinstance(version, str):
        install["version"] = version
    return install


def fleet_config(n: int) -> dict[str, Any]:
    """The raw `coco:` config (keys without the namespace) of a stack with `n` workloads."""
    workloads: list[dict[str, Any]] = []
    resources: list[dict[str, Any]] = []
    for i in range(n):
        name = workload_name(i)
        team = f"team-{i % TEAMS:02d}"
        workloads.append(
            {
                "name": name,
                "namespace": team,
                "kind": "Deployment",
                "replicas": 2,
                "runtimeClass": "kata-qemu-tdx",
                "containers": [
                    {
                        "name": "app",
                        "image": f"registry.example.com/{team}/{name}@sha256:{_digest(name)}",
                        "ports": [8443],
                        "env": {"LOG_LEVEL": "info", "KBS_RESOURCE": f"default/{name}/key"},
                        "resources": {"limits": {"cpu": "2", "memory": "4Gi"}},
                    }
                ],
                "agentPolicy": {"preset": "restrictive"},
            }
        )
        resources.append(
            {
                "path": f"default/{name}/key",
                "valueFrom": secret_key(i),
                "readers": [name],
                "minTrust": "affirming",
            }
        )
    return {
        "environment": "production",
        "kubernetes": {"kubeconfig": "~/.kube/tdx-prod.yaml", "context": "tdx-prod"},
        "cluster": {
            "kind": "baremetal",
            "arch": "x86_64",
            "tee": "tdx",
            "install": _chart_install(),
            "useNfd": True,
        },
        # One cluster, one provider, as the figures in docs/benchmarks.md were measured (the
        # baseline replays every object through one provider): the Trustee co-located, waived;
        # its NodePort and image pinned as in stacks/Pulumi.baremetal-tdx.yaml.
        "waivers": [
            {
                "check": "co-located-trustee",
                "reason": "benchmark: one cluster, one provider, comparable with earlier runs",
            }
        ],
        "trustee": {
            "namespace": "trustee",
            "image": "registry.example.com/mirror/key-broker-service@sha256:" + "3c" * 32,
            "serviceType": "NodePort",
            "nodePort": 30443,
            "url": "https://kbs.tdx-prod.example.com:30443",
            "tls": {"dnsNames": ["kbs.tdx-prod.example.com"]},
            "resources": resources,
            "referenceValues": {
                "mr_td": [_digest("mr_td") + _digest("mr_td")[:32]],
                "rtmr_1": [_digest("rtmr_1") + _digest("rtmr_1")[:32]],
                "rtmr_2": [_digest("rtmr_2") + _digest("rtmr_2")[:32]],
                # Production refuses a set that cannot reach affirming (reference_coverage.py).
                "xfam": ["e702060000000000"],
            },
        },
        "workloads": workloads,
    }


def fleet_secrets(n: int) -> dict[str, str]:
    """Config key -> plain value of every KBS secret the fleet reads (all Pulumi secrets)."""
    return {secret_key(i): f"secret-value-{i:04d}" for i in range(n)}


def pulumi_config(raw: dict[str, Any], secrets: dict[str, str]) -> tuple[dict[str, str], list[str]]:
    """The stack config as the engine hands it to a Python program: full keys, string values.

    Plain strings travel as they are, structured values as JSON text (what
    `pulumi.Config.get_object` parses), and secret keys are listed so `is_config_secret`
    answers as it would for `--secret` values.
    """
    config = {
        f"{NAMESPACE}:{k}": v if isinstance(v, str) else json.dumps(v) for k, v in raw.items()
    }
    secret_keys = []
    for key, value in secrets.items():
        full = f"{NAMESPACE}:{key}"
        config[full] = value
        secret_keys.append(full)
    return config, secret_keys
