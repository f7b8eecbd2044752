"""Trustee's attestation service (the `verifier` judge) on the real evidence Trustee ships.

The vectors are `deps/verifier/test_data/` and `attestation-service/tests/e2e/evidence.json` of the
pinned trustee v0.21.0 archive, extracted by the judge's recipe into its cache folder
(`test-data/`), never copied into this repository. Each `Vector` says how the evidence goes to
the judge and where its report data is recorded: real evidence is bound to the nonce it was made
for, so the judge passes that recorded value to the AS as the expected report data (see
scripts/judges/verifier/evaluator/src/main.rs), and the verifier still checks the binding.

`Appraisal` reads the judge's answer: the EAR status and trust vector of `cpu0`, and the claims
the verifier emitted (the annotated evidence), per AR4SI tier.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

EVALUATE_TIMEOUT_S = 120.0


def tier(value: int) -> str:
    """AR4SI trustworthiness tier of a trust-vector claim (draft-ietf-rats-ar4si, section 2.3)."""
    if -1 <= value <= 1:
        return "none"
    if 2 <= value <= 31 or -32 <= value <= -2:
        return "affirming"
    if 32 <= value <= 95 or -96 <= value <= -33:
        return "warning"
    return "contraindicated"


def tpm_nonce(message: bytes) -> bytes:
    """`extraData` of a TPMS_ATTEST (TPM 2.0 Part 2, 10.12.12): magic (4), type (2),
    qualifiedSigner (TPM2B), extraData (TPM2B). The AK-signed nonce an Azure vTPM quote binds."""
    offset = 6
    signer = int.from_bytes(message[offset : offset + 2], "big")
    offset += 2 + signer
    size = int.from_bytes(message[offset : offset + 2], "big")
    return message[offset + 2 : offset + 2 + size]


def _az_message(evidence: dict[str, Any]) -> bytes:
    quote = evidence.get("tpm_quote") or evidence["quote"]
    message = quote["message"]
    return bytes.fromhex(message) if isinstance(message, str) else bytes(message)


@dataclass(frozen=True)
class Vector:
    """One piece of recorded evidence and how the judge takes it."""

    tee: str
    name: str
    files: tuple[str, ...]
    """Paths under the judge's test-data/: the evidence JSON, or an SNP report and its key."""
    report_data: Callable[[Path], bytes]
    vek_type: str = "vcek"
    refused: str | None = None
    """The verifier's own refusal, for evidence it rejects (None: it verifies)."""
    notes: str = ""

    def args(self, data: Path) -> list[str]:
        if len(self.files) == 1:
            return ["--evidence", str(data / self.files[0])]
        report, vek = self.files
        return [
            "--snp-report",
            str(data / report),
            "--snp-vek",
            str(data / vek),
            "--snp-vek-type",
            self.vek_type,
        ]


def _snp_json_report_data(path: str) -> Callable[[Path], bytes]:
    def read(data: Path) -> bytes:
        report = json.loads((data / path).read_text())["attestation_report"]
        return bytes(report["report_data"])

    return read


def _snp_bin_report_data(path: str) -> Callable[[Path], bytes]:
    # AMD SEV-SNP ABI, ATTESTATION_REPORT: REPORT_DATA is bytes 0x50..0x8f.
    return lambda data: (data / path).read_bytes()[0x50:0x90]


def _az_report_data(path: str) -> Callable[[Path], bytes]:
    return lambda data: tpm_nonce(_az_message(json.loads((data / path).read_text())))


VECTORS: tuple[Vector, ...] = (
    Vector(
        "snp",
        "genoa-e2e",
        ("e2e/snp-evidence.json",),
        _snp_json_report_data("e2e/snp-evidence.json"),
        notes="Genoa report v3 at VMPL 0 with its VCEK (attestation-service/tests/e2e)",
    ),
    Vector(
        "snp",
        "milan-report-v2",
        ("snp/test-report.bin", "snp/test-vcek.der"),
        _snp_bin_report_data("snp/test-report.bin"),
        refused="Attestation Report version is too old",
    ),
    Vector(
        "snp",
        "milan-vlek-vmpl1",
        ("snp/test-vlek-report.bin", "snp/test-vlek.der"),
        _snp_bin_report_data("snp/test-vlek-report.bin"),
        vek_type="vlek",
        refused="VMPL Check Failed",
    ),
    *(
        Vector(
            "az-snp-vtpm",
            f"azure-{version}",
            (f"az-snp-vtpm/evidence-{version}.json",),
            _az_report_data(f"az-snp-vtpm/evidence-{version}.json"),
        )
        for version in ("v0", "v1", "v2", "genoa")
    ),
)


@dataclass
class Appraisal:
    """The judge's answer for one evaluation."""

    raw: dict[str, Any]
    stderr: str = ""
    ok: bool = field(init=False)

    def __post_init__(self) -> None:
        self.ok = bool(self.raw.get("ok"))

    @property
    def error(self) -> str:
        return str(self.raw.get("error") or self.stderr)

    @property
    def cpu(self) -> dict[str, Any]:
        assert self.ok, f"the AS refused the evidence: {self.error}"
        submod: dict[str, Any] = self.raw["submods"]["cpu0"]
        return submod

    @property
    def status(self) -> str:
        return str(self.cpu["status"])

    @property
    def vector(self) -> dict[str, int]:
        return {k: int(v) for k, v in self.cpu["trust_vector"].items()}

    def tiers(self) -> dict[str, str]:
        return {k: tier(v) for k, v in self.vector.items()}

    def claims(self, tee: str) -> dict[str, Any]:
        evidence: dict[str, Any] = self.cpu["annotated_evidence"]
        claims: dict[str, Any] = evidence[tee]
        return claims

    @property
    def annotated(self) -> dict[str, Any]:
        evidence: dict[str, Any] = self.cpu["annotated_evidence"]
        return evidence


def can_isolate_network() -> bool:
    """Whether this process may run a command in a new network namespace (root, or a user
    namespace allowed by the kernel)."""
    try:
        done = subprocess.run(["unshare", "--net", "true"], capture_output=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def evaluate(
    judge: Path,
    kbs_config: Path,
    vector: Vector,
    *,
    report_data: bytes | None = None,
    init_data_toml: Path | None = None,
    init_data_digest: bytes | None = None,
    offline: bool = False,
) -> Appraisal:
    """Run the AS, configured from `kbs_config`, on `vector`; `offline`: in a network namespace
    of its own (`unshare --net`: no interface but a down loopback), so nothing is reachable."""
    data = judge / "test-data"
    expected = vector.report_data(data) if report_data is None else report_data
    argv = [
        *(["unshare", "--net"] if offline else []),
        str(judge / "bin" / "verifier-judge"),
        "--kbs-config",
        str(kbs_config),
        "--tee",
        vector.tee,
        *vector.args(data),
        "--report-data",
        expected.hex(),
    ]
    if init_data_toml is not None:
        argv += ["--init-data-toml", str(init_data_toml)]
    if init_data_digest is not None:
        argv += ["--init-data-digest", init_data_digest.hex()]
    done = subprocess.run(
        argv,
        capture_output=True,
        text=True,
        timeout=EVALUATE_TIMEOUT_S,
        check=False,
        env={"PATH": "/usr/bin:/bin", "RUST_LOG": "error"},
    )
    line = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""
    if not line:
        # No answer at all: the process died (a verifier panic aborts the evaluation).
        return Appraisal(
            {"ok": False, "stage": "crash", "error": f"exit {done.returncode}"}, done.stderr
        )
    return Appraisal(json.loads(line), done.stderr)
