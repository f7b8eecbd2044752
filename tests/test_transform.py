"""The confidential transform on full pod templates: checks, rewrites, equivalence with the
native workload path, and the Pulumi entry points (under mocks)."""

from __future__ import annotations

import copy
import hashlib
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import pytest
import yaml
from mocks import DecodingMocks, fake_pem, resolve

from components import labels, podspec
from components.confidential_pod import effective_policy
from components.transform import (
    ConfidentialOptions,
    confidential,
    make_confidential,
    prepare,
)
from policies.agent import AgentPolicySpec
from policies.initdata import INITDATA_ANNOTATION, KbsEndpoint, decode_annotation
from policies.pack import checks, objects

APP = "registry.example.com/app@sha256:" + "a" * 64
KBS = KbsEndpoint(url="https://kbs.example.com:8080", cert_pem=fake_pem("CERTIFICATE", "kbs"))
TDX = ConfidentialOptions(runtime_class="kata-qemu-tdx")


def container(**extra: Any) -> dict[str, Any]:
    return {"name": "app", "image": APP, **extra}


def deployment(*containers: dict[str, Any], **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "shop"},
        "spec": {
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}, "annotations": {"team": "a"}},
                "spec": {"containers": list(containers or [container()]), **spec},
            },
        },
    }


def wrap(kind: str, pod: dict[str, Any]) -> dict[str, Any]:
    template = {"metadata": {"labels": {"app": "x"}}, "spec": pod}
    meta = {"name": "x"}
    if kind == "Pod":
        return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": pod}
    if kind == "StatefulSet":
        spec = {"selector": {"matchLabels": {"app": "x"}}, "serviceName": "x", "template": template}
        return {"apiVersion": "apps/v1", "kind": kind, "metadata": meta, "spec": spec}
    if kind == "Job":
        return {
            "apiVersion": "batch/v1",
            "kind": kind,
            "metadata": meta,
            "spec": {"template": template},
        }
    assert kind == "CronJob"
    spec = {"schedule": "0 * * * *", "jobTemplate": {"spec": {"template": template}}}
    return {"apiVersion": "batch/v1", "kind": kind, "metadata": meta, "spec": spec}


def test_deployment_gets_runtime_class_and_measured_initdata() -> None:
    obj = deployment(
        container(command=["/app"], args=["--port=$(PORT)"], env=[{"name": "PORT", "value": "80"}])
    )
    out, initdata, digest = make_confidential(obj, TDX, KBS)
    template = out["spec"]["template"]
    assert template["spec"]["runtimeClassName"] == "kata-qemu-tdx"
    annotations = template["metadata"]["annotations"]
    assert annotations["team"] == "a"  # the object's own annotations stay
    assert decode_annotation(annotations[INITDATA_ANNOTATION]) == initdata
    assert annotations[labels.INITDATA_DIGEST_ANNOTATION] == digest
    assert len(digest) == 96  # sha384 for TDX
    assert '"/app", "--port=80"' in initdata or '"--port=80"' in initdata
    assert "runtimeClassName" not in obj["spec"]["template"]["spec"]  # input untouched


@pytest.mark.parametrize("kind", ["Pod", "StatefulSet", "Job", "CronJob"])
def test_every_pod_template_kind_is_made_confidential(kind: str) -> None:
    restart = {"restartPolicy": "Never"} if kind in ("Job", "CronJob") else {}
    obj = wrap(kind, {"containers": [container()], **restart})
    out, _, digest = make_confidential(obj, TDX, KBS)
    loc = podspec.locate(out)
    assert loc.pod_spec["runtimeClassName"] == "kata-qemu-tdx"
    meta = out if kind == "Pod" else None
    node: Any = out
    for part in loc.path[:-1]:
        node = node[part]
    meta = node["metadata"]
    assert meta["annotations"][labels.INITDATA_DIGEST_ANNOTATION] == digest
    assert podspec.schema_problems(out) == []


def test_env_expands_in_declared_order() -> None:
    obj = deployment(container(env=[{"name": "B", "value": "b"}, {"name": "A", "value": "$(B)1"}]))
    pins = podspec.container_pins(podspec.locate(obj))
    assert pins["app"].env == ("A=b1", "B=b")
    reverse = deployment(
        container(env=[{"name": "A", "value": "$(B)1"}, {"name": "B", "value": "b"}])
    )
    with pytest.raises(podspec.PodSpecError, match=r"\$\(B\) is not a literal env"):
        podspec.container_pins(podspec.locate(reverse))


