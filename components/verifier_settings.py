"""Verifier configuration for real sites: where the KBS's SEV-SNP verifier gets VCEKs.

Why: without it the attestation service fetches each chip's VCEK from AMD's KDS on the internet
(trustee v0.21.0 `deps/verifier/src/snp/mod.rs`: `default_vcek_sources` = KDS at
`https://kdsintf.amd.com`), whenever the guest's evidence carries no certificate table. A site
behind a proxy or with a VCEK cache names its own base URL; the verifier requests
`<base>/vcek/v1/<Milan|Genoa|Turin>/<hwid>?blSPL=..&teeSPL=..&snpSPL=..&ucodeSPL=..` there and
still checks the VCEK against AMD's ARK/ASK it carries, so plain http to a cache is safe.

Rendered into the KBS config as `[attestation_service.verifier_config.snp_verifier]`
`vcek_sources = [{ type = "KDS", base_url = ... }]` (`SnpVerifierConfig`, `VCEKSource` tagged by
`type`), which the built-in AS reads (`kbs/src/attestation/coco/builtin.rs` `verifier_config`).
Proven by tests/conformance/test_real_evidence.py: the AS configured from the rendered file
fetches the VCEK of Trustee's Genoa vector from the named base URL, and refuses the evidence when
that URL has no VCEK.
"""

from __future__ import annotations

import json
import re

from pydantic import Field, field_validator

from components.config_types import Model

_BASE_URL = re.compile(
    r"\Ahttps?://[A-Za-z0-9.-]+(:\d{1,5})?(/[A-Za-z0-9._~%/-]*[A-Za-z0-9._~%-])?\Z"
)


class SnpVerifierSettings(Model):
    """The SEV-SNP verifier's VCEK source."""

    kds_url: str = Field(
        description="Base URL of AMD KDS or a site VCEK cache serving its /vcek/v1/... paths "
        "(no trailing slash); default AMD's https://kdsintf.amd.com"
    )

    @field_validator("kds_url")
    @classmethod
    def _base_url(cls, v: str) -> str:
        if not _BASE_URL.match(v):
            raise ValueError(
                f"{v!r} is not a base URL: use http(s)://host[:port][/path] without a trailing "
                "slash (the verifier appends /vcek/v1/...)"
            )
        return v


class VerifierSettings(Model):
    """Per-verifier configuration of the KBS's attestation service."""

    snp: SnpVerifierSettings | None = None


def verifier_config_lines(settings: VerifierSettings) -> list[str]:
    """KBS config lines for `settings` (empty: the verifiers' built-in defaults)."""
    if settings.snp is None:
        return []
    url = json.dumps(settings.snp.kds_url)
    return [
        "[attestation_service.verifier_config.snp_verifier]",
        f'vcek_sources = [{{ type = "KDS", base_url = {url} }}]',
        "",
    ]
