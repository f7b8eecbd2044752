"""The release set: every upstream chart and image version coco installs, pinned in one place.

One module, so moving the set is one reviewed diff, and so the values builders, the settings
defaults, the Helm tier (tests/conformance/test_charts.py, which renders each pin with real Helm)
and the README agree. Each pin says why it is this version; README "Release set" repeats the
reasons and says how to move a pin.

The set as of 2026-11 (each checked against the pinned sources in ../shared/upstream):

- kata-deploy 4.1.0 on bare metal: the newest kata-containers release. Its chart renders the
  NodeFeatureRule and the TEE-key `overhead.podFixed` entries itself (`templates/
  node-feature-rules.yaml`, `templates/runtimeclasses.yaml`), and its binary no longer patches
  RuntimeClasses (no `k8s/runtimeclasses.rs` at 4.1.0): with `runtimeClasses.enabled: false`
  nothing but Pulumi writes coco's RuntimeClasses, so a refresh shows no drift.
- peerpods chart 0.4.0 (cloud-api-adaptor v0.22.0): the first whose `entrypoint.sh` accepts AWS
  web identity (IRSA: `AWS_ROLE_ARN` + `AWS_WEB_IDENTITY_TOKEN_FILE`); 0.3.0's requires static
  keys. Its kata-deploy subchart is 4.0.0 (its `Chart.yaml` pins it): upstream's tested pair, so
  peer-pods clusters run kata-deploy 4.0.0 for the `remote` shim only.
- GPU Operator v26.7.0: the CC settings NVIDIA's guide uses (`sandboxWorkloads`, `ccManager`,
  `nfd`) are unchanged from v26.3.1 (the reference architecture 1.0.0 release), and its
  vendored node-feature-discovery is 0.19.0, the same chart kata-deploy 4.1.0 vendors.
- cert-manager v1.19.1: needed by the peerpods webhook; no chart archive is pinned here, so the
  Helm tier does not render it (the version is jetstack's current v1.19 patch).
- Trustee KBS image v0.21.0 (`built-in-as-v0.21.0`): the Trustee release the KBS config is
  written for (components/trustee.py). By tag: the pinned sources publish no digest.

These pins are the current `ReleaseSet`; the previous one (what coco pinned before, kata-deploy
3.29.0 with GPU Operator v26.3.1) stays selectable on bare metal (`coco:cluster.releaseSet`), so
a stack deployed on it can be described and upgraded (docs/upgrades.md). No newer release of any
of these is in the pinned sources or the public snapshots reachable here (docs/charts.md, "Is
there a newer release?").
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ChartPin:
    """One Helm chart: where it comes from and the version coco writes values for."""

    chart: str
    """The chart reference `pulumi up` installs from (an OCI ref or a name in `repository`)."""
    version: str
    repository: str | None = None
    """A classic Helm repository URL, None for an OCI reference."""
    app_version: str | None = None


KATA_DEPLOY = ChartPin(
    chart="oci://ghcr.io/kata-containers/kata-deploy-charts/kata-deploy",
    version="4.1.0",
    app_version="4.1.0",
)
"""kata-deploy on bare-metal clusters (see module docstring)."""

PEERPODS = ChartPin(
    chart="oci://ghcr.io/confidential-containers/cloud-api-adaptor/charts/peerpods",
    version="0.4.0",
    app_version="v0.22.0",
)
"""The peerpods chart (cloud-api-adaptor, peerpod-ctrl, webhook, kata-deploy subchart)."""

PEERPODS_KATA_DEPLOY_VERSION = "4.0.0"
"""The kata-deploy subchart version peerpods 0.4.0's Chart.yaml pins."""

PEERPODS_IRSA_MIN_VERSION = "0.4.0"
"""The first peerpods chart whose adaptor starts with AWS web identity (entrypoint.sh)."""

GPU_OPERATOR = ChartPin(
    chart="gpu-operator",
    repository="https://helm.ngc.nvidia.com/nvidia",
    version="v26.7.0",
)
"""NVIDIA GPU Operator (CC mode for Hopper/Blackwell GPUs)."""

