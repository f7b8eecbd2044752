"""KBS resource policy: released only for the right path, platform, trust and init-data."""

from __future__ import annotations

import base64
import shutil
from pathlib import Path
from typing import Any

import pytest
from opa import opa_check, opa_check_text, opa_eval, opa_test
from pydantic import ValidationError

from policies.initdata import KbsEndpoint, initdata_claim_hex, render_initdata
from policies.resource import ResourceGrant, render_resource_policy

REGO_DIR = Path(__file__).resolve().parent.parent / "policies" / "rego"

# The fixture claims of policies/rego/resource_policy_test.rego (sha384 of two fixed strings).
TDX_CLAIM = (
    "2192fb8f60d5733a743189c45eecb664647cc04e192d34f"
    "9a7466d611adcc5137699d24d04606334de0e71856516dcf4"
)
OTHER_CLAIM = (
    "eef26c4aa9aade913b1cebafc243ac4999051242f1592228"
    "3b7c959bc1616addbd8e36fdb0371d96e9ffe05e3447d425"
)
SNP_CLAIM = TDX_CLAIM[:64]

TRUST_VECTOR = {
    "configuration": 2,
    "executables": 3,
    "file-system": 0,
    "hardware": 2,
    "instance-identity": 0,
    "runtime-opaque": 0,
    "sourced-data": 0,
    "storage-opaque": 0,
}


def tdx_cpu(status: str, claim: str) -> dict[str, Any]:
    """cpu0 of an EAR token for TDX evidence, as trustee's AS issues it."""
    return {
        "ear.status": status,
        "ear.appraisal-policy-id": "default_cpu",
        "ear.trustworthiness-vector": TRUST_VECTOR,
        "ear.veraison.annotated-evidence": {
            "tdx": {
                "quote": {
                    "header": {"tee_type": "81000000", "version": "0400"},
                    "body": {
                        "mr_config_id": claim,
                        "mr_td": "705ee938" * 12,
                        "xfam": "e742060000000000",
                    },
                },
                "td_attributes": {"debug": False, "septve_disable": True},
                "tcb_status": "UpToDate",
            },
            "init_data": claim,
            "init_data_claims": {},
            "report_data": "7c71fe2c" * 16,
            "runtime_data_claims": {"tee-pubkey": {"kty": "EC", "crv": "P-256"}},
        },
        "ear.trustee.identifiers": {"validated": {}},
    }


def snp_cpu(status: str, init_data: str, key: str = "snp") -> dict[str, Any]:
    cpu = tdx_cpu(status, init_data)
    evidence = cpu["ear.veraison.annotated-evidence"]
    del evidence["tdx"]
    evidence[key] = {
        "measurement": "ab" * 48,
        "reported_tcb_snp": 22,
        "policy_debug_allowed": False,
    }
    return cpu


def token(**submods: dict[str, Any]) -> dict[str, Any]:
    return {
        "eat_profile": "tag:github.com,2023:veraison/ear",
        "iat": 1767225600,
        "exp": 1767225900,
        "ear.verifier-id": {
            "developer": "https://confidentialcontainers.org",
            "build": "as 0.21.0",
        },
        "submods": submods,
    }


def request(path: Any, plugin: str | None = "resource") -> dict[str, Any]:
    """The KBS policy `data`: plugin name and resource path (string or list form)."""
    data: dict[str, Any] = {"resource-path": path, "query": {}}
    if plugin is not None:
        data["plugin"] = plugin
    return data


GRANTS = [
    ResourceGrant(path="default/key/1", initdata_digests=[TDX_CLAIM], platforms=["tdx"]),
    ResourceGrant(
        path="default/gpu-key/1", initdata_digests=[TDX_CLAIM], platforms=["tdx"], require_gpu=True
    ),
    ResourceGrant(
        path="default/snp-key/1",
        initdata_digests=[SNP_CLAIM],
        platforms=["snp", "az-snp-vtpm"],
        min_trust="warning",
    ),
]


@pytest.fixture(scope="module")
def policy() -> str:
    text = render_resource_policy(GRANTS)
    opa_check_text(text)
    return text


def allowed(policy_text: str, input_doc: Any, data: Any) -> bool:
    result = opa_eval(policy_text, input_doc, data, "data.policy.allow")
    assert isinstance(result, bool)
    return result