def test_pod_security_context_user_is_pinned_container_wins() -> None:
    obj = deployment(
        container(securityContext={"runAsUser": 7}),
        {"name": "side", "image": APP},
        securityContext={"runAsUser": 5, "runAsGroup": 6},
    )
    pins = podspec.container_pins(podspec.locate(obj))
    assert (pins["app"].uid, pins["app"].gid) == (7, 6)
    assert (pins["side"].uid, pins["side"].gid) == (5, 6)


def test_init_containers_are_pinned_too() -> None:
    obj = deployment(initContainers=[{"name": "init", "image": APP, "command": ["/init"]}])
    spec = effective_policy(podspec.locate(obj), TDX)
    assert set(spec.containers) == {"app", "init"}
    assert spec.container_commands == {}  # `app` has no command: the image stays unpinned


@pytest.mark.parametrize(
    ("pod", "field"),
    [
        ({"hostNetwork": True}, "spec.template.spec.hostNetwork"),
        ({"hostPID": True}, "spec.template.spec.hostPID"),
        ({"hostIPC": True}, "spec.template.spec.hostIPC"),
        (
            {"volumes": [{"name": "h", "hostPath": {"path": "/"}}]},
            "spec.template.spec.volumes.0.hostPath",
        ),
    ],
)
def test_what_a_tee_cannot_honour_is_refused_with_the_field(
    pod: dict[str, Any], field: str
) -> None:
    with pytest.raises(podspec.PodSpecError) as err:
        prepare(deployment(**pod), TDX)
    assert f"Deployment shop/web: {field}" in str(err.value)


def test_privileged_and_host_port_are_refused() -> None:
    obj = deployment(
        container(
            securityContext={"privileged": True}, ports=[{"containerPort": 80, "hostPort": 80}]
        )
    )
    with pytest.raises(podspec.PodSpecError) as err:
        prepare(obj, TDX)
    text = str(err.value)
    assert "spec.template.spec.containers.0.securityContext.privileged" in text
    assert "spec.template.spec.containers.0.ports.0.hostPort" in text


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"envFrom": [{"configMapRef": {"name": "c"}}]}, "containers.0.envFrom"),
        (
            {"env": [{"name": "X", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}]},
            "containers.0.env.0.valueFrom",
        ),
        ({"livenessProbe": {"exec": {"command": ["true"]}}}, "containers.0.livenessProbe.exec"),
        (
            {"lifecycle": {"preStop": {"exec": {"command": ["true"]}}}},
            "containers.0.lifecycle.preStop.exec",
        ),
        (
            {"securityContext": {"capabilities": {"add": ["NET_ADMIN"]}}},
            "containers.0.securityContext.capabilities.add",
        ),
    ],
)
def test_what_the_policy_cannot_pin_is_refused(extra: dict[str, Any], field: str) -> None:
    with pytest.raises(
        podspec.PodSpecError, match=f"spec.template.spec.{field}".replace(".", r"\.")
    ):
        prepare(deployment(container(**extra)), TDX)


def test_exec_probe_allowed_with_allow_exec_and_allow_all_skips_pinning() -> None:
    obj = deployment(container(livenessProbe={"exec": {"command": ["true"]}}))
    prepare(obj, ConfidentialOptions("kata-qemu-tdx", AgentPolicySpec(allow_exec=True)))
    vol = deployment(
        container(volumeMounts=[{"name": "d", "mountPath": "/d"}]),
        volumes=[{"name": "d", "persistentVolumeClaim": {"claimName": "data"}}],
    )
    with pytest.raises(podspec.PodSpecError, match=r"volumes\.0\.persistentVolumeClaim"):
        prepare(vol, TDX)
    prepare(vol, ConfidentialOptions("kata-qemu-coco-dev", AgentPolicySpec(preset="allow-all")))


def test_daemonset_is_refused_with_the_reason() -> None:
    ds = deployment()
    ds["kind"] = "DaemonSet"
    ds["spec"].pop("replicas", None)
    with pytest.raises(
        podspec.PodSpecError,
        match="DaemonSet shop/web: kind DaemonSet: a DaemonSet runs one pod per node",
    ):
        prepare(ds, TDX)


