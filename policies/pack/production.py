"""The `coco-production` policies: one rule per check, its level set per stack by config.

Why config and not the objects: a policy has one enforcement level, and the checklist must
block a production stack yet only warn on a dev stack. The level is therefore the stack's
policy-pack config (`pulumi preview --policy-pack policies/pack --policy-pack-config
FILE`), which `stack_policy_config` generates from the stack's settings: every policy
`mandatory` in production, `advisory` in staging and dev. The documented deploy paths
(scripts/up.sh, `python -m automation up`, `automation.up`) always pass it, and refuse to
`up` when the preview reports a mandatory violation (docs/policy-pack.md).

Without a config, every policy is mandatory (the pack's own level): a run that bypasses the
documented path fails closed. (The engine validates the per-policy `enforcementLevel` keys:
pulumi/pkg/resource/analyzer/config.go; the SDK applies them per policy in `Configure`.)

Exceptions: the pack does not read the stack's `coco:waivers`, because the stack's author
should not be able to waive the organisation's policy from the stack file alone. An
organisation grants one in a policy-exceptions file (`policy_exceptions`): a level per
policy, each with its reason, laid over the generated config.

Preview: values computed during an update (the KBS certificate, hence init-data and
digests, on a stack's first preview) are unknown; a check that needs one is reported by the
SDK as "can't run policy during preview" (advisory) and runs for real during `up`.

Hardware: `runtime-class-matches-hardware` checks workloads against the catalogue always, and
against the cluster's hardware when the policy config declares it (`hardware: {host, arch,
tee, gpu}`). The Python policy SDK does not receive stack config, so the generated config
carries the hardware the stack's `coco:cluster` declares.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any, Literal

from pulumi_policy import (
    Policy,
    PolicyConfigSchema,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from components import tee
from policies.pack import checks, signatures, zones

PACK_NAME = "coco-production"
RUNTIME_CLASS_POLICY = "runtime-class-matches-hardware"

ResourceCheck = Callable[[ResourceValidationArgs], list[str]]
StackCheck = Callable[[Sequence[checks.StackResource]], list[checks.Finding]]

_HARDWARE_SCHEMA = PolicyConfigSchema(
    properties={
        "hardware": {
            "type": "object",
            "description": "The cluster's TEE hardware; unset: only the catalogue is checked.",
            "properties": {
                "host": {"type": "string", "enum": ["baremetal", "peerpods"]},
                "arch": {"type": "string", "enum": ["x86_64", "s390x"]},
                "tee": {"type": "string", "enum": ["none", "tdx", "snp", "sev", "se"]},
                "gpu": {"type": "boolean"},
            },
        }
    }
)


def declared_hardware(policy_config: Mapping[str, Any]) -> tee.Hardware | None:
    """The hardware the policy config declares, None when it declares none."""
    hw = policy_config.get("hardware")
    if not isinstance(hw, Mapping) or not hw:
        return None
    if hw.get("host") == "peerpods":
        return checks.hardware_from_cluster_config({"kind": "peerpods"})
    cluster = {"kind": "baremetal", "arch": hw.get("arch", "x86_64"), "tee": hw.get("tee")}
    return checks.hardware_from_cluster_config(cluster | {"gpu": hw.get("gpu") or None})


def hardware_config(hardware: tee.Hardware) -> dict[str, Any]:
    """The `hardware` declaration `runtime-class-matches-hardware` takes as config."""
    declared: dict[str, Any] = {"host": hardware.host, "arch": hardware.arch, "gpu": hardware.gpu}
    if hardware.tee is not None:
        declared["tee"] = hardware.tee
    return {"hardware": declared}


Level = Literal["mandatory", "advisory", "disabled"]

OPTIONAL_POLICIES = frozenset({signatures.SIGNED_IMAGES_POLICY})
"""Rules a stack opts in to (`coco:checklist`, components/checklist.py): `disabled` in the
generated config of a stack that did not. Without any config they are mandatory like the
rest (the run fails closed: it cannot know what the stack asked for)."""


TRUSTEE_STACK_POLICIES = frozenset({"kbs-resource-policy-bound", "reference-values-provisioned"})
"""Rules about the Trustee's objects: `disabled` on a stack whose Trustee is in another stack."""


