"""kube-score, a Kubernetes manifest linter, judges every manifest coco renders.

Judge: scripts/judges/kube-score (github.com/zegl/kube-score v1.20.0, built from its Go
module). Every stack is rendered by the real engine: the bare-metal ones as render-mode
stacks, as the end-to-end tests do, the peer-pods ones by `python -m automation render` with
the pinned peerpods chart (their cloud side is not rendered, so not scored). kube-score
scores each render folder at once (so it sees which
NetworkPolicy and PodDisruptionBudget select which pods). Every finding (a check graded below
"all OK", not skipped) must be justified by an entry of the checked-in allow list
`kube_score_allow.yaml`; an entry that no longer matches anything is an error too, so the list
shrinks as coco improves (docs/hardening.md).
"""

from __future__ import annotations

import fnmatch
import json
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from judges import judge_dir
from test_e2e_engine import STACKS, Project, secret_keys
from test_peerpods_render import STACKS as PEER_PODS_STACKS
from test_peerpods_render import render as render_peer_pods

pytestmark = [pytest.mark.conformance, pytest.mark.e2e]

ALLOW_FILE = Path(__file__).with_name("kube_score_allow.yaml")
KUBERNETES_VERSION = "v1.32"
"""The oldest Kubernetes coco supports (components/podspec.py OLDEST_SUPPORTED)."""
OPTIONAL_CHECKS = ("container-seccomp-profile", "container-memory-requests-equal-limits")
"""Optional kube-score checks coco's defaults answer (components/hardening.py), so enabled."""
ALL_OK = 10
"""kube-score `scorecard.GradeAllOK`; anything lower is a finding."""


@dataclass(frozen=True)
class Finding:
    stack: str
    object: str
    """`Kind/namespace/name`."""
    check: str
    summary: str
    container: str

    def __str__(self) -> str:
        where = f" [{self.container}]" if self.container else ""
        return f"{self.stack}: {self.object}{where}: {self.check}: {self.summary}"


def allow_list() -> list[dict[str, Any]]:
    entries = yaml.safe_load(ALLOW_FILE.read_text(encoding="utf-8"))
    assert isinstance(entries, list) and entries
    return entries


def allowed_by(entry: dict[str, Any], finding: Finding) -> bool:
    return (
        entry["check"] == finding.check
        and any(fnmatch.fnmatchcase(finding.object, glob) for glob in entry["objects"])
        and ("summary" not in entry or entry["summary"] == finding.summary)
        and any(fnmatch.fnmatchcase(finding.stack, glob) for glob in entry.get("stacks", ["*"]))
    )


def findings(stack: str, report: list[dict[str, Any]]) -> list[Finding]:
    """kube-score's JSON v2 report (renderer/json_v2/api.go) as one finding per comment."""
    out = []
    for scored in report:
        meta = scored["object_meta"]
        name = f"{scored['type_meta']['kind']}/{meta.get('namespace') or '-'}/{meta['name']}"
        for check in scored["checks"] or []:
            if check["skipped"] or check["grade"] >= ALL_OK:
                continue
            comments = check["comments"] or [{"path": "", "summary": ""}]
            out += [
                Finding(stack, name, check["check"]["id"], c["summary"], c["path"])
                for c in comments
            ]
    return out


def render(tmp_path: Path, stack: str) -> Path:
    """The stack rendered by the real engine (kata-deploy from its local chart where the
    stack names one), as test_e2e_engine.py does."""
    (tmp_path / stack).mkdir()
    project = Project(tmp_path / stack, stack)
    config = project.write_stack_file(stack, local_chart=True)
    project.pulumi("stack", "init")
    for key in secret_keys(config):
        project.pulumi("config", "set", "--secret", key, f"kube-score-{stack}-{key}")
    project.pulumi("up", "--yes", "--skip-preview")
    return project.render_dir


def score(binary: Path, files: list[Path]) -> list[dict[str, Any]]:
    args = [str(binary), "score", "--output-format", "json", "--output-version", "v2"]
    args += ["--kubernetes-version", KUBERNETES_VERSION]
    for check in OPTIONAL_CHECKS:
        args += ["--enable-optional-test", check]
    # Exit status 1 means "findings"; the report says which.
    proc = subprocess.run(
        [*args, *map(str, files)], capture_output=True, text=True, timeout=300, check=False
    )
    assert proc.returncode in (0, 1), proc.stderr
    report: list[dict[str, Any]] = json.loads(proc.stdout)
    return report


def test_the_allow_list_justifies_every_entry() -> None:
    for i, entry in enumerate(allow_list()):
        assert set(entry) <= {"check", "objects", "summary", "stacks", "why"}, i
        assert entry["check"] and entry["objects"], i
        assert len(str(entry.get("why", "")).split()) >= 8, f"entry {i}: say why (a sentence)"


def test_every_rendered_manifest_passes_kube_score(tmp_path: Path) -> None:
    binary = judge_dir("kube-score") / "bin" / "kube-score"
    entries = allow_list()
    used = [False] * len(entries)
    unjustified: list[str] = []
    scored_kinds: set[str] = set()
    # Bare metal through a render-mode stack; peer pods through `automation render` with the
    # pinned peerpods chart (their cloud side is not rendered, so not scored).
    folders = [(stack, render(tmp_path, stack)) for stack in STACKS]
    for stack in PEER_PODS_STACKS:
        (tmp_path / stack).mkdir()
        folders.append((stack, render_peer_pods(stack, tmp_path / stack)[1]))
    for stack, folder in folders:
        files = sorted(folder.rglob("*.yaml"))
        assert files, f"{stack} rendered nothing"
        report = score(binary, files)
        scored_kinds |= {o["type_meta"]["kind"] for o in report}
        for finding in findings(stack, report):
            matches = [i for i, e in enumerate(entries) if allowed_by(e, finding)]
            for i in matches:
                used[i] = True
            if not matches:
                unjustified.append(str(finding))
    # coco's own workloads, the KBS and their guards were all scored.
    assert {"Deployment", "NetworkPolicy", "Service"} <= scored_kinds, scored_kinds
    assert not unjustified, "kube-score findings not in kube_score_allow.yaml:\n" + "\n".join(
        unjustified
    )
    stale = [f"{e['check']} {e['objects']}" for e, u in zip(entries, used, strict=True) if not u]
    assert not stale, f"allow-list entries that match no finding any more: {stale}"
