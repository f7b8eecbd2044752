"""Verifier configuration for real sites: where the KBS's SEV-SNP verifier gets VCEKs, and which
NVIDIA verifier judges GPUs.

Why: without it the attestation service fetches each chip's VCEK from AMD's KDS on the internet
(trustee v0.21.0 `deps/verifier/src/snp/mod.rs`: `default_vcek_sources` = KDS at
`https://kdsintf.amd.com`), whenever the guest's evidence carries no certificate table. A site
behind a proxy or with a VCEK cache names its own base URL; the verifier requests
`<base>/vcek/v1/<Milan|Genoa|Turin>/<hwid>?blSPL=..&teeSPL=..&snpSPL=..&ucodeSPL=..` there and
still checks the VCEK against AMD's ARK/ASK it carries, so plain http to a cache is safe. An
air-gapped site lists its chips' VCEKs (`offlineStore`): coco mounts them into the KBS pod where
the verifier's `OfflineStore` source reads them (`<path>/vcek/<chip id>/vcek.der`, keyed by chip
only: a VCEK is issued for one TCB, so it is replaced after a firmware update).

Rendered into the KBS config as `[attestation_service.verifier_config.snp_verifier]`
`vcek_sources = [{ type = "OfflineStore", path = ... }, { type = "KDS", base_url = ... }]`
(`SnpVerifierConfig`, `VCEKSource` tagged by `type`, tried in order), which the built-in AS reads
(`kbs/src/attestation/coco/builtin.rs` `verifier_config`). Proven by
tests/conformance/test_real_evidence.py: the AS configured from the rendered file fetches the
VCEK of Trustee's Genoa vector from the named base URL or reads it from the laid-out store, and
refuses the evidence when neither has it.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from components.config_types import Model

VCEK_STORE_DIR = "/etc/kbs-vcek-store"
"""Where the KBS pod mounts the offline VCEK store (`vcek/<chip id>/vcek.der` under it)."""
VCEK_STORE_MAP_NAME = "kbs-vcek-store"

_CHIP_ID = re.compile(r"\A(?:[0-9a-f]{128}|[0-9a-f]{16})\Z")
_PEM = re.compile(r"-----BEGIN CERTIFICATE-----(.*?)-----END CERTIFICATE-----", re.DOTALL)

_BASE_URL = re.compile(
    r"\Ahttps?://[A-Za-z0-9.-]+(:\d{1,5})?(/[A-Za-z0-9._~%/-]*[A-Za-z0-9._~%-])?\Z"
)


class OfflineVcekStore(Model):
    """VCEKs the SNP verifier reads from files instead of fetching them (air-gapped sites)."""

    vceks: dict[str, str] = Field(
        min_length=1,
        description="chip id (lowercase hex, as in the report's CHIP_ID: 128 digits; the first "
        "16 on Turin) -> that chip's VCEK certificate (PEM, as AMD KDS serves it for the chip's "
        "current TCB)",
    )

    @field_validator("vceks")
    @classmethod
    def _vceks(cls, v: dict[str, str]) -> dict[str, str]:
        return {chip: _checked_vcek(chip, pem) for chip, pem in sorted(v.items())}


def _checked_vcek(chip: str, pem: str) -> str:
    """The VCEK in canonical PEM, after checking it is one certificate for chip `chip`."""
    if not _CHIP_ID.match(chip):
        raise ValueError(
            f"{chip!r} is not a chip id: use the report's CHIP_ID as lowercase hex (128 digits; "
            "16 on Turin), the path the verifier reads is vcek/<chip id>/vcek.der"
        )
    blocks = _PEM.findall(pem)
    if len(blocks) != 1 or _PEM.sub("", pem).strip():
        raise ValueError(
            f"{chip[:16]}...: give exactly one PEM certificate (-----BEGIN CERTIFICATE-----)"
        )
    try:
        der = base64.b64decode("".join(blocks[0].split()), validate=True)
    except binascii.Error:
        raise ValueError(f"{chip[:16]}...: the PEM body is not base64") from None
    # AMD puts the chip id in the VCEK's hwID extension (1.3.6.1.4.1.3704.1.4) as raw bytes, so
    # a VCEK of another chip does not contain them; the verifier would refuse its signature.
    if bytes.fromhex(chip) not in der:
        raise ValueError(
            f"{chip[:16]}...: this certificate is not that chip's VCEK (its hwID extension does "
            "not carry the chip id); fetch it from <kds>/vcek/v1/<Milan|Genoa|Turin>/<chip id>"
        )
    body = base64.b64encode(der).decode()
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    return "-----BEGIN CERTIFICATE-----\n" + "\n".join(lines) + "\n-----END CERTIFICATE-----\n"


class SnpVerifierSettings(Model):
    """Where the SEV-SNP verifier gets VCEKs for evidence without a certificate table: an
    offline store (tried first), a KDS base URL, or both."""

    kds_url: str | None = Field(
        default=None,
        description="Base URL of AMD KDS or a site VCEK cache serving its /vcek/v1/... paths "
        "(no trailing slash); default AMD's https://kdsintf.amd.com unless offlineStore is set",
    )
    offline_store: OfflineVcekStore | None = Field(
        default=None,
        description="VCEKs by chip id, mounted into the KBS pod; with it and no kdsUrl the "
        "verifier never goes to the network",
    )

    @field_validator("kds_url")
    @classmethod
    def _base_url(cls, v: str | None) -> str | None:
        if v is not None and not _BASE_URL.match(v):
            raise ValueError(
                f"{v!r} is not a base URL: use http(s)://host[:port][/path] without a trailing "
                "slash (the verifier appends /vcek/v1/...)"
            )
        return v

    @model_validator(mode="after")
    def _a_source(self) -> SnpVerifierSettings:
        if self.kds_url is None and self.offline_store is None:
            raise ValueError("set kdsUrl, offlineStore or both (omit snp for AMD's KDS)")
        return self


class NvidiaVerifierSettings(Model):
    """Which NVIDIA verifier judges GPU evidence (trustee `deps/verifier/src/nvidia/mod.rs`
    `NvidiaVerifierType`, tagged by `type`: `Local`, or `Remote` with `verifier_url`).

    Why it matters: the local verifier checks the report's signature, certificate chain and nonce
    offline but emits only `arch`, `uuid`, `measurements`, `config`, while trustee's built-in GPU
    policy (`ear_default_policy_gpu.rego`) reads only the remote (NVIDIA NRAS) verifier's
    `x-nvidia-*`, `secboot` and `dbgstat` claims. So `local` also installs coco's GPU policy for
    the local claims (policies/gpu_attestation.py), and `remote` keeps the built-in one (the KBS
    then calls NRAS). Proven on the Hopper vectors by tests/conformance/test_real_evidence.py."""

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
        # trustee deps/verifier/src/snp/mod.rs `VCEKSource`, tagged by `type`, tried in order.
        sources: list[str] = []
        if settings.snp.offline_store is not None:
            sources.append(f'{{ type = "OfflineStore", path = {json.dumps(VCEK_STORE_DIR)} }}')
        if settings.snp.kds_url is not None:
            sources.append(f'{{ type = "KDS", base_url = {json.dumps(settings.snp.kds_url)} }}')
        lines += [
            "[attestation_service.verifier_config.snp_verifier]",
            f"vcek_sources = [{', '.join(sources)}]",
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


def vcek_store_files(settings: VerifierSettings) -> dict[str, str]:
    """Chip id -> VCEK PEM for the offline store ConfigMap (empty without a store).

    PEM, though upstream names the file `vcek.der`: the verifier reads it with
    `sev::certs::snp::Certificate::from_bytes`, which accepts PEM or DER (virtee/sev
    `src/certs/snp/cert.rs` `identify_format`), and a ConfigMap holds text in `data`.
    """
    if settings.snp is None or settings.snp.offline_store is None:
        return {}
    return dict(settings.snp.offline_store.vceks)
