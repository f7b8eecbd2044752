"""The one boundary every YAML file crosses on its way in: stack files, manifests, chart values.

Why this exists: PyYAML's `safe_load` is safe from code execution, not from hostile *size*.
A 50-level alias chain ("billion laughs") expands to gigabytes, deep nesting overflows
Python's recursion limit in the composer (and later in pydantic and `json.dumps`), a non-UTF-8
byte raises `UnicodeDecodeError`, a duplicate key silently keeps the last value (Pulumi's own
YAML reader refuses the file), an integer key under `config:` breaks every `str` method, and a
2**64 integer becomes `-9.2e18` once Pulumi's config (JSON decoded into Go int64/float64)
carries it. So every file is read here, with limits, and anything outside them is an
`InputError` naming the file and the key or line, of bounded length, before any resource
exists.

What is checked, in order:
- size: the file is read up to `Limits.max_bytes` (+1 byte to notice more);
- encoding: strict UTF-8 (a BOM is allowed), the offending byte offset and line named;
- nesting: at most `Limits.max_depth` levels while composing (PyYAML's composer recurses);
- anchors and aliases: recursive anchors refused; the document's size *with every alias
  expanded* (nodes and scalar characters) computed on the node graph without expanding it,
  and refused beyond `Limits.max_nodes` / `Limits.max_chars`;
- duplicate keys in one mapping (merge keys `<<` may still be overridden, as YAML says);
- values (`value_problems`): mapping keys are strings, integers fit int64 (Pulumi config is
  decoded into Go int64), floats are finite, strings are valid Unicode (no lone surrogates,
  which `"\\ud800"` escapes produce and no UTF-8 encoder accepts).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
INT32_MAX = 2**31 - 1

MESSAGE_CHARS = 1000
"""No message repeats more than this much of a value (a 1 MB value stays out of logs)."""

MAX_PROBLEMS = 20
"""Value problems reported per file: the first ones, then a count."""


def clip(text: str, limit: int = MESSAGE_CHARS) -> str:
    """`text` cut to `limit` characters, saying how long it was."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text)} characters)"


def show(value: Any, limit: int = 60) -> str:
    """A short repr of a value for a message (never the whole of a big one)."""
    if isinstance(value, (dict, list)):
        return f"a {type(value).__name__} of {len(value)} items"
    text = repr(value)
    return clip(text, limit)


@dataclass(frozen=True)
class Limits:
    """How large one YAML file may be. The defaults fit the largest stack the benchmarks
    build (1000 workloads) many times over, and keep a refused file well under 1 GiB."""

    max_bytes: int = 4 * 1024 * 1024
    max_depth: int = 64
    max_nodes: int = 1_000_000
    """Nodes with every alias expanded."""
    max_chars: int = 16 * 1024 * 1024
    """Scalar characters with every alias expanded (aliases may repeat the text four times)."""


STACK_FILE = Limits()
MANIFEST_FILE = Limits(max_bytes=8 * 1024 * 1024, max_chars=32 * 1024 * 1024)


class InputError(ValueError):
    """A file (or value) refused at the boundary: `where` names the file and key or line."""

    def __init__(self, where: str, message: str) -> None:
        self.where = clip(where, 200)
        self.message = clip(message)
        super().__init__(f"{self.where}: {self.message}")


def _line(mark: Any) -> str:
    return f"line {mark.line + 1}" if mark is not None else "unknown line"