AFFIRMING = token(cpu0=tdx_cpu("affirming", TDX_CLAIM))


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(request(["default", "key", "1"]), id="list"),
        pytest.param(request("default/key/1"), id="string"),
        pytest.param(request("/default/key/1"), id="leading-slash"),
        pytest.param(request("default/key/1", plugin=None), id="no-plugin-field"),
    ],
)
def test_released_for_right_workload(policy: str, data: dict[str, Any]) -> None:
    assert allowed(policy, AFFIRMING, data)


@pytest.mark.parametrize(
    ("input_doc", "data"),
    [
        pytest.param(
            token(cpu0=tdx_cpu("affirming", OTHER_CLAIM)),
            request("default/key/1"),
            id="wrong-digest",
        ),
        pytest.param(
            token(cpu0=tdx_cpu("contraindicated", TDX_CLAIM)),
            request("default/key/1"),
            id="contraindicated",
        ),
        pytest.param(
            token(cpu0=tdx_cpu("warning", TDX_CLAIM)),
            request("default/key/1"),
            id="warning-needs-affirming",
        ),
        pytest.param(AFFIRMING, request("default/key/2"), id="other-path"),
        pytest.param(AFFIRMING, request(["default", "key", "2"]), id="other-path-list"),
        pytest.param(AFFIRMING, request(["default", "key"]), id="short-path"),
        pytest.param(AFFIRMING, request("default/key/1", plugin="pki_vault"), id="other-plugin"),
        pytest.param(
            token(cpu0=snp_cpu("affirming", TDX_CLAIM)),
            request("default/key/1"),
            id="wrong-platform",
        ),
        pytest.param(AFFIRMING, request("default/gpu-key/1"), id="gpu-required-gpu0-missing"),
        pytest.param(
            token(cpu0=tdx_cpu("affirming", TDX_CLAIM), gpu0={"ear.status": "warning"}),
            request("default/gpu-key/1"),
            id="gpu-warning",
        ),
        pytest.param(
            token(
                cpu0=tdx_cpu("affirming", TDX_CLAIM),
                gpu0={"ear.status": "affirming"},
                gpu1={"ear.status": "contraindicated"},
            ),
            request("default/gpu-key/1"),
            id="second-gpu-contraindicated",
        ),
        pytest.param({}, request("default/key/1"), id="empty-token"),
        pytest.param(
            token(cpu0={"ear.status": "affirming"}), request("default/key/1"), id="no-evidence"
        ),
    ],
)
def test_refused(policy: str, input_doc: Any, data: dict[str, Any]) -> None:
    assert not allowed(policy, input_doc, data)


def test_gpu_grant_released_with_affirming_gpus(policy: str) -> None:
    doc = token(
        cpu0=tdx_cpu("affirming", TDX_CLAIM),
        gpu0={"ear.status": "affirming"},
        gpu1={"ear.status": "affirming"},
    )
    assert allowed(policy, doc, request(["default", "gpu-key", "1"]))


def test_warning_accepted_when_grant_allows(policy: str) -> None:
    doc = token(cpu0=snp_cpu("warning", SNP_CLAIM))
    assert allowed(policy, doc, request("default/snp-key/1"))
    doc = token(cpu0=snp_cpu("contraindicated", SNP_CLAIM))
    assert not allowed(policy, doc, request("default/snp-key/1"))


@pytest.mark.parametrize("key", ["snp", "az-snp-vtpm", "az_snp_vtpm", "azsnpvtpm"])
def test_platform_key_spellings(policy: str, key: str) -> None:
    doc = token(cpu0=snp_cpu("affirming", SNP_CLAIM, key))
    assert allowed(policy, doc, request("default/snp-key/1"))


def test_older_snp_base64_claim(policy: str) -> None:
    b64 = base64.b64encode(bytes.fromhex(SNP_CLAIM)).decode()
    assert allowed(policy, token(cpu0=snp_cpu("affirming", b64)), request("default/snp-key/1"))


def test_trust_context_wrapped_claims(policy: str) -> None:
    wrapped = {
        "trust_context": {
            "attestation_summary": {
                "tee_type": ["tdx"],
                "policy_ids": ["default"],
                "verification_result": True,
                "claims": AFFIRMING,
            },
            "tee_pubkey": {},
        }
    }
    assert allowed(policy, wrapped, request(["default", "key", "1"]))
    bad = {"trust_context": {"attestation_summary": {"verification_result": True}}}
    assert not allowed(policy, bad, request(["default", "key", "1"]))


