"""The `coco:manifests` sources read and checked while the settings are validated: a folder's
YAML through the input boundary, every object against the Kubernetes schema and what coco can
make confidential, a chart's own files (components/manifests.py deploys them).

The same `source_problems` checks a chart's rendered objects at program start
(components/chart_check.py) and, as a backstop, each object the provider decodes
(components/manifests.py `keyed_transformation`): a source's `sealedSecrets` are applied first
(`seal_refs`), so what is checked is what is deployed.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from components import podspec, yaml_input
from components.guest_features import image_policy_path
from components.manifest_settings import ManifestSource, SealedSecretRef
from components.transform import ConfidentialOptions, dropped_hook, prepare
from components.vocabulary import kbs_uri
from components.yaml_input import clip

MAX_ENTRIES = 20_000
"""Directory entries a manifests folder may hold (walked once): `path: /` stops here."""
MAX_YAML_FILES = 2_000
MAX_TOTAL_BYTES = 64 * 1024 * 1024


def yaml_files(folder: Path) -> list[Path]:
    """The folder's YAML files, recursively, in a fixed order (renders are deterministic).

    Bounded (`MAX_ENTRIES`, `MAX_YAML_FILES`), symlinked folders not followed and symlinked
    files only when they stay inside `folder`: a `path` pointing at `/` or at a huge tree is a
    `ValueError`, not a walk of the filesystem.
    """
    root = folder.resolve()
    found: list[Path] = []
    entries = 0
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=False):
        entries += len(dirnames) + len(filenames)
        if entries > MAX_ENTRIES:
            raise ValueError(
                f"{clip(str(folder), 200)} holds more than {MAX_ENTRIES} files and folders: "
                "point `path` at the folder of your manifests"
            )
        for name in filenames:
            p = Path(dirpath) / name
            if p.suffix not in (".yaml", ".yml"):
                continue
            if p.is_symlink() and not p.resolve().is_relative_to(root):
                raise ValueError(f"{p}: a symlink out of {folder}; copy the file in instead")
            if p.is_file():
                found.append(p)
    if len(found) > MAX_YAML_FILES:
        raise ValueError(
            f"{clip(str(folder), 200)} holds {len(found)} YAML files (at most {MAX_YAML_FILES})"
        )
    return sorted(found)


def without_nulls(value: Any, where: str = "") -> tuple[Any, str | None]:
    """`value` without its null-valued keys, as the API server decodes them (unset; kubectl
    writes `creationTimestamp: null`), and the path of the first null *list item*, which has no
    such reading. Checked and deployed objects are both this form, so what is checked is
    what is applied."""
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if v is None:
                continue
            out[k], bad = without_nulls(v, f"{where}.{k}" if where else str(k))
            if bad:
                return value, bad
        return out, None
    if isinstance(value, list):
        items = []
        for i, v in enumerate(value):
            if v is None:
                return value, f"{where}[{i}]"
            item, bad = without_nulls(v, f"{where}[{i}]")
            if bad:
                return value, bad
            items.append(item)
        return items, None
    return value, None


def shape_problem(obj: dict[str, Any]) -> str | None:
    """What makes `obj` no Kubernetes object at all, before any check reads its fields:
    `apiVersion` and `kind` are non-empty strings, `metadata` a mapping whose name and
    namespace are strings (the schema checks and `describe` rely on these)."""
    for key in ("apiVersion", "kind"):
        if not isinstance(obj.get(key), str) or not obj[key]:
            return f"{key} must be a non-empty string, not {yaml_input.show(obj.get(key))}"
    meta = obj.get("metadata")
    if meta is not None and not isinstance(meta, dict):
        return f"metadata must be a mapping, not {yaml_input.show(meta)}"
    for key in ("name", "namespace"):
        value = (meta or {}).get(key)
        if value is not None and not isinstance(value, str):
            return f"metadata.{key} must be a string, not {yaml_input.show(value)}"
    return None


def read_folder(folder: Path) -> list[tuple[Path, dict[str, Any]]]:
    """Every object in the folder's YAML files with the file it came from; `ValueError`
    naming the file for text that is not YAML or a document that is not an object.

    Each file crosses the input boundary (`components.yaml_input`: size, encoding, nesting,
    aliases, duplicate keys, value ranges)."""
    try:
        if not folder.is_dir():
            raise ValueError(f"{clip(str(folder), 200)} is not a folder")
        files = yaml_files(folder)
    except OSError as err:
        raise ValueError(f"{clip(str(folder), 200)}: cannot read: {err.strerror}") from None
    objects = []
    total = 0
    for path in files:
        try:
            data = yaml_input.read_bytes(path, limits=yaml_input.MANIFEST_FILE)
            total += len(data)
            if total > MAX_TOTAL_BYTES:
                raise ValueError(f"{folder}: more than {MAX_TOTAL_BYTES} bytes of YAML")
            docs = yaml_input.load_all(data, str(path), yaml_input.MANIFEST_FILE)
        except yaml_input.InputError as err:
            raise ValueError(str(err)) from None
        except OSError as err:
            raise ValueError(f"{path}: cannot read: {err.strerror}") from None
        for i, doc in enumerate(docs):
            if doc is None:
                continue
            if not isinstance(doc, dict) or "kind" not in doc or "apiVersion" not in doc:
                raise ValueError(f"{path}: document {i} is not a Kubernetes object")
            doc, null_item = without_nulls(doc)
            if null_item:
                raise ValueError(f"{path}: document {i}: {null_item}: a null list item; remove it")
            if why := shape_problem(doc):
                raise ValueError(f"{path}: document {i}: {why}")
            objects.append((path, doc))
    if not objects:
        raise ValueError(f"{clip(str(folder), 200)} holds no Kubernetes objects (*.yaml, *.yml)")
    return objects


def chart_problems(chart: str) -> list[str]:
    """Why the local chart folder cannot be rendered, read through the input boundary: its
    Chart.yaml and values.yaml must be YAML within limits (an alias bomb in values.yaml
    hung `helm template`)."""
    folder = Path(chart)
    try:
        if not (folder / "Chart.yaml").is_file():
            return [
                f"{chart!r} is not a Helm chart folder (no Chart.yaml): give the path of "
                "a local chart (relative to the project folder)"
            ]
        for name in ("Chart.yaml", "values.yaml"):
            if (folder / name).is_file():
                yaml_input.load_all(
                    yaml_input.read_bytes(folder / name, limits=yaml_input.MANIFEST_FILE),
                    f"{chart}/{name}",
                    yaml_input.MANIFEST_FILE,
                )
    except yaml_input.InputError as err:
        return [str(err)]
    except OSError as err:
        return [f"{clip(chart, 200)}: cannot read: {err.strerror}"]
    return []


def options_for(
    source: ManifestSource,
    runtime_class: str,
    production: bool,
    environment: str | None = None,
    attestation_platform: str | None = None,
) -> ConfidentialOptions:
    """The recipe's options for the source's pods; its `sealedSecrets` become the recipe's
    `sealed` references (each read through coco's sealed Secret, `seal_refs`)."""
    return ConfidentialOptions(
        runtime_class=runtime_class,
        attestation_platform=attestation_platform,
        agent_policy=source.agent_policy,
        gpus=source.gpus,
        require_digests=production or source.image_signatures is not None,
        annotations=dict(source.annotations),
        environment=environment,
        registry=source.registry,
        hardening=source.hardening,
        image_security_policy_uri=(
            kbs_uri(image_policy_path(source.name)) if source.image_signatures else None
        ),
        sealed={
            (source.sealed_secret_name, r.sealed_key): r.sealed_from for r in source.sealed_secrets
        },
    )


def describe_source(source: ManifestSource) -> str:
    """How errors name a source: `chart ./charts/web` or `folder ./manifests`."""
    return f"chart {source.chart}" if source.chart is not None else f"folder {source.path}"


def _is_secret(obj: dict[str, Any]) -> bool:
    return obj.get("kind") == "Secret" and str(obj.get("apiVersion")) == "v1"


def plaintext_secret(obj: dict[str, Any]) -> bool:
    """A Secret object carrying values (`data` or `stringData`)."""
    return _is_secret(obj) and bool(obj.get("data") or obj.get("stringData"))


def seal_refs(obj: dict[str, Any], source: ManifestSource) -> set[str]:
    """Make `obj` read the source's `sealedSecrets` from the KBS, in place; the sealed keys an
    env entry of it reads (so a mapping no container reads can be reported).

    A workload's `env[].valueFrom.secretKeyRef` naming a mapped Secret key is pointed at the
    source's sealed Secret (`<name>-sealed-secrets`, one signed reference per key: the CDH
    unseals it in the guest, the agent policy pins it through the recipe's `sealed`). The
    source's own Secret of that name loses the mapped key: the value it held (a chart
    default, a random password) never lands in state or in a render folder, and nothing in
    the source reads it any more.
    """
    if not source.sealed_secrets:
        return set()
    by_ref = {(r.secret, r.key): r for r in source.sealed_secrets}
    used: set[str] = set()
    if _is_secret(obj):
        name = (obj.get("metadata") or {}).get("name")
        for field in ("data", "stringData"):
            values = obj.get(field)
            if not isinstance(values, dict):
                continue
            for k in [k for k in values if (name, k) in by_ref]:
                del values[k]
        return used
    if not podspec.is_workload(obj):
        return used
    try:
        path = podspec.locate(obj).path
    except podspec.PodSpecError:
        return used  # refused later by the check, with its reason
    node: Any = obj
    for part in path:
        node = node[part]
    for _, _, container in podspec.containers(node):
        for entry in container.get("env") or []:
            ref = ((entry.get("valueFrom") or {}) if isinstance(entry, dict) else {}).get(
                "secretKeyRef"
            )
            if not isinstance(ref, dict):
                continue
            mapped: SealedSecretRef | None = by_ref.get((str(ref.get("name")), str(ref.get("key"))))
            if mapped is None:
                continue
            entry["valueFrom"] = {
                "secretKeyRef": {"name": source.sealed_secret_name, "key": mapped.sealed_key}
            }
            used.add(mapped.sealed_key)
    return used


def unused_refs(source: ManifestSource, used: set[str]) -> list[str]:
    """A `sealedSecrets` entry no container reads is a typo or a stale entry: say which."""
    return [
        f"sealedSecrets[{k}]: no container of the source reads Secret {r.secret!r} key "
        f"{r.key!r} through env secretKeyRef: fix the name or key, or remove the entry (a "
        "key mounted as a file is not mapped: docs/workloads.md)"
        for k, r in enumerate(source.sealed_secrets)
        if r.sealed_key not in used
    ]


def secret_problem(
    obj: dict[str, Any], source: ManifestSource, refuse_plaintext: bool
) -> str | None:
    """Why the source may not carry this Secret: it takes the name of coco's sealed Secret,
    or (a non-dev render) it still holds values, which would be plain text in the folder."""
    if not _is_secret(obj):
        return None
    if (obj.get("metadata") or {}).get("name") == source.sealed_secret_name:
        return (
            f"{podspec.describe(obj)}: the name {source.sealed_secret_name!r} is coco's sealed "
            "Secret of this source: rename it"
        )
    if refuse_plaintext and plaintext_secret(obj):
        return (
            f"{podspec.describe(obj)} would be written in plain text into the render folder: "
            "serve each key the pods read from the KBS (the entry's sealedSecrets: "
            "{secret, key, sealedFrom}, docs/workloads.md), or deliver the Secret from your "
            "secret manager and point the chart at it (most charts take an `existingSecret` "
            "value)"
        )
    return None


def source_problems(
    source: ManifestSource,
    objects: Iterable[dict[str, Any]],
    options: ConfidentialOptions,
    refuse_plaintext: bool,
    schema_check_others: bool = False,
    where: Callable[[dict[str, Any]], str] = lambda _: "",
) -> list[str]:
    """Everything wrong with a source's objects, exactly as the transformation would refuse
    them (sealed references applied first), and the `sealedSecrets` nothing reads."""
    problems: list[str] = []
    used: set[str] = set()
    for original in objects:
        prefix = where(original)
        obj = copy.deepcopy(with_namespace(original, source.namespace))
        if dropped_hook(obj) is not None:
            continue  # left out when deployed (components/transform.py `dropped_hook`)
        used |= seal_refs(obj, source)
        if why := secret_problem(obj, source, refuse_plaintext):
            problems.append(prefix + why)
        if podspec.is_workload(obj):
            try:
                prepare(obj, options)
            except podspec.PodSpecError as err:
                problems += [prefix + p for p in err.problems]
        elif schema_check_others:
            problems += [
                prefix + p for p in podspec.schema_problems(obj) if "has no such kind" not in p
            ]
    return problems + unused_refs(source, used)


def folder_problems(
    source: ManifestSource, runtime_class: str, production: bool, refuse_plaintext: bool = False
) -> list[str]:
    """Everything wrong with a folder source's objects, each naming file, object and field."""
    assert source.path is not None
    try:
        objects = read_folder(Path(source.path))
    except ValueError as err:
        return [str(err)]
    options = options_for(source, runtime_class, production)
    files = {id(obj): path.name for path, obj in objects}
    return source_problems(
        source,
        [obj for _, obj in objects],
        options,
        refuse_plaintext=refuse_plaintext,
        schema_check_others=True,
        where=lambda obj: f"{files[id(obj)]}: ",
    )


def with_namespace(obj: dict[str, Any], namespace: str) -> dict[str, Any]:
    """`obj` with the source's namespace where the object names none (as `kubectl apply -n`)."""
    meta = dict(obj.get("metadata") or {})
    meta.setdefault("namespace", namespace)
    return {**obj, "metadata": meta}
