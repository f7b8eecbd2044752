"""Where reference values come from, and why a verdict fell.

`python -m automation reference-values --tee T FILE` and `python -m automation
explain-attestation FILE [--stack-file S]`: FILE is an EAR attestation token (the JWT the KBS
hands out, or its decoded JSON body), the annotated evidence of one submodule, or the TEE's claims
as the attestation service logs them (`claims = {...}` at debug level). Both read the claims the
way trustee v0.21.0's default CPU policy reads them (policies/appraisal.py); raw hardware evidence
must go through a verifier first (a token from a test KBS, or the `verifier` judge).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from typing import Any

from policies.appraisal import (
    APPRAISALS,
    COMPONENTS,
    PLATFORM_CONDITIONS,
    Check,
    reference_values_from_claims,
    uefi_digest,
)
from policies.attestation import ReferenceValueData
from policies.gpu_attestation import measurement_entries

TEE_KEYS: dict[str, tuple[str, ...]] = {
    "snp": ("snp",),
    "tdx": ("tdx",),
    "az-snp-vtpm": ("az-snp-vtpm", "az_snp_vtpm", "azsnpvtpm"),
    "az-tdx-vtpm": ("az-tdx-vtpm", "az_tdx_vtpm", "aztdxvtpm"),
    "sample": ("sample",),
    "se": ("se",),
    "nvidia-local": ("nvidia",),
}
"""Keys a TEE's claims appear under in the annotated evidence (`kbs_types::Tee` spellings).
`nvidia-local`: a GPU's claims from the local NVIDIA verifier, judged by coco's GPU policy
(policies/gpu_attestation.py), found in the token's `gpu0` submodule."""

MEANINGS: dict[str, dict[int, str]] = {
    "executables": {
        3: "approved executables loaded",
        4: "approved boot, kernel and parameters not checked",
        33: "executables not recognized",
    },
    "hardware": {2: "genuine, supported hardware/firmware", 97: "hardware/firmware not recognized"},
    "configuration": {
        2: "known, approved configuration",
        3: "no known vulnerabilities (debug and migration agent off)",
        36: "configuration elements unavailable or not approved",
    },
}
"""AR4SI claim values the default CPU policy sets (comments of ear_default_policy_cpu.rego)."""


class ClaimsError(ValueError):
    """FILE holds nothing these commands can read."""


def _json_or_jwt(text: str) -> Any:
    text = text.strip()
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        pass
    parts = text.split(".")
    if len(parts) == 3:
        try:
            body = base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4))
            return json.loads(body)
        except (binascii.Error, ValueError, json.JSONDecodeError) as err:
            raise ClaimsError(f"not a JWT with a JSON body: {err}") from None
    raise ClaimsError("neither JSON nor a JWT (header.payload.signature)")


def submodules(text: str) -> dict[str, dict[str, Any]]:
    """Submodule name -> EAR appraisal, from a token or its body; {} for bare claims."""
    doc = _json_or_jwt(text)
    if isinstance(doc, Mapping) and isinstance(doc.get("submods"), Mapping):
        return {str(k): dict(v) for k, v in doc["submods"].items()}
    return {}


def tee_claims(text: str, tee: str | None = None) -> tuple[str, dict[str, Any]]:
    """(TEE, its claims) from any of the accepted FILE forms."""
    doc = _json_or_jwt(text)
    if not isinstance(doc, Mapping):
        raise ClaimsError("expected a JSON object")
    subs = submodules(text)
    if subs:
        cpu = subs.get("gpu0" if tee == "nvidia-local" else "cpu0") or next(iter(subs.values()))
        doc = cpu.get("ear.veraison.annotated-evidence") or {}
    for name, keys in TEE_KEYS.items():
        if tee not in (None, name):
            continue
        for key in keys:
            if isinstance(doc.get(key), Mapping):
                return name, dict(doc[key])
    if tee is None:
        raise ClaimsError(f"no TEE claims found; known TEEs: {', '.join(TEE_KEYS)} (or use --tee)")
    if tee not in APPRAISALS:
        raise ClaimsError(f"unknown TEE {tee!r}; known: {', '.join(sorted(APPRAISALS))}")
    return tee, dict(doc)  # bare claims, as the AS logs them