def test_real_initdata_claim_end_to_end() -> None:
    """The digest the workload component computes is the one the policy releases to."""
    doc = render_initdata(KbsEndpoint(url="https://kbs.example.com"), "package agent_policy\n")
    claim = initdata_claim_hex(doc, "sha384", 48)
    text = render_resource_policy(
        [ResourceGrant(path="prod/db/password", initdata_digests=[claim], platforms=["tdx"])]
    )
    assert allowed(text, token(cpu0=tdx_cpu("affirming", claim)), request("prod/db/password"))
    assert not allowed(text, AFFIRMING, request("prod/db/password"))


def test_unbound_grant_needs_explicit_opt_in() -> None:
    grant = ResourceGrant(path="default/public/ca", initdata_digests=[], platforms=["tdx"])
    with pytest.raises(ValueError, match="no init-data digests"):
        render_resource_policy([grant])
    text = render_resource_policy([grant], allow_unbound=True)
    opa_check_text(text)
    assert "UNBOUND" in text
    assert allowed(
        text, token(cpu0=tdx_cpu("affirming", OTHER_CLAIM)), request("default/public/ca")
    )
    assert not allowed(
        text, token(cpu0=tdx_cpu("warning", OTHER_CLAIM)), request("default/public/ca")
    )


def test_no_grants_denies_everything() -> None:
    text = render_resource_policy([])
    opa_check_text(text)
    assert not allowed(text, AFFIRMING, request("default/key/1"))


def test_rendering_is_deterministic() -> None:
    shuffled = [GRANTS[2], GRANTS[0], GRANTS[1]]
    assert render_resource_policy(shuffled) == render_resource_policy(GRANTS)
    grant = ResourceGrant(
        path="a/b/c", initdata_digests=[OTHER_CLAIM, TDX_CLAIM, TDX_CLAIM], platforms=["tdx", "snp"]
    )
    again = ResourceGrant(
        path="a/b/c", initdata_digests=[TDX_CLAIM, OTHER_CLAIM], platforms=["snp", "tdx", "tdx"]
    )
    assert render_resource_policy([grant]) == render_resource_policy([again])


def test_grant_validation() -> None:
    ok = {"initdata_digests": [TDX_CLAIM], "platforms": ["tdx"]}
    for bad in ("default/key", "default/key/1/2", "default/../1", "default/key 1/x", "/a/b/c"):
        with pytest.raises(ValidationError, match="repo/type/tag"):
            ResourceGrant(path=bad, **ok)
    for claim in (TDX_CLAIM.upper(), TDX_CLAIM[:-1], "ab" * 16, "zz" * 48):
        with pytest.raises(ValidationError, match="init-data claim"):
            ResourceGrant(path="a/b/c", initdata_digests=[claim], platforms=["tdx"])
    with pytest.raises(ValidationError):
        ResourceGrant(path="a/b/c", initdata_digests=[TDX_CLAIM], platforms=[])
    with pytest.raises(ValidationError):
        ResourceGrant(path="a/b/c", initdata_digests=[TDX_CLAIM], platforms=["sev"])
    alias = ResourceGrant(path="a/b/c", initdata_digests=[TDX_CLAIM], platforms=["aztdxvtpm"])
    assert alias.platforms == ["az-tdx-vtpm"]
    camel = ResourceGrant.model_validate(
        {"path": "a/b/c", "initdataDigests": [TDX_CLAIM], "platforms": ["tdx"], "requireGpu": True}
    )
    assert camel.require_gpu


def test_rego_suite(tmp_path: Path) -> None:
    """policies/rego/resource_policy_test.rego against the policy for its fixture grants."""
    assert TDX_CLAIM in (REGO_DIR / "resource_policy_test.rego").read_text(encoding="utf-8")
    (tmp_path / "policy.rego").write_text(render_resource_policy(GRANTS[:2]), encoding="utf-8")
    shutil.copy(REGO_DIR / "resource_policy_test.rego", tmp_path)
    opa_check([tmp_path])
    results = opa_test(tmp_path)
    assert len(results) >= 12


def test_lines_fit_regorus_limit() -> None:
    """The KBS evaluates with regorus, whose 0.9.1 release caps policy lines at 1024 chars."""
    claims = [f"{i:096x}" for i in range(40)]
    text = render_resource_policy(
        [ResourceGrant(path="a/b/c", initdata_digests=claims, platforms=["tdx", "snp"]), *GRANTS]
    )
    assert max(map(len, text.splitlines())) < 1024
