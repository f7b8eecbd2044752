"""The engine is stamped with the versions it really is, so no `pulumi` command warns about them.

The Kubernetes provider is built from the only provider/v4 module version the Go proxy serves,
a pseudo-version whose commit is upstream's tag v4.25.0 (scripts/ENGINE.md). Stamped with the
pseudo-version, every command printed `resource plugin kubernetes is expected to have version
>=4.34.2, but has 4.0.0-2026…`, and users learn to ignore warnings. The fix is the truth on both
sides: the provider stamped as the release it is, the Python SDK pinned to that release.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
from test_e2e_engine import Project

ROOT = Path(__file__).resolve().parent.parent
SETUP = ROOT / "scripts" / "setup.sh"

# What the engine prints when a plugin reports a version below the one a program requests.
VERSION_WARNING = re.compile(r"is expected to have version|but has \d")


def env_sh(name: str) -> str:
    """A variable as scripts/env.sh exports it (in a clean shell, so the test's own
    environment cannot stand in for the file)."""
    script = f'source "$1" >/dev/null && printf %s "${name}"'
    out = subprocess.run(
        ["bash", "-c", script, "_", ROOT / "scripts" / "env.sh"],
        env={"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/root")},
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout


def provider_release(module_version: str) -> subprocess.CompletedProcess[str]:
    """setup.sh's own `k8s_provider_release` (the function, not a copy of its table)."""
    script = (
        'die() { printf "%s\\n" "$*" >&2; exit 1; }\n'
        f'eval "$(sed -n "/^k8s_provider_release() {{/,/^}}/p" "{SETUP}")"\n'
        'k8s_provider_release "$1"\n'
    )
    return subprocess.run(
        ["bash", "-c", script, "_", module_version], capture_output=True, text=True, check=False
    )


def sdk_pin() -> str:
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    (pin,) = [d for d in deps if d.startswith("pulumi-kubernetes==")]
    return pin.split("==", 1)[1]


def test_the_provider_is_stamped_as_the_release_the_sdk_requests() -> None:
    module = env_sh("COCO_K8S_PROVIDER_MODULE_VERSION")
    stamped = env_sh("COCO_K8S_PROVIDER_VERSION")
    release = provider_release(module)
    assert release.returncode == 0, release.stderr
    # The module's commit is this release, the plugin is installed and stamped as it ...
    assert release.stdout.strip() == stamped
    # ... and it is what the Python SDK requests: the pin, and the installed package's own
    # plugin manifest, which the language host reports to the engine as the required plugin.
    assert sdk_pin() == stamped
    assert metadata.version("pulumi_kubernetes") == stamped
    import pulumi_kubernetes

    manifest = Path(pulumi_kubernetes.__file__).parent / "pulumi-plugin.json"
    assert json.loads(manifest.read_text())["version"] == stamped


def test_a_pseudo_version_of_no_known_release_is_refused() -> None:
    unknown = provider_release("v4.0.0-20260301000000-0123456789ab")
    assert unknown.returncode != 0
    assert "pseudo-version of no known release" in unknown.stderr
    # A tagged module version is its own release.
    assert provider_release("v4.34.2").stdout.strip() == "4.34.2"


@pytest.mark.e2e
def test_no_pulumi_command_warns_about_plugin_versions(tmp_path: Path) -> None:
    """`stack init`, a clean `up`, `preview`, `plugin ls` and `destroy` of the dev stack with the
    real engine: nothing warns, and the engine sees the kubernetes plugin at the stamped release."""
    project = Project(tmp_path, "dev")
    project.write_stack_file("dev", local_chart=True)
    outputs = [
        project.pulumi("stack", "init"),
        project.pulumi("up", "--yes", "--skip-preview"),
        project.pulumi("preview", "--expect-no-changes"),
    ]
    plugins = subprocess.run(
        ["pulumi", "plugin", "ls", "--project", "--json"],
        cwd=project.dir,
        env=project.env,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    outputs.append(project.pulumi("destroy", "--yes", "--skip-preview"))
    text = "\n".join(o.stdout + o.stderr for o in [*outputs, plugins])
    assert not VERSION_WARNING.search(text), text
    warnings = [line for line in text.splitlines() if re.search(r"\bwarning\b", line, re.I)]
    assert not warnings, "\n".join(warnings)
    listed = {(p["name"], p["kind"]): p["version"] for p in json.loads(plugins.stdout)}
    assert listed[("kubernetes", "resource")] == env_sh("COCO_K8S_PROVIDER_VERSION")
