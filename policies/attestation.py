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

ATTESTATION_POLICY_ID = "default_cpu"
"""The AS policy id CoCo's KBS uses for CPU evidence (`default_gpu` for GPUs)."""

RVPS_MESSAGE_VERSION = "0.1.0"
REFERENCE_VALUE_VERSION = "0.1.0"

TDX_REFERENCE_VALUES: tuple[str, ...] = (
    "mr_seam",
    "mr_td",
    "rtmr_1",
    "rtmr_2",
    "tcb_svn",
    "tdvfkernel",
    "tdvfkernelparams",
    "xfam",
)
"""Names the default CPU policy's TDX block queries."""

SNP_REFERENCE_VALUES: tuple[str, ...] = (
    "snp_bootloader",
    "snp_guest_abi_major",
    "snp_guest_abi_minor",
    "snp_launch_measurement",
    "snp_microcode",
    "snp_single_socket",
    "snp_smt_allowed",
    "snp_smt_enabled",
    "snp_snp_svn",
    "snp_tee_svn",
    "snp_tsme_enabled",
)
"""Names the default CPU policy's SNP block queries (some compared with `==`: scalars)."""

AZ_SNP_VTPM_REFERENCE_VALUES: tuple[str, ...] = (
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

AZ_TDX_VTPM_REFERENCE_VALUES: tuple[str, ...] = ("mr_seam", "mr_td", "tcb_svn", "tdx_pcr11", "xfam")

SAMPLE_REFERENCE_VALUES: tuple[str, ...] = (
    "launch_digest",
    "major_version",
    "minimum_minor_version",
    "svn",
)

NVIDIA_GPU_REFERENCE_VALUES: tuple[str, ...] = ("allowed_driver_versions", "allowed_vbios_versions")
"""Names the default GPU policy queries (NRAS-verified Hopper GPUs)."""

REFERENCE_VALUES: dict[str, tuple[str, ...]] = {
    "tdx": TDX_REFERENCE_VALUES,
    "snp": SNP_REFERENCE_VALUES,
    "az-snp-vtpm": AZ_SNP_VTPM_REFERENCE_VALUES,
    "az-tdx-vtpm": AZ_TDX_VTPM_REFERENCE_VALUES,
    "sample": SAMPLE_REFERENCE_VALUES,
    "nvidia": NVIDIA_GPU_REFERENCE_VALUES,
    "se": (),
}
"""Per TEE, the reference values the upstream default policies ask for. IBM SE has no
reference-value checks in the default policy (it is marked TODO upstream)."""

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
    (the RVPS default) so the output does not change on every preview; set a real date to
    force periodic review of the measurements.
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
