"""Attestation Service policy overrides and RVPS reference values.

The AS appraises evidence with its policy (upstream default: `default_cpu`, plus
`default_gpu` for GPU evidence) and looks measurements up in the RVPS with
`query_reference_value(<name>)`. Without reference values the default policy cannot reach
`affirming` for executables/hardware, so a stack provisions them from config; which names the
default policy asks for is listed per TEE below so settings can check none is missing.

Upstream formats, as checked:
- Reference value names: trustee `attestation-service/src/ear_token/ear_default_policy_cpu.rego`
  (the `query_reference_value(...)` calls, per platform block) and
  `ear_default_policy_gpu.rego` (`allowed_vbios_versions`, `allowed_driver_versions`).
- RVPS message: trustee `rvps/src/lib.rs` `Message { version, payload, type }` (version must
  be `"0.1.0"`), `rvps/README.md` example, and the `sample` extractor
  (`rvps/src/extractors/sample/mod.rs`): `payload` is standard base64 of a JSON object
  `{name: value}`; each value is stored as given (list or scalar).
- File / ConfigMap form (`LocalJson` storage, trustee operator `reference-values.json`):
  trustee `rvps/src/reference_value.rs` `ReferenceValue { version, name, expiration, value }`
  with `expiration` formatted `%Y-%m-%dT%H:%M:%SZ`; the file is a JSON array of them
  (`rvps/src/storage/local_json/mod.rs`).
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Mapping, Sequence
from typing import Literal

ATTESTATION_POLICY_ID = "default_cpu"
"""The AS policy id CoCo's KBS uses for CPU evidence (`default_gpu` for GPUs)."""

RVPS_MESSAGE_VERSION = "0.1.0"
REFERENCE_VALUE_VERSION = "0.1.0"

# How the upstream default policies consume each reference value, per TEE: a list of accepted
# values (`claim in query_reference_value(name)`) or one value (`claim == ...`, `claim >= ...`),
# and of which JSON type, read off the claim the verifier emits. A value of another shape never
# matches (an int claim is never `in` a list of strings), so attestation would silently stop
# reaching `affirming`: the settings refuse it instead. Sources, trustee v0.21.0:
# `attestation-service/src/ear_token/ear_default_policy_cpu.rego` and `_gpu.rego` (the
# `query_reference_value` calls), `deps/verifier/src/snp/mod.rs` `parse_tee_evidence` (SNP TCB
# fields and ABI are integers, policy/platform flags booleans, the measurement hex),
# `deps/verifier/src/az_snp_vtpm/mod.rs` `parse_tee_evidence_az` (all strings, below),
# `deps/verifier/src/sample/mod.rs` (`svn` a string, `platform_version.major/minor` integers).
# Names the policies never query (TDX `mr_seam`, commented out upstream; `tcb_svn`) are absent.
ReferenceKind = Literal["str", "int", "bool", "list[str]", "list[int]", "list[bool]"]

