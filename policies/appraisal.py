"""How Trustee's default CPU attestation policy appraises each TEE: which reference value decides
which trust-vector component, compared with which claim of the verifier.

Why this exists: a stack's `coco:trustee.referenceValues` only matter through the comparisons in
trustee v0.21.0 `attestation-service/src/ear_token/ear_default_policy_cpu.rego`. From that file
(read per platform block) this module records, for every name the policy queries:

- the trust-vector component it decides (`executables`, `hardware`, `configuration`);
- the claim it is compared with (path inside the TEE's claims, as the verifier emits them) and how
  (`in` a list, `==`, `>=`);
- whether it is *enforced*: whether a wrong value can take the component out of the `affirming`
  tier. Some cannot: SNP's configuration block falls back to `else := 3` ("no known
  vulnerabilities", still affirming) when any configuration value differs, and TDX's
  `tdvfkernel` / `tdvfkernelparams` only choose between executables 3 and 4 (both affirming).
  Those are *informational*: they change the claim's number in the token, never the
  `ear.status` the KBS resource policy checks.

The conformance tier (tests/conformance/test_real_evidence.py) proves each row on real evidence
with Trustee's own attestation service: values equal to the vector's claims give `affirming`,
each enforced value changed takes its component out of `affirming`, each informational one does
not. docs/attestation.md is the human-readable form.

Claim shapes (what the verifier emits, trustee v0.21.0): `deps/verifier/src/snp/mod.rs`
`parse_tee_evidence` (integers, booleans, hex); `deps/verifier/src/az_snp_vtpm/mod.rs`
`parse_tee_evidence_az` (every TCB/ABI/flag claim a decimal or `true`/`false` *string* made with
`format!`, the measurement standard base64) and `extend_claim` (`tpm.pcrNN` hex);
`deps/verifier/src/tdx/claims.rs` (`quote.body.*` hex); `deps/verifier/src/sample/mod.rs`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from policies.attestation import ALL_REFERENCE_KINDS, ReferenceValueData
from policies.gpu_attestation import measurement_entries

Component = Literal["executables", "hardware", "configuration"]
COMPONENTS: tuple[Component, ...] = ("executables", "hardware", "configuration")


@dataclass(frozen=True)
class Check:
    """One `query_reference_value(name)` comparison of the default CPU policy."""

    name: str
    component: Component
    claim: tuple[str, ...]
    """Path of the compared claim inside the TEE's claims (`input.<tee>.<path>`)."""
    op: Literal["in", "==", ">=", "each in"]
    """`each in`: every entry of the claim (a map, as `"<key>:<value>"`) is in the list, and the
    list names no key the claim lacks (coco's GPU policy, `allowed_gpu_measurements`)."""
    enforced: bool = True
    """False: a wrong value cannot take the component out of `affirming` (see module doc)."""
    why_informational: str = ""


_SNP_CONFIG = (
    "a mismatch makes the default policy fall back to `configuration := 3` (no known "
    "vulnerabilities: debug and migration agent off), which is still affirming"
)
_TDX_UEFI = (
    "only chooses executables 3 (kernel and parameters recognized) over 4 (GKE-style boot "
    "accepted on rtmr_1/rtmr_2 alone); both are affirming"
)

