"""Your own Pulumi program: an unmodified Helm chart, every workload in it confidential.

    cd examples/confidential_chart
    pulumi stack init demo
    pulumi config set chart ../../tests/fixtures/charts/webapp
    pulumi config set kbsUrl https://kbs.example.com:8080
    pulumi config set kbsCertPath kbs.pem          # the CA the guest pins for the KBS
    pulumi config set renderDir out                # or leave unset to deploy to the cluster
    pulumi up

The chart is rendered by the Kubernetes provider (helm.v3.Chart), and `confidential(...)`
rewrites each workload before it is registered: runtime class, init-data with the agent
policy derived from that exact pod spec, and its digest (exported, for the KBS resource
policy). The chart's Service and ServiceAccount pass unchanged. tests/test_transform_engine.py
runs this program through the real engine in render mode.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pulumi
import pulumi_kubernetes as k8s

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # coco's components

from components.transform import confidential

config = pulumi.Config()
render_dir = config.get("renderDir")
provider = (
    k8s.Provider("k8s", render_yaml_to_directory=render_dir) if render_dir else k8s.Provider("k8s")
)

coco = confidential(
    config.get("runtimeClass") or "kata-qemu-tdx",
    kbs_url=config.require("kbsUrl"),
    kbs_cert_pem=Path(config.require("kbsCertPath")).read_text(),
    require_digests=config.get_bool("production") or False,
)

chart = k8s.helm.v3.Chart(
    "webapp",
    k8s.helm.v3.LocalChartOpts(
        path=config.require("chart"),
        namespace="shop",
        values=config.get_object("values") or {},
        transformations=[coco.transformation],
    ),
    opts=pulumi.ResourceOptions(provider=provider),
)

pulumi.export("initdataDigests", coco.digests_of(chart))