class _Loader(yaml.SafeLoader):
    """SafeLoader with a nesting limit and duplicate keys refused."""

    max_depth = 64

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            return super().compose_node(parent, index)
        self._depth += 1
        try:
            if self._depth > self.max_depth:
                event = self.peek_event()  # type: ignore[no-untyped-call]
                raise _Refused(
                    f"{_line(event.start_mark)}: nested more than {self.max_depth} levels deep"
                )
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_mapping(self, node: Any, deep: bool = False) -> dict[Any, Any]:
        if isinstance(node, yaml.MappingNode):
            seen: dict[Any, Any] = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                if not isinstance(key_node, yaml.ScalarNode):
                    raise _Refused(
                        f"{_line(key_node.start_mark)}: a mapping key must be a string, "
                        "not a collection"
                    )
                key = self.construct_object(key_node)
                if key in seen:
                    raise _Refused(
                        f"{_line(key_node.start_mark)}: duplicate key {show(key)} (first at "
                        f"{_line(seen[key].start_mark)}): keep one; Pulumi refuses such a file"
                    )
                seen[key] = key_node
        return super().construct_mapping(node, deep=deep)


class _Refused(Exception):
    """Raised inside the loader; becomes an `InputError` naming the file."""


def _expanded_size(root: yaml.Node) -> tuple[int, int, int]:
    """(nodes, scalar characters, depth) of `root` with every alias expanded, computed on the
    node graph (aliases are shared nodes) without expanding it; `_Refused` on a cycle."""
    memo: dict[int, tuple[int, int, int]] = {}
    active: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        key = id(node)
        if done:
            active.discard(key)
            nodes, chars, depth = 1, 0, 0
            for child in _children(node):
                n, c, d = memo[id(child)]
                nodes, chars, depth = nodes + n, chars + c, max(depth, d)
            if isinstance(node, yaml.ScalarNode):
                chars += len(node.value)
            memo[key] = (nodes, chars, depth + 1)
            continue
        if key in memo:
            continue
        if key in active:
            raise _Refused(
                f"{_line(node.start_mark)}: an alias refers to the node that contains it "
                "(a recursive anchor)"
            )
        active.add(key)
        stack.append((node, True))
        for child in _children(node):
            if id(child) in active:
                raise _Refused(
                    f"{_line(child.start_mark)}: an alias refers to the node that contains it "
                    "(a recursive anchor)"
                )
            if id(child) not in memo:
                stack.append((child, False))
    return memo[id(root)]


