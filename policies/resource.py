"""The KBS resource policy: which secret goes to which attested workload.

The KBS evaluates `data.policy.allow` with the attestation token's claims as `input` and the
request as `data` (trustee `kbs/src/policy_engine/opa/mod.rs`: `add_data(resource path)`,
`set_input_json(claims)`, `eval_bool_query("data.policy.allow")`, engine regorus). A secret is
released here only when *all* of these hold for one grant:

- the request is for the `resource` plugin and the grant's `repo/type/tag` path;
- `submods.cpu0["ear.status"]` meets the grant's trust level (`affirming`, or `warning` too);
- the evidence comes from one of the grant's platforms (the TEE key in the annotated evidence);
- `submods.cpu0["ear.veraison.annotated-evidence"].init_data` is one of the grant's init-data
  claims, i.e. the workload runs exactly the init-data (KBS URL, agent policy) we generated;
- for GPU grants, `submods.gpu0` exists and every `gpuN` submodule meets the level too.

Everything else is denied (`default allow = false`).

Upstream shapes this accepts, because they changed across trustee releases (all checked):
- resource path: a string `"repo/type/tag"` (trustee `kbs/sample_policies` EAR default),
  a string `"/repo/type/tag"` (`policy_engine/opa/mod.rs` tests) or a list
  `["repo", "type", "tag"]` (`kbs/config/kubernetes/base/policy.rego`, current default);
- `data.plugin` may be absent (older KBS) or must equal `"resource"`;
- claims: the EAR body as `input` (`opa/mod.rs` `dummy_input`, `kbs/sample_policies/
  affirming.rego`), or under `input.trust_context.attestation_summary.claims` (newest
  `kbs/sample_policies/default.rego`);
- TEE keys in the annotated evidence: `tdx`, `snp`, `se`, `cca`, `sample`, and the Azure vTPM
  ones spelled `az-snp-vtpm` (current `kbs_types::Tee` serialisation, trustee
  `deps/verifier` claims doc), `az_snp_vtpm` (`ear_default_policy_cpu.rego`) or `azsnpvtpm`
  (older releases); same for TDX;
- `init_data`: lowercase hex of the TEE field (`deps/verifier/src/tdx/claims.rs`, current SNP
  verifier) or standard base64 (older SNP verifier). Both spellings of the same bytes are
  accepted: either names exactly the digest we computed, and the two spellings of different
  field sizes cannot be confused in practice (a base64 string would have to be all hex).
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator
from pydantic.alias_generators import to_camel

from components.vocabulary import is_resource_path
from policies.initdata import claim_hex_to_base64


def public_resource_key(path: str) -> str:
    """ConfigMap key of a generated public KBS resource (`\\x2F` is not a valid key
    character); components/trustee.py mounts each at its path, the policy pack reads it."""
    slug = re.sub(r"[^a-z0-9.]+", "-", path.lower()).strip("-")
    return f"{slug[:200]}-{hashlib.sha256(path.encode()).hexdigest()[:8]}"


TrustLevel = Literal["affirming", "warning"]
"""EAR `ear.status` tiers a grant may require; `contraindicated` never releases anything."""

PlatformName = Literal["tdx", "snp", "se", "cca", "az-snp-vtpm", "az-tdx-vtpm", "sample"]

PLATFORM_EVIDENCE_KEYS: dict[str, tuple[str, ...]] = {
    "tdx": ("tdx",),
    "snp": ("snp",),
    "se": ("se",),
    "cca": ("cca",),
    "az-snp-vtpm": ("az-snp-vtpm", "az_snp_vtpm", "azsnpvtpm"),
    "az-tdx-vtpm": ("az-tdx-vtpm", "az_tdx_vtpm", "aztdxvtpm"),
    "sample": ("sample",),
}
"""Keys under which each trustee verifier's claims appear in the annotated evidence."""

_PLATFORM_ALIASES = {alias: name for name, keys in PLATFORM_EVIDENCE_KEYS.items() for alias in keys}


def _platform_alias(value: object) -> object:
    """Accept every upstream spelling (`azsnpvtpm`, `az_snp_vtpm`) as the canonical name."""
    return _PLATFORM_ALIASES.get(value, value) if isinstance(value, str) else value


Platform = Annotated[PlatformName, BeforeValidator(_platform_alias)]

_HEX = re.compile(r"\A(?:[0-9a-f]{2})+\Z")
_CLAIM_HEX_LEN = (64, 512)
"""Smallest and largest fitted init-data field, in hex digits (SNP 32 bytes, SE 256)."""