APPRAISALS: dict[str, tuple[Check, ...]] = {
    "snp": (
        Check("snp_launch_measurement", "executables", ("measurement",), "in"),
        Check("snp_bootloader", "hardware", ("reported_tcb_bootloader",), "in"),
        Check("snp_microcode", "hardware", ("reported_tcb_microcode",), "in"),
        Check("snp_snp_svn", "hardware", ("reported_tcb_snp",), "in"),
        Check("snp_tee_svn", "hardware", ("reported_tcb_tee",), "in"),
        Check(
            "snp_smt_enabled", "configuration", ("platform_smt_enabled",), "==", False, _SNP_CONFIG
        ),
        Check(
            "snp_tsme_enabled",
            "configuration",
            ("platform_tsme_enabled",),
            "==",
            False,
            _SNP_CONFIG,
        ),
        Check(
            "snp_guest_abi_major", "configuration", ("policy_abi_major",), "==", False, _SNP_CONFIG
        ),
        Check(
            "snp_guest_abi_minor", "configuration", ("policy_abi_minor",), "==", False, _SNP_CONFIG
        ),
        Check(
            "snp_single_socket",
            "configuration",
            ("policy_single_socket",),
            "==",
            False,
            _SNP_CONFIG,
        ),
        Check(
            "snp_smt_allowed", "configuration", ("policy_smt_allowed",), "==", False, _SNP_CONFIG
        ),
    ),
    "az-snp-vtpm": (
        Check("measurement", "executables", ("measurement",), "in"),
        Check("snp_pcr11", "executables", ("tpm", "pcr11"), "in"),
        Check("tcb_bootloader", "hardware", ("reported_tcb_bootloader",), "in"),
        Check("tcb_microcode", "hardware", ("reported_tcb_microcode",), "in"),
        Check("tcb_snp", "hardware", ("reported_tcb_snp",), "in"),
        Check("tcb_tee", "hardware", ("reported_tcb_tee",), "in"),
        Check("smt_enabled", "configuration", ("platform_smt_enabled",), "in"),
        Check("tsme_enabled", "configuration", ("platform_tsme_enabled",), "in"),
        Check("abi_major", "configuration", ("policy_abi_major",), "in"),
        Check("abi_minor", "configuration", ("policy_abi_minor",), "in"),
        Check("single_socket", "configuration", ("policy_single_socket",), "in"),
        Check("smt_allowed", "configuration", ("policy_smt_allowed",), "in"),
    ),
    "tdx": (
        Check("rtmr_1", "executables", ("quote", "body", "rtmr_1"), "in"),
        Check("rtmr_2", "executables", ("quote", "body", "rtmr_2"), "in"),
        Check("tdvfkernel", "executables", ("uefi_event_logs",), "==", False, _TDX_UEFI),
        Check("tdvfkernelparams", "executables", ("uefi_event_logs",), "==", False, _TDX_UEFI),
        Check("mr_td", "hardware", ("quote", "body", "mr_td"), "in"),
        Check("xfam", "configuration", ("quote", "body", "xfam"), "in"),
    ),
    "az-tdx-vtpm": (
        Check("tdx_pcr11", "executables", ("tpm", "pcr11"), "in"),
        Check("mr_td", "hardware", ("quote", "body", "mr_td"), "in"),
        Check("xfam", "configuration", ("quote", "body", "xfam"), "in"),
    ),
    "sample": (
        Check("launch_digest", "executables", ("launch_digest",), "in"),
        Check("svn", "hardware", ("svn",), "in"),
        Check("major_version", "hardware", ("platform_version", "major"), "=="),
        Check("minimum_minor_version", "hardware", ("platform_version", "minor"), ">="),
    ),
    "se": (),
    "nvidia-local": (
        Check("allowed_gpu_measurements", "executables", ("measurements",), "each in"),
        Check("allowed_vbios_versions", "hardware", ("config", "vbios_version"), "in"),
        Check("allowed_driver_versions", "configuration", ("config", "driver_version"), "in"),
    ),
}
"""Per TEE, every reference value the default CPU policy queries (trustee v0.21.0
`ear_default_policy_cpu.rego`). IBM SE is appraised on the verifier's word alone.
`nvidia-local` is coco's own `default_gpu` policy for the local NVIDIA verifier
(policies/gpu_attestation.py), on the GPU submodule's `nvidia` claims."""

PLATFORM_CONDITIONS: dict[str, dict[Component, str]] = {
    "snp": {"configuration": "policy_debug_allowed == false, policy_migrate_ma == false"},
    "tdx": {
        "hardware": "quote header tee_type/vendor_id are Intel TDX, tcb_status == UpToDate, "
        "collateral_expiration_status == 0 (needs Intel DCAP collateral)",
        "configuration": "td_attributes.debug == false",
    },
    "az-tdx-vtpm": {"hardware": "quote header is Intel TDX, tcb_status == UpToDate"},
    "sample": {"configuration": "debug == false"},
    "nvidia-local": {
        "hardware": "arch == Hopper (the only architecture the local verifier accepts); the "
        "report's signature, certificate chain to NVIDIA's root, FWID and nonce are verified "
        "before any claim exists"
    },
}
"""Conditions of the default policy on claims alone (no reference value): a TEE that fails them
cannot reach affirming on that component whatever the reference values say."""


