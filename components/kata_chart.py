"""Where the kata-deploy chart comes from, and which image it runs: checks made before anything is
registered.

`coco:cluster.install.chart` is the OCI reference (`pulumi up` and render mode fetch it, so they
need the registry) or a local chart folder, as Helm itself tells them apart (a path starts with
`/` or `.`; helm v3 `pkg/action/install.go` `LocateChart`). The dev stack names
`./.charts/kata-deploy-4.1.0`, which scripts/charts.sh (run by scripts/setup.sh) extracts from the
pinned upstream source archive, so `./scripts/up.sh` renders kata-deploy without network. A
folder that is missing, or holds another chart or version than `install.version`, is refused at
preview with the fix, instead of failing inside the provider's `helm template` (or, worse,
rendering a chart the values were not written for).

`coco:cluster.install.image` pins kata-deploy's DaemonSet image by digest. kata-deploy 4.1.0's
`_helpers.tpl` `kata-deploy.image` uses `image.reference` as is when it contains `@` and appends
`:<tag or appVersion>` otherwise; the chart's `values.yaml` has `reference:
quay.io/kata-containers/kata-deploy` and an empty tag, so by default the node installer runs by
the mutable tag `4.1.0`. Only a digest is accepted here: the point of the override is that the
privileged installer's content is fixed (a tag would be another mutable name).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from components import yaml_input

LOCAL_CHART_PREFIXES = ("/", "./", "../")
"""Helm's rule for a chart path (anything else is a repository or OCI reference)."""

SETUP_CHART = "./.charts/kata-deploy-4.1.0"
"""The folder scripts/charts.sh links (gitignored), named by the dev stack."""

# Docker's reference grammar (distribution/reference `reference.go`): an optional registry host
# (with port), then lowercase path components separated by `/`; then the sha256 digest.
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
_HOST = rf"(?:{_LABEL}(?:\.{_LABEL})*(?::[0-9]+)?/)"
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
DIGEST_IMAGE = re.compile(rf"^{_HOST}?{_COMPONENT}(?:/{_COMPONENT})*@sha256:[0-9a-f]{{64}}$")


def is_local_chart(chart: str) -> bool:
    return chart.startswith(LOCAL_CHART_PREFIXES)


def check_image(image: str) -> str:
    """The `install.image` value, or a ValueError saying what form is wanted."""
    if not DIGEST_IMAGE.match(image):
        raise ValueError(
            f"{image!r} is not an image pinned by digest: give <registry>/<repository>@sha256:"
            "<64 lowercase hex>, e.g. quay.io/kata-containers/kata-deploy@sha256:... (the digest "
            "of the kata-deploy image for the chart's version, as your registry reports it)"
        )
    return image


def image_values(image: str | None) -> dict[str, Any]:
    """kata-deploy values for the DaemonSet image (none: the chart's tag default)."""
    if image is None:
        return {}
    # A reference containing `@` is used as is (`kata-deploy.image`); the tag is then unused.
    return {"image": {"reference": image}}


PROJECT_ROOT = Path(__file__).resolve().parents[1]
"""The project folder (Pulumi.yaml, stacks/): where Pulumi runs the program, so where the
provider's `helm template` resolves a relative chart path. Checks resolve against it, not the
caller's working directory, so `python -m automation` or examples/embed_dev.py run from
anywhere judge the path as the engine will."""


def local_chart_problem(
    chart: str,
    version: str,
    base: Path | None = None,
    name: str = "kata-deploy",
    fix: str | None = None,
    version_key: str = "coco:cluster.install.version",
) -> str | None:
    """Why the local chart folder `chart` cannot be rendered with `version` values, or None.

    A relative path is taken from `base` (default: `PROJECT_ROOT`). `name`: the chart the
    folder must hold (kata-deploy, or the peerpods chart with its `fix`).
    """
    path = (PROJECT_ROOT if base is None else base) / chart
    fix = fix or (
        "run scripts/setup.sh (it extracts kata-deploy 4.1.0 from the pinned kata-containers "
        f"archive and links it as {SETUP_CHART}), or set it to the OCI reference "
        "oci://ghcr.io/kata-containers/kata-deploy-charts/kata-deploy (needs the registry at "
        "preview and up)"
    )
    meta = path / "Chart.yaml"
    try:
        found = len(chart) <= 4096 and "\0" not in chart and meta.is_file()
    except OSError:  # a name too long for the filesystem, ...
        found = False
    if not found:
        return f"{chart!r} is not a Helm chart folder (no Chart.yaml there): {fix}"
    try:
        doc = yaml_input.read_file(meta) or {}
        if not isinstance(doc, dict):
            raise ValueError("not a mapping")
    except (OSError, ValueError) as exc:
        return f"{chart!r}: cannot read its Chart.yaml ({exc}): {fix}"
    held, got = doc.get("name"), str(doc.get("version", ""))
    if held != name:
        return f"{chart!r} holds chart {held!r}, not {name}: {fix}"
    if got != version:
        return (
            f"{chart!r} holds {name} {got}, but {version_key} is {version}: point it at "
            f"{name} {version}, or {fix}"
        )
    return None
