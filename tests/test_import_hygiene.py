"""A bare-metal stack never loads a cloud SDK; a peer-pods stack loads only its own.

pulumi-aws, pulumi-azure-native and pulumi-gcp are large generated packages: a preview of
an on-prem TDX cluster must not pay for importing them, and an AWS stack must not pay for
Azure's. This is about *which* modules load, never about how long anything takes (timings
live in `python -m benchmarks`). Each check runs in a fresh interpreter, since this test
process has long since imported everything, and covers what a preview does: import the
program's modules, parse the stack's settings and run `build` under mocks (the SDKs load
their submodules lazily, on first use, so importing alone would prove too little).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
STACKS = REPO / "stacks"
CLOUD_SDKS = {"aws": "pulumi_aws", "azure": "pulumi_azure_native", "gcp": "pulumi_gcp"}

# Runs in the child: build each named stack under mocks, then print the cloud SDKs loaded.
_CHILD = r"""
import json, sys
import yaml
import pulumi
from components.settings import full_key, parse, secret_refs, strip_namespace
from components.stack import build
from tests.mocks import CloudMocks

SDKS = ("pulumi_aws", "pulumi_azure_native", "pulumi_gcp")
loaded = {}
for path in sys.argv[1:]:
    raw = yaml.safe_load(open(path))["config"]
    settings = parse(strip_namespace(raw))
    config, secret = {}, []
    for key, value in raw.items():
        if isinstance(value, dict) and set(value) == {"secure"}:
            config[key] = "placeholder"
            secret.append(key)
        else:
            config[key] = value if isinstance(value, str) else json.dumps(value)
    for _, ref in secret_refs(settings):
        config.setdefault(full_key(ref), "placeholder")
        secret.append(full_key(ref))
    pulumi.runtime.set_mocks(CloudMocks(), project="coco", stack="hygiene", preview=False)
    pulumi.runtime.set_all_config(config, secret)

    @pulumi.runtime.test
    def run():
        build(settings)

    run()
    loaded[path] = sorted(m for m in SDKS if m in sys.modules)
print(json.dumps(loaded))
"""


def _kind(path: Path) -> tuple[str, str | None]:
    cluster = (yaml.safe_load(path.read_text())["config"]).get("coco:cluster", {})
    if cluster.get("kind") == "peerpods":
        return "peerpods", cluster["cloud"]["provider"]
    return "baremetal", None


def _stacks(kind: str) -> list[Path]:
    return sorted(p for p in STACKS.glob("Pulumi.*.yaml") if _kind(p)[0] == kind)


def _sdks_loaded(paths: list[Path]) -> dict[str, list[str]]:
    """Build the stacks one after another in a fresh interpreter; SDKs loaded after each."""
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, *map(str, paths)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    result: dict[str, list[str]] = json.loads(done.stdout.strip().splitlines()[-1])
    return {Path(k).name: v for k, v in result.items()}


def test_bare_metal_stacks_load_no_cloud_sdk() -> None:
    stacks = _stacks("baremetal")
    assert stacks, "no bare-metal stack in stacks/"
    loaded = _sdks_loaded(stacks)
    assert loaded == {p.name: [] for p in stacks}


@pytest.mark.parametrize("stack", _stacks("peerpods"), ids=lambda p: p.name)
def test_peer_pods_stack_loads_only_its_own_cloud_sdk(stack: Path) -> None:
    # Also shows the check above can see an SDK being loaded.
    cloud = _kind(stack)[1]
    assert cloud is not None
    assert _sdks_loaded([stack]) == {stack.name: [CLOUD_SDKS[cloud]]}
