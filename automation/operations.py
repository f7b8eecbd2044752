"""The operations: preview, up, refresh, destroy, outputs, and render (up into a folder).

Each one validates the settings first (a `SettingsError` means the engine never started),
then runs in the stack's own workspace, streams the engine's text to `on_output` and its
events to `on_event` as they happen, and returns a typed `OperationResult`. When the engine
fails, the failure is raised as `CocoDeploymentError` naming the stack and the resources
that failed, built from the engine events rather than from parsing CLI text.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pulumi import automation as auto

from automation import engine
from automation.errors import CocoDeploymentError
from automation.events import EventHandler, EventLog
from automation.results import Operation, OperationResult, StackOutputs, op_counts
from automation.spec import PROJECT_DIR, Backend, StackSpec, validate
from automation.workspace import open_stack, project_file, remove_workspace
from components import kata_chart, yaml_input
from components.settings import (
    NAMESPACE,
    BareMetalCluster,
    KubernetesTarget,
    Problem,
    SettingsError,
    StackSettings,
)
from components.topology import TrusteeClusterTarget
from policies.pack.production import (
    PolicyException,
    PolicyExceptionsError,
    policy_exceptions,
    stack_policy_config,
)

PACK_DIR = PROJECT_DIR / "policies" / "pack"
"""coco's own policy pack (`coco-production`)."""

RENDER_SUBDIRS = ("0-crd", "1-manifest")
"""The folders the Kubernetes provider writes rendered manifests into, under renderDir."""

RENDER_REFRESH = (
    "refresh reads objects back from a cluster, and a render-mode stack has none (its objects "
    "are files in renderDir for your GitOps tool): for drift, run `python -m automation up` on "
    "this stack again and `git diff` its renderDir (its own state keeps the KBS keys, so only "
    "real changes show; `python -m automation render` uses a throwaway stack with fresh KBS "
    "keys, so its init-data differs on every run), or ask your GitOps tool "
    "(e.g. `argocd app diff`, `flux diff`); to clear pending operations left by an interrupted "
    "run, `python -m automation cancel --stack NAME`"
)

OutputHandler = Callable[[str], None]
PolicyPacks = Sequence[str | os.PathLike[str]]
T = TypeVar("T")

_DETAIL_CHARS = 4000


def _tail(text: str) -> str:
    return text if len(text) <= _DETAIL_CHARS else "...\n" + text[-_DETAIL_CHARS:]


def _run(
    target: StackSpec | str,
    operation: str,
    backend: Backend | None,
    on_event: EventHandler | None,
    body: Callable[[auto.Stack, EventLog], T],
    check: bool = True,
    notify: OutputHandler | None = None,
) -> T:
    """Open the stack and run `body`; engine failures become `CocoDeploymentError`.

    A spec's settings are validated first (`check`), so invalid settings never reach the
    engine; `destroy` skips that, since tearing down needs the state, not valid settings.
    """
    if check and isinstance(target, StackSpec):
        validate(target)
    name = target if isinstance(target, str) else target.name
    log = EventLog(on_event)
    be = backend or Backend()
    try:
        for attempt in range(3):
            opened: list[auto.Stack] = []
            try:
                with open_stack(target, be) as stack:
                    opened.append(stack)
                    return body(stack, log)
            except auto.CommandError as err:
                # What a crashed engine (kill -9) left: a truncated checkpoint (seen as soon
                # as the stack is selected), a lock (when the operation starts). Recover and
                # run again, so the operator has nothing to do (automation/engine.py);
                # anything else is the operation's own failure.
                if attempt == 2 or not _recovered(name, opened, be, str(err), notify):
                    raise
                log = EventLog(on_event)
        raise AssertionError("unreachable")  # pragma: no cover
    except engine.EngineInterrupted as err:
        raise engine.EngineInterrupted(name, operation, err.output) from None
    except auto.StackNotFoundError as err:
        raise CocoDeploymentError(
            stack=name, operation=operation, errors=(f"stack {name!r} does not exist",)
        ) from err
    except auto.CommandError as err:
        holders = engine.lock_holders(str(err))
        if holders:
            raise CocoDeploymentError(
                stack=name, operation=operation, errors=(str(engine.EngineBusy(name, holders)),)
            ) from err
        raise log.error(name, operation, detail=_tail(str(err))) from err


