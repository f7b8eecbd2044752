"""The deploying machine's checks (components/preflight.py), run by the program first."""

from __future__ import annotations

from pathlib import Path

from automation.spec import PROJECT_DIR
from components.preflight import kubeconfig_problem
from components.settings import KubernetesTarget


def test_missing_kubeconfig_file_is_a_keyed_error(tmp_path: Path) -> None:
    missing = kubeconfig_problem(KubernetesTarget(kubeconfig=str(tmp_path / "nope.yaml")))
    assert missing is not None
    assert missing.startswith("coco:kubernetes.kubeconfig: no kubeconfig file at")
    assert "cannot unmarshal" not in missing
    huge = kubeconfig_problem(KubernetesTarget(kubeconfig="k" * 100_000))
    assert huge is not None and len(huge) < 2000


def test_usable_kubeconfigs_pass(tmp_path: Path) -> None:
    config = tmp_path / "kubeconfig"
    config.write_text("apiVersion: v1\nkind: Config\n")
    assert kubeconfig_problem(KubernetesTarget(kubeconfig=str(config))) is None
    inline = "apiVersion: v1\nkind: Config\n"
    assert kubeconfig_problem(KubernetesTarget(kubeconfig=inline)) is None
    assert kubeconfig_problem(KubernetesTarget(render_dir="out")) is None
    assert kubeconfig_problem(KubernetesTarget()) is None  # the ambient KUBECONFIG


def test_the_program_checks_before_building() -> None:
    text = (PROJECT_DIR / "__main__.py").read_text()
    assert text.index("kubeconfig_problem(settings.kubernetes)") < text.index(
        "build_stack(settings)"
    )
