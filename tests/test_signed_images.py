"""The optional check "images signature-verified": settings, policy config, pack rule.

`coco:checklist.requireSignedImages` opts a stack in; the settings then refuse a workload
whose images no signature policy covers (waivable: `unsigned-images`), and the generated
policy config turns the pack rule `images-signature-verified` on. The rule is judged on
objects the program really renders (mocks), for coco's own workloads and transformed ones
(`coco:manifests`), and on hand-made policies that image-rs would let through.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from mocks import DecodingMocks, Recorded, config_values, run_program
from test_guest_features import DIGEST, base_config, p256, problems
from test_policy_pack import IMAGE, KBS, config_map, deployment, run_stack

from components import labels, tee
from components.settings import parse, secret_refs
from components.transform import ConfidentialOptions, make_confidential
from policies.agent import AgentPolicySpec, render_agent_policy
from policies.image_policy import (
    image_identity,
    image_namespaces,
    parse_reference,
    policy_problems,
    render_any_image_policy,
    render_image_policy,
    requirements_for_image,
    verification_gap,
)
from policies.initdata import (
    INITDATA_ANNOTATION,
    annotation_value,
    initdata_claim_hex,
    render_initdata,
)
from policies.pack.objects import confidential_pod
from policies.pack.production import policy_exceptions, stack_policy_config
from policies.pack.signatures import images_signature_verified
from policies.resource import public_resource_key

POLICY = "images-signature-verified"
SHA = "sha256:" + "f" * 64
SIGSTORE = {"type": "sigstoreSigned", "keyPath": "kbs:///coco/app-cosign/release"}

# --------------------------------------------------------------------------- the lookup


@pytest.mark.parametrize(
    ("image", "registry", "repository", "whole"),
    [  # oci-spec 0.10 reference.rs `parse_good_reference` cases (what image-rs parses with)
        ("busybox", "docker.io", "library/busybox", "docker.io/library/busybox:latest"),
        ("test.com:tag", "docker.io", "library/test.com", "docker.io/library/test.com:tag"),
        ("test.com/repo:tag", "test.com", "repo", "test.com/repo:tag"),
        ("test:5000/repo", "test:5000", "repo", "test:5000/repo:latest"),
        (f"test:5000/repo@{SHA}", "test:5000", "repo", f"test:5000/repo@{SHA}"),
        ("a.foo.com/bar/baz/quux", "a.foo.com", "bar/baz/quux", "a.foo.com/bar/baz/quux:latest"),
        ("foo/foo_bar.com:8080", "docker.io", "foo/foo_bar.com", "docker.io/foo/foo_bar.com:8080"),
    ],
)  # fmt: skip
def test_references_parse_as_image_rs_parses_them(
    image: str, registry: str, repository: str, whole: str
) -> None:
    assert parse_reference(image)[:2] == (registry, repository)
    assert image_identity(image) == whole


def test_namespaces_walk_up_to_wildcard_domains() -> None:
    # image-rs signature/image/mod.rs get_image_namespaces: parents, then *.domain sans port.
    assert image_namespaces("example.com:8443/ns/app:1") == [
        "example.com:8443/ns/app",
        "example.com:8443/ns",
        "example.com:8443",
        "*.com",
    ]


def test_lookup_prefers_the_full_reference_then_namespaces_then_default() -> None:
    accept = [{"type": "insecureAcceptAnything"}]
    policy = {
        "default": [{"type": "reject"}],
        "transports": {
            "docker": {
                f"registry.example.com/app@sha256:{'ab' * 32}": [SIGSTORE],
                "registry.example.com": accept,
                "*.example.com": [{"type": "reject"}],
            }
        },
    }
    assert requirements_for_image(policy, IMAGE) == [SIGSTORE]
    assert requirements_for_image(policy, "registry.example.com/other:1") == accept
    assert requirements_for_image(policy, "cdn.example.com/x:1") == [{"type": "reject"}]
    assert requirements_for_image(policy, "quay.io/x:1") == [{"type": "reject"}]


@pytest.mark.parametrize(
    ("requirements", "gap"),
    [
        ([], "allows an image no requirement covers"),
        ([{"type": "insecureAcceptAnything"}], "verify no signature"),
        ([{"type": "reject"}], "rejects it outright"),
        ([{"type": "sigstoreSigned"}], "verify no signature"),  # no key: nothing to verify with
        ([SIGSTORE], None),
        ([{"type": "insecureAcceptAnything"}, SIGSTORE], None),  # every requirement must hold
        ([{"type": "signedBy", "keyType": "GPGKeys", "keyData": "a2V5"}], None),
    ],
)
def test_a_requirement_list_verifies_only_with_a_keyed_signature(
    requirements: list[Any], gap: str | None
) -> None:
    found = verification_gap(requirements)
    assert found is None if gap is None else (found is not None and gap in found)


def test_coco_policies_cover_their_images_and_nothing_else_runs() -> None:
    native = render_image_policy([IMAGE], ["coco/app-cosign/release"])
    assert policy_problems(native, [IMAGE]) == []
    assert "rejects it outright" in policy_problems(native, ["quay.io/other:1"])[0]
    anything = render_any_image_policy(["coco/src-cosign/release"])
    assert policy_problems(anything, [IMAGE, "quay.io/other@sha256:" + "0" * 64]) == []
    assert json.loads(anything)["transports"] == {"docker": {}}  # image-rs requires the key


# --------------------------------------------------------------------------- settings


def signed_config(**workload: Any) -> dict[str, Any]:
    config = base_config(**workload)
    config["checklist"] = {"requireSignedImages": True}
    return config


def keys() -> dict[str, Any]:
    return {"keys": [{"name": "release", "publicKey": p256()[1]}]}


def test_opted_in_stack_refuses_an_unsigned_workload_naming_the_container() -> None:
    text = problems(signed_config())
    assert "coco:workloads[0].containers[0].image" in text
    assert "requireSignedImages is on" in text and "imageSignatures.keys" in text
    assert "'unsigned-images'" in text


def test_opted_in_stack_accepts_signed_workloads() -> None:
    parse(signed_config(imageSignatures=keys()))


def test_the_check_is_optional_and_waivable() -> None:
    parse(base_config())  # not opted in: unsigned images are fine
    config = signed_config()
    config["waivers"] = [
        {"check": "unsigned-images", "reason": "the signing pipeline lands next quarter"}
    ]
    parse(config)


def test_misspelled_checklist_key_is_named() -> None:
    config = base_config()
    config["checklist"] = {"requireSignedImage": True}
    assert "coco:checklist.requireSignedImage: unknown key" in problems(config)


def manifest_folder(tmp_path: Path, image: str = DIGEST) -> Path:
    folder = tmp_path / "yaml"
    folder.mkdir()
    obj = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": image}]},
            },
        },
    }
    (folder / "web.yaml").write_text(yaml.safe_dump(obj))
    return folder


def test_opted_in_stack_refuses_an_unsigned_manifests_source(tmp_path: Path) -> None:
    config = signed_config(imageSignatures=keys())
    config["manifests"] = [{"name": "web", "path": str(manifest_folder(tmp_path))}]
    text = problems(config)
    assert "coco:manifests[0].imageSignatures" in text and "'web'" in text
    config["manifests"][0]["imageSignatures"] = keys()
    parse(config)


def test_a_signed_manifests_source_needs_digests(tmp_path: Path) -> None:
    config = base_config()
    folder = manifest_folder(tmp_path, image="registry.example.com/coco/web:1.0")
    config["manifests"] = [{"name": "web", "path": str(folder), "imageSignatures": keys()}]
    text = problems(config)
    assert "coco:manifests[0].path" in text and "no digest" in text


# --------------------------------------------------------------------------- policy config


def test_the_pack_rule_follows_the_opt_in_and_the_environment() -> None:
    tdx = tee.Hardware(host="baremetal", arch="x86_64", tee="tdx")
    assert stack_policy_config("production", tdx)[POLICY]["enforcementLevel"] == "disabled"
    on = stack_policy_config("production", tdx, opted_in=[POLICY])
    assert on[POLICY]["enforcementLevel"] == "mandatory"
    staging = stack_policy_config("staging", tdx, opted_in=[POLICY])
    assert staging[POLICY]["enforcementLevel"] == "advisory"
    exception = policy_exceptions(
        {POLICY: {"enforcementLevel": "advisory", "reason": "signing starts in March 2027"}}
    )
    lowered = stack_policy_config("production", tdx, exception, opted_in=[POLICY])
    assert lowered[POLICY]["enforcementLevel"] == "advisory"
    # An exception lowers; it never switches on a rule the stack left off.
    assert stack_policy_config("production", tdx, exception)[POLICY]["enforcementLevel"] == (
        "disabled"
    )
    with pytest.raises(ValueError, match="not optional"):
        stack_policy_config("production", tdx, opted_in=["no-coco-dev-runtime"])


def test_automation_policy_config_reads_the_stacks_checklist() -> None:
    from automation.operations import policy_config

    on = signed_config(imageSignatures=keys())
    assert policy_config(parse(on))[POLICY]["enforcementLevel"] == "advisory"  # dev stack
    assert policy_config(parse(base_config()))[POLICY]["enforcementLevel"] == "disabled"


# --------------------------------------------------------------------------- pack rule


def signed_deployment(uri: str | None, image: str = IMAGE) -> dict[str, Any]:
    """A coco Deployment whose init-data cdh.toml names `uri` as its image policy."""
    text = render_initdata(
        KBS,
        render_agent_policy(AgentPolicySpec(allowed_images=[image])),
        "sha384",
        image_security_policy_uri=uri,
    )
    digest = initdata_claim_hex(text, "sha384", 48)
    annotations = {
        INITDATA_ANNOTATION: annotation_value(text),
        labels.INITDATA_DIGEST_ANNOTATION: digest,
    }
    return deployment(image=image, annotations=annotations)


def served(values: dict[str, str]) -> tuple[str, dict[str, Any]]:
    data = {public_resource_key(p): v for p, v in values.items()}
    return ("kubernetes:core/v1:ConfigMap", config_map(labels.ROLE_KBS_RESOURCE, data))


POLICY_PATH = "coco/app-image-policy/policy.json"
URI = f"kbs:///{POLICY_PATH}"
KEY = "-----BEGIN PUBLIC KEY-----\n...\n-----END PUBLIC KEY-----\n"


def test_rule_passes_a_pod_whose_served_policy_verifies_its_image() -> None:
    policy = render_image_policy([IMAGE], ["coco/app-cosign/release"])
    resources = [
        ("kubernetes:apps/v1:Deployment", signed_deployment(URI)),
        served({POLICY_PATH: policy, "coco/app-cosign/release": KEY}),
    ]
    assert run_stack(POLICY, resources) == []


def test_rule_refuses_a_pod_without_an_image_policy() -> None:
    (finding,) = run_stack(POLICY, [("kubernetes:apps/v1:Deployment", deployment())])
    assert "image_security_policy_uri" in finding[0] and "imageSignatures" in finding[0]
    assert finding[1] is not None, "the finding names the workload"


@pytest.mark.parametrize(
    ("policy", "message"),
    [
        (
            json.dumps({"default": [{"type": "insecureAcceptAnything"}], "transports": {}}),
            "verify no signature",
        ),
        (json.dumps({"default": [], "transports": {}}), "allows an image no requirement"),
        (
            render_image_policy(["registry.example.com/other@sha256:" + "0" * 64], ["coco/k/r"]),
            "rejects it outright",
        ),
        ("{not json", "not JSON"),
    ],
)
def test_rule_refuses_a_policy_that_lets_the_image_run_unverified(
    policy: str, message: str
) -> None:
    resources = [
        ("kubernetes:apps/v1:Deployment", signed_deployment(URI)),
        served({POLICY_PATH: policy, "coco/k/r": KEY}),
    ]
    (finding,) = run_stack(POLICY, resources)
    assert message in finding[0]


def test_rule_refuses_a_policy_or_key_the_kbs_does_not_serve() -> None:
    deploy = ("kubernetes:apps/v1:Deployment", signed_deployment(URI))
    (finding,) = run_stack(POLICY, [deploy])
    assert "not among the KBS's public resources" in finding[0]
    policy = render_image_policy([IMAGE], ["coco/app-cosign/release"])
    (finding,) = run_stack(POLICY, [deploy, served({POLICY_PATH: policy})])
    assert "coco/app-cosign/release" in finding[0] and "not served" in finding[0]


def test_rule_judges_a_transformed_workload_by_its_rendered_objects() -> None:
    """A workload made confidential by `Confidential` (coco:manifests, a program's own
    objects) carries the URI in its init-data like coco's own."""
    plain = copy.deepcopy(deployment())
    template = plain["spec"]["template"]
    template["metadata"] = {"labels": {"app": "web"}}
    template["spec"].pop("runtimeClassName")
    policy_path = "coco/web-image-policy/policy.json"
    options = ConfidentialOptions(
        runtime_class="kata-qemu-tdx",
        environment="production",
        image_security_policy_uri=f"kbs:///{policy_path}",
    )
    obj, _, _ = make_confidential(plain, options, KBS)
    good = served(
        {
            policy_path: render_any_image_policy(["coco/web-cosign/release"]),
            "coco/web-cosign/release": KEY,
        }
    )
    assert run_stack(POLICY, [("kubernetes:apps/v1:Deployment", obj), good]) == []
    bare, _, _ = make_confidential(plain, ConfidentialOptions("kata-qemu-tdx"), KBS)
    assert run_stack(POLICY, [("kubernetes:apps/v1:Deployment", bare), good])


