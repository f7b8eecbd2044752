"""Init-data on Azure confidential VMs: bound through vTPM PCR8, not a TEE field.

Why this is not `policies.initdata.initdata_claim_hex`: on Azure (peer pods with
`az-snp-vtpm` / `az-tdx-vtpm` evidence) the guest cannot write HOSTDATA / MRCONFIGID; the
attestation agent extends vTPM PCR8 with the init-data digest instead, and the verifier reports
PCR8 as the `init_data` claim:

- guest: guest-components `attestation-agent/attester/src/az_snp_vtpm/mod.rs`
  `bind_init_data` -> `utils::extend_pcr_sync(digest, INIT_DATA_PCR = 8)`, which refuses any
  digest that is not 32 bytes ("expected sha256 digest");
- verifier: trustee v0.21.0 `deps/verifier/src/az_snp_vtpm/mod.rs` `verify_init_data` checks
  PCR8 == sha256(32 zero bytes || digest) (copying the digest into 32 bytes: a 48-byte sha384
  digest panics the verifier), and `extend_claim` sets `init_data` to `hex(PCR8)`; the
  az-tdx-vtpm verifier uses the same two functions (`az_tdx_vtpm/mod.rs`).

So on these platforms the digest algorithm must be sha256 and the resource policy must compare
the PCR8 value, which this module computes (proven on Trustee's Azure vectors by
tests/conformance/test_real_evidence.py).
"""

from __future__ import annotations

import hashlib

from policies.initdata import DigestAlgorithm, initdata_claim_hex, initdata_digest

VTPM_PLATFORMS = frozenset({"az-snp-vtpm", "az-tdx-vtpm"})
VTPM_ALGORITHM: DigestAlgorithm = "sha256"
INITDATA_PCR = 8


def pcr8_claim_hex(digest: bytes) -> str:
    """`init_data` as the Azure vTPM verifiers report it: PCR8 after one extend of `digest`
    from its reset value (32 zero bytes), lowercase hex."""
    if len(digest) != 32:
        raise ValueError(
            f"Azure vTPM binds init-data by extending PCR{INITDATA_PCR} (sha256 bank) with the "
            f"digest: it must be a 32-byte sha256 digest, not {len(digest)} bytes"
        )
    return hashlib.sha256(b"\x00" * 32 + digest).hexdigest()


def default_algorithm(platform: str | None, runtime_default: DigestAlgorithm) -> DigestAlgorithm:
    """The init-data digest algorithm both the guest attester and the verifier accept."""
    return VTPM_ALGORITHM if platform in VTPM_PLATFORMS else runtime_default


def platform_claim_hex(
    text: str, algorithm: DigestAlgorithm, field_len: int | None, platform: str | None
) -> str:
    """The `init_data` claim the KBS will see for init-data `text` on `platform`."""
    if platform in VTPM_PLATFORMS:
        if algorithm != VTPM_ALGORITHM:
            raise ValueError(
                f"{platform} needs sha256 init-data (PCR{INITDATA_PCR} is extended with the "
                f"digest), not {algorithm}"
            )
        return pcr8_claim_hex(initdata_digest(text, algorithm))
    return initdata_claim_hex(text, algorithm, field_len)
