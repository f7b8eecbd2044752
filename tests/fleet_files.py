"""Stack files for fleet tests: copies of the dev stack, each rendering into its own folder.

The dev stack renders manifests instead of applying them, so a fleet of its copies runs on
the real engine with no cluster. Its own `demoKey` secure value is left out (it is encrypted
under the dev stack's salt): the fleet gives `--secret demoKey=...` to every stack.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from automation.spec import PROJECT_DIR

DEV_FILE = PROJECT_DIR / "stacks" / "Pulumi.dev.yaml"


def dev_config(render_dir: Path | str) -> dict[str, Any]:
    """The dev stack's `config:` rendering into `render_dir`, without its secure value."""
    doc = yaml.safe_load(DEV_FILE.read_text(encoding="utf-8"))
    config: dict[str, Any] = copy.deepcopy(doc["config"])
    config.pop("coco:demoKey", None)
    config["coco:kubernetes"] = {"renderDir": str(render_dir)}
    return config


def write_stack(directory: Path, name: str, config: dict[str, Any]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"Pulumi.{name}.yaml"
    path.write_text(yaml.safe_dump({"config": config}, sort_keys=False), encoding="utf-8")
    return path


def dev_stack(directory: Path, name: str, render_root: Path) -> Path:
    """`Pulumi.<name>.yaml` in `directory`: the dev stack, rendering into render_root/name."""
    return write_stack(directory, name, dev_config(render_root / name))


def refused_stack(directory: Path, name: str, render_root: Path) -> Path:
    """A dev stack whose KBS secret names a config key nobody gives: refused before the
    engine, keyed `coco:trustee.resources[0].valueFrom`."""
    config = dev_config(render_root / name)
    config["coco:trustee"]["resources"][0]["valueFrom"] = "neverGivenKey"
    return write_stack(directory, name, config)


def broken_stack(directory: Path, name: str, render_root: Path) -> Path:
    """A dev stack the settings accept but the engine cannot deploy: its render folder lies
    under a regular file, so the Kubernetes provider cannot write a manifest."""
    blocker = render_root / f"{name}-is-a-file"
    blocker.parent.mkdir(parents=True, exist_ok=True)
    blocker.write_text("not a folder\n", encoding="utf-8")
    return write_stack(directory, name, dev_config(blocker / "out"))
