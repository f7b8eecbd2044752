"""The production checklist as pure functions: Kubernetes objects in, problems out.

Nothing here knows about enforcement levels or the policy SDK, so every check is testable
with plain dicts, and `production.py` decides only *how loudly* a problem is reported.

The checklist (CoCo's production guide; docs/production.md, "The production checklist, enforced
twice"):
1. the runtime class is a confidential one that fits the hardware (never coco-dev);
2. an agent policy is generated and travels, measured, in init-data;
3. the KBS has a resource policy that binds secrets to init-data digests;
4. reference values are provisioned to the RVPS;
and the workload's images are pinned by digest, because the agent policy admits images by
digest and an unpinned tag can change under the same name.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import re
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from components import labels, tee
from components.vocabulary import is_pinned
from policies.initdata import (
    DIGEST_SIZES,
    INITDATA_ANNOTATION,
    INITDATA_VERSION,
    claim_hex_to_base64,
    decode_annotation,
    initdata_claim_hex,
)
from policies.pack.objects import (
    CONFIG_MAP,
    RUNTIME_CLASS,
    PodTemplate,
    catalogue_class,
    confidential_pod,
    is_production,
    mapping,
    role,
)

COCO_DEV = "kata-qemu-coco-dev"
_REGO_DEFAULT = re.compile(
    r"^[ \t]*default[ \t]+([A-Za-z_][A-Za-z0-9_]*)[ \t]*:?=[ \t]*(true|false)[ \t]*(?:#.*)?$",
    re.MULTILINE,
)
_ALLOW_RULE = re.compile(r"^allow\b[^\n{]*\{", re.MULTILINE)
_TEE_LABEL_KEYS = frozenset(k for spec in tee.CATALOGUE.values() for k in spec.node_labels)


class StackResource(Protocol):
    """What a stack validation sees of one resource (`pulumi_policy.PolicyResource`)."""

    @property
    def resource_type(self) -> str: ...
    @property
    def props(self) -> Mapping[str, Any]: ...
    @property
    def urn(self) -> str: ...


@dataclass(frozen=True)
class Finding:
    """A stack-level problem, the resource it is about (if one) and its environment."""

    message: str
    urn: str | None
    production: bool


# --------------------------------------------------------------------------- 1. runtime class


def coco_dev_runtime(resource_type: str, props: Mapping[str, Any]) -> list[str]:
    """A confidential pod on `kata-qemu-coco-dev` has no hardware protection at all."""
    pod = confidential_pod(resource_type, props)
    if pod is None or pod.runtime_class is None:
        return []
    if pod.runtime_class.removesuffix("-runtime-rs") != COCO_DEV:
        return []
    return [
        f"runtime class {pod.runtime_class!r} runs the CoCo stack without a TEE: anyone with "
        "access to the host can read the pod's memory and secrets; use the class that fits "
        "the hardware (kata-qemu-tdx, kata-qemu-snp, kata-qemu-se, kata-remote, ...)"
    ]


def runtime_class_hardware(
    resource_type: str, props: Mapping[str, Any], hardware: tee.Hardware | None = None
) -> list[str]:
    """Workload pods use a catalogued class that fits the hardware; RuntimeClasses are honest.

    For a RuntimeClass object: its handler must be its own name (a `kata-qemu-tdx` class
    whose handler is `kata-qemu-coco-dev` would quietly drop the TEE) and its node selector
    must not target another TEE's nodes.
    """
    if resource_type == RUNTIME_CLASS:
        return _runtime_class_object(props)
    pod = confidential_pod(resource_type, props)
    if pod is None:
        return []
    rc = pod.runtime_class
    if rc is None:
        return [
            "a coco workload without runtimeClassName runs as an ordinary container, outside "
            "any TEE: set the runtime class that fits the cluster hardware"
        ]
    spec = catalogue_class(rc)
    if spec is None:
        known = ", ".join(sorted(tee.CATALOGUE))
        return [f"runtime class {rc!r} is not a confidential runtime class (known: {known})"]
    if hardware is not None:
        why = tee.mismatch(spec.name, hardware)
        if why:
            fits = ", ".join(tee.classes_for(hardware)) or "none"
            return [f"{why}; classes that fit: {fits}"]
    return []


def _runtime_class_object(props: Mapping[str, Any]) -> list[str]:
    name = mapping(props.get("metadata")).get("name")
    if not isinstance(name, str):
        return []
    spec = catalogue_class(name)
    if spec is None:
        return []
    problems = []
    handler = props.get("handler")
    if handler != name:
        problems.append(
            f"RuntimeClass {name!r} has handler {handler!r}: kata-deploy names the handler "
            "like the class, and another handler runs another (possibly unprotected) runtime"
        )
    selector = mapping(mapping(props.get("scheduling")).get("nodeSelector"))
    foreign = sorted(k for k in selector if k in _TEE_LABEL_KEYS and k not in spec.node_labels)
    if foreign:
        problems.append(
            f"RuntimeClass {name!r} selects nodes by {', '.join(foreign)}, which marks other "
            f"TEE hardware than {spec.tee}: its pods would land on nodes that cannot run them"
        )
    return problems


def hardware_from_cluster_config(cluster: Any) -> tee.Hardware | None:
    """The hardware a stack declares in `coco:cluster` (None when it cannot be told)."""
    cfg = mapping(cluster)
    kind = cfg.get("kind")
    if kind == "peerpods":
        return tee.Hardware(host="peerpods", arch="x86_64", tee=None)
    if kind != "baremetal":
        return None
    arch = cfg.get("arch", "x86_64")
    tee_name = cfg.get("tee")
    if arch not in ("x86_64", "s390x") or tee_name not in ("none", "tdx", "snp", "sev", "se"):
        return None
    return tee.Hardware(
        host="baremetal", arch=arch, tee=tee_name, gpu=cfg.get("gpu") not in (None, False)
    )


# --------------------------------------------------------------------------- 2. agent policy


def allow_all_reason(policy_rego: str) -> str | None:
    """Why an agent policy lets the host do anything, or None when it restricts it.

    Recognises kata's `allow-all.rego` (and any policy whose every request defaults to
    true) and the two one-line escapes: allowing `SetPolicyRequest` (the host installs a
    permissive policy) and `AllowRequestsFailingPolicy := true` (every denial is ignored).
    """
    defaults = dict(_REGO_DEFAULT.findall(policy_rego))
    if defaults.get("AllowRequestsFailingPolicy") == "true":
        return "AllowRequestsFailingPolicy := true turns every denied request into an allowed one"
    if defaults.get("SetPolicyRequest") == "true":
        return "SetPolicyRequest is allowed, so the host can replace this policy with any other"
    requests = {k: v for k, v in defaults.items() if k.endswith("Request")}
    if requests and all(v == "true" for v in requests.values()):
        return "every agent request defaults to true (kata's allow-all policy)"
    return None


def agent_policy_in_initdata(resource_type: str, props: Mapping[str, Any]) -> list[str]:
    """The pod carries init-data whose `policy.rego` is restrictive and whose digest is right.

    Only init-data is measured into the TEE evidence; a policy anywhere else (or none) can
    be swapped by the host without the KBS noticing.
    """
    pod = confidential_pod(resource_type, props)
    if pod is None:
        return []
    value = pod.annotations.get(INITDATA_ANNOTATION)
    if not isinstance(value, str) or not value:
        return [
            f"no init-data annotation {INITDATA_ANNOTATION}: the guest runs its image's default "
            "agent policy and nothing binds the pod to the KBS"
        ]
    try:
        text = decode_annotation(value)
        doc = tomllib.loads(text)
    except (ValueError, tomllib.TOMLDecodeError) as err:
        return [f"init-data annotation does not decode (base64 -> gunzip -> TOML): {err}"]
    problems = []
    if doc.get("version") != INITDATA_VERSION:
        problems.append(
            f"init-data version is {doc.get('version')!r}, Kata accepts {INITDATA_VERSION!r}"
        )
    algorithm = doc.get("algorithm")
    if algorithm not in DIGEST_SIZES:
        problems.append(f"init-data algorithm {algorithm!r} is not one of {sorted(DIGEST_SIZES)}")
    policy = mapping(doc.get("data")).get("policy.rego")
    if not isinstance(policy, str) or not policy.strip():
        problems.append("init-data has no data.'policy.rego': the agent policy is not measured")
    else:
        reason = allow_all_reason(policy)
        if reason:
            problems.append(f"the init-data agent policy is allow-all: {reason}")
    problems += _digest_problems(pod, text, algorithm)
    return problems


def _digest_problems(pod: PodTemplate, text: str, algorithm: Any) -> list[str]:
    digest = pod.annotations.get(labels.INITDATA_DIGEST_ANNOTATION)
    spec = catalogue_class(pod.runtime_class or "")
    if not isinstance(digest, str) or spec is None or algorithm not in DIGEST_SIZES:
        return []
    expected = initdata_claim_hex(text, algorithm, spec.initdata_field_len)
    if digest == expected:
        return []
    return [
        f"annotation {labels.INITDATA_DIGEST_ANNOTATION} is {digest[:16]}..., but the init-data "
        f"it sits beside digests to {expected[:16]}... on {spec.name}: the KBS would bind "
        "the wrong value"
    ]


# --------------------------------------------------------------------------- images


def unpinned_images(resource_type: str, props: Mapping[str, Any]) -> list[str]:
    """Every container image of a confidential pod is `name@sha256:<digest>`."""
    pod = confidential_pod(resource_type, props)
    if pod is None:
        return []
    return [
        f"{where} image {image!r} is not pinned by digest: use name@sha256:<64 hex>"
        for where, image in pod.images()
        if not (isinstance(image, str) and is_pinned(image))
    ]


# --------------------------------------------------------------------------- 3. resource policy


def _config_map_text(props: Mapping[str, Any]) -> str:
    data = mapping(props.get("data"))
    return "\n".join(str(data[k]) for k in sorted(data))


def _of_role(resources: Iterable[StackResource], wanted: str) -> list[StackResource]:
    return [r for r in resources if r.resource_type == CONFIG_MAP and role(r.props) == wanted]


def allow_rule_bodies(rego: str) -> list[str]:
    """The bodies of every `allow ... { ... }` rule (default rules excluded)."""
    bodies = []
    for match in _ALLOW_RULE.finditer(rego):
        depth, i = 1, match.end()
        while i < len(rego) and depth:
            depth += {"{": 1, "}": -1}.get(rego[i], 0)
            i += 1
        bodies.append(rego[match.end() : i - 1])
    return bodies


_ALLOW_LINE = re.compile(r"^[ \t]*(?:default[ \t]+)?allow\b.*$", re.MULTILINE)
_DEFAULT_DENY = re.compile(r"\A[ \t]*default[ \t]+allow[ \t]*:?=[ \t]*false[ \t]*(?:#.*)?\Z")


def denies_everything(rego: str) -> bool:
    """The policy has `default allow = false` and no other line defining `allow`: it
    releases nothing, so there is nothing for init-data to bind (components/zones.py: a
    Trustee stack whose readers are not deployed yet). Any other `allow` line (a rule, an
    `allow = true`, an `else`) counts as releasing something."""
    lines = [m.group(0) for m in _ALLOW_LINE.finditer(rego)]
    return bool(lines) and all(_DEFAULT_DENY.match(line) for line in lines)


def _has_trustee(resources: Sequence[StackResource]) -> bool:
    trustee_roles = {
        labels.ROLE_KBS,
        labels.ROLE_KBS_CONFIG,
        labels.ROLE_RESOURCE_POLICY,
        labels.ROLE_REFERENCE_VALUES,
        labels.ROLE_ATTESTATION_POLICY,
    }
    return any(role(r.props) in trustee_roles for r in resources)


def _workloads(resources: Sequence[StackResource]) -> list[tuple[StackResource, PodTemplate]]:
    out = []
    for r in resources:
        pod = confidential_pod(r.resource_type, r.props)
        if pod is not None:
            out.append((r, pod))
    return out


def kbs_resource_policy_bound(resources: Sequence[StackResource]) -> list[Finding]:
    """The KBS resource policy exists, checks init-data, and binds every workload's digest.

    A workload whose digest is in no resource policy can read no KBS secret; in production
    that is either a missing grant or a policy that went stale after the init-data changed.
    """
    workloads = _workloads(resources)
    if not workloads and not _has_trustee(resources):
        return []
    stack_production = any(is_production(r.resource_type, r.props) for r in resources)
    policies = _of_role(resources, labels.ROLE_RESOURCE_POLICY)
    if not policies:
        return [
            Finding(
                "no KBS resource policy (a ConfigMap labelled "
                f"{labels.ROLE}={labels.ROLE_RESOURCE_POLICY}): the KBS would fall back to its "
                "default policy, which binds no secret to any workload's init-data",
                None,
                stack_production,
            )
        ]
    findings = []
    texts = []
    for p in policies:
        text = _config_map_text(p.props)
        texts.append(text)
        production = is_production(p.resource_type, p.props)
        if denies_everything(text):
            continue  # releases nothing (a Trustee stack before its readers are deployed)
        if "init_data" not in text:
            findings.append(
                Finding(
                    "the KBS resource policy never reads the init_data claim: it releases "
                    "secrets to any workload that attests, whatever agent policy it runs",
                    p.urn,
                    production,
                )
            )
            continue
        for body in allow_rule_bodies(text):
            if "init_data" not in body:
                first = " ".join(body.split())[:120]
                findings.append(
                    Finding(
                        f"an `allow` rule of the KBS resource policy does not check init_data "
                        f"({first}...): that secret goes to any attested workload",
                        p.urn,
                        production,
                    )
                )
    for r, pod in workloads:
        production = is_production(r.resource_type, r.props)
        digest = pod.annotations.get(labels.INITDATA_DIGEST_ANNOTATION)
        if not isinstance(digest, str) or not digest:
            findings.append(
                Finding(
                    f"no {labels.INITDATA_DIGEST_ANNOTATION} annotation: its init-data digest "
                    "cannot be matched against the KBS resource policy",
                    r.urn,
                    production,
                )
            )
            continue
        spellings = {digest}
        with contextlib.suppress(ValueError):  # not hex: only the literal spelling can match
            spellings.add(claim_hex_to_base64(digest))
        if not any(s in policy_text for s in spellings for policy_text in texts):
            findings.append(
                Finding(
                    f"init-data digest {digest[:16]}... is bound by no KBS resource policy: the "
                    "workload can read no KBS secret, or the policy is stale",
                    r.urn,
                    production,
                )
            )
    return findings


# --------------------------------------------------------------------------- 4. reference values


def _has_values(text: str) -> bool:
    try:
        value = json.loads(text)
    except ValueError:
        return bool(text.strip())
    if isinstance(value, dict) and isinstance(value.get("payload"), str):
        try:  # an RVPS message: the values are base64(JSON) inside it
            return _has_values(base64.b64decode(value["payload"], validate=True).decode())
        except (binascii.Error, UnicodeDecodeError):
            return bool(value["payload"])
    return bool(value)


def reference_values_provisioned(resources: Sequence[StackResource]) -> list[Finding]:
    """A stack with Trustee provisions reference values: without them nothing is affirming."""
    if not _has_trustee(resources) and not _workloads(resources):
        return []
    stack_production = any(is_production(r.resource_type, r.props) for r in resources)
    maps = _of_role(resources, labels.ROLE_REFERENCE_VALUES)
    if not maps:
        return [
            Finding(
                "no reference values (a ConfigMap labelled "
                f"{labels.ROLE}={labels.ROLE_REFERENCE_VALUES}): the attestation service cannot "
                "affirm any measurement, so no secret is released at trust level `affirming`",
                None,
                stack_production,
            )
        ]
    findings = []
    for m in maps:
        data = mapping(m.props.get("data"))
        if not any(_has_values(str(v)) for v in data.values()):
            findings.append(
                Finding(
                    "the reference values ConfigMap is empty: provision the measurements the "
                    "stack trusts (e.g. mr_td/rtmr_* for TDX, snp_launch_measurement for SNP)",
                    m.urn,
                    is_production(m.resource_type, m.props),
                )
            )
    return findings
