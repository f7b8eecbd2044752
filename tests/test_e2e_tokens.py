"""The move to `coco:index:<Name>` tokens keeps a deployed stack's resources (real engine).

A stack deployed by the previous release holds URNs with the old tokens
(`coco:workload:ConfidentialWorkload`, `coco:trustee:Tls`, ...) on the components and, through
the parent type chain, on every child. The test deploys the dev stack with a `coco:manifests`
chart (render mode: cluster, TLS, Trustee, workload and manifests components), rewrites
its exported state to the old tokens as if the previous release had written it, imports it,
and checks that the engine plans nothing but `same` steps (the aliases match components and,
inherited, their children: no create, delete or replace) and that an `up` then moves the state
to the new tokens without touching a rendered manifest.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from test_e2e_engine import Project, webapp_chart

from components import tokens

pytestmark = pytest.mark.e2e

# Longest name first: `coco:index:Trustee` is a prefix of `coco:index:TrusteeTls`.
_NEW = re.compile(
    r"coco:index:(" + "|".join(sorted(tokens.PREVIOUS, key=len, reverse=True)) + r")(?![A-Za-z])"
)


def to_previous_tokens(text: str) -> str:
    """A state export as the release before `coco:index:` tokens would have written it."""
    return _NEW.sub(lambda m: tokens.PREVIOUS[m.group(1)], text)


def test_previous_tokens_rewrite_every_component() -> None:
    text = "coco:index:Trustee$coco:index:TrusteeTls::kbs coco:index:ConfidentialWorkload"
    assert to_previous_tokens(text) == (
        "coco:trustee:Trustee$coco:trustee:Tls::kbs coco:workload:ConfidentialWorkload"
    )


def change_summary(project: Project) -> dict[str, int]:
    """Step kind -> count, of a `pulumi preview --json` (its `changeSummary`)."""
    out = project.pulumi("preview", "--json").stdout
    summary: dict[str, int] = json.loads(out)["changeSummary"]
    return summary


def test_a_stack_deployed_with_the_old_tokens_keeps_its_resources(tmp_path: Path) -> None:
    project = Project(tmp_path, "dev")
    project.write_stack_file("dev")
    # A `coco:manifests` chart too: its objects sit two components deep
    # (ConfidentialManifests > helm Chart > objects), so their URNs carry both parent types.
    chart = webapp_chart("sha256:" + "c" * 64)
    project.edit_config(lambda config: config.update({"coco:manifests": [chart]}))
    project.pulumi("stack", "init")
    project.pulumi("up", "--yes", "--skip-preview")
    current = project.pulumi("stack", "export").stdout
    urns = [r["urn"] for r in json.loads(current)["deployment"]["resources"]]
    assert any("coco:index:ConfidentialWorkload" in u for u in urns)
    assert any("coco:index:TrusteeTls$" in u for u in urns), "children embed the parent type"
    assert any("coco:index:ConfidentialManifests$kubernetes:helm.sh" in u for u in urns)
    before = {p: p.read_text() for p in sorted(project.render_dir.rglob("*.yaml"))}

    # The previous release's state: every URN, type and parent with the old tokens.
    old = to_previous_tokens(current)
    assert "coco:index:" not in old
    old_urns = {r["urn"] for r in json.loads(old)["deployment"]["resources"]}
    assert "coco:workload:ConfidentialWorkload" in "".join(old_urns)
    state = tmp_path / "old-state.json"
    state.write_text(old)
    project.pulumi("stack", "import", "--file", str(state))

    # Every resource matched through an alias: nothing created, deleted or replaced. (The
    # engine's default providers are not counted in the summary.)
    summary = change_summary(project)
    counted = [u for u in urns if not u.endswith("::default")]
    assert summary == {"same": len(counted)}, summary
    project.pulumi("preview", "--expect-no-changes")

    project.pulumi("up", "--yes", "--skip-preview")
    moved = json.loads(project.pulumi("stack", "export").stdout)["deployment"]["resources"]
    assert sorted(r["urn"] for r in moved) == sorted(urns), "state moved to the new tokens"
    after = {p: p.read_text() for p in sorted(project.render_dir.rglob("*.yaml"))}
    assert after == before, "no manifest was rewritten"
    project.pulumi("preview", "--expect-no-changes")
    project.pulumi("destroy", "--yes", "--skip-preview")
