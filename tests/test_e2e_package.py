"""The component package as the Pulumi CLI serves it (real engine, no language host needed).

`package/pulumi-resource-coco` is an executable plugin, which the CLI runs directly
(`pkg/cmd/pulumi/packageinstallation` takes a local path that is an executable as the plugin
itself); `pulumi package get-schema` is what `pulumi package add` and every SDK generator read.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from components.package.provider import schema

ROOT = Path(__file__).resolve().parent.parent
PLUGIN = ROOT / "package" / "pulumi-resource-coco"

pytestmark = pytest.mark.e2e


def cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    if shutil.which("pulumi") is None:
        pytest.fail("the pulumi CLI is not on PATH: run `bash scripts/setup.sh`")
    env = {
        **os.environ,
        "PULUMI_BACKEND_URL": f"file://{tmp_path}",
        "PULUMI_SKIP_UPDATE_CHECK": "true",
        "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION": "true",
    }
    return subprocess.run(
        ["pulumi", *args, "--non-interactive"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def shape(properties: dict[str, Any]) -> dict[str, tuple[Any, ...]]:
    """Property -> (type, $ref, plain, secret): what a consumer is typed and checked against."""
    return {
        name: tuple(p.get(k) for k in ("type", "$ref", "plain", "secret"))
        for name, p in properties.items()
    }


def test_the_cli_serves_the_package_schema(tmp_path: Path) -> None:
    out = cli(tmp_path, "package", "get-schema", str(PLUGIN))
    assert out.returncode == 0, out.stderr
    served = json.loads(out.stdout)
    assert served["name"] == "coco" and served["version"] == "0.1.0"
    assert sorted(served["resources"]) == [
        "coco:index:ConfidentialWorkload",
        "coco:index:Trustee",
        "coco:index:TrusteeTls",
    ]
    # What the CLI got over gRPC is the schema the Python provider builds (the CLI re-encodes
    # it, dropping empty lists and item descriptions), secrets marked.
    built = schema()
    assert sorted(served["types"]) == sorted(built["types"])
    for token, resource in built["resources"].items():
        for section in ("inputProperties", "properties"):
            assert shape(served["resources"][token][section]) == shape(resource[section]), token
        assert sorted(served["resources"][token].get("requiredInputs", [])) == sorted(
            resource["requiredInputs"]
        )
    tls = served["resources"]["coco:index:TrusteeTls"]
    assert tls["properties"]["privateKeyPem"]["secret"] is True


def test_a_plugin_folder_without_pulumiplugin_yaml_is_refused_with_the_reason(
    tmp_path: Path,
) -> None:
    """Why the package is added by the executable's path, not its folder (docs/embedding.md):
    a folder is run through its PulumiPlugin.yaml runtime, and without one the CLI looks for
    an executable named after an empty package name."""
    out = cli(tmp_path, "package", "get-schema", str(PLUGIN.parent))
    assert out.returncode != 0
    assert 'an executable named "pulumi-resource-" or a PulumiPlugin file' in out.stderr
