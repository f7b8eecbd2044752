"""The confidential-pod recipe (components/confidential_pod.py): its steps, its one rule for
tags and digests, and proof that every former pipeline (coco:workloads, manifests and charts,
the public transform, peer pods' default init-data) now goes through it."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pulumi
import pytest
import yaml
from mocks import DecodingMocks, fake_pem, resolve
from test_peerpods import AWS_GIVEN
from test_transform import container
from test_transform import deployment as transform_deployment

from components import confidential_pod, labels, podspec, tee, workload_template
from components.confidential_pod import PodOptions
from components.confidential_pod import confidential_pod as recipe
from components.manifest_settings import ManifestSource
from components.manifests import ConfidentialManifests, folder_problems
from components.settings import WorkloadSettings
from components.transform import ConfidentialOptions, make_confidential
from components.workload import ConfidentialWorkload
from policies.agent import AgentPolicySpec, render_agent_policy
from policies.initdata import INITDATA_ANNOTATION, KbsEndpoint, decode_annotation
from policies.sealed import sealed_env_pattern

APP = "registry.example.com/app@sha256:" + "a" * 64
KBS = KbsEndpoint(url="https://kbs.example.com:8080", cert_pem=fake_pem("CERTIFICATE", "kbs"))
TDX = PodOptions("kata-qemu-tdx")
ALLOW_ALL = AgentPolicySpec(preset="allow-all")


def deployment(**extra: Any) -> dict[str, Any]:
    """test_transform's Deployment (shop/web, team annotation) with one container `app`."""
    return transform_deployment(container(**extra))


def located(obj: dict[str, Any]) -> podspec.Located:
    return podspec.check(obj, AgentPolicySpec())


def test_the_recipe_is_pure_and_leaves_its_input_alone() -> None:
    obj = deployment(command=["/app"])
    before = copy.deepcopy(obj)
    first = recipe(located(obj), TDX, KBS)
    second = recipe(located(obj), TDX, KBS)
    assert first == second
    assert obj == before
    assert "runtimeClassName" not in obj["spec"]["template"]["spec"]


def test_the_recipe_gives_template_initdata_digest_and_policy() -> None:
    pod = recipe(located(deployment(command=["/app"])), TDX, KBS)
    assert pod.template["spec"]["runtimeClassName"] == "kata-qemu-tdx"
    annotations = pod.template["metadata"]["annotations"]
    assert decode_annotation(annotations[INITDATA_ANNOTATION]) == pod.initdata
    assert annotations[labels.INITDATA_DIGEST_ANNOTATION] == pod.digest
    assert annotations["team"] == "a"
    assert pod.agent_policy in pod.initdata or "policy.rego" in pod.initdata
    assert pod.policy.allowed_images == [APP]
    assert pod.policy.container_commands == {APP: [["/app"]]}
    assert pod.algorithm == "sha384" and len(pod.digest) == 96


def test_coco_annotations_win_and_gpus_go_to_the_first_container() -> None:
    obj = deployment()
    obj["spec"]["template"]["metadata"]["annotations"] = {INITDATA_ANNOTATION: "forged"}
    options = PodOptions(
        "kata-qemu-nvidia-gpu-tdx",
        gpus=2,
        annotations={labels.INITDATA_DIGEST_ANNOTATION: "0" * 96},
        legacy_runtime_handler_annotation=True,
    )
    pod = recipe(located(obj), options, KBS)
    annotations = pod.template["metadata"]["annotations"]
    assert annotations[INITDATA_ANNOTATION] != "forged"
    assert annotations[labels.INITDATA_DIGEST_ANNOTATION] == pod.digest
    assert annotations[tee.GPU_KERNEL_PARAMS_ANNOTATION] == tee.GPU_KERNEL_PARAMS
    assert annotations[confidential_pod.LEGACY_RUNTIME_HANDLER_ANNOTATION] == (
        "kata-qemu-nvidia-gpu-tdx"
    )
    limits = pod.template["spec"]["containers"][0]["resources"]["limits"]
    # The GPUs, beside the hardened memory default that sizes the pod VM (docs/hardening.md).
    assert limits == {tee.GPU_RESOURCE: "2", "memory": "512Mi"}
    assert pod.policy.allow_devices


@pytest.mark.parametrize(
    ("image", "policy", "require_digests", "refused"),
    [
        (APP, AgentPolicySpec(), True, None),
        ("nginx:1.27", AgentPolicySpec(), False, "is not pinned by digest, so the restrictive"),
        ("nginx:1.27", AgentPolicySpec(), True, "has a tag but no digest"),
        ("nginx:1.27", ALLOW_ALL, False, None),
        ("nginx:1.27", ALLOW_ALL, True, "has a tag but no digest"),
        (
            "nginx:1.27",
            AgentPolicySpec(overrides={"CreateContainerRequest": True}),
            False,
            None,
        ),
    ],
)
def test_one_rule_for_tags_and_digests(
    image: str, policy: AgentPolicySpec, require_digests: bool, refused: str | None
) -> None:
    why = confidential_pod.image_problem(image, policy, require_digests)
    assert (why is None) == (refused is None)
    if refused is not None:
        assert why is not None and refused in why