def test_invalid_kubernetes_names_object_and_field() -> None:
    obj = deployment(container(imagePullPolicy="Sometimes", portz=[1]))
    with pytest.raises(podspec.PodSpecError) as err:
        prepare(obj, TDX)
    text = str(err.value)
    assert "Deployment shop/web: spec.template.spec.containers.0" in text
    assert "portz" in text


def test_production_refuses_a_tag_without_digest() -> None:
    obj = deployment(container(image="nginx:1.27"))
    prod = ConfidentialOptions("kata-qemu-tdx", require_digests=True)
    with pytest.raises(
        podspec.PodSpecError,
        match=r"spec\.template\.spec\.containers\.0\.image: 'nginx:1.27' has a tag but no digest",
    ):
        prepare(obj, prod)


def test_restrictive_policy_refuses_a_tag_in_dev_too() -> None:
    """The one rule (components/confidential_pod.py `image_problem`): the restrictive policy
    admits images by digest only, so a tag would be refused by the agent inside the TEE;
    refused at preview instead, in dev as in production. Only allow-all runs a tag."""
    obj = deployment(container(image="nginx:1.27"))
    with pytest.raises(
        podspec.PodSpecError,
        match=r"containers\.0\.image: 'nginx:1.27' is not pinned by digest, so the restrictive",
    ):
        prepare(obj, TDX)
    open_policy = ConfidentialOptions(
        "kata-qemu-tdx", agent_policy=AgentPolicySpec(preset="allow-all")
    )
    prepare(obj, open_policy)


def test_gpu_workload_gets_the_gpu_resource_and_kernel_params() -> None:
    options = ConfidentialOptions("kata-qemu-nvidia-gpu-tdx", gpus=1)
    out, _, _ = make_confidential(deployment(), options, KBS)
    template = out["spec"]["template"]
    # The GPU, and the default memory limit that sizes the pod VM (components/hardening.py).
    assert template["spec"]["containers"][0]["resources"]["limits"] == {
        "memory": "512Mi",
        "nvidia.com/pgpu": "1",
    }
    assert (
        "io.katacontainers.config.hypervisor.kernel_params" in template["metadata"]["annotations"]
    )
    with pytest.raises(ValueError, match="no GPU pass-through"):
        ConfidentialOptions("kata-qemu-tdx", gpus=1)


def test_non_workloads_pass_unchanged() -> None:
    svc = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "web"},
        "spec": {"ports": [{"port": 80}]},
    }
    before = copy.deepcopy(svc)
    transform = confidential("kata-qemu-tdx", KBS.url, KBS.cert_pem)
    transform(svc, None)
    assert svc == before and transform.digests == {}


def test_render_is_deterministic() -> None:
    first = make_confidential(deployment(), TDX, KBS)
    second = make_confidential(deployment(), TDX, KBS)
    assert first == second


def test_config_group_transformation_under_mocks() -> None:
    """The `transformations=[...]` entry point on yaml.ConfigGroup: the Deployment registers
    with the runtime class and the same init-data as the pure function; the Service as is."""
    mocks = DecodingMocks()
    pulumi.runtime.set_mocks(mocks, preview=False)
    svc = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "web", "namespace": "shop"},
        "spec": {"ports": [{"port": 80}], "selector": {"app": "web"}},
    }

    def build() -> dict[str, Any]:
        transform = confidential("kata-qemu-tdx", KBS.url, KBS.cert_pem)
        text = yaml.safe_dump_all([deployment(), svc])
        group = k8s.yaml.ConfigGroup("app", yaml=[text], transformations=[transform.transformation])
        return {"digests": transform.digests_of(group)}

    values, _ = resolve(build)
    _, _, digest = make_confidential(deployment(), TDX, KBS)
    assert values["digests"] == {"Deployment/shop/web": digest}
    deployed = [r for r in mocks.kubernetes() if r.kind == "Deployment"]
    assert len(deployed) == 1
    template = deployed[0].inputs["spec"]["template"]
    assert template["spec"]["runtimeClassName"] == "kata-qemu-tdx"
    assert template["metadata"]["annotations"][labels.INITDATA_DIGEST_ANNOTATION] == digest
    services = [r for r in mocks.kubernetes() if r.kind == "Service"]
    assert services[0].inputs["spec"] == svc["spec"]


