"""Attestation: RVPS messages, the reference-values file, custom AS policies on a real engine."""

from __future__ import annotations

import base64
import json
import subprocess

import pytest
from opa import OpaError, opa_check_text, opa_eval

from policies.attestation import (
    REFERENCE_VALUES,
    SNP_REFERENCE_VALUES,
    TDX_REFERENCE_VALUES,
    ReferenceValueData,
    attestation_policy,
    missing_reference_values,
    reference_value_problems,
    reference_values_json,
    rvps_message,
)

MR_TD = (
    "705ee9381b8633a9fbe532b52345e843"
    "3343d2868959f57889d84ca377c395b6"
    "89cac1599ccea1b7d420483a9ce5f031"
)
VALUES: dict[str, ReferenceValueData] = {
    "mr_td": [MR_TD],
    "rtmr_1": ["11" * 48, "12" * 48],
    "xfam": ["e742060000000000"],
    "snp_smt_enabled": True,
    "snp_guest_abi_major": 0,
}

CUSTOM_POLICY = """\
package policy

import rego.v1

default executables := 33

default hardware := 97

default configuration := 36

executables := 3 if {
	input.tdx.quote.body.rtmr_1 in data.reference.rtmr_1
}

hardware := 2 if {
	input.tdx.quote.body.mr_td in data.reference.mr_td
}

configuration := 2 if {
	input.tdx.td_attributes.debug == false
}

trust_claims := {
	"executables": executables,
	"hardware": hardware,
	"configuration": configuration,
}
"""


def test_rvps_message_shape() -> None:
    message = json.loads(rvps_message(VALUES))
    assert set(message) == {"version", "type", "payload"}
    assert message["version"] == "0.1.0"
    assert message["type"] == "sample"
    decoded = subprocess.run(
        ["base64", "-d"], input=message["payload"].encode(), capture_output=True, check=True
    ).stdout
    assert json.loads(decoded) == {
        "mr_td": [MR_TD],
        "rtmr_1": ["11" * 48, "12" * 48],
        "snp_guest_abi_major": 0,
        "snp_smt_enabled": True,
        "xfam": ["e742060000000000"],
    }


def test_rvps_message_is_canonical() -> None:
    text = rvps_message(VALUES)
    reordered: dict[str, ReferenceValueData] = {k: VALUES[k] for k in reversed(list(VALUES))}
    reordered["rtmr_1"] = ["12" * 48, "11" * 48, "11" * 48]
    assert rvps_message(reordered) == text
    assert " " not in text
    payload = base64.b64decode(json.loads(text)["payload"]).decode()
    assert payload == json.dumps(json.loads(payload), sort_keys=True, separators=(",", ":"))


def test_rvps_message_rejects_bad_values() -> None:
    with pytest.raises(ValueError, match="no values"):
        rvps_message({"mr_td": []})
    with pytest.raises(ValueError, match="name"):
        rvps_message({"bad name": ["x"]})
    with pytest.raises(ValueError, match="non-scalar"):
        rvps_message({"mr_td": [["nested"]]})  # type: ignore[list-item]


def test_reference_values_file() -> None:
    text = reference_values_json(VALUES, expiration="2027-12-31T00:00:00Z")
    entries = json.loads(text)
    assert [e["name"] for e in entries] == sorted(VALUES)
    mr_td = next(e for e in entries if e["name"] == "mr_td")
    assert mr_td == {
        "version": "0.1.0",
        "name": "mr_td",
        "expiration": "2027-12-31T00:00:00Z",
        "value": [MR_TD],
    }
    assert reference_values_json(VALUES, expiration="2027-12-31T00:00:00Z") == text
    default = json.loads(reference_values_json(VALUES))
    assert {e["expiration"] for e in default} == {"2099-12-31T23:59:59Z"}
    with pytest.raises(ValueError, match="expiration"):
        reference_values_json(VALUES, expiration="2027-12-31")