class PolicyException(BaseModel):
    """An organisation's exception to one pack policy: a lower level, and why."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    enforcement_level: Literal["advisory", "disabled"] = Field(alias="enforcementLevel")
    reason: str = Field(min_length=15)


class PolicyExceptionsError(ValueError):
    """A policy-exceptions file that cannot be used (unknown policy, no reason, ...)."""


def policy_exceptions(raw: Mapping[str, Any]) -> dict[str, PolicyException]:
    """Validate an exceptions document `{policy: {enforcementLevel, reason}}`."""
    names = {p.name for p in POLICIES}
    out: dict[str, PolicyException] = {}
    problems = []
    for name, value in raw.items():
        if name not in names:
            problems.append(f"{name!r} is not a policy of {PACK_NAME} ({', '.join(sorted(names))})")
            continue
        try:
            out[name] = PolicyException.model_validate(value)
        except ValidationError as err:
            first = err.errors(include_url=False)[0]
            where = ".".join(str(x) for x in first["loc"]) or name
            problems.append(
                f"{name}.{where}: {first['msg']} (each exception needs enforcementLevel "
                "advisory|disabled and a reason of at least 15 characters)"
            )
    if problems:
        raise PolicyExceptionsError("invalid policy exceptions:\n  - " + "\n  - ".join(problems))
    return out


def level_for(environment: str) -> Level:
    """Mandatory in production, advisory elsewhere."""
    return "mandatory" if environment == "production" else "advisory"


def stack_policy_config(
    environment: str,
    hardware: tee.Hardware | None,
    exceptions: Mapping[str, PolicyException] | None = None,
    opted_in: Collection[str] = (),
    remote_trustee: bool = False,
) -> dict[str, Any]:
    """The `--policy-pack-config` document for one stack: a level for every policy (and the
    declared hardware), exceptions laid over it. Sorted keys: the same stack, the same file.

    An `OPTIONAL_POLICIES` rule is `disabled` unless the stack opted in to it (`opted_in`,
    from `coco:checklist`), then levelled like the others.

    `remote_trustee`: a confidential-cluster stack of a split trusted zone holds no Trustee,
    so the rules about the Trustee's own objects (resource policy, reference values) are
    `disabled` there: the Trustee stack is checked for them, and binds exactly the digests
    this stack exports (components/zones.py)."""
    unknown = sorted(set(opted_in) - OPTIONAL_POLICIES)
    if unknown:
        raise ValueError(f"not optional policies of {PACK_NAME}: {', '.join(unknown)}")
    config: dict[str, Any] = {}
    for policy in POLICIES:
        level: Level = level_for(environment)
        if policy.name in OPTIONAL_POLICIES and policy.name not in opted_in:
            level = "disabled"
        if remote_trustee and policy.name in TRUSTEE_STACK_POLICIES:
            level = "disabled"
        entry: dict[str, Any] = {"enforcementLevel": level}
        if policy.name == RUNTIME_CLASS_POLICY and hardware is not None:
            entry |= hardware_config(hardware)
        exception = (exceptions or {}).get(policy.name)
        if exception is not None and level != "disabled":  # an exception never raises
            entry["enforcementLevel"] = exception.enforcement_level
        config[policy.name] = entry
    return dict(sorted(config.items()))


def _resource_policy(
    name: str,
    description: str,
    check: ResourceCheck,
    config_schema: PolicyConfigSchema | None = None,
) -> Policy:
    def validate(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
        for message in check(args):
            report_violation(message, None)

    return ResourceValidationPolicy(
        name=name, description=description, validate=validate, config_schema=config_schema
    )


def _stack_policy(name: str, description: str, check: StackCheck) -> Policy:
    def validate(args: StackValidationArgs, report_violation: ReportViolation) -> None:
        for finding in check(args.resources):
            report_violation(finding.message, finding.urn)

    return StackValidationPolicy(name=name, description=description, validate=validate)


def _runtime_class(args: ResourceValidationArgs) -> list[str]:
    return checks.runtime_class_hardware(
        args.resource_type, args.props, declared_hardware(args.get_config())
    )


POLICIES: list[Policy] = [
    _resource_policy(
        "no-coco-dev-runtime",
        "Confidential pods never run on kata-qemu-coco-dev (no TEE, testing only).",
        lambda a: checks.coco_dev_runtime(a.resource_type, a.props),
    ),
    _resource_policy(
        RUNTIME_CLASS_POLICY,
        "Confidential pods use a catalogued runtime class that fits the cluster's hardware; "
        "RuntimeClass objects keep handler = name and select only their own TEE's nodes.",
        _runtime_class,
        _HARDWARE_SCHEMA,
    ),
    _resource_policy(
        "agent-policy-in-initdata",
        "Every confidential pod carries init-data whose measured agent policy is not allow-all "
        "and whose digest annotation matches it.",
        lambda a: checks.agent_policy_in_initdata(a.resource_type, a.props),
    ),
    _resource_policy(
        "images-pinned-by-digest",
        "Every image of a confidential pod is pinned as name@sha256:<digest>.",
        lambda a: checks.unpinned_images(a.resource_type, a.props),
    ),
    _stack_policy(
        "kbs-resource-policy-bound",
        "The KBS resource policy exists, checks init_data, and binds every workload's init-data "
        "digest.",
        checks.kbs_resource_policy_bound,
    ),
    _stack_policy(
        "reference-values-provisioned",
        "Reference values are provisioned to the RVPS (a non-empty reference-values ConfigMap).",
        checks.reference_values_provisioned,
    ),
    _stack_policy(
        zones.CO_LOCATED_POLICY,
        "No Trustee object (KBS, keys, policies, reference values, resources) shares a "
        "Kubernetes provider with confidential pods: the Trustee runs in the trusted zone.",
        zones.trustee_in_trusted_zone,
    ),
    _resource_policy(
        zones.KBS_IMAGE_POLICY,
        "Every image of the KBS Deployment (the root of trust) is pinned by digest.",
        lambda a: zones.kbs_image_pinned(a.resource_type, a.props),
    ),
    _stack_policy(
        signatures.SIGNED_IMAGES_POLICY,
        "Optional (coco:checklist.requireSignedImages): every image of a confidential pod is "
        "covered by the signature-verifying image policy its init-data's cdh.toml names and "
        "the KBS serves.",
        signatures.images_signature_verified,
    ),
]
"""Every policy of the pack, one per check; levels come from the stack's config."""

SETTINGS_CHECKS: dict[str, str] = {
    "no-coco-dev-runtime": "coco-dev-runtime",
    "agent-policy-in-initdata": "allow-all-agent-policy",
    "kbs-resource-policy-bound": "unbound-resource-policy",
    "reference-values-provisioned": "missing-reference-values",
    "images-pinned-by-digest": "unpinned-images",
    signatures.SIGNED_IMAGES_POLICY: "unsigned-images",
    zones.CO_LOCATED_POLICY: "co-located-trustee",
    zones.KBS_IMAGE_POLICY: "unpinned-kbs-image",
}
"""Pack policy -> the settings waiver (`coco:waivers[].check`) covering the same rule."""
