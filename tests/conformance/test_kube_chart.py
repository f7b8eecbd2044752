"""An unmodified third-party chart deployed as confidential workloads through the engine: in
render mode and against a real control plane (the issue's "Done when").

The chart is Helm's own scaffold, made at test time by the helm judge's binary (helm v3.22.0,
scripts/judges/helm): `helm create shop` writes the default chart every Helm user starts from
(nginx Deployment with httpGet probes, Service, ServiceAccount, HPA/Ingress/HTTPRoute off, and
the `helm.sh/hook: test` Pod `templates/tests/test-connection.yaml`). coco never edits it; the
stack gives values only (the image pinned by digest through `image.repository`/`image.tag`).

What only the engine and a cluster can show: the provider renders the chart and runs coco's
transformation on each object; the Deployment and its pods carry the runtime class and the
init-data annotation whose digest the stack exports, and the KBS resource policy releases the
source's secret to that digest only; the test hook Pod is not deployed (the provider's chart
render leaves `test` hooks out; a delete hook it renders is left out by coco,
components/transform.py `dropped_hook`); the Service and ServiceAccount are the chart's; a
second preview against the live objects proposes nothing; destroy removes it all.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from agent_requests import (
    container_id,
    copy_file,
    create_request,
    pod_copy_files,
    presented_image,
    shared_source,
)
from judges import judge_dir
from k8s_schema import validate_manifest
from kube_cluster import KubeCluster, start_cluster
from kube_stack import KubeProject, cluster_settings, preinstall_runtime_classes
from opa import opa_eval
from test_agent_judge import kata_policy_judge
from test_e2e_engine import Project, by_role, ear_token, rendered
from test_kube_e2e import TEE_NODES, ready, runtime_classes
from volume_cases import block_storage

from components import labels, tee
from policies.initdata import INITDATA_ANNOTATION, decode_annotation

pytestmark = [pytest.mark.conformance, pytest.mark.e2e]

REPOSITORY = "docker.io/library/nginx"
TAG = "1.27.3@sha256:" + "d" * 64
IMAGE = f"{REPOSITORY}:{TAG}"
SECRET_PATH = "default/shop/key"


@pytest.fixture(scope="module")
def chart(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`helm create shop`, unmodified, in a fresh folder (Helm's own home dirs kept there)."""
    helm = judge_dir("helm") / "bin" / "helm"
    work = tmp_path_factory.mktemp("helm-create")
    home = {f"HELM_{k}_HOME": str(work / f".{k.lower()}") for k in ("CACHE", "CONFIG", "DATA")}
    subprocess.run(
        [str(helm), "create", "shop"],
        cwd=work,
        env={"PATH": os.environ.get("PATH", ""), "HOME": str(work), **home},
        check=True,
        capture_output=True,
        timeout=60,
    )
    path = work / "shop"
    assert (path / "templates/tests/test-connection.yaml").is_file()
    return path