def _recovered(
    name: str,
    opened: list[auto.Stack],
    backend: Backend,
    error: str,
    notify: OutputHandler | None,
) -> bool:
    """Repair what a crashed engine left, if `error` is that; True when something was."""
    holders = engine.stale_holders(error)
    if holders is not None and opened:
        engine.recover(opened[0], holders, notify)
        return True
    state_dir = backend.file_dir
    if (
        engine.CHECKPOINT_UNREADABLE in error
        and state_dir is not None
        and engine.restore_checkpoint(state_dir, str(project_file()["name"]), name)
    ):
        (notify or print)(
            f"recovering stack {name!r}: its checkpoint was cut short by a crashed engine; "
            "restored the previous one (the last step runs again)"
        )
        return True
    return False


EXCEPTIONS_ENV = "COCO_POLICY_EXCEPTIONS"
"""Environment variable naming the organisation's policy-exceptions file (YAML or JSON)."""


def gated(spec: StackSpec) -> bool:
    """A stack that is not dev is deployed only through the policy gate."""
    return spec.settings.environment != "dev"


def load_policy_exceptions(
    path: str | os.PathLike[str] | None = None,
) -> dict[str, PolicyException]:
    """The exceptions in `path` (default: $COCO_POLICY_EXCEPTIONS), validated; {} without one."""
    if path is None:
        path = os.environ.get(EXCEPTIONS_ENV) or None
    if path is None:
        return {}
    try:
        raw = yaml_input.read_file(Path(path)) or {}
    except (OSError, ValueError) as err:
        raise PolicyExceptionsError(f"policy exceptions {path}: cannot read: {err}") from None
    if not isinstance(raw, dict):
        raise PolicyExceptionsError(f"policy exceptions {path}: a mapping of policy -> exception")
    return policy_exceptions(raw)


def policy_config(
    settings: StackSettings, exceptions: str | os.PathLike[str] | None = None
) -> dict[str, Any]:
    """The coco pack's `--policy-pack-config` document for a stack (levels and hardware)."""
    return stack_policy_config(
        settings.environment,
        settings.hardware,
        load_policy_exceptions(exceptions),
        opted_in=settings.checklist.opted_in_policies() if settings.checklist else (),
        remote_trustee=settings.trustee_topology.remote_trustee,
    )


def gate_packs(spec: StackSpec, policy_packs: PolicyPacks) -> list[str | os.PathLike[str]]:
    """The packs an operation runs: the caller's, plus coco's own for every non-dev stack."""
    packs = list(policy_packs)
    if gated(spec) and all(Path(p).resolve() != PACK_DIR for p in packs):
        packs.append(PACK_DIR)
    return packs


@contextmanager
def _policy_args(spec: StackSpec, policy_packs: PolicyPacks) -> Iterator[dict[str, Any]]:
    """`policy_packs` and their configs; coco's own pack gets the stack's generated config.

    The Python policy SDK gets no stack config, so the levels (mandatory in production,
    advisory elsewhere) and the hardware the settings declare reach the pack as policy config
    (one JSON file per pack, an empty one for other packs, since the CLI pairs configs with
    packs by position).
    """
    if not policy_packs:
        yield {}
        return
    with tempfile.TemporaryDirectory(prefix="coco-policy-config-") as tmp:
        packs, configs = [], []
        for i, pack in enumerate(policy_packs):
            path = Path(pack).resolve()
            config = policy_config(spec.settings) if path == PACK_DIR else {}
            config_file = Path(tmp) / f"{i}.json"
            config_file.write_text(json.dumps(config), encoding="utf-8")
            packs.append(str(path))
            configs.append(str(config_file))
        yield {"policy_packs": packs, "policy_pack_configs": configs}


def preview(
    spec: StackSpec,
    *,
    backend: Backend | None = None,
    on_output: OutputHandler | None = None,
    on_event: EventHandler | None = None,
    policy_packs: PolicyPacks = (),
) -> OperationResult:
    """What `up` would change. Mandatory policy violations fail it (`CocoDeploymentError`).

    A non-dev stack always runs coco's policy pack too (`gate_packs`).
    """
    packs = gate_packs(spec, policy_packs)

    def body(stack: auto.Stack, log: EventLog) -> OperationResult:
        with _policy_args(spec, packs) as policy:
            res = stack.preview(
                on_output=on_output, on_error=on_output, on_event=log, color="never", **policy
            )
        return _result(spec.name, "preview", op_counts(res.change_summary), log, res.stdout)

    return _run(spec, "preview", backend, on_event, body, notify=on_output)