def required_for_affirming(tee: str) -> dict[Component, tuple[str, ...]]:
    """Component -> the reference value names it needs to reach `affirming` (enforced ones)."""
    if tee not in APPRAISALS:
        raise ValueError(f"unknown TEE {tee!r}; known: {', '.join(sorted(APPRAISALS))}")
    out: dict[Component, tuple[str, ...]] = {}
    for component in COMPONENTS:
        names = tuple(c.name for c in APPRAISALS[tee] if c.component == component and c.enforced)
        if names:
            out[component] = names
    return out


def informational(tee: str) -> dict[str, str]:
    """Name -> why it cannot change the verdict, for `tee`'s informational reference values."""
    return {c.name: c.why_informational for c in APPRAISALS.get(tee, ()) if not c.enforced}


def missing_for_affirming(
    tee: str, values: Mapping[str, ReferenceValueData]
) -> dict[Component, tuple[str, ...]]:
    """Component -> enforced names absent from `values`: without them it cannot be affirming."""
    out: dict[Component, tuple[str, ...]] = {}
    for component, names in required_for_affirming(tee).items():
        missing = tuple(n for n in names if n not in values)
        if missing:
            out[component] = missing
    return out


def _claim(claims: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    value: Any = claims
    for part in path:
        if not isinstance(value, Mapping) or part not in value:
            raise KeyError(".".join(path))
        value = value[part]
    return value


def uefi_digest(claims: Mapping[str, Any], name: str) -> str:
    """The digest the TDX block compares `tdvfkernel` / `tdvfkernelparams` with."""
    for event in claims.get("uefi_event_logs") or []:
        details = event.get("details") or {}
        if name == "tdvfkernel":
            hit = event.get("type_name") == "EV_EFI_BOOT_SERVICES_APPLICATION" and (
                "File(kernel)" in (details.get("device_paths") or [])
            )
        else:
            hit = event.get("type_name") == "EV_EVENT_TAG" and (
                details.get("string") == "LOADED_IMAGE::LoadOptions"
            )
        if hit:
            for digest in event.get("digests") or []:
                return str(digest["digest"])
    raise KeyError(f"uefi_event_logs: no {name} event")


def reference_values_from_claims(
    tee: str, claims: Mapping[str, Any]
) -> dict[str, ReferenceValueData]:
    """The reference values that make the default policy affirm exactly these claims.

    `claims` is the TEE's object of the annotated evidence (`input.<tee>` of the policy; in an
    EAR token `submods.cpu0["ear.veraison.annotated-evidence"][<tee>]`). Values are typed as
    REFERENCE_KINDS says (a list where the policy uses `in`), so the result is a valid
    `coco:trustee.referenceValues` block. Names whose claim is absent are left out.
    """
    if tee not in APPRAISALS:
        raise ValueError(f"unknown TEE {tee!r}; known: {', '.join(sorted(APPRAISALS))}")
    kinds = ALL_REFERENCE_KINDS[tee]
    values: dict[str, ReferenceValueData] = {}
    for check in APPRAISALS[tee]:
        try:
            if check.claim == ("uefi_event_logs",):
                claim: Any = uefi_digest(claims, check.name)
            else:
                claim = _claim(claims, check.claim)
        except KeyError:
            continue
        if check.op == "each in":
            if not isinstance(claim, Mapping) or not claim:
                raise ValueError(f"{tee} claim {'.'.join(check.claim)} is not a map: {claim!r}")
            values[check.name] = measurement_entries({str(k): str(v) for k, v in claim.items()})
            continue
        if not isinstance(claim, str | int | bool):
            raise ValueError(f"{tee} claim {'.'.join(check.claim)} is not a scalar: {claim!r}")
        values[check.name] = [claim] if kinds[check.name].startswith("list[") else claim
    return values
