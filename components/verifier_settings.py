"""Verifier configuration for real sites: where the KBS's SEV-SNP verifier gets VCEKs, and which
NVIDIA verifier judges GPUs.

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
from typing import Literal

from pydantic import Field, field_validator, model_validator

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


class NvidiaVerifierSettings(Model):
    """Which NVIDIA verifier judges GPU evidence (trustee `deps/verifier/src/nvidia/mod.rs`
    `NvidiaVerifierType`, tagged by `type`: `Local`, or `Remote` with `verifier_url`).

    Why it matters: the local verifier checks the report's signature, certificate chain and nonce
    but emits only `arch`, `uuid`, `measurements`, `config`, while trustee's default GPU policy
    (`ear_default_policy_gpu.rego`) reads only the remote (NVIDIA NRAS) verifier's `x-nvidia-*`,
    `secboot` and `dbgstat` claims: under that policy a GPU is affirming only in remote mode
    (proven on the Hopper vectors by tests/conformance/test_real_evidence.py)."""

    mode: Literal["local", "remote"]
    url: str | None = Field(
        default=None,
        description="remote mode: the NRAS attest URL (default NVIDIA's "
        "https://nras.attestation.nvidia.com/v4/attest)",
    )

    @field_validator("url")
    @classmethod
    def _https(cls, v: str | None) -> str | None:
        if v is not None and not re.match(r"\Ahttps://[^\s/]+(/\S*)?\Z", v):
            raise ValueError(f"{v!r} is not an https:// URL")
        return v

    @model_validator(mode="after")
    def _url_is_remote(self) -> NvidiaVerifierSettings:
        if self.url is not None and self.mode != "remote":
            raise ValueError("url is only used by the remote verifier: set mode: remote")
        return self


class VerifierSettings(Model):
    """Per-verifier configuration of the KBS's attestation service."""

    snp: SnpVerifierSettings | None = None
    nvidia: NvidiaVerifierSettings | None = None


def verifier_config_lines(settings: VerifierSettings) -> list[str]:
    """KBS config lines for `settings` (empty: the verifiers' built-in defaults)."""
    lines: list[str] = []
    if settings.snp is not None:
        url = json.dumps(settings.snp.kds_url)
        lines += [
            "[attestation_service.verifier_config.snp_verifier]",
            f'vcek_sources = [{{ type = "KDS", base_url = {url} }}]',
            "",
        ]
    if settings.nvidia is not None:
        lines += [
            "[attestation_service.verifier_config.nvidia_verifier]",
            f'type = "{settings.nvidia.mode.capitalize()}"',
        ]
        if settings.nvidia.url is not None:
            lines.append(f"verifier_url = {json.dumps(settings.nvidia.url)}")
        lines.append("")
    return lines