def test_reference_value_names_from_default_policy() -> None:
    assert {"mr_td", "rtmr_1", "rtmr_2", "xfam"} <= set(TDX_REFERENCE_VALUES)
    # Not queried by any default policy (mr_seam is commented out upstream): no dead names.
    assert not {"mr_seam", "tcb_svn"} & {n for names in REFERENCE_VALUES.values() for n in names}
    assert {
        "snp_launch_measurement",
        "snp_bootloader",
        "snp_microcode",
        "snp_snp_svn",
        "snp_tee_svn",
    } <= set(SNP_REFERENCE_VALUES)
    assert missing_reference_values("tdx", VALUES) == tuple(
        n for n in TDX_REFERENCE_VALUES if n not in VALUES
    )
    assert missing_reference_values("se", {}) == ()
    with pytest.raises(ValueError, match="unknown TEE"):
        missing_reference_values("sgx", {})
    assert set(REFERENCE_VALUES) >= {"tdx", "snp", "az-snp-vtpm", "az-tdx-vtpm", "nvidia"}


def test_default_attestation_policy_is_upstream() -> None:
    assert attestation_policy(None, "tdx") is None
    with pytest.raises(ValueError, match="unknown TEE"):
        attestation_policy(None, "quantum")


def test_custom_attestation_policy_passes_real_engine() -> None:
    text = attestation_policy(CUSTOM_POLICY, "tdx")
    assert text is not None
    opa_check_text(text)
    evidence = {
        "tdx": {
            "quote": {"body": {"mr_td": MR_TD, "rtmr_1": "11" * 48}},
            "td_attributes": {"debug": False},
        }
    }
    reference = {"reference": {"mr_td": [MR_TD], "rtmr_1": ["11" * 48]}}
    claims = opa_eval(text, evidence, reference, "data.policy.trust_claims")
    assert claims == {"executables": 3, "hardware": 2, "configuration": 2}
    evidence["tdx"]["td_attributes"] = {"debug": True}
    claims = opa_eval(text, evidence, reference, "data.policy.trust_claims")
    assert claims["configuration"] == 36


def test_custom_attestation_policy_validation() -> None:
    with pytest.raises(ValueError, match="empty"):
        attestation_policy("  \n", "tdx")
    with pytest.raises(ValueError, match="package policy"):
        attestation_policy("package agent_policy\n", "snp")
    broken = attestation_policy("package policy\n\nallow if {\n", "snp")
    assert broken is not None
    with pytest.raises(OpaError):
        opa_check_text(broken)


def test_reference_values_typed_as_the_default_policy_compares_them() -> None:
    good: dict[str, ReferenceValueData] = {
        "snp_bootloader": [3],
        "snp_smt_enabled": False,
        "snp_guest_abi_major": 0,
        "snp_launch_measurement": ["ab" * 48],
        "major_version": 1,
        "svn": ["1"],
        "tdvfkernel": "cd" * 48,
    }
    assert reference_value_problems(good, custom_policy=False) == {}
    bad: dict[str, ReferenceValueData] = {
        "snp_bootloader": ["3"],  # reported_tcb_bootloader is an integer claim
        "snp_smt_enabled": [True],  # compared with ==, not `in`
        "major_version": "1",
        "svn": [1],  # the sample attester reports svn "1", a string
        "tcb_svn": ["00"],  # queried by no default policy
        "rtmr_1": [],
    }
    problems = reference_value_problems(bad, custom_policy=False)
    assert set(problems) == set(bad)
    assert "list[int]" in problems["snp_bootloader"]
    assert "not list[str]" in problems["snp_bootloader"]
    assert "bool for snp" in problems["snp_smt_enabled"]
    assert "no default attestation policy" in problems["tcb_svn"]
    # A custom policy may query any name; known names keep their shape.
    custom = reference_value_problems(bad, custom_policy=True)
    assert "tcb_svn" not in custom and "snp_bootloader" in custom
