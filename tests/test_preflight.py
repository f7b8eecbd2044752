"""The deploying machine's checks (components/preflight.py), run by the program first."""

from __future__ import annotations

from pathlib import Path

import pytest

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


def test_a_cancelled_monitor_call_is_a_run_error_not_a_traceback() -> None:
    import grpc
    import pulumi
    from pulumi.runtime import settings

    from components.cancellation import CANCELLED_MESSAGE, quiet_cancellation

    class Failed(grpc.RpcError):
        def __init__(self, code: grpc.StatusCode) -> None:
            self._code = code

        def code(self) -> grpc.StatusCode:
            return self._code

        def details(self) -> str:
            return "context canceled"

    original = settings.grpc_error_to_exception
    try:
        quiet_cancellation()
        quiet_cancellation()  # idempotent
        cancelled = settings.grpc_error_to_exception(Failed(grpc.StatusCode.CANCELLED))
        assert isinstance(cancelled, pulumi.RunError) and str(cancelled) == CANCELLED_MESSAGE
        other = settings.grpc_error_to_exception(Failed(grpc.StatusCode.INTERNAL))
        assert type(other) is Exception
        with pytest.raises(pulumi.RunError):
            settings.handle_grpc_error(Failed(grpc.StatusCode.CANCELLED))
    finally:
        settings.grpc_error_to_exception = original