# --------------------------------------------------------------------------- on the program


class Resource:
    """A recorded registration as the pack sees it (`StackResource`)."""

    def __init__(self, r: Recorded) -> None:
        self.resource_type, self.props, self.urn = r.type, r.inputs, r.name


def render(config: dict[str, Any]) -> DecodingMocks:
    settings = parse(config)
    secrets = {f"coco:{ref}": f"value-of-{ref}" for _, ref in secret_refs(settings)}
    mocks = DecodingMocks()
    run_program(mocks, "signed", config_values(config, "coco:") | secrets, secrets)
    return mocks


def test_the_programs_objects_pass_the_rule_native_and_transformed(tmp_path: Path) -> None:
    config = signed_config(imageSignatures=keys())
    config["manifests"] = [
        {"name": "web", "path": str(manifest_folder(tmp_path)), "imageSignatures": keys()}
    ]
    mocks = render(config)
    resources = [Resource(r) for r in mocks.kubernetes()]
    workloads = [r for r in resources if confidential_pod(r.resource_type, r.props)]
    assert len(workloads) == 2, "coco's own workload and the transformed one"
    assert images_signature_verified(resources) == []
    # The KBS releases the source's policy to the source's workloads (its digests).
    (rp,) = [
        r
        for r in mocks.of_type("core/v1:ConfigMap")
        if r.metadata.get("labels", {}).get(labels.ROLE) == labels.ROLE_RESOURCE_POLICY
    ]
    text = "\n".join(rp.inputs["data"].values())
    assert "# coco/web-image-policy/policy.json: sample, affirming; bound" in text


def test_the_programs_unsigned_objects_fail_the_rule(tmp_path: Path) -> None:
    config = base_config()
    config["manifests"] = [{"name": "web", "path": str(manifest_folder(tmp_path))}]
    resources = [Resource(r) for r in render(config).kubernetes()]
    findings = images_signature_verified(resources)
    assert len(findings) == 2 and all("image_security_policy_uri" in f.message for f in findings)


def test_the_worked_example_stack_opts_in_and_passes_the_rule() -> None:
    """stacks/Pulumi.baremetal-snp.yaml, the README's worked example: sealed env and file, a
    signed and an encrypted image, opted in; what the program renders for it passes the rule,
    which its generated policy config makes mandatory."""
    from test_stacks import run_stack

    from automation.operations import policy_config

    run = run_stack("baremetal-snp")
    (w,) = run.settings.workloads
    (c,) = w.containers
    assert c.sealed_env and c.sealed_files and w.image_signatures and w.image_decryption_keys
    assert policy_config(run.settings)[POLICY]["enforcementLevel"] == "mandatory"
    resources = [Resource(r) for r in run.mocks.kubernetes()]
    assert [r for r in resources if confidential_pod(r.resource_type, r.props)]
    assert images_signature_verified(resources) == []