def up(
    spec: StackSpec,
    *,
    backend: Backend | None = None,
    on_output: OutputHandler | None = None,
    on_event: EventHandler | None = None,
    policy_packs: PolicyPacks = (),
) -> OperationResult:
    """Deploy the stack (create it on first use) and return its outputs.

    A non-dev stack goes through the gate: a preview with coco's policy pack (and its
    stack's levels) first; a mandatory violation raises `CocoDeploymentError` for that
    preview, and `up` never starts.
    """
    packs = gate_packs(spec, policy_packs)

    def body(stack: auto.Stack, log: EventLog) -> OperationResult:
        with _policy_args(spec, packs) as policy:
            if gated(spec):
                gate = EventLog(on_event)
                try:
                    stack.preview(
                        on_output=on_output,
                        on_error=on_output,
                        on_event=gate,
                        color="never",
                        **policy,
                    )
                except auto.CommandError as err:
                    raise gate.error(spec.name, "preview", detail=_tail(str(err))) from err
            res = stack.up(
                on_output=on_output, on_error=on_output, on_event=log, color="never", **policy
            )
        changes = op_counts(res.summary.resource_changes)
        outputs = StackOutputs.from_output_map(res.outputs)
        return _result(spec.name, "up", changes, log, res.stdout, outputs)

    return _run(spec, "up", backend, on_event, body, notify=on_output)


def refresh(
    spec: StackSpec,
    *,
    backend: Backend | None = None,
    on_output: OutputHandler | None = None,
    on_event: EventHandler | None = None,
) -> OperationResult:
    """Reconcile the stack's state with what actually exists.

    Refused for a render-mode stack (`coco:kubernetes.renderDir`), before the engine starts:
    its objects are files for a GitOps tool, with no cluster to read them back from (the
    provider fails with "unreachable cluster" on every one). The refusal names what to do
    instead: render again and diff the folder for drift; `cancel` for pending operations.
    """
    if spec.settings.kubernetes.rendering:
        raise SettingsError(
            [Problem(f"{NAMESPACE}:kubernetes.renderDir", RENDER_REFRESH)], spec.name
        )

    def body(stack: auto.Stack, log: EventLog) -> OperationResult:
        res = stack.refresh(on_output=on_output, on_error=on_output, on_event=log, color="never")
        return _result(
            spec.name, "refresh", op_counts(res.summary.resource_changes), log, res.stdout
        )

    return _run(spec, "refresh", backend, on_event, body, notify=on_output)


def destroy(
    target: StackSpec | str,
    *,
    backend: Backend | None = None,
    on_output: OutputHandler | None = None,
    on_event: EventHandler | None = None,
    remove: bool = False,
) -> OperationResult:
    """Delete every resource of the stack; with `remove`, also the stack and its workspace.

    Takes a bare stack name too: destroying needs the state, not the settings.
    """
    name = target if isinstance(target, str) else target.name
    be = backend or Backend()

    def body(stack: auto.Stack, log: EventLog) -> OperationResult:
        res = stack.destroy(on_output=on_output, on_error=on_output, on_event=log, color="never")
        if remove:
            stack.workspace.remove_stack(name)
        return _result(name, "destroy", op_counts(res.summary.resource_changes), log, res.stdout)

    result = _run(target, "destroy", be, on_event, body, check=False, notify=on_output)
    if remove:
        remove_workspace(be, name)
    return result


def outputs(target: StackSpec | str, *, backend: Backend | None = None) -> StackOutputs:
    """The stack's current outputs (secrets kept, and masked by `StackOutputs.masked`)."""
    name = target if isinstance(target, str) else target.name
    return _run(
        name,
        "outputs",
        backend,
        None,
        lambda stack, _: StackOutputs.from_output_map(stack.outputs()),
    )


def cancel(
    target: StackSpec | str,
    *,
    backend: Backend | None = None,
    on_output: OutputHandler | None = None,
    force: bool = False,
) -> str:
    """Cancel what holds the stack: interrupt a running engine on this host and wait for it
    to cancel, or, after a crash, end its orphaned plugins and remove its lock; then clear the
    state's pending operations. Returns what was done (automation/engine.py `cancel`)."""
    name = target if isinstance(target, str) else target.name
    try:
        return _run(
            name,
            "cancel",
            backend,
            None,
            lambda stack, _: engine.cancel(stack, on_output, force),
            check=False,
        )
    except engine.EngineBusy as err:
        raise CocoDeploymentError(stack=name, operation="cancel", errors=(str(err),)) from None