TDX_REFERENCE_KINDS: dict[str, ReferenceKind] = {
    "mr_td": "list[str]",
    "rtmr_1": "list[str]",
    "rtmr_2": "list[str]",
    "tdvfkernel": "str",
    "tdvfkernelparams": "str",
    "xfam": "list[str]",
}
SNP_REFERENCE_KINDS: dict[str, ReferenceKind] = {
    "snp_bootloader": "list[int]",
    "snp_guest_abi_major": "int",
    "snp_guest_abi_minor": "int",
    "snp_launch_measurement": "list[str]",
    "snp_microcode": "list[int]",
    "snp_single_socket": "bool",
    "snp_smt_allowed": "bool",
    "snp_smt_enabled": "bool",
    "snp_snp_svn": "list[int]",
    "snp_tee_svn": "list[int]",
    "snp_tsme_enabled": "bool",
}
# The az-snp-vtpm verifier emits every TCB, ABI and flag claim as a *string* (`format!("{}", ..)`
# in trustee `deps/verifier/src/az_snp_vtpm/mod.rs` `parse_tee_evidence_az`: "3", "true"), the
# measurement as standard base64 and `tpm.pcr11` as hex; the default policy compares each with
# `in`. So every Azure SNP reference value is a list of strings (`tcb_snp: ["3"]`,
# `smt_allowed: ["false"]`); an integer or boolean never matches a string claim.
AZ_SNP_VTPM_REFERENCE_KINDS: dict[str, ReferenceKind] = {
    name: "list[str]"
    for name in (
        "abi_major",
        "abi_minor",
        "measurement",
        "single_socket",
        "smt_allowed",
        "smt_enabled",
        "snp_pcr11",
        "tcb_bootloader",
        "tcb_microcode",
        "tcb_snp",
        "tcb_tee",
        "tsme_enabled",
    )
}
AZ_TDX_VTPM_REFERENCE_KINDS: dict[str, ReferenceKind] = {
    "mr_td": "list[str]",
    "tdx_pcr11": "list[str]",
    "xfam": "list[str]",
}
SAMPLE_REFERENCE_KINDS: dict[str, ReferenceKind] = {
    "launch_digest": "list[str]",
    "major_version": "int",
    "minimum_minor_version": "int",
    "svn": "list[str]",
}
NVIDIA_GPU_REFERENCE_KINDS: dict[str, ReferenceKind] = {
    "allowed_driver_versions": "list[str]",
    "allowed_vbios_versions": "list[str]",
}

REFERENCE_KINDS: dict[str, dict[str, ReferenceKind]] = {
    "tdx": TDX_REFERENCE_KINDS,
    "snp": SNP_REFERENCE_KINDS,
    "az-snp-vtpm": AZ_SNP_VTPM_REFERENCE_KINDS,
    "az-tdx-vtpm": AZ_TDX_VTPM_REFERENCE_KINDS,
    "sample": SAMPLE_REFERENCE_KINDS,
    "nvidia": NVIDIA_GPU_REFERENCE_KINDS,
    "se": {},
}
"""Per TEE, the reference values the upstream default policies query, and their shape. IBM SE
has no reference-value checks in the default policy (it is marked TODO upstream)."""

# coco's own GPU policy for the local NVIDIA verifier (policies/gpu_attestation.py), typed by what
# that verifier's claim builder emits (trustee `deps/verifier/src/nvidia/mod.rs`
# `NvDeviceReportAndCertClaim`): `config.driver_version` and `config.vbios_version` strings, and
# `measurements` index -> lowercase hex, compared as "<index>:<hex>" entries.
NVIDIA_LOCAL_REFERENCE_KINDS: dict[str, ReferenceKind] = {
    "allowed_driver_versions": "list[str]",
    "allowed_gpu_measurements": "list[str]",
    "allowed_vbios_versions": "list[str]",
}

COCO_POLICY_KINDS: dict[str, dict[str, ReferenceKind]] = {
    "nvidia-local": NVIDIA_LOCAL_REFERENCE_KINDS
}
"""Policies coco renders itself (not upstream defaults), with the reference values they query."""

ALL_REFERENCE_KINDS: dict[str, dict[str, ReferenceKind]] = {**REFERENCE_KINDS, **COCO_POLICY_KINDS}
"""Every policy a stack may be judged by: upstream's defaults and coco's own."""

REFERENCE_VALUES: dict[str, tuple[str, ...]] = {
    tee: tuple(sorted(kinds)) for tee, kinds in REFERENCE_KINDS.items()
}
TDX_REFERENCE_VALUES = REFERENCE_VALUES["tdx"]
SNP_REFERENCE_VALUES = REFERENCE_VALUES["snp"]
AZ_SNP_VTPM_REFERENCE_VALUES = REFERENCE_VALUES["az-snp-vtpm"]
AZ_TDX_VTPM_REFERENCE_VALUES = REFERENCE_VALUES["az-tdx-vtpm"]
SAMPLE_REFERENCE_VALUES = REFERENCE_VALUES["sample"]
NVIDIA_GPU_REFERENCE_VALUES = REFERENCE_VALUES["nvidia"]

