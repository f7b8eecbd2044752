"""The coco-production policy pack, each policy called directly (no engine).

Every policy gets one case that violates it and one that passes, built from the project's
own builders (init-data, agent policy, resource policy) so the pack is tested against what
the program really emits. The levels are checked too: one policy per check, its level from
the stack's generated policy config (mandatory in production, advisory elsewhere).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from pulumi_policy import (
    PolicyResource,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)

from components import labels, tee
from policies.agent import AgentPolicySpec, render_agent_policy
from policies.attestation import reference_values_json
from policies.initdata import (
    INITDATA_ANNOTATION,
    KbsEndpoint,
    annotation_value,
    initdata_claim_hex,
    render_initdata,
)
from policies.pack import checks
from policies.pack.production import (
    POLICIES,
    PolicyExceptionsError,
    policy_exceptions,
    stack_policy_config,
)
from policies.resource import ResourceGrant, render_resource_policy

ROOT = Path(__file__).resolve().parent.parent
IMAGE = "registry.example.com/app@sha256:" + "ab" * 32
KBS = KbsEndpoint(url="https://kbs.trustee.svc.cluster.local:8080")
DEPLOYMENT = "kubernetes:apps/v1:Deployment"
CONFIG_MAP = "kubernetes:core/v1:ConfigMap"
RUNTIME_CLASS = "kubernetes:node.k8s.io/v1:RuntimeClass"


def urn(kind: str, name: str) -> str:
    return f"urn:pulumi:prod::coco::coco:index:ConfidentialWorkload${kind}::{name}"


def initdata_for(runtime_class: str, preset: str = "restrictive") -> tuple[str, str]:
    """(annotation value, digest hex) of a workload's init-data, as the program makes them."""
    images = [] if preset == "allow-all" else [IMAGE]
    spec = AgentPolicySpec.model_validate({"preset": preset, "allowed_images": images})
    rc = tee.CATALOGUE.get(
        runtime_class.removesuffix("-runtime-rs"), tee.CATALOGUE["kata-qemu-tdx"]
    )
    text = render_initdata(KBS, render_agent_policy(spec), rc.default_digest)
    return annotation_value(text), initdata_claim_hex(
        text, rc.default_digest, rc.initdata_field_len
    )


def deployment(
    env: str = "production",
    runtime_class: str | None = "kata-qemu-tdx",
    image: str = IMAGE,
    preset: str = "restrictive",
    annotations: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """A coco workload Deployment's properties (Kubernetes field names)."""
    meta_labels = labels.common(env, labels.ROLE_WORKLOAD, **{labels.WORKLOAD: "app"})
    if annotations is None:
        value, digest = initdata_for(runtime_class or "kata-qemu-tdx", preset)
        annotations = {INITDATA_ANNOTATION: value, labels.INITDATA_DIGEST_ANNOTATION: digest}
    spec: dict[str, Any] = {"containers": [{"name": "app", "image": image}]}
    if runtime_class is not None:
        spec["runtimeClassName"] = runtime_class
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "app", "namespace": "default", "labels": meta_labels},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {labels.WORKLOAD: "app"}},
            "template": {
                "metadata": {"labels": meta_labels, "annotations": dict(annotations)},
                "spec": spec,
            },
        },
    }


def config_map(role: str, data: dict[str, str], env: str = "production") -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": role, "namespace": "trustee", "labels": labels.common(env, role)},
        "data": data,
    }


def runtime_class_object(
    name: str, handler: str | None = None, selector: dict[str, str] | None = None
) -> dict[str, Any]:
    return {
        "apiVersion": "node.k8s.io/v1",
        "kind": "RuntimeClass",
        "metadata": {"name": name, "labels": labels.common("production", labels.ROLE_RUNTIME)},
        "handler": handler or name,
        "scheduling": {"nodeSelector": selector or dict(tee.CATALOGUE[name].node_labels)},
    }


def policy(name: str) -> Any:
    return next(p for p in POLICIES if p.name == name)


def run_resource(
    name: str, props: dict[str, Any], kind: str = DEPLOYMENT, config: dict[str, Any] | None = None
) -> list[str]:
    p = policy(name)
    assert isinstance(p, ResourceValidationPolicy)
    found: list[str] = []
    args = ResourceValidationArgs(kind, props, urn(kind, "app"), "app", None, None, config)  # type: ignore[arg-type]

    def report(message: str, _urn: str | None = None) -> None:
        found.append(message)

    p.validate(args, report)
    return found


def run_stack(
    name: str, resources: list[tuple[str, dict[str, Any]]]
) -> list[tuple[str, str | None]]:
    p = policy(name)
    assert isinstance(p, StackValidationPolicy)
    found: list[tuple[str, str | None]] = []
    items = [
        PolicyResource(kind, props, urn(kind, f"r{i}"), f"r{i}", None, None, None, [], {})  # type: ignore[arg-type]
        for i, (kind, props) in enumerate(resources)
    ]

    def report(message: str, urn: str | None = None) -> None:
        found.append((message, urn))

    p.validate(StackValidationArgs(items, None), report)
    return found