NOT_RENDERED_FILE = "NOT-RENDERED.md"
"""Under the render folder: what the render left out (the program's `notRendered` and the
notes), for the GitOps repository's reviewers."""

TRUSTED_ZONE_RENDER_DIR = "trusted-zone"
"""Under the render folder: where a one-stack trusted zone's Trustee objects are written."""


def render_settings(
    spec: StackSpec, out_dir: str | os.PathLike[str]
) -> tuple[StackSpec, list[str]]:
    """The spec retargeted to `renderDir: <out_dir>` (absolute), and notes on what changed.

    Rendering writes Kubernetes objects only, so what is not one is left to the GitOps
    tool, each change stated in a note: kata-deploy from a registry and the GPU Operator
    (Helm releases; the stack then expects them installed: `preinstalled`; kata-deploy from a
    local chart folder is rendered, as the dev stack does), node labels (they patch live
    Nodes), and Secrets (delivered by reference: a rendered Secret is plain text in Git).
    A peer-pods stack renders its cluster side (the adaptor, its config, `kata-remote`, the
    workloads); the program lists its cloud side as not rendered (stack output
    `notRendered`, written into NOT-RENDERED.md by `render`).
    """
    settings = spec.settings
    notes: list[str] = []
    cluster = settings.cluster
    if not isinstance(cluster, BareMetalCluster):
        notes.append(
            f"peer pods on {cluster.cloud.provider}: the cluster side is rendered; the cloud "
            f"side (cluster, network, identities) is not: see {NOT_RENDERED_FILE}"
        )
    elif cluster.install.method == "chart" and kata_chart.is_local_chart(cluster.install.chart):
        notes.append(
            f"kata-deploy {cluster.install.version} is rendered from {cluster.install.chart} "
            "(Helm hooks dropped: its post-delete cleanup Job is not applied by GitOps)"
        )
    elif cluster.install.method == "chart":
        install = cluster.install
        notes.append(
            f"kata-deploy is a Helm release: install {install.chart} {install.version} "
            f"(namespace {install.namespace}) with your GitOps tool; rendering as 'preinstalled' "
            "(a local chart folder in install.chart is rendered instead: docs/charts.md)"
        )
        cluster = cluster.model_copy(
            update={"install": install.model_copy(update={"method": "preinstalled"})}
        )
    if (
        isinstance(cluster, BareMetalCluster)
        and cluster.gpu is not None
        and cluster.gpu.operator.install
    ):
        operator = cluster.gpu.operator
        notes.append(
            f"the NVIDIA GPU Operator {operator.version} is a Helm release: install it (CC mode) "
            "with your GitOps tool; not rendered"
        )
        gpu = cluster.gpu.model_copy(
            update={"operator": operator.model_copy(update={"install": False})}
        )
        cluster = cluster.model_copy(update={"gpu": gpu})
    if isinstance(cluster, BareMetalCluster) and cluster.label_nodes:
        notes.append(
            f"node labels patch live Nodes: label {', '.join(cluster.label_nodes)} yourself; "
            "not rendered"
        )
        cluster = cluster.model_copy(update={"label_nodes": []})
    trustee = settings.trustee
    if trustee.secrets_delivery == "create":
        notes.append(
            "KBS Secrets are referenced, not rendered: deliver them from your secret manager"
        )
        trustee = trustee.model_copy(update={"secrets_delivery": None})
    target = KubernetesTarget(render_dir=str(Path(out_dir).resolve()))
    update: dict[str, object] = {"kubernetes": target, "cluster": cluster, "trustee": trustee}
    topology = settings.topology
    if topology is not None and topology.trustee_cluster is not None:
        # One-stack trusted zone: the Trustee's objects belong to the trusted cluster's GitOps
        # repository, never beside the confidential cluster's (docs/topologies.md).
        zone = Path(out_dir).resolve() / TRUSTED_ZONE_RENDER_DIR
        notes.append(
            f"the Trustee goes to the trusted cluster: its manifests are rendered into {zone}, "
            "apart from the confidential cluster's; apply them to the trusted cluster only"
        )
        update["topology"] = topology.model_copy(
            update={"trustee_cluster": TrusteeClusterTarget(render_dir=str(zone))}
        )
    rendered = settings.model_copy(update=update)
    return spec.model_copy(update={"settings": rendered}), notes


