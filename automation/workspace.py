"""One private Pulumi workspace per stack, running the repo's real program.

Why not `LocalWorkspace(work_dir=<repo>)`: the project file there sets `stackConfigDir:
stacks`, so every `set_all_config` would rewrite the example stack files in `stacks/` (and a
settings object that differs from the file would silently replace it), and concurrent
deployments would all write into the repo. Instead each stack gets a directory of its own
(`Backend.workspaces / <stack>`) holding:

- `Pulumi.yaml`: the repo's project file with `main: program`, no `stackConfigDir`, and the
  repo's virtualenv as an absolute path;
- `program`: a symlink to the repo root, so the engine runs the repo's `__main__.py` with
  the repo as its working directory (relative paths such as `renderDir: out/dev` mean what
  they mean for `pulumi up` in the repo). Pulumi requires `main` to be a subfolder of the
  project, hence the link rather than `main: ../..`;
- `Pulumi.<stack>.yaml`: the stack config, rewritten from the settings on every operation
  (so no stale key survives), keeping the secrets provider state (encryption salt).

The directory is kept between operations: with the passphrase provider the salt in it is
what decrypts the stack's config secrets.
"""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml
from pulumi import automation as auto

from automation.config import config_map
from automation.engine import InterruptibleCommand
from automation.errors import EngineNotFoundError
from automation.spec import (
    ENCRYPTION_KEYS,
    PROJECT_DIR,
    Backend,
    StackFile,
    StackSpec,
    check_secrets_provider,
    load_stack_file,
    stack_file_path,
)
from components.secrets_provider import is_public, passphrase_from_env, read_stack_doc

PROGRAM_LINK = "program"

_locks: dict[Path, threading.Lock] = {}
_locks_guard = threading.Lock()


def _lock_for(directory: Path) -> threading.Lock:
    """One lock per workspace: two threads never rewrite one stack's config at once."""
    with _locks_guard:
        return _locks.setdefault(directory.resolve(), threading.Lock())


def ensure_engine() -> str:
    """Path of the `pulumi` CLI, or `EngineNotFoundError` saying how to get it."""
    found = shutil.which("pulumi")
    if not found:
        raise EngineNotFoundError(
            "the Pulumi CLI is not on PATH: run `bash scripts/setup.sh` once, then "
            "`source scripts/env.sh` (it puts the pinned engine on PATH)"
        )
    return found


def workspace_dir(backend: Backend, stack: str) -> Path:
    return backend.workspaces / stack


def project_file() -> dict[str, Any]:
    """The repo's project settings, adapted to run from a workspace directory."""
    with open(PROJECT_DIR / "Pulumi.yaml", encoding="utf-8") as f:
        project: dict[str, Any] = yaml.safe_load(f)
    project.pop("stackConfigDir", None)
    project["main"] = PROGRAM_LINK
    runtime = project.get("runtime")
    if isinstance(runtime, str):
        runtime = {"name": runtime}
    runtime = dict(runtime or {"name": "python"})
    options = dict(runtime.get("options") or {})
    venv = options.get("virtualenv")
    if venv and not os.path.isabs(venv):
        options["virtualenv"] = str(PROJECT_DIR / venv)
    runtime["options"] = options
    project["runtime"] = runtime
    return project


def _write_if_changed(path: Path, text: str) -> None:
    if not path.exists() or path.read_text(encoding="utf-8") != text:
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)


def prepare_directory(directory: Path) -> None:
    """Create (or repair) the workspace's project file and program link."""
    directory.mkdir(parents=True, exist_ok=True)
    link = directory / PROGRAM_LINK
    if not (link.is_symlink() and Path(os.readlink(link)) == PROJECT_DIR):
        if link.is_symlink() or link.is_file():
            link.unlink()
        elif link.exists():
            shutil.rmtree(link)
        link.symlink_to(PROJECT_DIR, target_is_directory=True)
    _write_if_changed(directory / "Pulumi.yaml", yaml.safe_dump(project_file(), sort_keys=False))


def stack_config_path(directory: Path, stack: str) -> Path:
    return directory / f"Pulumi.{stack}.yaml"