def trustee_objects(
    digests: list[str], env: str = "production"
) -> list[tuple[str, dict[str, Any]]]:
    grant = ResourceGrant(path="default/key/1", initdata_digests=digests, platforms=["tdx"])
    rv = reference_values_json({"mr_td": ["aa" * 48]}, "2027-01-01T00:00:00Z")
    return [
        (
            CONFIG_MAP,
            config_map(
                labels.ROLE_RESOURCE_POLICY, {"policy.rego": render_resource_policy([grant])}, env
            ),
        ),
        (CONFIG_MAP, config_map(labels.ROLE_REFERENCE_VALUES, {"reference-values.json": rv}, env)),
    ]


# --- the pack's shape


def test_one_policy_per_check_at_the_packs_level() -> None:
    names = [p.name for p in POLICIES]
    assert len(names) == len(set(names)) == 9
    assert not [n for n in names if n.endswith("-advisory")], "no mandatory/advisory twins"
    # No level of their own: the pack's (mandatory) unless the stack's config sets one.
    assert all(p.enforcement_level is None for p in POLICIES)
    main = (ROOT / "policies" / "pack" / "__main__.py").read_text()
    assert "enforcement_level=EnforcementLevel.MANDATORY" in main


@pytest.mark.parametrize(
    ("environment", "level"),
    [("production", "mandatory"), ("staging", "advisory"), ("dev", "advisory")],
)
def test_stack_config_sets_every_policys_level(environment: str, level: str) -> None:
    tdx = tee.Hardware(host="baremetal", arch="x86_64", tee="tdx")
    config = stack_policy_config(environment, tdx)
    assert sorted(config) == sorted(p.name for p in POLICIES)
    # Optional rules (coco:checklist) are off for a stack that did not opt in.
    assert {n for n, c in config.items() if c["enforcementLevel"] == "disabled"} == {
        "images-signature-verified"
    }
    mandatory = {k: c for k, c in config.items() if k != "images-signature-verified"}
    assert {c["enforcementLevel"] for c in mandatory.values()} == {level}
    assert config["runtime-class-matches-hardware"]["hardware"]["tee"] == "tdx"
    assert [k for k, c in config.items() if set(c) != {"enforcementLevel"}] == [
        "runtime-class-matches-hardware"
    ]


def test_every_object_is_checked_whatever_its_environment_label() -> None:
    """The level comes from the stack's config, so a dev-labelled object is not skipped."""
    for env in ("dev", "production"):
        assert run_resource("no-coco-dev-runtime", deployment(env, "kata-qemu-coco-dev"))
    resources = [(DEPLOYMENT, deployment(env="dev")), *trustee_objects(["11" * 48], env="dev")]
    assert run_stack("kbs-resource-policy-bound", resources)


def test_exceptions_lower_one_policy_with_a_reason() -> None:
    exceptions = policy_exceptions(
        {
            "no-coco-dev-runtime": {
                "enforcementLevel": "advisory",
                "reason": "lab cluster, no TEE yet",
            }
        }
    )
    config = stack_policy_config("production", None, exceptions)
    assert config["no-coco-dev-runtime"] == {"enforcementLevel": "advisory"}
    assert config["images-pinned-by-digest"] == {"enforcementLevel": "mandatory"}


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"no-coco-dev-runtime": {"enforcementLevel": "advisory"}}, "reason"),
        ({"no-coco-dev-runtime": {"enforcementLevel": "advisory", "reason": "why"}}, "15"),
        ({"no-such-policy": {"enforcementLevel": "disabled", "reason": "x" * 20}}, "not a policy"),
        (
            {"no-coco-dev-runtime": {"enforcementLevel": "mandatory", "reason": "x" * 20}},
            "advisory",
        ),
    ],
)
def test_bad_exceptions_are_refused(raw: dict[str, Any], message: str) -> None:
    with pytest.raises(PolicyExceptionsError, match=message):
        policy_exceptions(raw)


# --- no-coco-dev-runtime


def test_coco_dev_runtime_fails() -> None:
    found = run_resource("no-coco-dev-runtime", deployment(runtime_class="kata-qemu-coco-dev"))
    assert len(found) == 1 and "without a TEE" in found[0]


def test_coco_dev_runtime_passes_on_tdx() -> None:
    assert run_resource("no-coco-dev-runtime", deployment(runtime_class="kata-qemu-tdx")) == []


def test_coco_dev_runtime_rs_variant_fails_too() -> None:
    props = deployment(runtime_class="kata-qemu-coco-dev-runtime-rs")
    assert run_resource("no-coco-dev-runtime", props)