def test_resource_transform_entry_point() -> None:
    transform = confidential("kata-qemu-tdx", KBS.url, KBS.cert_pem)
    args = pulumi.ResourceTransformArgs(
        custom=True,
        type_="kubernetes:apps/v1:Deployment",
        name="web",
        props=deployment(),
        opts=pulumi.ResourceOptions(),
    )
    result = transform.transform(args)
    assert result.props["spec"]["template"]["spec"]["runtimeClassName"] == "kata-qemu-tdx"
    assert "Deployment/shop/web" in transform.digests
    other = pulumi.ResourceTransformArgs(
        custom=True,
        type_="kubernetes:core/v1:ConfigMap",
        name="c",
        props={"data": {"a": "b"}},
        opts=pulumi.ResourceOptions(),
    )
    assert transform.transform(other).props == {"data": {"a": "b"}}


def test_policy_pack_checks_apply_to_transformed_workloads() -> None:
    """The production checklist sees a transformed workload as it sees coco's own: the
    init-data check passes, a tag is flagged, and the object is recognised as production."""
    options = ConfidentialOptions("kata-qemu-tdx", environment="production")
    out, _, _ = make_confidential(deployment(), options, KBS)
    kind = "kubernetes:apps/v1:Deployment"
    assert objects.is_production(kind, out)
    assert checks.agent_policy_in_initdata(kind, out) == []
    assert checks.runtime_class_hardware(kind, out) == []
    assert checks.unpinned_images(kind, out) == []
    allow_all = ConfidentialOptions(
        "kata-qemu-tdx", environment="production", agent_policy=AgentPolicySpec(preset="allow-all")
    )
    tagged, _, _ = make_confidential(deployment(container(image="nginx:1.27")), allow_all, KBS)
    assert checks.unpinned_images(kind, tagged) == [
        "containers[0] image 'nginx:1.27' is not pinned by digest: use name@sha256:<64 hex>"
    ]
    dev, _, _ = make_confidential(deployment(), ConfidentialOptions("kata-qemu-coco-dev"), KBS)
    assert checks.coco_dev_runtime(kind, dev) != []
    tampered = copy.deepcopy(out)
    tampered["spec"]["template"]["metadata"]["annotations"][labels.INITDATA_DIGEST_ANNOTATION] = (
        "0" * 96
    )
    assert (
        "the KBS would bind the wrong value" in checks.agent_policy_in_initdata(kind, tampered)[0]
    )


def test_argv_expands_with_the_expanded_env() -> None:
    """kubelet expands command/args with env values it has already expanded."""
    env = [{"name": "PORT", "value": "8443"}, {"name": "ADDR", "value": ":$(PORT)"}]
    obj = deployment(container(command=["/web"], args=["--listen=$(ADDR)"], env=env))
    assert podspec.container_commands(podspec.locate(obj)) == {APP: [["/web", "--listen=:8443"]]}


def test_azure_vtpm_workloads_get_sha256_init_data_and_the_pcr8_claim() -> None:
    """Issue 21: on Azure peer pods (az-snp-vtpm evidence) init-data is bound by extending vTPM
    PCR8 with a sha256 digest, and the verifier reports PCR8 as `init_data`."""
    options = ConfidentialOptions(runtime_class="kata-remote", attestation_platform="az-snp-vtpm")
    _, initdata, digest = make_confidential(deployment(), options, KBS)
    assert 'algorithm = "sha256"' in initdata
    raw = hashlib.sha256(initdata.encode()).digest()
    assert digest == hashlib.sha256(bytes(32) + raw).hexdigest()
    # Elsewhere (e.g. GCP / AWS peer pods, the plain verifiers) nothing changes.
    plain = ConfidentialOptions(runtime_class="kata-remote", attestation_platform="snp")
    _, initdata, digest = make_confidential(deployment(), plain, KBS)
    assert 'algorithm = "sha384"' in initdata
    assert digest == hashlib.sha384(initdata.encode()).hexdigest()
    with pytest.raises(ValueError, match="sha256"):
        make_confidential(
            deployment(),
            ConfidentialOptions(
                runtime_class="kata-remote", attestation_platform="az-snp-vtpm", algorithm="sha512"
            ),
            KBS,
        )
