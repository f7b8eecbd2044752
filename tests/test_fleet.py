"""The fleet command without the engine: stack selection, refusals, outcomes, progress, table.

What must hold before any engine runs: selectors find exactly the stack files they name (a
typo is an error, not an empty fleet), a bad stack is refused with its keyed error while the
others load, each stack gets only the secrets it references, every stack ends as one outcome
with the right status, and the CLI's table and exit code say so. tests/test_e2e_fleet.py runs
the same command on the real engine.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest
from fleet_files import dev_stack, refused_stack, write_stack

from automation import (
    CocoDeploymentError,
    OperationResult,
    SecretsProviderError,
    SettingsError,
    StackFileError,
    StackSpec,
)
from automation.cli import run as cli
from automation.fleet import FleetEvent, run_fleet
from automation.fleet_report import Progress, table
from automation.fleet_stacks import StackSelectionError, load_specs, select_stack_files
from components.settings import Problem


@pytest.fixture
def stacks(tmp_path: Path) -> Path:
    directory = tmp_path / "stacks"
    for name in ("eu-1", "eu-2", "us-1"):
        dev_stack(directory, name, tmp_path / "out")
    return directory


def names(files: list[Path]) -> list[str]:
    return [f.name for f in files]


def test_selectors_names_globs_paths_and_list_files(stacks: Path, tmp_path: Path) -> None:
    assert names(select_stack_files(["us-1", "eu-*"], stacks_dir=stacks)) == [
        "Pulumi.us-1.yaml",
        "Pulumi.eu-1.yaml",
        "Pulumi.eu-2.yaml",
    ]
    # A path glob; a stack named twice (by name and by path) runs once.
    both = select_stack_files([str(stacks / "Pulumi.*.yaml"), "eu-1"], stacks_dir=stacks)
    assert names(both) == ["Pulumi.eu-1.yaml", "Pulumi.eu-2.yaml", "Pulumi.us-1.yaml"]
    # A list file: comments and blank lines skipped, relative paths from its own folder.
    listing = tmp_path / "fleet.txt"
    listing.write_text("# the EU fleet\n\nstacks/Pulumi.eu-2.yaml\neu-1  # by name\n")
    files = select_stack_files([], [listing], stacks_dir=stacks)
    assert names(files) == ["Pulumi.eu-2.yaml", "Pulumi.eu-1.yaml"]
    assert files[0] == tmp_path / "stacks" / "Pulumi.eu-2.yaml"


def test_selection_errors_stop_before_anything_runs(stacks: Path, tmp_path: Path) -> None:
    with pytest.raises(StackSelectionError, match="'ap-\\*' matches no stack file"):
        select_stack_files(["eu-1", "ap-*"], stacks_dir=stacks)
    with pytest.raises(StackSelectionError, match="no stacks selected"):
        select_stack_files([], stacks_dir=stacks)
    other = tmp_path / "other"
    dev_stack(other, "eu-1", tmp_path / "out2")
    with pytest.raises(StackSelectionError, match="same stack \\['eu-1'\\]"):
        select_stack_files(["eu-1", str(other / "Pulumi.eu-1.yaml")], stacks_dir=stacks)
    # A named stack that does not exist is that stack's refusal, not the fleet's end.
    files = select_stack_files(["eu-1", "gone"], stacks_dir=stacks)
    specs, refused = load_specs(files, {"demoKey": "x"})
    assert [s.name for s in specs] == ["eu-1"]
    assert isinstance(refused["gone"], StackFileError)
    assert "stack file not found" in str(refused["gone"])


def test_bad_stacks_are_refused_with_their_keyed_error(stacks: Path, tmp_path: Path) -> None:
    refused_stack(stacks, "no-secret", tmp_path / "out")
    bad = write_stack(stacks, "bad-env", {"coco:environment": "prodution"})
    files = [*select_stack_files(["eu-*", "no-secret"], stacks_dir=stacks), bad]
    specs, refused = load_specs(files, {"demoKey": "s3cret", "unusedKey": "other"})
    assert [s.name for s in specs] == ["eu-1", "eu-2"]
    # Each stack keeps only the secrets its settings reference.
    assert all(set(s.secrets) == {"coco:demoKey"} for s in specs)
    assert specs[0].secrets["coco:demoKey"].get_secret_value() == "s3cret"
    assert sorted(refused) == ["bad-env", "no-secret"]
    assert isinstance(refused["no-secret"], SettingsError)
    assert "coco:trustee.resources[0].valueFrom" in str(refused["no-secret"])
    assert "coco:environment" in str(refused["bad-env"])


def spec(name: str) -> StackSpec:
    return StackSpec.from_file(
        Path(__file__).resolve().parents[1] / "stacks" / "Pulumi.dev.yaml",
        name=name,
        secrets={"demoKey": "x"},
    )


def test_every_stack_ends_as_one_outcome(tmp_path: Path) -> None:
    specs = [spec(n) for n in ("a", "b", "c", "d")]
    events: list[FleetEvent] = []
    lock = threading.Lock()

    def run(s: StackSpec) -> OperationResult:
        time.sleep(0.01)
        if s.name == "b":
            raise CocoDeploymentError(stack="b", operation="preview", errors=("boom",))
        if s.name == "c":
            raise SecretsProviderError("the passphrase secrets provider needs ...")
        return OperationResult(stack=s.name, operation="preview", changes={"create": 3})

    def on_progress(event: FleetEvent) -> None:
        with lock:
            events.append(event)

    bad = SettingsError([Problem("coco:environment", "must be dev, staging or production")], "e")
    result = run_fleet(
        specs, "preview", parallel=2, run=run, on_progress=on_progress, refused={"e": bad}
    )
    assert list(result.outcomes) == ["a", "b", "c", "d", "e"]
    status = {n: o.status for n, o in result.outcomes.items()}
    assert status == {"a": "ok", "b": "failed", "c": "refused", "d": "ok", "e": "refused"}
    assert sorted(result.results) == ["a", "d"] and sorted(result.failures) == ["b", "c", "e"]
    assert not result.ok and result.counts() == {"ok": 2, "failed": 1, "refused": 2}
    assert all(o.seconds > 0 for n, o in result.outcomes.items() if n != "e")
    # Progress: each engine stack started then finished; the refused one only finished.
    for name in "abcd":
        kinds = [e.kind for e in events if e.stack == name]
        assert kinds == ["started", "finished"], (name, kinds)
    assert [e.kind for e in events if e.stack == "e"] == ["finished"]
    finished = [e for e in events if e.kind == "finished"]
    assert [e.done for e in finished] == [1, 2, 3, 4, 5] and all(e.total == 5 for e in events)
    assert max(e.running for e in events) <= 2
    lines = [Progress("preview").line(e) for e in events]
    assert any("preview b: failed in" in line and "boom" in line for line in lines)

    text = table(result)
    head, _, _ = text.partition("\npreview: ")
    rows = {line.split()[0]: line.split(None, 3) for line in head.splitlines()[1:]}
    assert list(rows) == ["a", "b", "c", "d", "e"]
    assert rows["a"][1] == "ok" and rows["a"][3] == "3 create"
    assert rows["b"][1] == "failed" and rows["b"][3].startswith("preview of stack 'b' failed")
    rows_e = " ".join(rows["e"])
    assert "refused" in rows_e and "coco:environment: must be dev" in rows_e
    assert "preview: 2 ok, 1 failed, 2 refused of 5 stacks in" in text
    assert "(at most 2 at a time)" in text
    assert "b (failed):\n  preview of stack 'b' failed" in text  # each error in full
    doc = json.loads(json.dumps(result.to_dict()))
    assert [s["status"] for s in doc["stacks"]] == ["ok", "failed", "refused", "ok", "refused"]
    assert doc["stacks"][0]["changes"] == {"create": 3} and doc["stacks"][1]["errorType"] == (
        "CocoDeploymentError"
    )


def test_run_fleet_rejects_bad_arguments() -> None:
    a = spec("a")
    with pytest.raises(ValueError, match="at least 1"):
        run_fleet([a], parallel=0)
    with pytest.raises(ValueError, match="operation must be one of"):
        run_fleet([a], "destroy")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unique"):
        run_fleet([a], refused={"a": ValueError("x")})


def test_cli_fleet_refuses_bad_stacks_without_the_engine(
    stacks: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every stack refused before an engine starts: exit 1, a row and a keyed error each."""
    refused_stack(stacks, "no-secret", tmp_path / "out")
    args = ["fleet", "refresh", "eu-1", "no-secret", "--stacks-dir", str(stacks)]
    assert cli([*args, "--secret", "demoKey=x", "--json", str(tmp_path / "r.json")]) == 1
    captured = capsys.readouterr()
    assert "refresh no-secret: refused" in captured.err  # a progress line
    # Refresh of a render-mode stack is refused, keyed and with what to do instead.
    assert "coco:kubernetes.renderDir: refresh reads objects back from a cluster" in captured.out
    assert "coco:trustee.resources[0].valueFrom" in captured.out
    assert "refresh: 2 refused of 2 stacks" in captured.out
    doc = json.loads((tmp_path / "r.json").read_text())
    assert [(s["stack"], s["status"]) for s in doc["stacks"]] == [
        ("eu-1", "refused"),
        ("no-secret", "refused"),
    ]


def test_cli_fleet_bad_command_lines_exit_2(
    stacks: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli(["fleet", "up", "nothing-*", "--stacks-dir", str(stacks)]) == 2
    assert "'nothing-*' matches no stack file" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        cli(["fleet", "up", "eu-1", "--parallel", "0"])
    assert exit_info.value.code == 2
    assert "at least 1" in capsys.readouterr().err
    assert cli(["fleet", "up", "eu-1", "--secret", "novalue", "--stacks-dir", str(stacks)]) == 2
