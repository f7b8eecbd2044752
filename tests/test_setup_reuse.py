"""scripts/setup.sh uses the user's own Pulumi (CLI, language host, kubernetes plugin) and opa.

A "user install" is laid out in a temporary directory the way a Pulumi release archive and a
plugin cache are (here made of the engine this project built), and setup.sh runs against an
empty tools home: it must take everything from there, build nothing, and leave a working
engine. COCO_BUILD_ENGINE=1 (the pinned build) is what CI uses; it is not run here (it is the
12-minute build the suite already depends on).
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parent.parent
HOST_FILES = ("pulumi", "pulumi-language-python", "pulumi-language-python-exec")
HOST_FILES += ("pulumi-resource-pulumi-python",)


def test_setup_uses_the_users_pulumi_and_builds_nothing(tmp_path: Path) -> None:
    tools_bin = Path(os.environ.get("COCO_TOOLS_BIN", "/nonexistent"))
    provider = tools_bin.parent / "providers" / "pulumi-resource-kubernetes"
    if not (tools_bin / "pulumi").exists() or not provider.exists():
        pytest.fail("the engine is not built: run `bash scripts/setup.sh; source scripts/env.sh`")
    user_bin = tmp_path / "user" / "bin"
    user_bin.mkdir(parents=True)
    for name in (*HOST_FILES, "opa"):
        (user_bin / name).symlink_to(tools_bin / name)
    version = os.environ.get("COCO_K8S_PROVIDER_VERSION", "")
    if not version:
        pytest.fail("COCO_K8S_PROVIDER_VERSION is unset: run `source scripts/env.sh`")
    plugin = tmp_path / "user" / ".pulumi" / "plugins" / f"resource-kubernetes-v{version}"
    plugin.mkdir(parents=True)
    (plugin / "pulumi-resource-kubernetes").symlink_to(provider)

    path = [p for p in os.environ["PATH"].split(":") if p and Path(p) != tools_bin]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COCO_", "PULUMI_"))}
    env.update(
        PATH=":".join([str(user_bin), *path]),
        COCO_TOOLS_HOME=str(tmp_path / "tools"),
        COCO_USER_PULUMI_HOME=str(tmp_path / "user" / ".pulumi"),
        COCO_SKIP_VENV="1",
    )
    start = time.monotonic()
    proc = subprocess.run(
        ["bash", str(ROOT / "scripts" / "setup.sh")],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    elapsed = time.monotonic() - start
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-4000:]
    assert "using your Pulumi v" in log and f"using your plugin v{version}" in log, log
    assert "[setup] building" not in log and "[setup] built " not in log, log
    assert elapsed < 180, f"reuse took {elapsed:.0f} s"

    new_bin = Path(proc.stdout.split("COCO_TOOLS_BIN=", 1)[1].splitlines()[0])
    assert new_bin.is_relative_to(tmp_path / "tools")
    for name in (*HOST_FILES, "opa"):
        assert (new_bin / name).is_file() and not (new_bin / name).is_symlink(), name
    cli = subprocess.run(
        [str(new_bin / "pulumi"), "version"], capture_output=True, text=True, check=True
    )
    assert cli.stdout.startswith("v3.")
    installed = tmp_path / "tools" / "pulumi-home" / "plugins" / f"resource-kubernetes-v{version}"
    assert (installed / "pulumi-resource-kubernetes").exists()

    # A second run is a no-op that still uses the user's engine.
    again = subprocess.run(
        ["bash", str(ROOT / "scripts" / "setup.sh")],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert again.returncode == 0 and "[setup] building" not in again.stderr, again.stderr[-2000:]
