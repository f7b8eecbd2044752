"""Which stacks a fleet runs on: stack names, globs and list files, each loaded on its own.

A selector is one of:

- a stack name, `prod-eu-1`: the stack file `Pulumi.prod-eu-1.yaml` in the stacks folder
  (default `stacks/`);
- a glob over stack names, `prod-*`: every `Pulumi.<name>.yaml` there whose name matches;
- a stack file path or a glob over paths (it holds a `/` or ends in `.yaml`/`.yml`),
  `fleet/Pulumi.eu-*.yaml`.

A list file holds one selector a line (blank lines and `#` comments skipped); a relative path
in it is relative to the list file's folder. A glob that matches nothing is an error of the
command line (the whole run stops before any engine starts: a typo must not pass as an empty
fleet); a named stack file that is missing or invalid is that stack's own refusal, reported
with its keyed error beside the others (`load_specs`).
"""

from __future__ import annotations

import glob
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from automation.errors import StackFileError
from automation.spec import STACKS_DIR, StackSpec
from components.settings import SettingsError, full_key, secret_refs

_GLOB_CHARS = frozenset("*?[")
STACK_FILE_PREFIX = "Pulumi."


class StackSelectionError(StackFileError):
    """The selectors name no stack, or name one stack twice: nothing was run."""


def _is_path(selector: str) -> bool:
    return "/" in selector or selector.endswith((".yaml", ".yml"))


def _expand(selector: str, stacks_dir: Path, base: Path | None) -> list[Path]:
    if _is_path(selector):
        path = Path(selector).expanduser()
        if base is not None and not path.is_absolute():
            path = base / path
        if not _GLOB_CHARS & set(selector):
            return [path]
        found = sorted(Path(p) for p in glob.glob(str(path)))
        where = str(path)
    else:
        name_glob = f"{STACK_FILE_PREFIX}{selector}.yaml"
        if not _GLOB_CHARS & set(selector):
            return [stacks_dir / name_glob]
        found = sorted(stacks_dir.glob(name_glob))
        where = f"{stacks_dir}/{name_glob}"
    if not found:
        raise StackSelectionError(
            f"{selector!r} matches no stack file ({where}): check the pattern, or give the "
            "stack files' folder with --stacks-dir"
        )
    return found


def read_list_file(path: Path) -> list[tuple[str, Path]]:
    """The selectors of a list file, each with the folder its relative paths start from."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise StackSelectionError(f"stack list {path}: cannot read it: {err}") from None
    out = []
    for line in text.splitlines():
        selector = line.split("#", 1)[0].strip()
        if selector:
            out.append((selector, path.parent))
    return out


def select_stack_files(
    selectors: Sequence[str],
    list_files: Sequence[Path] = (),
    stacks_dir: Path = STACKS_DIR,
) -> list[Path]:
    """The stack files the selectors name, in order, each once (by resolved path)."""
    pairs: list[tuple[str, Path | None]] = [(s, None) for s in selectors]
    for list_file in list_files:
        pairs += read_list_file(list_file)
    if not pairs:
        raise StackSelectionError(
            "no stacks selected: name them (dev, 'prod-*', path/Pulumi.x.yaml) or give --from FILE"
        )
    files: list[Path] = []
    seen: set[Path] = set()
    for selector, base in pairs:
        for path in _expand(selector, stacks_dir, base):
            key = path.resolve()
            if key not in seen:
                seen.add(key)
                files.append(path)
    names = [stack_name(p) for p in files]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise StackSelectionError(
            f"two stack files name the same stack {repeated}: a stack's name is the <name> of "
            "Pulumi.<name>.yaml, and one fleet runs each stack once"
        )
    return files


def stack_name(path: Path) -> str:
    """`Pulumi.<name>.yaml` -> `<name>`; any other file keeps its file name (it is refused
    when loaded, with the reason)."""
    name = path.name
    for suffix in (".yaml", ".yml"):
        if name.startswith(STACK_FILE_PREFIX) and name.endswith(suffix):
            return name[len(STACK_FILE_PREFIX) : -len(suffix)] or name
    return name


def load_specs(
    files: Iterable[Path], secrets: Mapping[str, str] | None = None
) -> tuple[list[StackSpec], dict[str, Exception]]:
    """Each stack file as a spec, or its refusal (`SettingsError`, `StackFileError`) by name.

    `secrets` (config key -> value) are offered to every stack; each stack keeps only those
    its settings reference, so a fleet-wide `--secret` never adds stray config to a stack.
    """
    offered = {full_key(k): v for k, v in (secrets or {}).items()}
    specs: list[StackSpec] = []
    refused: dict[str, Exception] = {}
    for path in files:
        name = stack_name(path)
        try:
            spec = StackSpec.from_file(path, secrets=offered)  # name: Pulumi.<name>.yaml
        except (SettingsError, StackFileError) as err:
            refused[name] = err
            continue
        used = {full_key(ref) for _, ref in secret_refs(spec.settings)}
        kept = {k: v for k, v in spec.secrets.items() if k in used}
        specs.append(spec.model_copy(update={"secrets": kept}))
    return specs, refused