def _children(node: yaml.Node) -> Iterator[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        yield from node.value
    elif isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            yield k
            yield v


def decode(data: bytes, where: str) -> str:
    """Strict UTF-8 (BOM allowed): `InputError` naming the offset and line of a bad byte."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        raise InputError(
            where,
            f"not UTF-8: byte 0x{data[err.start]:02x} at offset {err.start} (line {line}); "
            "save the file as UTF-8",
        ) from None


def load_all(text: str | bytes, where: str, limits: Limits = STACK_FILE) -> list[Any]:
    """Every document of a YAML text, within `limits`, or `InputError` naming `where`."""
    if isinstance(text, bytes):
        if len(text) > limits.max_bytes:
            raise InputError(where, _too_big(limits))
        text = decode(text, where)
    elif len(text) > limits.max_bytes:
        raise InputError(where, _too_big(limits))
    docs = []
    loader: _Loader | None = None
    try:
        loader = _Loader(text)  # its Reader already refuses non-printable characters
        loader.max_depth = limits.max_depth
        while loader.check_node():
            node = loader.get_node()
            if node is None:  # pragma: no cover - check_node said there is one
                break
            nodes, chars, depth = _expanded_size(node)
            if nodes > limits.max_nodes or chars > limits.max_chars:
                raise _Refused(
                    f"expands to {nodes} nodes and {chars} characters once its aliases are "
                    f"resolved (at most {limits.max_nodes} and {limits.max_chars}): an alias "
                    "bomb, or repeat less through anchors"
                )
            if depth > 4 * limits.max_depth:
                raise _Refused(f"nested {depth} levels deep once its aliases are resolved")
            docs.append(loader.construct_document(node))
    except _Refused as err:
        raise InputError(where, str(err)) from None
    except yaml.YAMLError as err:
        raise InputError(where, f"not YAML: {clip(str(err))}") from None
    except RecursionError:  # pragma: no cover - the depth limits above come first
        raise InputError(where, "nested too deeply") from None
    finally:
        if loader is not None:
            loader.dispose()
    for i, doc in enumerate(docs):
        problems = value_problems(doc)
        if problems:
            label = where if len(docs) == 1 else f"{where} (document {i})"
            raise InputError(label, "; ".join(f"{k or '<top>'}: {m}" for k, m in problems))
    return docs


def load(text: str | bytes, where: str, limits: Limits = STACK_FILE) -> Any:
    """The single document of a YAML text (None when empty); `InputError` otherwise."""
    docs = load_all(text, where, limits)
    if len(docs) > 1:
        raise InputError(where, f"holds {len(docs)} YAML documents, expected one")
    return docs[0] if docs else None


def read_bytes(path: Path, where: str | None = None, limits: Limits = STACK_FILE) -> bytes:
    """At most `limits.max_bytes` of a file: `InputError` for a bigger or unreadable one
    (`FileNotFoundError` passes through, so callers can say what is missing)."""
    label = where or str(path)
    with open(path, "rb") as f:
        data = f.read(limits.max_bytes + 1)
    if len(data) > limits.max_bytes:
        raise InputError(label, _too_big(limits))
    return data


def read_file(path: Path, where: str | None = None, limits: Limits = STACK_FILE) -> Any:
    """The single YAML document of the file at `path` (see `load`)."""
    label = where or str(path)
    try:
        data = read_bytes(path, label, limits)
    except FileNotFoundError:
        raise
    except OSError as err:
        raise InputError(label, f"cannot read: {clip(err.strerror or str(err))}") from None
    return load(data, label, limits)


def _too_big(limits: Limits) -> str:
    return f"larger than {limits.max_bytes} bytes: not a file this program reads"


def value_problems(value: Any, prefix: str = "") -> list[tuple[str, str]]:
    """(key path, problem) for every value no Pulumi config or Kubernetes object can carry:
    non-string mapping keys, integers outside int64, non-finite floats, strings that are not
    valid Unicode. The first `MAX_PROBLEMS`, then a count; iterative (no recursion limit)."""
    problems: list[tuple[str, str]] = []
    more = 0

    def add(path: str, message: str) -> None:
        nonlocal more
        if len(problems) < MAX_PROBLEMS:
            problems.append((clip(path, 200), message))
        else:
            more += 1

    seen: set[int] = set()
    stack: list[tuple[str, Any]] = [(prefix, value)]
    while stack:
        path, v = stack.pop()
        if isinstance(v, (dict, list)):
            if id(v) in seen:  # an alias: the same object, already checked
                continue
            seen.add(id(v))
        if isinstance(v, dict):
            for k, item in v.items():
                if not isinstance(k, str):
                    add(
                        path,
                        f"key {show(k)} is a {type(k).__name__}: keys are strings "
                        '(quote it, e.g. "1")',
                    )
                    continue
                if not _unicode_ok(k):
                    add(path, f"key {show(k)} is not valid Unicode (a lone surrogate)")
                    continue
                stack.append((_join(path, k), item))
        elif isinstance(v, list):
            for i, item in enumerate(v):
                stack.append((f"{path}[{i}]", item))
        elif isinstance(v, bool) or v is None:
            continue
        elif isinstance(v, int):
            if not INT64_MIN <= v <= INT64_MAX:
                add(path, f"{show(v)} does not fit a 64-bit integer (Pulumi config, Kubernetes)")
        elif isinstance(v, float):
            if not math.isfinite(v):
                add(path, f"{v!r} is not a finite number")
        elif isinstance(v, str) and not _unicode_ok(v):
            add(path, 'not valid Unicode: holds a lone surrogate (e.g. a "\\ud800" escape)')
    if more:
        problems.append((prefix, f"and {more} more such problems"))
    return problems


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _unicode_ok(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
