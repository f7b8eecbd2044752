"""Can the stack's reference values reach `affirming` for the resources that require it?

A KBS resource with `minTrust: affirming` (the default) is released only when the EAR status of
the reader's evidence is affirming, i.e. when no trust-vector component the default policy sets
(executables, hardware, configuration) falls below that tier. Each component needs its own
reference values (policies/appraisal.py `required_for_affirming`); one missing name keeps the
component at `warning` or `contraindicated`, so the secret is never released, silently. Settings
refuse that in production (naming the missing names per component) and the program warns about
it elsewhere.

Only the default policy is judged: a custom `trustee.attestationPolicy` may query anything.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from components import tee
from components.peerpods.settings import PeerPodsCluster, attestation_platform
from policies.appraisal import APPRAISALS, PLATFORM_CONDITIONS, missing_for_affirming

if TYPE_CHECKING:
    from components.stack_settings import StackSettings


def _platform(s: StackSettings, runtime_class: str) -> str | None:
    if isinstance(s.cluster, PeerPodsCluster):
        return attestation_platform(s.cluster.cloud)
    return tee.lookup(runtime_class).attestation_platform


def affirming_platforms(s: StackSettings) -> dict[str, list[str]]:
    """Platform -> paths of the resources that must be released at `affirming` on it."""
    sources = {m.name: m for m in s.manifests}
    workloads = {w.name: w for w in s.workloads}
    out: dict[str, list[str]] = {}
    for r in s.trustee.resources:
        if r.min_trust != "affirming":
            continue
        for reader in r.readers:
            try:
                if reader in sources and reader not in workloads:
                    rc = s.manifest_runtime_class(sources[reader])
                elif reader in workloads:
                    rc = s.runtime_class_of(workloads[reader])
                else:
                    continue  # an unknown reader is reported by the settings checks
                platform = _platform(s, rc)
            except (KeyError, ValueError):
                continue
            if platform is not None and platform in APPRAISALS:
                out.setdefault(platform, [])
                if r.path not in out[platform]:
                    out[platform].append(r.path)
    return out


def affirming_gpu_resources(s: StackSettings) -> list[str]:
    """Paths of the resources that need affirming GPU evidence (`requireGpu`, explicit or
    because a reader has GPUs, as components/stack.py `grant_for` decides)."""
    gpus = {w.name: w.gpus for w in s.workloads} | {m.name: m.gpus for m in s.manifests}
    out: list[str] = []
    for r in s.trustee.resources:
        needs = r.require_gpu
        if needs is None:
            needs = any(gpus.get(reader, 0) > 0 for reader in r.readers)
        if needs and r.min_trust == "affirming":
            out.append(r.path)
    return out


def coverage_gaps(s: StackSettings) -> list[tuple[str, str]]:
    """(settings key, message) for every platform whose affirming resources cannot be released.

    CPU platforms are not judged under a custom attestation policy (it may compare anything),
    nor IBM SE (appraised on the verifier's word alone). GPU resources need an explicit NVIDIA
    verifier mode: `remote` (NRAS, judged by trustee's built-in GPU policy) or `local` (coco's GPU
    policy, policies/gpu_attestation.py, with its three reference values).
    """
    gaps: list[tuple[str, str]] = []
    # A custom CPU policy (trustee.attestationPolicy) may compare anything: not judged.
    cpu_platforms = {} if s.trustee.attestation_policy is not None else affirming_platforms(s)
    for platform, paths in sorted(cpu_platforms.items()):
        missing = missing_for_affirming(platform, s.trustee.reference_values)
        if not missing:
            continue
        parts = "; ".join(f"{c} needs {', '.join(names)}" for c, names in missing.items())
        conditions = PLATFORM_CONDITIONS.get(platform, {})
        extra = "".join(f" ({c} also requires {conditions[c]})" for c in missing if c in conditions)
        gaps.append(
            (
                "coco:trustee.referenceValues",
                f"{', '.join(paths)} require{'s' if len(paths) == 1 else ''} affirming "
                f"{platform} evidence, which trustee's default policy cannot give without these "
                f"reference values: {parts}{extra}. Add them (python -m automation "
                "reference-values turns captured evidence into this block, docs/attestation.md), "
                "or set the resources' minTrust to warning",
            )
        )
    gpu_paths = affirming_gpu_resources(s)
    nvidia = s.trustee.verifiers.nvidia
    verb = "requires" if len(gpu_paths) == 1 else "require"
    needs = f"{', '.join(gpu_paths)} {verb} affirming GPU evidence"
    if gpu_paths and nvidia is None:
        gaps.append(
            (
                "coco:trustee.verifiers.nvidia.mode",
                f"{needs}, which trustee's built-in GPU policy never gives with the local NVIDIA "
                "verifier (its default): it reads only the remote verifier's (NVIDIA NRAS) "
                "claims. Set verifiers.nvidia.mode: local (coco renders a GPU policy for the "
                "local verifier's claims, offline; it needs the allowed_* GPU reference values) "
                "or remote (the KBS calls NRAS), or the resources' minTrust to warning",
            )
        )
    elif gpu_paths and nvidia is not None and nvidia.mode == "local":
        missing = missing_for_affirming("nvidia-local", s.trustee.reference_values)
        if missing:
            parts = "; ".join(f"{c} needs {', '.join(names)}" for c, names in missing.items())
            gaps.append(
                (
                    "coco:trustee.referenceValues",
                    f"{needs}, which coco's GPU policy for the local NVIDIA verifier cannot give "
                    f"without these reference values: {parts}. Add them (python -m automation "
                    "reference-values --tee nvidia-local turns a GPU's claims into this block, "
                    "docs/attestation.md), or set the resources' minTrust to warning",
                )
            )
    return gaps