def render_backend(spec: StackSpec, directory: Path) -> Backend:
    """The throwaway backend a render runs on.

    The passphrase provider (a random passphrase outside dev), unless the stack file's own
    secure values are used and the file names a key service (awskms://, ...): its
    `encryptedkey` is the data key under that service, which only that service can open, so
    the render stack uses the same provider (a passphrase stack would try to open the KMS
    key with a passphrase: "cipher: message authentication failed").
    """
    backend = Backend.throwaway(directory, spec.settings.environment)
    carried = spec.file_secret_keys - frozenset(spec.secrets)
    if spec.stack_file is None or not carried:
        return backend
    provider = Backend().provider_for(spec.stack_file)
    if provider in ("passphrase", "default"):
        return backend
    return backend.model_copy(update={"secrets_provider": provider, "passphrase": None})


def render(
    spec: StackSpec,
    out_dir: str | os.PathLike[str],
    *,
    on_output: OutputHandler | None = None,
    on_event: EventHandler | None = None,
    policy_packs: PolicyPacks = (),
    state_dir: str | os.PathLike[str] | None = None,
) -> OperationResult:
    """Write the stack's manifests, policies and init-data into `out_dir` (for GitOps).

    Runs `up` with `coco:kubernetes.renderDir` set to `out_dir` on a throwaway local-backend
    stack (in `state_dir`, else a temporary directory removed afterwards), so rendering never
    touches the real stack's state and needs no cluster. The Kubernetes provider's own
    subfolders of `out_dir` (`0-crd`, `1-manifest`) are emptied first, so the folder holds
    exactly this render; nothing else in `out_dir` is touched.
    """
    rendered, notes = render_settings(spec, out_dir)
    validate(rendered)
    if on_output is not None:
        for note in notes:
            on_output(f"note: {note}")
    for owned in RENDER_SUBDIRS:  # a fresh render: no file of an object removed since the last
        shutil.rmtree(Path(out_dir) / owned, ignore_errors=True)
    (Path(out_dir) / NOT_RENDERED_FILE).unlink(missing_ok=True)
    (Path(out_dir) / PEERPODS_VALUES_FILE).unlink(missing_ok=True)
    temp = state_dir is None
    directory = Path(tempfile.mkdtemp(prefix="coco-render-")) if temp else Path(str(state_dir))
    try:
        result = up(
            rendered,
            backend=render_backend(rendered, directory),
            on_output=on_output,
            on_event=on_event,
            policy_packs=policy_packs,
        )
    finally:
        if temp:
            shutil.rmtree(directory, ignore_errors=True)
    write_not_rendered(Path(out_dir), spec.name, notes, result.outputs, on_output)
    return result


PEERPODS_VALUES_FILE = "peerpods-values.yaml"
"""Under the render folder: the peerpods chart's values, when the chart is a registry chart
the render leaves to the GitOps tool (no secret: credentials are a Secret by reference)."""


def write_not_rendered(
    out_dir: Path,
    stack: str,
    notes: Sequence[str],
    outputs: StackOutputs | None,
    on_output: OutputHandler | None,
) -> None:
    """NOT-RENDERED.md: what the program reported as not rendered (a peer-pods stack's cloud
    side, releases and credentials), with the render's notes; each item printed too."""
    values = outputs.values if outputs is not None else {}
    left = [str(x) for x in values.get("notRendered") or []]
    chart_values = values.get("peerpodsChartValues")
    if chart_values is not None:
        (out_dir / PEERPODS_VALUES_FILE).write_text(
            yaml.safe_dump(chart_values, sort_keys=True), encoding="utf-8"
        )
    if not left:
        return  # a bare-metal render's notes are printed (render_settings); nothing left out
    lines = [
        f"# Not rendered: stack {stack}",
        "",
        "This folder holds the stack's Kubernetes objects. What the deploying stack creates "
        "or installs beyond them is listed here: create or install it before syncing.",
        "",
    ]
    lines += [f"- {n}" for n in [*notes, *left]]
    (out_dir / NOT_RENDERED_FILE).write_text("\n".join(lines) + "\n", encoding="utf-8")
    if on_output is not None:
        for item in left:
            on_output(f"not rendered: {item}")


def _result(
    stack: str,
    operation: Operation,
    changes: dict[str, int],
    log: EventLog,
    stdout: str,
    outputs: StackOutputs | None = None,
) -> OperationResult:
    return OperationResult(
        stack=stack,
        operation=operation,
        changes=changes or dict(log.resource_changes),
        outputs=outputs,
        violations=tuple(log.violations),
        stdout=stdout,
    )