GPU_OPERATOR_SUPPORTED = ("v26.3.1", "v26.7.0")
"""GPU Operator versions `gpu_operator_values` is written and Helm-tested for."""

CERT_MANAGER = ChartPin(
    chart="cert-manager",
    repository="https://charts.jetstack.io",
    version="v1.19.1",
)
"""cert-manager, for the peerpods webhook's serving certificate."""

TRUSTEE_KBS_IMAGE = "ghcr.io/confidential-containers/key-broker-service:built-in-as-v0.21.0"
"""Trustee's KBS with the built-in attestation service, v0.21.0."""


KATA_DEPLOY_NODE_FEATURE_RULES_FROM = "4.1.0"
"""The first kata-deploy chart that renders the TEE NodeFeatureRule itself (`templates/node-
feature-rules.yaml`, `nodeFeatureRules.create`). Up to 4.0.0 the kata-deploy binary applied the
rule `amd64-tee-keys` at run time, unowned by the release (kata-containers 3.29.0
`tools/packaging/kata-deploy/binary/src/k8s/nfd.rs`), and the chart has no such value."""


@dataclass(frozen=True)
class ReleaseSet:
    """The upstream versions one coco release was written and tested for, as a unit.

    A stack picks one with `coco:cluster.releaseSet` (bare metal): its kata-deploy chart and
    GPU Operator become the defaults of `install.version` and `gpu.operator.version`. Sets are
    named after their kata-containers release, so a stack file that names one keeps meaning the
    same versions when coco moves on (docs/upgrades.md).
    """

    name: str
    kata_deploy: ChartPin
    gpu_operator: ChartPin
    peerpods: ChartPin
    trustee_kbs_image: str
    pinned: str
    """When coco pinned this set (the commit that made it the default)."""


CURRENT = ReleaseSet(
    name=KATA_DEPLOY.version,
    kata_deploy=KATA_DEPLOY,
    gpu_operator=GPU_OPERATOR,
    peerpods=PEERPODS,
    trustee_kbs_image=TRUSTEE_KBS_IMAGE,
    pinned="2026-11-30",
)
"""The release set above: the default of every stack."""

PREVIOUS = ReleaseSet(
    name="3.29.0",
    kata_deploy=ChartPin(chart=KATA_DEPLOY.chart, version="3.29.0", app_version="3.29.0"),
    gpu_operator=ChartPin(
        chart=GPU_OPERATOR.chart, repository=GPU_OPERATOR.repository, version="v26.3.1"
    ),
    peerpods=ChartPin(chart=PEERPODS.chart, version="0.3.0", app_version="v0.21.0"),
    trustee_kbs_image=TRUSTEE_KBS_IMAGE,
    pinned="2026-11-29",
)
"""What coco pinned before the current set: kata-deploy 3.29.0 (the first release NVIDIA's
Confidential Containers reference architecture 1.0.0 supports for GPU classes) with GPU Operator
v26.3.1, peerpods 0.3.0 and the same Trustee. Kept so a stack deployed on it can be described
exactly, previewed, and upgraded to `CURRENT` (docs/upgrades.md). Bare metal only: peerpods 0.3.0's
adaptor exits under AWS IRSA and its values are no longer generated, so peer-pods stacks run the
current set."""

RELEASE_SETS: dict[str, ReleaseSet] = {s.name: s for s in (CURRENT, PREVIOUS)}


def release_set(name: str) -> ReleaseSet:
    """The release set called `name`, or a ValueError that lists the known ones."""
    found = RELEASE_SETS.get(name)
    if found is None:
        known = ", ".join(
            f"{s.name!r} ({'current' if s is CURRENT else 'previous'})"
            for s in RELEASE_SETS.values()
        )
        raise ValueError(
            f"unknown release set {name!r}: coco knows {known}; remove the key to get the "
            "current set (docs/upgrades.md)"
        )
    return found


def version_tuple(version: str) -> tuple[int, ...]:
    """`v0.4.0` / `0.4.0` as (0, 4, 0), for ordering chart versions."""
    core = version.removeprefix("v").split("-", 1)[0]
    try:
        return tuple(int(part) for part in core.split("."))
    except ValueError:
        raise ValueError(f"{version!r} is not a version of the form X.Y.Z") from None