def write_stack_config(
    directory: Path,
    stack: str,
    source: StackFile | None,
    overridden: frozenset[str],
    plain: dict[str, str] | None = None,
) -> None:
    """Start the stack's config file afresh: provider state, the settings' plain values
    (`plain`, as the engine stores them), and what the source file carries.

    Plain values are written here, not set through the engine: `pulumi config set-all` takes
    each value as a command-line argument, and Linux refuses one over 128 KiB (E2BIG,
    "argument list too long"), which `coco:workloads` passes at about 190 workloads. Secrets
    are set afterwards through the engine, which encrypts them. From the source stack
    file come its non-settings entries (secure values set with `pulumi config set --secret`,
    provider config) minus those the spec overrides, and, when a secure value is among
    them, the encryption salt it was encrypted under (config secrets are re-encrypted on
    every run anyway, and the stack's state keeps its own provider state, so adopting the
    file's salt is safe). Without a carried secure value the workspace keeps its own salt,
    so the file's passphrase is only needed when its secrets are actually used.
    """
    path = stack_config_path(directory, stack)
    existing: dict[str, Any] = {}
    if path.exists():
        existing = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    encryption = {k: existing[k] for k in ENCRYPTION_KEYS if existing.get(k)}
    carried: dict[str, Any] = {}
    if source is not None:
        carried = {k: v for k, v in source.passthrough.items() if k not in overridden}
        if source.encryption and any(k in source.secure_keys for k in carried):
            encryption = dict(source.encryption)
    data: dict[str, Any] = dict(encryption)
    if carried or plain:
        data["config"] = {**carried, **(plain or {})}
    _write_if_changed(path, yaml.safe_dump(data, sort_keys=True) if data else "")


def _seed_from_repo_stack_file(directory: Path, stack: str) -> None:
    """For a stack operated on by name only: borrow the repo stack file's provider state."""
    path = stack_config_path(directory, stack)
    repo_file = stack_file_path(stack)
    if path.exists() or not repo_file.exists():
        return
    source = load_stack_file(repo_file, stack)
    write_stack_config(directory, stack, source, frozenset())


def _local_workspace(
    directory: Path, backend: Backend, env: dict[str, str], provider: str
) -> auto.LocalWorkspace:
    file_dir = backend.file_dir
    if file_dir is not None:
        file_dir.mkdir(parents=True, exist_ok=True)
    return auto.LocalWorkspace(
        work_dir=str(directory),
        env_vars=env,
        secrets_provider=provider,
        pulumi_command=InterruptibleCommand(),  # ^C cancels the engine (automation/engine.py)
    )


def _provider(backend: Backend, target: StackSpec | str, directory: Path) -> str:
    """The stack's secrets provider: an existing workspace stack's own, else `provider_for`."""
    name = target if isinstance(target, str) else target.name
    existing = read_stack_doc(stack_config_path(directory, name)) or {}
    if backend.secrets_provider is None:
        if existing.get("secretsprovider"):
            return str(existing["secretsprovider"])
        if existing.get("encryptionsalt"):
            return "passphrase"
    if isinstance(target, str):
        repo_file = stack_file_path(name)
        return backend.provider_for(repo_file if repo_file.exists() else None)
    return backend.provider_for(target.stack_file)


@contextmanager
def open_stack(target: StackSpec | str, backend: Backend) -> Iterator[auto.Stack]:
    """The stack, created or selected in its workspace and configured from the spec.

    With a bare stack name the stack must exist and its config is left as it is (enough
    for `destroy` and `outputs`, which do not run the program). The workspace stays locked
    while the caller operates on the stack.
    """
    name = target if isinstance(target, str) else target.name
    directory = workspace_dir(backend, name)
    provider = _provider(backend, target, directory)
    if isinstance(target, StackSpec):
        check_secrets_provider(target, backend, provider)
    env = backend.engine_env(provider)  # every check before anything is written
    if (
        isinstance(target, StackSpec)
        and target.settings.environment != "dev"
        and provider != "passphrase"
        and is_public(passphrase_from_env({**os.environ, **env}))
    ):
        # A key-service stack needs no passphrase; the public one never reaches a non-dev
        # engine (the program refuses it: components/secrets_provider.py).
        env.update(PULUMI_CONFIG_PASSPHRASE="", PULUMI_CONFIG_PASSPHRASE_FILE="")
    ensure_engine()
    with _lock_for(directory):
        prepare_directory(directory)
        if isinstance(target, str):
            _seed_from_repo_stack_file(directory, name)
            workspace = _local_workspace(directory, backend, env, provider)
            yield auto.Stack.select(name, workspace)
            return
        source = load_stack_file(target.stack_file, name) if target.stack_file else None
        secrets = {k: v.get_secret_value() for k, v in target.secrets.items()}
        values = config_map(target.settings, secrets)
        plain = {k: v.value for k, v in values.items() if not v.secret}
        write_stack_config(directory, name, source, frozenset(target.secrets), plain)
        workspace = _local_workspace(directory, backend, env, provider)
        stack = auto.Stack.create_or_select(name, workspace)
        hidden = {k: v for k, v in values.items() if v.secret}
        if hidden:
            stack.set_all_config(hidden, path=False)
        yield stack


def remove_workspace(backend: Backend, stack: str) -> None:
    """Delete a stack's workspace directory (after the stack itself was removed)."""
    directory = workspace_dir(backend, stack)
    if directory.exists():
        shutil.rmtree(directory)
