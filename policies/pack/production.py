"""The `coco-production` policies: each check twice, mandatory in production, advisory elsewhere.

Why twins: the policy SDK fixes one enforcement level per policy, but the checklist must
block a production stack and only warn on a dev stack (so `pulumi preview` on dev still
shows what production would refuse). So each check is registered as

- `<check>`           MANDATORY, looks only at objects labelled environment=production;
- `<check>-advisory`  ADVISORY, looks at every other object.

The decision is made per object from its `coco.confidentialcontainers.org/environment`
label (stack-wide findings, such as a missing resource policy, use the stack's: production
when any object is). Both halves show up by name in `pulumi preview`, and an organisation
can still change either one's level in a policy-pack config file (`--policy-pack-config`),
which is also how a production exception is granted to the pack: the pack does not read
the stack's `coco:waivers`, because the stack's author should not be able to waive the
organisation's policy from the stack file alone.

Preview: values computed during an update (the KBS certificate, hence init-data and
digests, on a stack's first preview) are unknown; a check that needs one is reported by the
SDK as "can't run policy during preview" (advisory) and runs for real during `up`.

Hardware: `runtime-class-matches-hardware` checks workloads against the catalogue always, and
against the cluster's hardware when the policy config declares it (`hardware: {host, arch,
tee, gpu}`, see `hardware_config`). The pack cannot read the stack's `coco:cluster` itself:
the Python policy SDK does not receive stack config. The Automation API (`automation`)
passes the declaration for the stack it runs; with the CLI, pass `--policy-pack-config`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from pulumi_policy import (
    EnforcementLevel,
    Policy,
    PolicyConfigSchema,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)

from components import tee
from policies.pack import checks
from policies.pack.objects import is_production

PACK_NAME = "coco-production"
ADVISORY_SUFFIX = "-advisory"

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
    """The policy-pack config declaring `hardware` (what `--policy-pack-config` takes)."""
    declared: dict[str, Any] = {"host": hardware.host, "arch": hardware.arch, "gpu": hardware.gpu}
    if hardware.tee is not None:
        declared["tee"] = hardware.tee
    name = "runtime-class-matches-hardware"
    return {name: {"hardware": declared}, name + ADVISORY_SUFFIX: {"hardware": declared}}


def _twin(name: str, description: str, mandatory: bool) -> dict[str, Any]:
    """Name, description and enforcement of one of a check's two policies: the mandatory one
    for production objects, and its advisory twin for everything else."""
    return {
        "name": name if mandatory else name + ADVISORY_SUFFIX,
        "description": description + ("" if mandatory else " (advisory outside production)"),
        "enforcement_level": EnforcementLevel.MANDATORY if mandatory else EnforcementLevel.ADVISORY,
    }


def _resource_twins(
    name: str,
    description: str,
    check: ResourceCheck,
    config_schema: PolicyConfigSchema | None = None,
) -> list[Policy]:
    def make(mandatory: bool) -> ResourceValidationPolicy:
        def validate(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
            if is_production(args.resource_type, args.props) != mandatory:
                return
            for message in check(args):
                report_violation(message, None)

        return ResourceValidationPolicy(
            validate=validate, config_schema=config_schema, **_twin(name, description, mandatory)
        )

    return [make(True), make(False)]


def _stack_twins(name: str, description: str, check: StackCheck) -> list[Policy]:
    def make(mandatory: bool) -> StackValidationPolicy:
        def validate(args: StackValidationArgs, report_violation: ReportViolation) -> None:
            findings = check(args.resources)
            for finding in findings:
                if finding.production == mandatory:
                    report_violation(finding.message, finding.urn)

        return StackValidationPolicy(validate=validate, **_twin(name, description, mandatory))

    return [make(True), make(False)]


def _runtime_class(args: ResourceValidationArgs) -> list[str]:
    return checks.runtime_class_hardware(
        args.resource_type, args.props, declared_hardware(args.get_config())
    )


POLICIES: list[Policy] = [
    *_resource_twins(
        "no-coco-dev-runtime",
        "Confidential pods never run on kata-qemu-coco-dev (no TEE, testing only).",
        lambda a: checks.coco_dev_runtime(a.resource_type, a.props),
    ),
    *_resource_twins(
        "runtime-class-matches-hardware",
        "Confidential pods use a catalogued runtime class that fits the cluster's hardware; "
        "RuntimeClass objects keep handler = name and select only their own TEE's nodes.",
        _runtime_class,
        _HARDWARE_SCHEMA,
    ),
    *_resource_twins(
        "agent-policy-in-initdata",
        "Every confidential pod carries init-data whose measured agent policy is not allow-all "
        "and whose digest annotation matches it.",
        lambda a: checks.agent_policy_in_initdata(a.resource_type, a.props),
    ),
    *_resource_twins(
        "images-pinned-by-digest",
        "Every image of a confidential pod is pinned as name@sha256:<digest>.",
        lambda a: checks.unpinned_images(a.resource_type, a.props),
    ),
    *_stack_twins(
        "kbs-resource-policy-bound",
        "The KBS resource policy exists, checks init_data, and binds every workload's init-data "
        "digest.",
        checks.kbs_resource_policy_bound,
    ),
    *_stack_twins(
        "reference-values-provisioned",
        "Reference values are provisioned to the RVPS (a non-empty reference-values ConfigMap).",
        checks.reference_values_provisioned,
    ),
]
"""Every policy of the pack, mandatory halves first."""

SETTINGS_CHECKS: dict[str, str] = {
    "no-coco-dev-runtime": "coco-dev-runtime",
    "agent-policy-in-initdata": "allow-all-agent-policy",
    "kbs-resource-policy-bound": "unbound-resource-policy",
    "reference-values-provisioned": "missing-reference-values",
    "images-pinned-by-digest": "unpinned-images",
}
"""Pack policy -> the settings waiver (`coco:waivers[].check`) covering the same rule."""
