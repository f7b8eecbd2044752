"""Embed coco in other programs: typed preview/up/refresh/destroy/outputs of a coco stack.

    from automation import Backend, StackSpec, up, destroy

    spec = StackSpec.from_stack("dev", secrets={"demoKey": "s3cret"})
    result = up(spec, on_output=print)            # the repo's real program, real engine
    print(result.summary(), result.outputs.masked())
    destroy(spec, remove=True)

A stack is a `StackSpec`: a name, the typed `StackSettings` (not YAML) and the secret
config values the settings reference. Settings are validated before the engine starts
(`SettingsError`); engine failures raise `CocoDeploymentError` naming the stack and the
failed resources. State goes to `PULUMI_BACKEND_URL` or `<repo>/.state` unless a `Backend`
says otherwise. An interrupt (^C, or `interrupt_running()` from any thread) cancels the
engine as `pulumi` does and raises `EngineInterrupted`; a lock left by a crashed engine is
recovered by the next operation, and `cancel` clears a stack by hand (docs/operations.md).
`run_fleet` runs preview, up or refresh over many stacks, a bounded number at a time, each
ending as a `StackOutcome` (`deploy_many` is its `up`). `python -m automation` is a small CLI
on this API (`fleet` for many stacks).
"""

from automation.engine import EngineInterrupted, interrupt_running
from automation.errors import (
    CocoAutomationError,
    CocoDeploymentError,
    EngineNotFoundError,
    FailedResource,
    PolicyViolation,
    SecretsProviderError,
    StackFileError,
)
from automation.fleet import FleetEvent, FleetResult, StackOutcome, deploy_many, run_fleet
from automation.operations import cancel, destroy, outputs, preview, refresh, render, up
from automation.results import OperationResult, StackOutputs
from automation.spec import Backend, StackSpec, validate
from components.settings import SettingsError, StackSettings

__all__ = [
    "Backend",
    "CocoAutomationError",
    "CocoDeploymentError",
    "EngineInterrupted",
    "EngineNotFoundError",
    "FailedResource",
    "FleetEvent",
    "FleetResult",
    "OperationResult",
    "PolicyViolation",
    "SecretsProviderError",
    "SettingsError",
    "StackFileError",
    "StackOutcome",
    "StackOutputs",
    "StackSettings",
    "StackSpec",
    "cancel",
    "deploy_many",
    "destroy",
    "interrupt_running",
    "outputs",
    "preview",
    "refresh",
    "render",
    "run_fleet",
    "up",
    "validate",
]