def test_non_confidential_pods_are_ignored() -> None:
    props = deployment(runtime_class=None)
    props["metadata"]["labels"][labels.ROLE] = labels.ROLE_KBS
    props["spec"]["template"]["metadata"]["labels"][labels.ROLE] = labels.ROLE_KBS
    props["spec"]["template"]["spec"]["containers"][0]["image"] = "kbs:latest"
    for name in ("no-coco-dev-runtime", "images-pinned-by-digest", "agent-policy-in-initdata"):
        assert run_resource(name, props) == []


# --- runtime-class-matches-hardware


def test_runtime_class_missing_fails() -> None:
    found = run_resource("runtime-class-matches-hardware", deployment(runtime_class=None))
    assert "without runtimeClassName" in found[0]


def test_runtime_class_unknown_fails() -> None:
    found = run_resource("runtime-class-matches-hardware", deployment(runtime_class="kata-qemu"))
    assert "not a confidential runtime class" in found[0]


def test_runtime_class_against_declared_hardware_fails() -> None:
    config = {"hardware": {"host": "baremetal", "arch": "x86_64", "tee": "snp"}}
    found = run_resource("runtime-class-matches-hardware", deployment(), config=config)
    assert "needs TEE tdx" in found[0] and "kata-qemu-snp" in found[0]


def test_runtime_class_matching_hardware_passes() -> None:
    config = {"hardware": {"tee": "tdx"}}
    assert run_resource("runtime-class-matches-hardware", deployment(), config=config) == []


def test_hardware_config_round_trips_through_the_policy_config() -> None:
    snp = tee.Hardware(host="baremetal", arch="x86_64", tee="snp")
    cfg = stack_policy_config("production", snp)["runtime-class-matches-hardware"]
    assert run_resource("runtime-class-matches-hardware", deployment(), config=cfg)
    snp_ok = run_resource(
        "runtime-class-matches-hardware", deployment(runtime_class="kata-qemu-snp"), config=cfg
    )
    assert snp_ok == []


def test_runtime_class_object_with_foreign_handler_fails() -> None:
    props = runtime_class_object("kata-qemu-tdx", handler="kata-qemu-coco-dev")
    found = run_resource("runtime-class-matches-hardware", props, kind=RUNTIME_CLASS)
    assert "handler 'kata-qemu-coco-dev'" in found[0]


def test_runtime_class_object_selecting_other_tee_nodes_fails() -> None:
    props = runtime_class_object(
        "kata-qemu-tdx", selector={"amd.feature.node.kubernetes.io/snp": "true"}
    )
    found = run_resource("runtime-class-matches-hardware", props, kind=RUNTIME_CLASS)
    assert "amd.feature.node.kubernetes.io/snp" in found[0]


def test_runtime_class_object_as_kata_deploy_makes_it_passes() -> None:
    props = runtime_class_object("kata-qemu-tdx")
    assert run_resource("runtime-class-matches-hardware", props, kind=RUNTIME_CLASS) == []


# --- agent-policy-in-initdata


def test_missing_initdata_fails() -> None:
    found = run_resource("agent-policy-in-initdata", deployment(annotations={}))
    assert INITDATA_ANNOTATION in found[0]


def test_allow_all_agent_policy_fails() -> None:
    found = run_resource("agent-policy-in-initdata", deployment(preset="allow-all"))
    assert any("allow-all" in f for f in found)


def test_undecodable_initdata_fails() -> None:
    found = run_resource(
        "agent-policy-in-initdata", deployment(annotations={INITDATA_ANNOTATION: "not base64!"})
    )
    assert "does not decode" in found[0]


def test_stale_digest_annotation_fails() -> None:
    value, _ = initdata_for("kata-qemu-tdx")
    props = deployment(
        annotations={INITDATA_ANNOTATION: value, labels.INITDATA_DIGEST_ANNOTATION: "00" * 48}
    )
    found = run_resource("agent-policy-in-initdata", props)
    assert "bind the wrong value" in found[0]


def test_restrictive_initdata_passes() -> None:
    assert run_resource("agent-policy-in-initdata", deployment()) == []


def rego_defaults(**defaults: bool) -> str:
    lines = [f"default {k} := {str(v).lower()}" for k, v in defaults.items()]
    return "package agent_policy\n" + "\n".join(lines) + "\n"


@pytest.mark.parametrize(
    ("rego", "allow_all"),
    [
        (render_agent_policy(AgentPolicySpec(preset="allow-all")), True),
        (render_agent_policy(AgentPolicySpec(allowed_images=[IMAGE])), False),
        (rego_defaults(ExecProcessRequest=True, CreateContainerRequest=True), True),
        (rego_defaults(SetPolicyRequest=True, ExecProcessRequest=False), True),
        (rego_defaults(AllowRequestsFailingPolicy=True, ExecProcessRequest=False), True),
        (rego_defaults(ExecProcessRequest=False, CreateContainerRequest=True), False),
    ],
)
def test_allow_all_recognition(rego: str, allow_all: bool) -> None:
    assert (checks.allow_all_reason(rego) is not None) is allow_all


