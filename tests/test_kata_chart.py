"""The dev stack renders kata-deploy offline from a local chart folder; `install.chart` and
`install.image` are checked before anything is registered.

scripts/charts.sh (run by scripts/setup.sh) extracts kata-deploy 4.1.0 from the pinned
kata-containers archive into the tools cache and links it as `.charts/kata-deploy-4.1.0`, the
path the dev stack names. These tests run that script against throwaway homes, and the dev
stack under mocks; the Helm tier (tests/conformance/test_charts.py) renders what it registers
with real Helm, and tests/conformance/test_chart_render.py through the real engine.
"""

from __future__ import annotations

import copy
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from test_stacks import run_stack, stack_config

from components import kata_chart, releases
from components.cluster import kata_deploy_values
from components.settings import BareMetalCluster, SettingsError, parse, strip_namespace

ROOT = Path(__file__).resolve().parent.parent
UPSTREAM = Path(os.environ.get("COCO_UPSTREAM", ROOT.parent / "shared" / "upstream"))
ARCHIVE = "kata-containers-4.1.0.tar.gz"
DIGEST_IMAGE = "quay.io/kata-containers/kata-deploy@sha256:" + "0123456789abcdef" * 4


def dev_raw(**install: Any) -> dict[str, Any]:
    config = copy.deepcopy(stack_config("dev"))
    config.pop("coco:demoKey")
    config["coco:cluster"]["install"].update(install)
    return strip_namespace(config)


def problems(raw: dict[str, Any]) -> dict[str, str]:
    with pytest.raises(SettingsError) as err:
        parse(raw)
    return {p.key: p.message for p in err.value.problems}


# --------------------------------------------------------------------------- the dev stack


def test_dev_stack_renders_kata_deploy_from_the_local_chart() -> None:
    """stacks/Pulumi.dev.yaml: chart install (not `preinstalled`), from the folder setup.sh
    links, rendered as a client-side Chart with the values a release would get."""
    run = run_stack("dev")
    cluster = run.settings.cluster
    assert isinstance(cluster, BareMetalCluster)
    assert cluster.install.method == "chart"
    assert cluster.install.chart == kata_chart.SETUP_CHART
    assert cluster.install.version == releases.KATA_DEPLOY.version
    assert run.settings.kubernetes.rendering
    (request,) = run.mocks.helm_templates
    assert request["path"] == kata_chart.SETUP_CHART
    assert request["release_name"] == "kata-deploy"
    assert request["namespace"] == "kata-system"
    assert request["values"] == kata_deploy_values(cluster, ["kata-qemu-coco-dev"])
    assert request["values"]["shims"]["qemu-coco-dev"]["enabled"] is True
    assert not run.mocks.of_type("helm.sh/v3:Release")
    assert [r.metadata["name"] for r in run.mocks.of_type("core/v1:Namespace")].count(
        "kata-system"
    ) == 1
    # The RuntimeClass is created (chart mode), not read from a cluster.
    (rc,) = run.mocks.of_type("v1:RuntimeClass")
    assert rc.metadata["name"] == "kata-qemu-coco-dev"


def test_setup_linked_the_chart_the_dev_stack_names() -> None:
    chart = ROOT / kata_chart.SETUP_CHART
    assert chart.is_symlink(), "run `bash scripts/setup.sh` (scripts/charts.sh links it)"
    assert kata_chart.local_chart_problem(kata_chart.SETUP_CHART, "4.1.0", ROOT) is None
    assert kata_chart.PROJECT_ROOT == ROOT
    assert not chart.resolve().is_relative_to(ROOT), "the chart lives outside the repository"


def test_missing_chart_folder_is_refused_naming_the_key_and_the_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(kata_chart, "PROJECT_ROOT", tmp_path)  # setup.sh has not run there
    monkeypatch.chdir(ROOT)  # the working directory does not matter
    found = problems(dev_raw())
    message = found["coco:cluster.install.chart"]
    assert "no Chart.yaml" in message and "scripts/setup.sh" in message
    assert releases.KATA_DEPLOY.chart in message  # the online alternative


def test_local_chart_of_another_version_or_name_is_refused(tmp_path: Path) -> None:
    chart = tmp_path / "kd"
    chart.mkdir()
    (chart / "Chart.yaml").write_text("apiVersion: v2\nname: kata-deploy\nversion: 4.0.0\n")
    found = problems(dev_raw(chart=str(chart)))
    assert "holds kata-deploy 4.0.0" in found["coco:cluster.install.chart"]
    assert "coco:cluster.install.version is 4.1.0" in found["coco:cluster.install.chart"]
    (chart / "Chart.yaml").write_text("apiVersion: v2\nname: other\nversion: 4.1.0\n")
    assert "not kata-deploy" in problems(dev_raw(chart=str(chart)))["coco:cluster.install.chart"]


def test_oci_reference_needs_no_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kata_chart, "PROJECT_ROOT", tmp_path)
    settings = parse(dev_raw(chart=releases.KATA_DEPLOY.chart))
    assert isinstance(settings.cluster, BareMetalCluster)
    assert not kata_chart.is_local_chart(settings.cluster.install.chart)


# --------------------------------------------------------------------------- install.image