Scalar = str | int | bool
ReferenceValueData = Scalar | Sequence[Scalar]
"""A reference value: usually a list of accepted values (`x in query_reference_value(...)`),
a scalar where the default policy compares with `==` (e.g. `snp_smt_enabled`)."""

_RV_NAME = re.compile(r"\A[A-Za-z0-9_.-]+\Z")
_EXPIRATION = re.compile(r"\A\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z\Z")
_PACKAGE_POLICY = re.compile(r"^\s*package\s+policy\s*$", re.MULTILINE)


def canonical_json(value: object) -> str:
    """Sorted keys, no whitespace: the same values always give the same bytes."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def _normalise(values: Mapping[str, ReferenceValueData]) -> dict[str, object]:
    """Validated, order-independent reference values (lists deduplicated and sorted)."""
    out: dict[str, object] = {}
    for name in sorted(values):
        if not _RV_NAME.match(name):
            raise ValueError(f"{name!r} is not a reference value name")
        value = values[name]
        if isinstance(value, str | bool | int):
            out[name] = value
        else:
            items = list(value)
            if not items:
                raise ValueError(f"reference value {name!r} has no values")
            for item in items:
                if not isinstance(item, str | bool | int):
                    raise ValueError(f"reference value {name!r} has a non-scalar item {item!r}")
            out[name] = sorted(set(items), key=canonical_json)
    return out


def rvps_message(values: Mapping[str, ReferenceValueData]) -> str:
    """The RVPS registration message carrying `values` with the `sample` extractor.

    `{"payload": base64(json), "type": "sample", "version": "0.1.0"}`, canonical JSON, so the
    same values give the same text (a stable Pulumi input).
    """
    payload = base64.b64encode(canonical_json(_normalise(values)).encode("utf-8")).decode()
    return canonical_json({"payload": payload, "type": "sample", "version": RVPS_MESSAGE_VERSION})


DEFAULT_EXPIRATION = "2099-12-31T23:59:59Z"
"""Expiration used when the stack sets none: reference values here live exactly as long as
the stack config lists them (removing one from config removes it from Trustee)."""


def reference_values_json(
    values: Mapping[str, ReferenceValueData], expiration: str = DEFAULT_EXPIRATION
) -> str:
    """The RVPS `LocalJson` file / operator `reference-values.json` ConfigMap value.

    `expiration` (`YYYY-MM-DDTHH:MM:SSZ`) is an explicit input rather than "now + 12 months"
    (the RVPS default) so the output does not change on every preview. It is a label only:
    trustee v0.21.0's RVPS does not enforce it (`rvps/src/lib.rs` `query_reference_value`
    returns the stored value without calling `ReferenceValue::expired`), so retiring a
    measurement means removing it from the stack config.
    """
    if not _EXPIRATION.match(expiration):
        raise ValueError(f"expiration {expiration!r} must look like 2027-01-01T00:00:00Z")
    entries = [
        {
            "expiration": expiration,
            "name": name,
            "value": value,
            "version": REFERENCE_VALUE_VERSION,
        }
        for name, value in _normalise(values).items()
    ]
    return json.dumps(entries, sort_keys=True, indent=2, ensure_ascii=True) + "\n"


def missing_reference_values(tee: str, values: Mapping[str, ReferenceValueData]) -> tuple[str, ...]:
    """Names the default policy for `tee` queries that `values` does not provide."""
    if tee not in REFERENCE_VALUES:
        raise ValueError(f"unknown TEE {tee!r}; known: {', '.join(sorted(REFERENCE_VALUES))}")
    return tuple(n for n in REFERENCE_VALUES[tee] if n not in values)


def attestation_policy(custom: str | None, tee: str) -> str | None:
    """The AS policy text to install for `tee`: the stack's custom Rego, or None for upstream's.

    None means "keep the AS's built-in default for this policy id", which tracks upstream
    fixes; a custom policy must be a complete `package policy` module (checked by a real
    engine in the tests, and by the AS when it is set).
    """
    if tee not in REFERENCE_VALUES:
        raise ValueError(f"unknown TEE {tee!r}; known: {', '.join(sorted(REFERENCE_VALUES))}")
    if custom is None:
        return None
    text = custom.replace("\r\n", "\n")
    if not text.strip():
        raise ValueError("a custom attestation policy cannot be empty: omit it for the default")
    if not _PACKAGE_POLICY.search(text):
        raise ValueError("an attestation policy must be `package policy` (AS evaluates it there)")
    return text if text.endswith("\n") else text + "\n"


def _kind_of(value: ReferenceValueData) -> str:
    def scalar(v: object) -> str:
        # bool before int: in Python a bool is an int, in the Rego/JSON the policy sees it is not.
        return "bool" if isinstance(v, bool) else "int" if isinstance(v, int) else "str"

    if isinstance(value, str | int | bool):
        return scalar(value)
    kinds = sorted({scalar(v) for v in value})
    return f"list[{'|'.join(kinds)}]"


def reference_value_problems(
    values: Mapping[str, ReferenceValueData], *, custom_policy: bool
) -> dict[str, str]:
    """Name -> why the default policies could never match it (empty when all fit).

    A name one of the default policies queries must have the shape that policy compares it
    with (`REFERENCE_KINDS`); a name none of them queries is dead config under the default
    policy (refused), and free-form under a custom policy, which may query any name.
    """
    expected: dict[str, dict[ReferenceKind, list[str]]] = {}
    for tee, kinds in ALL_REFERENCE_KINDS.items():
        for name, kind in kinds.items():
            expected.setdefault(name, {}).setdefault(kind, []).append(tee)
    problems: dict[str, str] = {}
    for name in sorted(values):
        value = values[name]
        if name not in expected:
            if not custom_policy:
                problems[name] = (
                    "no default attestation policy queries this name, so it would never be "
                    "read; remove it, or use a custom trustee.attestationPolicy that does"
                )
            continue
        if not isinstance(value, str | int | bool) and not list(value):
            problems[name] = "an empty list accepts nothing: list the accepted values"
            continue
        got = _kind_of(value)
        wants = expected[name]
        if got not in wants:
            shapes = "; ".join(f"{kind} for {', '.join(tees)}" for kind, tees in wants.items())
            problems[name] = (
                f"the default attestation policy compares it as {shapes} "
                f"(trustee ear_default_policy_cpu.rego), not {got}: e.g. "
                + NAME_EXAMPLES.get(name, _example(next(iter(wants))))
            )
    return problems


NAME_EXAMPLES: dict[str, str] = {
    **{
        n: '["3"] (a decimal string: the az-snp-vtpm verifier formats TCB and ABI with format!)'
        for n in ("tcb_bootloader", "tcb_microcode", "tcb_snp", "tcb_tee", "abi_major", "abi_minor")
    },
    **{
        n: '["false"] (a string: the az-snp-vtpm verifier formats flags with format!)'
        for n in ("smt_enabled", "tsme_enabled", "single_socket", "smt_allowed")
    },
    "measurement": '["<standard base64 of the 48-byte launch measurement>"] (az-snp-vtpm)',
    "snp_pcr11": '["<hex of vTPM PCR11>"]',
    "tdx_pcr11": '["<hex of vTPM PCR11>"]',
    "allowed_gpu_measurements": '["1:<hex>", "2:<hex>", ...] (index:measurement, every block)',
    "allowed_vbios_versions": '["96.00.9f.00.01"]',
    "allowed_driver_versions": '["550.90.07"]',
}
"""Where the right type alone would mislead (a string that must look like a number), the form."""


def _example(kind: ReferenceKind) -> str:
    return {
        "str": '"<hex digest>"',
        "int": "1",
        "bool": "false",
        "list[str]": '["<hex digest>"]',
        "list[int]": "[3, 4]",
        "list[bool]": "[false]",
    }[kind]