# --- images-pinned-by-digest


def test_unpinned_image_fails() -> None:
    found = run_resource(
        "images-pinned-by-digest", deployment(image="registry.example.com/app:1.0")
    )
    assert "containers[0]" in found[0] and "not pinned" in found[0]


def test_pinned_image_passes() -> None:
    assert run_resource("images-pinned-by-digest", deployment()) == []


# --- kbs-resource-policy-bound


def test_missing_resource_policy_fails() -> None:
    found = run_stack("kbs-resource-policy-bound", [(DEPLOYMENT, deployment())])
    assert len(found) == 1 and "no KBS resource policy" in found[0][0] and found[0][1] is None


def test_workload_digest_not_in_resource_policy_fails() -> None:
    resources = [(DEPLOYMENT, deployment()), *trustee_objects(["11" * 48])]
    found = run_stack("kbs-resource-policy-bound", resources)
    assert len(found) == 1 and "bound by no KBS resource policy" in found[0][0]
    assert found[0][1] == urn(DEPLOYMENT, "r0")


def test_resource_policy_without_init_data_fails() -> None:
    unbound = (
        "package policy\ndefault allow = false\n"
        'allow if {\n\tinput.submods.cpu0["ear.status"] == "affirming"\n}\n'
    )
    resources = [(CONFIG_MAP, config_map(labels.ROLE_RESOURCE_POLICY, {"policy.rego": unbound}))]
    found = run_stack("kbs-resource-policy-bound", resources)
    assert "never reads the init_data claim" in found[0][0]


def test_unbound_grant_next_to_bound_ones_fails() -> None:
    _, digest = initdata_for("kata-qemu-tdx")
    bound = ResourceGrant(path="default/key/1", initdata_digests=[digest], platforms=["tdx"])
    unbound = ResourceGrant(path="default/key/2", initdata_digests=[], platforms=["tdx"])
    text = render_resource_policy([bound, unbound], allow_unbound=True)
    resources = [
        (DEPLOYMENT, deployment()),
        (CONFIG_MAP, config_map(labels.ROLE_RESOURCE_POLICY, {"p": text})),
    ]
    found = run_stack("kbs-resource-policy-bound", resources)
    assert len(found) == 1 and "does not check init_data" in found[0][0]


def test_bound_resource_policy_passes() -> None:
    _, digest = initdata_for("kata-qemu-tdx")
    resources = [(DEPLOYMENT, deployment()), *trustee_objects([digest])]
    assert run_stack("kbs-resource-policy-bound", resources) == []


# --- reference-values-provisioned


def test_missing_reference_values_fails() -> None:
    _, digest = initdata_for("kata-qemu-tdx")
    resources = [(DEPLOYMENT, deployment()), trustee_objects([digest])[0]]
    found = run_stack("reference-values-provisioned", resources)
    assert "no reference values" in found[0][0]


def test_empty_reference_values_fail() -> None:
    resources = [
        (DEPLOYMENT, deployment()),
        (CONFIG_MAP, config_map(labels.ROLE_REFERENCE_VALUES, {"reference-values.json": "[]\n"})),
    ]
    found = run_stack("reference-values-provisioned", resources)
    assert "is empty" in found[0][0] and found[0][1] == urn(CONFIG_MAP, "r1")


def test_rvps_message_without_values_fails() -> None:
    from policies.attestation import rvps_message

    empty = config_map(labels.ROLE_REFERENCE_VALUES, {"rvps": rvps_message({})})
    full = config_map(labels.ROLE_REFERENCE_VALUES, {"rvps": rvps_message({"mr_td": ["aa" * 48]})})
    assert run_stack(
        "reference-values-provisioned", [(DEPLOYMENT, deployment()), (CONFIG_MAP, empty)]
    )
    assert (
        run_stack("reference-values-provisioned", [(DEPLOYMENT, deployment()), (CONFIG_MAP, full)])
        == []
    )


def test_provisioned_reference_values_pass() -> None:
    _, digest = initdata_for("kata-qemu-tdx")
    resources = [(DEPLOYMENT, deployment()), *trustee_objects([digest])]
    assert run_stack("reference-values-provisioned", resources) == []


def test_stack_without_coco_objects_is_not_checked() -> None:
    other = copy.deepcopy(config_map("something", {"a": "b"}))
    other["metadata"]["labels"] = {}
    assert run_stack("reference-values-provisioned", [(CONFIG_MAP, other)]) == []
    assert run_stack("kbs-resource-policy-bound", [(CONFIG_MAP, other)]) == []