def test_a_tag_is_refused_alike_in_coco_workloads_and_in_manifests(tmp_path: Path) -> None:
    """coco:workloads refused a tag-only image in dev, coco:manifests accepted it; both now
    apply `image_problem` (the restrictive policy would refuse the container in the TEE)."""
    settings = WorkloadSettings.model_validate(
        {"name": "web", "containers": [{"name": "app", "image": "nginx:1.27"}]}
    )
    found = workload_template.problems(settings, "kata-qemu-coco-dev", require_digests=False)
    assert [key for key, _ in found] == ["containers[0].image"]
    assert "is not pinned by digest, so the restrictive" in found[0][1]
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "app.yaml").write_text(yaml.safe_dump(deployment(image="nginx:1.27")))
    source = ManifestSource(name="shop", path=str(folder), namespace="shop")
    (problem,) = folder_problems(source, "kata-qemu-coco-dev", production=False)
    assert "containers.0.image: 'nginx:1.27' is not pinned by digest, so the restrictive" in problem


def test_sealed_references_are_pinned_and_other_secret_refs_refused() -> None:
    env = [
        {"name": "DB", "valueFrom": {"secretKeyRef": {"name": "s", "key": "app.DB"}}},
        {"name": "X", "valueFrom": {"secretKeyRef": {"name": "s", "key": "other"}}},
    ]
    obj = deployment(env=env)
    loc = podspec.locate(obj)
    sealed = PodOptions("kata-qemu-tdx", sealed={("s", "app.DB"): "default/db/password"})
    (problem,) = confidential_pod.problems(loc, sealed)
    assert "env.1.valueFrom" in problem and "(X)" in problem
    obj["spec"]["template"]["spec"]["containers"][0]["env"] = env[:1]
    pod = recipe(podspec.locate(obj), sealed, KBS)
    assert pod.policy.containers["app"].sealed_env == (
        sealed_env_pattern("DB", "default/db/password"),
    )


def test_validation_comes_before_anything_is_derived() -> None:
    """Step 2 lists every problem at once; nothing of step 3 runs on a refused template."""
    obj = deployment(image="nginx:1.27")
    obj["spec"]["template"]["spec"]["hostNetwork"] = True
    with pytest.raises(podspec.PodSpecError) as err:
        confidential_pod.prepare(podspec.locate(obj), TDX)
    assert len(err.value.problems) == 2


# ---------------------------------------------------------------- every pipeline goes through it

WORKLOAD = {
    "name": "web",
    "namespace": "shop",
    "containers": [
        {
            "name": "app",
            "image": APP,
            "command": ["/app", "$(A)"],
            "env": {"A": "x", "B": "$(A)y"},
            "workingDir": "/srv",
            "runAsUser": 1000,
            "readOnlyRootFilesystem": True,
            "ports": [8443],
        }
    ],
    "annotations": {"team": "a"},
}


def test_coco_workloads_go_through_the_recipe() -> None:
    """The ConfidentialWorkload component, under mocks, registers exactly the recipe's
    template and init-data for its entry."""
    settings = WorkloadSettings.model_validate(WORKLOAD)
    options = workload_template.options(settings, "kata-qemu-tdx")
    expected = recipe(workload_template.located(settings, "dev"), options, KBS)
    mocks = DecodingMocks()
    pulumi.runtime.set_mocks(mocks, preview=False)

    def build() -> dict[str, Any]:
        wl = ConfidentialWorkload("web", settings, "kata-qemu-tdx", "dev", KBS.url, KBS.cert_pem)
        return {"initdata": wl.initdata, "digest": wl.initdata_digest}

    values, _ = resolve(build)
    assert values == {"initdata": expected.initdata, "digest": expected.digest}
    (deployed,) = mocks.of_type("kubernetes:apps/v1:Deployment")
    assert deployed.name == "web"
    assert deployed.inputs["spec"]["template"] == expected.template


def test_transform_and_manifests_go_through_the_recipe(tmp_path: Path) -> None:
    obj = deployment(command=["/app"])
    out, initdata, digest = make_confidential(obj, ConfidentialOptions("kata-qemu-tdx"), KBS)
    expected = recipe(located(obj), TDX, KBS)
    assert (initdata, digest) == (expected.initdata, expected.digest)
    assert out["spec"]["template"] == expected.template

    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "app.yaml").write_text(yaml.safe_dump(obj))
    source = ManifestSource(name="shop", path=str(folder), namespace="shop")
    mocks = DecodingMocks()
    pulumi.runtime.set_mocks(mocks, preview=False)

    def build() -> dict[str, Any]:
        group = ConfidentialManifests(source, "kata-qemu-tdx", False, "dev", KBS.url, KBS.cert_pem)
        return {"digests": group.digests}

    values, _ = resolve(build)
    assert values["digests"] == {"Deployment/shop/web": expected.digest}


def test_a_native_workload_fed_to_the_transform_gets_the_same_initdata() -> None:
    """The Deployment coco renders for a coco:workloads entry, given back to the public
    transform as a manifest, gets byte-identical init-data: one recipe, two entry points."""
    settings = WorkloadSettings.model_validate(WORKLOAD)
    obj = workload_template.workload_object(settings, "dev")
    options = workload_template.options(settings, "kata-qemu-tdx")
    native = recipe(workload_template.located(settings, "dev"), options, KBS)
    _, initdata, digest = make_confidential(obj, ConfidentialOptions("kata-qemu-tdx"), KBS)
    assert (initdata, digest) == (native.initdata, native.digest)


def test_peer_pods_default_initdata_is_the_recipes_initdata_step() -> None:
    from components.peerpods.component import default_initdata
    from components.peerpods.settings import PeerPodsCluster

    settings = PeerPodsCluster.model_validate(
        {
            "kind": "peerpods",
            "cloud": AWS_GIVEN,
        }
    )
    spec = settings.adaptor.default_initdata
    expected = confidential_pod.pod_initdata(
        KBS, render_agent_policy(spec.agent_policy), spec.algorithm
    )
    values, _ = resolve(lambda: {"initdata": default_initdata(settings, KBS.url, KBS.cert_pem)})
    assert values["initdata"] == expected