def reference_values_yaml(tee: str, claims: Mapping[str, Any]) -> str:
    """The stack-file block that makes the default policy affirm exactly these claims."""
    values = reference_values_from_claims(tee, claims)
    if not values:
        raise ClaimsError(f"these claims carry none of the values the {tee} policy compares")
    lines = [
        f"# {tee}: reference values read from these claims (python -m automation "
        "reference-values); review before use:",
        "# they accept exactly this guest and firmware.",
        "coco:trustee:",
        "  referenceValues:",
    ]
    lines += [f"    {name}: {json.dumps(values[name])}" for name in sorted(values)]
    return "\n".join(lines) + "\n"


def _lookup(claims: Mapping[str, Any], check: Check) -> tuple[bool, Any]:
    if check.claim == ("uefi_event_logs",):
        try:
            return True, uefi_digest(claims, check.name)
        except KeyError:
            return False, None
    value: Any = claims
    for part in check.claim:
        if not isinstance(value, Mapping) or part not in value:
            return False, None
        value = value[part]
    return True, value


def _compare(check: Check, claim: Any, reference: ReferenceValueData | None) -> bool:
    if reference is None:
        return False
    if check.op == "in":
        return (
            isinstance(reference, list)
            and claim in reference
            and (type(claim) is type(reference[reference.index(claim)]))
        )
    if check.op == "each in":  # coco's GPU policy: every block listed, every listed index seen
        if not isinstance(claim, Mapping) or not isinstance(reference, list) or not claim:
            return False
        entries = set(measurement_entries({str(k): str(v) for k, v in claim.items()}))
        listed = {str(r) for r in reference}
        return entries <= listed and {e.split(":")[0] for e in entries} == {
            r.split(":")[0] for r in listed
        }
    if check.op == ">=":
        return isinstance(claim, int) and isinstance(reference, int) and claim >= reference
    return claim == reference and type(claim) is type(reference)


def explain(
    text: str, reference_values: Mapping[str, ReferenceValueData] | None = None
) -> list[str]:
    """Per trust-vector component: its value, what it means, and the comparison behind it."""
    tee, claims = tee_claims(text)
    subs = submodules(text)
    cpu = subs.get("cpu0", {})
    vector = cpu.get("ear.trustworthiness-vector") or {}
    lines = [f"TEE {tee}"]
    if cpu:
        lines[0] += (
            f": ear.status {cpu.get('ear.status')} (policy {cpu.get('ear.appraisal-policy-id')})"
        )
    for component in COMPONENTS:
        value = vector.get(component)
        meaning = MEANINGS[component].get(value, "") if isinstance(value, int) else ""
        head = f"{component}: {value if value is not None else '(not in this file)'}"
        lines.append(head + (f" ({meaning})" if meaning else ""))
        for check in APPRAISALS[tee]:
            if check.component != component:
                continue
            found, claim = _lookup(claims, check)
            shown = json.dumps(claim) if found else "(claim absent)"
            role = "" if check.enforced else " [informational]"
            if reference_values is None:
                lines.append(f"  {check.name}{role}: claim {'.'.join(check.claim)} = {shown}")
                continue
            reference = reference_values.get(check.name)
            if reference is None:
                verdict = "MISSING reference value"
            elif found and _compare(check, claim, reference):
                verdict = "matches"
            else:
                verdict = f"DIFFERS from {json.dumps(reference)}"
            lines.append(
                f"  {check.name}{role}: claim {'.'.join(check.claim)} = {shown} {check.op} "
                f"reference: {verdict}"
            )
        condition = PLATFORM_CONDITIONS.get(tee, {}).get(component)
        if condition:
            lines.append(f"  also required by the policy: {condition}")
    return lines