class ResourceGrant(BaseModel):
    """One KBS secret path and the exact workloads (init-data claims) that may read it."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True
    )

    path: str
    """`repo/type/tag`, e.g. `default/key/1` (the secret's KBS resource path)."""
    initdata_digests: list[str]
    """Lowercase hex init-data claims (`initdata.initdata_claim_hex`) of the readers."""
    platforms: list[Platform] = Field(min_length=1)
    """TEEs the evidence must come from; never empty (the sample attester has no hardware)."""
    min_trust: TrustLevel = "affirming"
    require_gpu: bool = False

    @field_validator("path")
    @classmethod
    def _path_shape(cls, v: str) -> str:
        if not is_resource_path(v):  # trustee resource/backend.rs `ResourceDesc`
            raise ValueError(f"{v!r} is not a KBS resource path: use repo/type/tag")
        return v

    @field_validator("initdata_digests")
    @classmethod
    def _claims_shape(cls, v: list[str]) -> list[str]:
        lo, hi = _CLAIM_HEX_LEN
        for claim in v:
            if not _HEX.match(claim) or not lo <= len(claim) <= hi:
                raise ValueError(
                    f"{claim!r} is not an init-data claim: lowercase hex of the fitted digest "
                    f"({lo}..{hi} hex digits)"
                )
        return sorted(set(v))

    @field_validator("platforms")
    @classmethod
    def _platforms_sorted(cls, v: list[str]) -> list[str]:
        return sorted(set(v))

    @property
    def parts(self) -> list[str]:
        return self.path.split("/")


def _rego(value: object) -> str:
    """A Rego literal for a JSON-like value (Rego shares JSON's string/array syntax)."""
    return json.dumps(value, ensure_ascii=True, sort_keys=True)


def _rego_set(values: list[str], indent: str = "\t") -> str:
    """A Rego set, one element per line (regorus releases cap policy line length)."""
    items = sorted(set(values))
    return "{\n" + "".join(f"{indent}\t{_rego(v)},\n" for v in items) + indent + "}"


_HEADER = """\
# KBS resource policy generated by coco (policies/resource.py); regenerate, do not edit.
package policy

import rego.v1

default allow = false
"""

_HELPERS = """\
# The EAR claims: the token body as input, or wrapped in a trust context (newer KBS).
claims := input.trust_context.attestation_summary.claims if {
	input.trust_context
}

claims := input if {
	not input.trust_context
}

evidence := claims.submods.cpu0["ear.veraison.annotated-evidence"]

# Only the resource plugin serves these paths (older KBS sends no plugin name).
resource_plugin if {
	not data.plugin
}

resource_plugin if {
	data.plugin == "resource"
}

# The requested path as a list, "repo/type/tag" or "/repo/type/tag".
requested(parts) if {
	data["resource-path"] == parts
}

requested(parts) if {
	data["resource-path"] == concat("/", parts)
}

requested(parts) if {
	data["resource-path"] == concat("", ["/", concat("/", parts)])
}

status_at_least(submod, "affirming") if {
	submod["ear.status"] == "affirming"
}

status_at_least(submod, "warning") if {
	submod["ear.status"] in {"affirming", "warning"}
}

cpu_at_least(level) if {
	status_at_least(claims.submods.cpu0, level)
}

on_platform(keys) if {
	some key in keys
	evidence[key]
}

init_data_in(accepted) if {
	evidence.init_data in accepted
}

# GPU evidence is one submodule per device (gpu0, gpu1, ...): all of them must pass.
gpus_at_least(level) if {
	claims.submods.gpu0
	every name, submod in claims.submods {
		gpu_submod_at_least(name, submod, level)
	}
}

gpu_submod_at_least(name, _, _) if {
	not startswith(name, "gpu")
}

gpu_submod_at_least(name, submod, level) if {
	startswith(name, "gpu")
	status_at_least(submod, level)
}
"""


def _grant_rule(grant: ResourceGrant) -> str:
    keys = sorted({k for p in grant.platforms for k in PLATFORM_EVIDENCE_KEYS[p]})
    accepted = sorted({c for d in grant.initdata_digests for c in (d, claim_hex_to_base64(d))})
    body = [
        "\tresource_plugin",
        f"\trequested({_rego(grant.parts)})",
        f"\tcpu_at_least({_rego(grant.min_trust)})",
        f"\ton_platform({_rego_set(keys)})",
    ]
    if accepted:
        body.append(f"\tinit_data_in({_rego_set(accepted)})")
    if grant.require_gpu:
        body.append(f"\tgpus_at_least({_rego(grant.min_trust)})")
    binding = "bound to init-data" if accepted else "UNBOUND: any workload on these platforms"
    header = (
        f"# {grant.path}: {', '.join(grant.platforms)}, {grant.min_trust}"
        f"{', GPU' if grant.require_gpu else ''}; {binding}"
    )
    return header + "\nallow if {\n" + "\n".join(body) + "\n}\n"


def render_resource_policy(grants: list[ResourceGrant], allow_unbound: bool = False) -> str:
    """The resource policy text. Deterministic: grants are sorted, sets are sorted.

    Core Rego only, lines kept short: the KBS evaluates it with regorus (cross-checked with
    regorus 0.9.1 against OPA during development).

    A grant without init-data claims would release the secret to *any* workload that attests
    on the platform (including one the host starts with its own agent policy), so it is an
    error unless `allow_unbound` says that is intended.
    """
    for grant in grants:
        if not grant.initdata_digests and not allow_unbound:
            raise ValueError(
                f"resource {grant.path!r} has no init-data digests: it would be released to any "
                "attested workload; bind it to readers, or pass allow_unbound=True"
            )
    ordered = sorted(grants, key=lambda g: (g.path, g.model_dump_json()))
    text = _HEADER
    if ordered:
        text += "\n" + _HELPERS + "\n" + "\n".join(_grant_rule(g) for g in ordered)
    return text
