"""Helm hooks in the confidential transform: what a deploy runs is kept, the rest left out.

`helm create`'s own chart ships a `helm.sh/hook: test` Pod
(`templates/tests/test-connection.yaml`, image `busybox` by tag), and `helm template` output
in a folder keeps it: deployed, Pulumi would start it at every deploy, and production would
refuse the folder for a Pod `helm install` never creates. Delete and rollback hooks would run
their cleanup at deploy time. Install/upgrade hooks (a migration Job) are the app's own
workloads and are made confidential like the rest. (The chart path through the real engine:
tests/conformance/test_kube_chart.py.)"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import pytest
import yaml
from mocks import DecodingMocks, fake_pem, resolve
from test_manifests import SERVICE, config, deployment, folder, run

from components.manifest_settings import ManifestSource
from components.manifests import folder_problems
from components.transform import confidential, dropped_hook

KBS_URL = "https://kbs.example.com:8080"
PINNED = "registry.example.com/shop/web@sha256:" + "ab" * 32


def hook_pod(phases: str, image: str = "busybox") -> dict[str, Any]:
    """`helm create`'s test-connection Pod (helm v3.22.0), with the given hook phases."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "web-test-connection",
            "annotations": {"helm.sh/hook": phases},
        },
        "spec": {
            "containers": [
                {"name": "wget", "image": image, "command": ["wget"], "args": ["web:80"]}
            ],
            "restartPolicy": "Never",
        },
    }


def migrate_job(phases: str) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "web-migrate", "annotations": {"helm.sh/hook": phases}},
        "spec": {
            "template": {
                "spec": {
                    "containers": [{"name": "migrate", "image": PINNED, "command": ["/migrate"]}],
                    "restartPolicy": "Never",
                }
            }
        },
    }


@pytest.mark.parametrize(
    ("phases", "dropped"),
    [
        ("test", "test"),
        ("test-success", "test-success"),
        ("pre-delete, post-delete", "post-delete,pre-delete"),
        ("post-rollback", "post-rollback"),
        ("post-install", None),
        ("pre-install,pre-upgrade", None),
        ("pre-delete,post-upgrade", None),
    ],
)
def test_which_hooks_are_left_out(phases: str, dropped: str | None) -> None:
    assert dropped_hook(hook_pod(phases)) == dropped


def test_plain_objects_are_not_hooks() -> None:
    assert dropped_hook(deployment()) is None
    assert dropped_hook(SERVICE) is None


def test_chart_transformation_leaves_test_hook_out_and_keeps_install_hook() -> None:
    """Under mocks, through `yaml.ConfigGroup` with the transformation: the test Pod registers
    nothing, the post-install Job is registered confidential, with its digest collected."""
    mocks = DecodingMocks()
    pulumi.runtime.set_mocks(mocks, preview=False)
    transform = confidential("kata-qemu-tdx", KBS_URL, fake_pem("CERTIFICATE", "kbs"))

    def build() -> dict[str, Any]:
        objects = [deployment(), hook_pod("test"), migrate_job("post-install")]
        for o in objects:
            o["metadata"]["namespace"] = "shop"
        text = yaml.safe_dump_all(objects)
        group = k8s.yaml.ConfigGroup("app", yaml=[text], transformations=[transform.transformation])
        return {"digests": transform.digests_of(group)}

    values, _ = resolve(build)
    assert sorted(values["digests"]) == ["Deployment/shop/web", "Job/shop/web-migrate"]
    assert transform.dropped == {"Pod/shop/web-test-connection": "test"}
    kinds = sorted(r.kind for r in mocks.kubernetes() if r.kind in ("Deployment", "Job", "Pod"))
    assert kinds == ["Deployment", "Job"]
    (job,) = [r for r in mocks.kubernetes() if r.kind == "Job"]
    assert job.inputs["spec"]["template"]["spec"]["runtimeClassName"] == "kata-qemu-tdx"


def test_folder_check_skips_a_left_out_hook(tmp_path: Path) -> None:
    """Production refuses a tag without digest, but not in a hook that is never deployed
    (the old behaviour refused `helm create`'s busybox test Pod); a kept hook is checked."""
    path = folder(tmp_path, deployment(), hook_pod("test"))
    source = ManifestSource(name="shop", path=str(path), namespace="shop")
    assert folder_problems(source, "kata-qemu-tdx", production=True) == []
    kept = tmp_path / "kept"
    kept.mkdir()
    (kept / "app.yaml").write_text(yaml.safe_dump_all([deployment(), hook_pod("post-install")]))
    source = ManifestSource(name="shop", path=str(kept), namespace="shop")
    (problem,) = folder_problems(source, "kata-qemu-tdx", production=True)
    assert "Pod shop/web-test-connection: spec.containers.0.image: 'busybox'" in problem


def test_stack_with_a_test_hook_in_the_folder(tmp_path: Path) -> None:
    """The real program under mocks: the hook Pod is not registered, the Deployment is."""
    path = folder(tmp_path, deployment(), SERVICE, hook_pod("test"))
    mocks = run(config(path))
    kinds = {
        r.kind
        for r in mocks.kubernetes()
        if r.inputs.get("metadata", {}).get("namespace") == "shop"
    }
    assert "Pod" not in kinds
    assert {"Deployment", "Service"} <= kinds