def test_image_override_pins_the_daemonset_image_by_digest() -> None:
    settings = parse(dev_raw(image=DIGEST_IMAGE))
    cluster = settings.cluster
    assert isinstance(cluster, BareMetalCluster)
    values = kata_deploy_values(cluster, ["kata-qemu-coco-dev"])
    # kata-deploy 4.1.0 `_helpers.tpl` `kata-deploy.image`: a reference with `@` is used as is.
    assert values["image"] == {"reference": DIGEST_IMAGE}
    default = parse(dev_raw()).cluster
    assert isinstance(default, BareMetalCluster)
    assert "image" not in kata_deploy_values(default, ["kata-qemu-coco-dev"])


@pytest.mark.parametrize(
    "image",
    [
        "quay.io/kata-containers/kata-deploy:4.1.0",  # a tag is not a pin
        "quay.io/kata-containers/kata-deploy@sha256:abc",  # short digest
        "quay.io/kata-containers/kata-deploy@sha256:" + "A" * 64,  # uppercase hex
        "quay.io/Kata/kata-deploy@sha256:" + "a" * 64,  # uppercase repository
        " quay.io/kata-containers/kata-deploy@sha256:" + "a" * 64,
        "@sha256:" + "a" * 64,
    ],
)
def test_malformed_image_is_refused_naming_the_key(image: str) -> None:
    message = problems(dev_raw(image=image))["coco:cluster.install.image"]
    assert "pinned by digest" in message and "@sha256:" in message


@pytest.mark.parametrize(
    "image",
    [
        DIGEST_IMAGE,
        "registry.example.com:5000/mirror/kata-deploy@sha256:" + "f" * 64,
        "localhost/kata_deploy-x@sha256:" + "0" * 64,
    ],
)
def test_digest_images_are_accepted(image: str) -> None:
    assert kata_chart.check_image(image) == image


# --------------------------------------------------------------------------- scripts/charts.sh


def _script_repo(tmp: Path) -> Path:
    """A throwaway checkout holding only what scripts/charts.sh reads."""
    repo = tmp / "repo"
    (repo / "scripts" / "judges").mkdir(parents=True)
    for name in ("charts.sh", "debs.sh", "env.sh", "setup.sh"):
        shutil.copy(ROOT / "scripts" / name, repo / "scripts" / name)
    shutil.copy(ROOT / "scripts" / "judges" / "lib.sh", repo / "scripts" / "judges" / "lib.sh")
    return repo


def _charts_sh(repo: Path, tools: Path, upstream: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COCO_")}
    env.update(COCO_TOOLS_HOME=str(tools), COCO_UPSTREAM=str(upstream))
    return subprocess.run(
        ["bash", str(repo / "scripts" / "charts.sh")],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture
def upstream() -> Path:
    if not (UPSTREAM / ARCHIVE).is_file():
        pytest.skip(f"no {ARCHIVE} in {UPSTREAM}")
    return UPSTREAM


def test_charts_sh_extracts_the_pinned_chart_keyed_by_the_archive(
    tmp_path: Path, upstream: Path
) -> None:
    repo, tools = _script_repo(tmp_path), tmp_path / "tools"
    first = _charts_sh(repo, tools, upstream)
    assert first.returncode == 0, first.stderr
    link = repo / ".charts" / "kata-deploy-4.1.0"
    target = Path(os.readlink(link))
    assert target.is_relative_to(tools / "charts")
    # The key is the archive's own checksum, the one its SHA256SUMS line holds.
    sums = (upstream / "SHA256SUMS").read_text().splitlines()
    (line,) = [s for s in sums if s.endswith(f" {ARCHIVE}")]
    assert target.parent.name == line.split()[0][:16]
    meta = yaml.safe_load((link / "Chart.yaml").read_text())
    assert (meta["name"], str(meta["version"])) == ("kata-deploy", "4.1.0")
    # Its one dependency is vendored in the chart as released (no registry needed).
    assert (link / "charts" / "node-feature-discovery-0.19.0.tgz").is_file()
    assert kata_chart.local_chart_problem(str(link), "4.1.0") is None
    # No stamp or other file of ours inside the chart (Helm would load it as chart data).
    assert not [p for p in link.rglob("*") if "coco" in p.name]

    again = _charts_sh(repo, tools, upstream)
    assert again.returncode == 0 and again.stderr == "", again.stderr
    assert Path(os.readlink(link)) == target

    # Another (throwaway) tools home keeps the link on the finished extraction.
    other = tmp_path / "other-tools"
    third = _charts_sh(repo, other, upstream)
    assert third.returncode == 0, third.stderr
    assert Path(os.readlink(link)) == target and not (other / "charts").exists()


def test_charts_sh_refuses_an_archive_that_does_not_match_its_checksum(tmp_path: Path) -> None:
    if not (UPSTREAM / ARCHIVE).is_file():
        pytest.skip(f"no {ARCHIVE} in {UPSTREAM}")
    fake = tmp_path / "upstream"
    fake.mkdir()
    shutil.copy(UPSTREAM / ARCHIVE, fake / ARCHIVE)
    (fake / "SHA256SUMS").write_text(f"{'0' * 64}  {ARCHIVE}\n")
    proc = _charts_sh(_script_repo(tmp_path), tmp_path / "tools", fake)
    assert proc.returncode != 0
    assert "does not match its SHA256SUMS" in proc.stderr
    assert not (tmp_path / "repo" / ".charts").exists()