VOLUMES = [
    {"name": "cache", "emptyDir": {}},
    {
        "name": "podinfo",
        "downwardAPI": {
            "items": [{"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}}]
        },
    },
]
VOLUME_MOUNTS = [
    {"name": "cache", "mountPath": "/var/cache/nginx"},
    {"name": "podinfo", "mountPath": "/etc/podinfo", "readOnly": True},
]
"""Through the chart's own `volumes`/`volumeMounts` values: a disk emptyDir (nginx writes its
cache there) and a downwardAPI volume, both pinned by the restrictive policy."""


def source(chart: Path) -> dict[str, Any]:
    return {
        "name": "shop",
        "chart": str(chart),
        "namespace": "shop",
        "values": {
            "image": {"repository": REPOSITORY, "tag": TAG},
            "volumes": VOLUMES,
            "volumeMounts": VOLUME_MOUNTS,
        },
    }


def grant(config: dict[str, Any]) -> None:
    config["coco:trustee"].setdefault("resources", []).append(
        {"path": SECRET_PATH, "valueFrom": "shopKey", "readers": ["shop"]}
    )


def released(rego: str, digest: str, platform: str) -> bool:
    data = {"resource-path": SECRET_PATH, "plugin": "resource"}
    return opa_eval(rego, ear_token(digest, platform), data, "data.policy.allow") is True


def check_template(template: dict[str, Any], runtime_class: str, digest: str) -> None:
    """A pod template (or pod) of the chart's Deployment, made confidential."""
    assert template["spec"]["runtimeClassName"] == runtime_class
    annotations = template["metadata"]["annotations"]
    assert annotations[labels.INITDATA_DIGEST_ANNOTATION] == digest
    initdata = decode_annotation(annotations[INITDATA_ANNOTATION])
    assert IMAGE.replace(":1.27.3", "") in initdata  # the pinned image, as containerd names it
    (container,) = template["spec"]["containers"]
    assert container["image"] == IMAGE
    # The chart's mounts (a live pod also has the token volume admission adds).
    assert container["volumeMounts"][: len(VOLUME_MOUNTS)] == VOLUME_MOUNTS
    # The chart's probes as it wrote them (the API server adds its defaults).
    assert container["livenessProbe"]["httpGet"].items() >= {"path": "/", "port": "http"}.items()


CLEANUP_HOOK = """\
apiVersion: batch/v1
kind: Job
metadata:
  name: {{ include "shop.fullname" . }}-cleanup
  annotations:
    "helm.sh/hook": pre-delete
spec:
  template:
    spec:
      restartPolicy: Never
      containers:
        - name: cleanup
          image: "{{ .Values.image.repository }}:{{ .Values.image.tag }}"
          command: ["/bin/true"]
"""


def render_stack(tmp_path: Path, chart: Path) -> tuple[Project, dict[str, Any]]:
    """The dev stack with the chart as a `coco:manifests` source, deployed in render mode."""
    project = Project(tmp_path, "dev")
    project.write_stack_file("dev")
    path = project.dir / "stacks" / "Pulumi.dev.yaml"
    doc = yaml.safe_load(path.read_text())
    doc["config"]["coco:manifests"] = [source(chart)]
    grant(doc["config"])
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    project.pulumi("stack", "init")
    project.pulumi("config", "set", "--secret", "shopKey", "render-shop-key-2b7e")
    project.pulumi("up", "--yes", "--skip-preview")
    project.pulumi("preview", "--expect-no-changes")
    return project, json.loads(project.pulumi("stack", "output", "--json").stdout)


def test_render_mode(tmp_path: Path, chart: Path) -> None:
    """The dev stack in render mode: the rendered Deployment is confidential and
    schema-valid, the test hook is not rendered, the policy binds the digest."""
    project, outputs = render_stack(tmp_path, chart)
    assert sorted(outputs["manifests"]["shop"]) == ["Deployment/shop/shop"]
    digest = outputs["manifests"]["shop"]["Deployment/shop/shop"]

    docs = rendered(project.render_dir)
    for d in docs:
        validate_manifest(d)
    shop = [d for d in docs if d["metadata"].get("namespace") == "shop"]
    assert sorted(d["kind"] for d in shop) == ["Deployment", "Service", "ServiceAccount"]
    (web,) = [d for d in shop if d["kind"] == "Deployment"]
    check_template(web["spec"]["template"], "kata-qemu-coco-dev", digest)
    (policy_cm,) = by_role(docs, "resource-policy")
    rego = policy_cm["data"]["policy.rego"]
    assert released(rego, digest, "sample")
    other = outputs["workloads"]["hello"]["initdataDigest"]
    assert not released(rego, other, "sample")
    project.pulumi("destroy", "--yes", "--skip-preview")


def test_render_mode_leaves_a_delete_hook_out(
    tmp_path: Path, chart: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """The chart grown by a `pre-delete` hook Job: the provider renders it as an ordinary
    Job (without coco's `dropped_hook` it is made confidential and deployed, so the cleanup
    would run at every deploy). It is left out; the Deployment is still confidential."""
    grown = tmp_path_factory.mktemp("grown") / "shop"
    shutil.copytree(chart, grown)
    (grown / "templates" / "cleanup-hook.yaml").write_text(CLEANUP_HOOK)
    project, outputs = render_stack(tmp_path, grown)
    assert sorted(outputs["manifests"]["shop"]) == ["Deployment/shop/shop"]
    kinds = sorted(
        d["kind"] for d in rendered(project.render_dir) if d["metadata"].get("namespace") == "shop"
    )
    assert kinds == ["Deployment", "Service", "ServiceAccount"]
    project.pulumi("destroy", "--yes", "--skip-preview")


def judge_pod_policy(pod: dict[str, Any], tmp_path: Path) -> None:
    """The agent policy in the live pod's init-data, judged by the Kata agent's own engine:
    nginx starts with its encrypted cache disk and the downwardAPI files; an unencrypted disk
    or a writable downwardAPI mount is denied."""
    initdata = tomllib.loads(decode_annotation(pod["metadata"]["annotations"][INITDATA_ANNOTATION]))
    policy = tmp_path / "pod-policy.rego"
    policy.write_text(initdata["data"]["policy.rego"], encoding="utf-8")
    cid = container_id("shop", pod["metadata"]["name"])
    name = presented_image(IMAGE)
    req = create_request(
        name, [name], cid=cid, args=["nginx", "-g", "daemon off;"], name="shop",
        namespace="shop", pod=pod["metadata"]["name"],
    )  # fmt: skip
    disk = block_storage("02/00", fs_group=None)
    req["storages"].append(disk)
    req["OCI"]["Mounts"] += [
        {
            "destination": "/var/cache/nginx",
            "options": ["rbind", "rprivate", "rw"],
            "source": disk["mount_point"],
            "type_": "bind",
        },
        {
            "destination": "/etc/podinfo",
            "options": ["rbind", "rprivate", "ro"],
            "source": shared_source(cid, "podinfo"),
            "type_": "bind",
        },
    ]
    with kata_policy_judge() as judge:
        assert judge.allowed(policy, "CreateContainerRequest", req)
        for copy_req in pod_copy_files(cid):
            assert judge.allowed(policy, "CopyFileRequest", copy_req)
        labels_file = copy_file(f"{shared_source(cid, 'podinfo')}/labels")
        assert judge.allowed(policy, "CopyFileRequest", labels_file)
        plain = copy.deepcopy(req)
        plain["storages"][-1]["driver_options"] = ["create_filesystem"]
        assert not judge.allowed(policy, "CreateContainerRequest", plain)
        writable = copy.deepcopy(req)
        writable["OCI"]["Mounts"][-1]["options"] = ["rbind", "rprivate", "rw"]
        assert not judge.allowed(policy, "CreateContainerRequest", writable)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[KubeCluster]:
    bin_dir = judge_dir("kube") / "bin"
    with start_cluster(bin_dir, tmp_path / "cluster") as running:
        yield running


def test_real_control_plane(tmp_path: Path, cluster: KubeCluster, chart: Path) -> None:
    """The production TDX stack against kube-apiserver + kwok: the chart's pods run on TDX
    nodes under the runtime class with the measured init-data, the KBS policy binds them."""
    project = KubeProject(tmp_path, "chart", cluster)
    config = project.write_stack("baremetal-tdx")
    config["coco:manifests"] = [source(chart)]
    grant(config)
    project.save(config)
    runtime_class = tee.default_class(cluster_settings(config).hardware, wants_gpu=False)
    classes = [*runtime_classes(config).values(), runtime_class]
    preinstall_runtime_classes(cluster, config, classes)
    project.init()
    project.pulumi("up", "--yes", "--skip-preview")

    outputs = json.loads(project.pulumi("stack", "output", "--json").stdout)
    assert sorted(outputs["manifests"]["shop"]) == ["Deployment/shop/shop"]
    digest = outputs["manifests"]["shop"]["Deployment/shop/shop"]
    dep = cluster.get("/apis/apps/v1/namespaces/shop/deployments/shop")
    assert dep is not None
    check_template(dep["spec"]["template"], runtime_class, digest)
    assert dep["metadata"]["labels"][labels.ENVIRONMENT] == "production"
    pods = [
        p
        for p in cluster.pods("shop")
        if p["metadata"]["labels"].get("app.kubernetes.io/instance") == "shop"
    ]
    assert len(pods) == 1, [p["metadata"]["name"] for p in pods]
    for pod in pods:
        assert ready(pod), pod["status"]
        assert pod["spec"]["nodeName"] in TEE_NODES["tdx"]
        check_template(pod, runtime_class, digest)
    # The test hook is left out; the chart's other objects are its own.
    assert cluster.get("/api/v1/namespaces/shop/pods/shop-test-connection") is None
    svc = cluster.get("/api/v1/namespaces/shop/services/shop")
    assert svc["spec"]["ports"][0]["targetPort"] == "http"
    assert cluster.get("/api/v1/namespaces/shop/serviceaccounts/shop") is not None

    # The KBS resource policy (the ConfigMap the KBS reads) releases the key to this digest.
    policies = [
        cm
        for cm in cluster.items("/api/v1/namespaces/trustee/configmaps")
        if cm["metadata"].get("labels", {}).get(labels.ROLE) == "resource-policy"
    ]
    (policy_cm,) = policies
    rego = next(v for k, v in policy_cm["data"].items() if k.endswith(".rego"))
    assert released(rego, digest, "tdx")
    native = outputs["workloads"][config["coco:workloads"][0]["name"]]["initdataDigest"]
    assert not released(rego, native, "tdx")

    judge_pod_policy(pods[0], tmp_path)

    project.pulumi("preview", "--refresh", "--expect-no-changes", "--diff")
    project.pulumi("destroy", "--yes", "--skip-preview")
    cluster.wait_for(
        "namespace shop deleted", lambda: cluster.get("/api/v1/namespaces/shop") is None
    )
