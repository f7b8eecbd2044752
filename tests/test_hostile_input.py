"""Hostile input: every stack file, manifest and chart path crosses one boundary
(components/yaml_input.py) and comes out as a keyed error of bounded length, never a
traceback, a hang or gigabytes of memory.

Three tiers:
- the corpus (tests/fixtures/hostile/stacks, written by make_corpus.py): each file says what
  its refusal must name, checked in process and through `python -m automation validate` in a
  subprocess under resource limits (CPU seconds, address space), whose peak RSS is measured;
- property-based (hypothesis): random values anywhere in a valid stack, random YAML text,
  random manifest folders: only the documented error types, every message bounded;
- unit cases of the boundary itself (limits, aliases, duplicate keys).
"""

from __future__ import annotations

import copy
import os
import resource
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from automation.errors import StackFileError
from automation.spec import PROJECT_DIR, StackSpec, load_stack_file
from components import settings as settings_module
from components import yaml_input
from components.manifest_settings import ManifestSource
from components.manifests import folder_problems, read_folder
from components.settings import SettingsError, parse, strip_namespace

CORPUS_DIR = PROJECT_DIR / "tests" / "fixtures" / "hostile" / "stacks"
CORPUS = sorted(CORPUS_DIR.glob("Pulumi.*.yaml"))
DEV = PROJECT_DIR / "stacks" / "Pulumi.dev.yaml"

MAX_MESSAGE = 8000
"""No refusal, however hostile its input, is longer than this."""
GIB = 1024**3
CPU_SECONDS = 10
"""A validate run that spins this long is a hang (CPU time: machine load does not count)."""


def expectation(path: Path) -> str:
    first = path.read_bytes().split(b"\n", 1)[0].decode("ascii")
    assert first.startswith("# expect: "), path
    return first.removeprefix("# expect: ")


def test_corpus_is_what_make_corpus_writes(tmp_path: Path) -> None:
    """The committed corpus is exactly the generator's output (no hand edits drift)."""
    assert len(CORPUS) >= 40
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    script = CORPUS_DIR.parent / "make_corpus.py"
    before = {p.name: p.read_bytes() for p in CORPUS}
    subprocess.run([sys.executable, str(script)], check=True, env=env)
    after = {p.name: p.read_bytes() for p in sorted(CORPUS_DIR.glob("Pulumi.*.yaml"))}
    assert after == before


@pytest.mark.parametrize("path", CORPUS, ids=lambda p: p.name[len("Pulumi.") : -len(".yaml")])
def test_corpus_refused_in_process(path: Path) -> None:
    with pytest.raises((StackFileError, SettingsError)) as err:
        StackSpec.from_file(path)
    text = str(err.value)
    assert expectation(path) in text
    assert len(text) < MAX_MESSAGE


def _limits() -> None:
    # A hang burns CPU until SIGXCPU; a runaway allocation fails at 4 GiB instead of taking
    # the machine down (the 1 GiB bound itself is asserted on the measured peak RSS).
    resource.setrlimit(resource.RLIMIT_CPU, (CPU_SECONDS, CPU_SECONDS + 5))
    resource.setrlimit(resource.RLIMIT_AS, (4 * GIB, 4 * GIB))


def run_limited(path: Path) -> tuple[int, str, int]:
    """`python -m automation validate --stack-file path` under `_limits`: (exit code or
    -signal, its output, its own peak RSS in bytes, from wait4: no other process counts)."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            _limits()
            os.chdir(PROJECT_DIR)
            fd = os.open(os.devnull, os.O_RDONLY)
            os.dup2(fd, 0)
            log = os.open(str(path) + ".log", os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
            os.dup2(log, 1)
            os.dup2(log, 2)
            argv = [sys.executable, "-m", "automation", "validate", "--stack-file", str(path)]
            os.execv(sys.executable, argv)
        finally:
            os._exit(127)
    _, status, usage = os.wait4(pid, 0)
    log = Path(str(path) + ".log")
    text = log.read_text(encoding="utf-8", errors="replace")
    log.unlink()
    if os.WIFSIGNALED(status):
        return -os.WTERMSIG(status), text, usage.ru_maxrss * 1024
    return os.WEXITSTATUS(status), text, usage.ru_maxrss * 1024


@pytest.mark.parametrize("path", CORPUS, ids=lambda p: p.name[len("Pulumi.") : -len(".yaml")])
def test_corpus_through_the_cli(path: Path, tmp_path: Path) -> None:
    """No traceback, no hang (CPU limit), under 1 GiB peak RSS, a keyed refusal, exit 1 or 2."""
    copy_ = tmp_path / path.name
    copy_.write_bytes(path.read_bytes())
    code, text, rss = run_limited(copy_)
    assert code != -signal.SIGXCPU, f"hang: over {CPU_SECONDS} CPU seconds"
    assert "Traceback" not in text, text[-3000:]
    assert code in (1, 2), (code, text[-3000:])
    assert expectation(path) in text
    assert len(text) < MAX_MESSAGE
    assert rss < GIB, f"peak RSS {rss / 2**20:.0f} MiB"


def test_megabyte_value_is_not_repeated(tmp_path: Path) -> None:
    """A 1 MB value in a refused key appears in no message beyond a short prefix."""
    text = DEV.read_text(encoding="utf-8")
    huge = "A" * (1024 * 1024)
    hostile = text.replace("namespace: demo", f"namespace: {huge}", 1)
    hostile = hostile.replace("- name: app", f"- name: {huge}", 1)
    path = tmp_path / "Pulumi.dev.yaml"
    path.write_text(hostile, encoding="utf-8")
    with pytest.raises(SettingsError) as err:
        StackSpec.from_file(path)
    assert "coco:workloads[0].namespace" in str(err.value)
    assert len(str(err.value)) < MAX_MESSAGE
    code, out, rss = run_limited(path)
    assert code == 1 and "Traceback" not in out and len(out) < MAX_MESSAGE
    assert rss < GIB


def test_oversized_file_is_refused_before_parsing(tmp_path: Path) -> None:
    path = tmp_path / "Pulumi.big.yaml"
    path.write_bytes(b"config:\n  x: '" + b"a" * (yaml_input.STACK_FILE.max_bytes + 10) + b"'\n")
    with pytest.raises(StackFileError, match="larger than"):
        load_stack_file(path)


# --- the boundary itself ---------------------------------------------------------------------


def test_limits_and_aliases() -> None:
    small = yaml_input.Limits(max_nodes=50, max_chars=100, max_depth=3)
    # Aliases within the budget are fine (YAML anchors are a legitimate way to share a block).
    assert yaml_input.load("a: &x [1, 2]\nb: *x\n", "t", small) == {"a": [1, 2], "b": [1, 2]}
    with pytest.raises(yaml_input.InputError, match="alias bomb"):
        yaml_input.load("a: &x [1, 2, 3, 4, 5, 6, 7, 8]\nb: [*x, *x, *x, *x, *x, *x]\n", "t", small)
    with pytest.raises(yaml_input.InputError, match="more than 3 levels"):
        yaml_input.load("a: {b: {c: {d: 1}}}", "t", small)
    with pytest.raises(yaml_input.InputError, match="recursive anchor"):
        yaml_input.load("a: &x {b: *x}", "t")
    # Merge keys may be overridden (YAML's merge semantics); plain repeats may not.
    assert yaml_input.load("b: &b {x: 1}\nc: {<<: *b, x: 2}\n", "t")["c"] == {"x": 2}
    with pytest.raises(yaml_input.InputError, match=r"line 3: duplicate key 'x' \(first at line 2"):
        yaml_input.load("c:\n  x: 1\n  x: 2\n", "t")


def test_expanded_depth_through_aliases_is_bounded() -> None:
    """Each anchor shallow, the expansion deep: refused (pydantic and json.dumps recurse)."""
    lines = ["a0: &a0 [1]"] + [f"a{i}: &a{i} [[[[[[*a{i - 1}]]]]]]" for i in range(1, 60)]
    with pytest.raises(yaml_input.InputError, match="levels deep once its aliases"):
        yaml_input.load("\n".join(lines) + "\n", "t")


def test_value_problems_name_the_key() -> None:
    found = yaml_input.value_problems(
        {"a": [{"b": 2**64}], "c": float("nan"), "d": "\ud800", 3: 1}, "coco"
    )
    assert (
        "coco.a[0].b",
        "18446744073709551616 does not fit a 64-bit integer (Pulumi config, Kubernetes)",
    ) in found
    keys = {k for k, _ in found}
    assert keys == {"coco.a[0].b", "coco.c", "coco.d", "coco"}


def test_value_problems_are_counted_past_the_limit() -> None:
    found = yaml_input.value_problems({f"k{i}": 2**70 for i in range(100)})
    assert len(found) == yaml_input.MAX_PROBLEMS + 1
    assert found[-1][1] == f"and {100 - yaml_input.MAX_PROBLEMS} more such problems"


def test_settings_refuse_what_the_consumers_refuse() -> None:
    """Ranges of Kubernetes (IsValidUserID, IsValidPortNum) and X.509 lifetimes, by key,
    also for settings built in Python (the Automation API path skips the YAML loader)."""
    raw = strip_namespace(load_stack_file(DEV).config)
    cases = [
        ("runAsUser", 2**31, "coco:workloads[0].containers[0].runAsUser"),
        ("runAsGroup", -1, "coco:workloads[0].containers[0].runAsGroup"),
        ("ports", [0], "coco:workloads[0].containers[0].ports[0]"),
        ("env", {"X": "\udc00"}, "coco:workloads[0].containers[0].env.X"),
    ]
    for field, value, key in cases:
        data = copy.deepcopy(raw)
        data["workloads"][0]["containers"][0][field] = value
        with pytest.raises(SettingsError) as err:
            parse(data)
        assert key in str(err.value), (field, str(err.value))
    data = copy.deepcopy(raw)
    data["trustee"]["tls"] = {"validityHours": 10**7}
    with pytest.raises(SettingsError, match=r"coco:trustee\.tls\.validityHours"):
        parse(data)
    data["trustee"]["tls"] = {"validityHours": 10**100}
    with pytest.raises(SettingsError, match="does not fit a 64-bit integer"):
        parse(data)


def test_settings_error_is_bounded() -> None:
    raw = strip_namespace(load_stack_file(DEV).config)
    data = copy.deepcopy(raw)
    data["workloads"] = [dict(raw["workloads"][0], name="X" * 10_000) for _ in range(500)]
    with pytest.raises(SettingsError) as err:
        parse(data)
    text = str(err.value)
    assert len(err.value.problems) >= 500
    assert "... and 450 more" in text
    # At most MAX_SHOWN_PROBLEMS problems of at most MESSAGE_CHARS (+ key) each.
    bound = settings_module.MAX_SHOWN_PROBLEMS * (yaml_input.MESSAGE_CHARS + 300)
    assert len(text) < bound


def test_manifest_folder_walk_is_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from components.checks import manifests

    monkeypatch.setattr(manifests, "MAX_ENTRIES", 10)
    for i in range(20):
        (tmp_path / f"f{i}.txt").write_text("x")
    with pytest.raises(ValueError, match="more than 10 files and folders"):
        read_folder(tmp_path)


def test_manifest_symlink_out_of_the_folder_is_refused(tmp_path: Path) -> None:
    outside = tmp_path / "secret.yaml"
    outside.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n")
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "link.yaml").symlink_to(outside)
    with pytest.raises(ValueError, match="a symlink out of"):
        read_folder(folder)


def test_manifest_files_cross_the_boundary(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\nmetadata: {name: y}\n"
    )
    source = ManifestSource(name="m", path=str(tmp_path))
    [problem] = folder_problems(source, "kata-qemu-coco-dev", False)
    assert "a.yaml" in problem and "duplicate key 'metadata'" in problem


# --- property-based tier ---------------------------------------------------------------------

SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=40)  # includes lone surrogates
    | st.sampled_from(["", "-1", "0", "65536", "/", "..", "a" * 300, "${x}", "\x00"])
)
KEYS = st.text(max_size=12) | st.integers() | st.none() | st.booleans()
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(KEYS, inner, max_size=4),
    max_leaves=20,
)
PROPERTY = settings(
    max_examples=int(os.environ.get("COCO_FUZZ_EXAMPLES", "150")),  # CI: 150 per property
    deadline=None,  # no timing assertions; the CLI tier bounds time by CPU limits
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
DEV_CONFIG = strip_namespace(load_stack_file(DEV).config)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(value, dict):
        for k, v in value.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out += _paths(v, (*prefix, i))
    return out


DEV_PATHS = [p for p in _paths(DEV_CONFIG) if p]


def _replace(config: dict[str, Any], path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    data = copy.deepcopy(config)
    node: Any = data
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value
    return data


@PROPERTY
@given(path=st.sampled_from(DEV_PATHS), value=VALUES)
def test_any_value_anywhere_in_settings(path: tuple[Any, ...], value: Any) -> None:
    """A random value at any key of a valid stack: settings, or a bounded SettingsError."""
    data = _replace(DEV_CONFIG, path, value)
    try:
        parse(data, stack="dev")
    except SettingsError as err:
        assert len(str(err)) < MAX_MESSAGE * 5
        assert all(p.key.startswith("coco:") for p in err.problems)


@PROPERTY
@given(path=st.sampled_from(DEV_PATHS), value=VALUES)
def test_any_value_anywhere_in_a_stack_file(
    path: tuple[Any, ...], value: Any, tmp_path: Path
) -> None:
    """The same through YAML text and the stack-file loader: only the documented errors."""
    data = _replace(DEV_CONFIG, path, value)
    try:
        text = yaml.safe_dump({"config": {f"coco:{k}": v for k, v in data.items()}})
    except (yaml.YAMLError, UnicodeEncodeError):
        return  # not every value has a YAML form (e.g. some surrogates)
    file = tmp_path / "Pulumi.dev.yaml"
    file.write_text(text, encoding="utf-8", errors="surrogatepass")
    try:
        StackSpec.from_file(file, secrets={"demoKey": "x"})
    except (StackFileError, SettingsError) as err:
        assert len(str(err)) < MAX_MESSAGE * 5


DEV_TEXT = DEV.read_bytes()


@PROPERTY
@given(
    cut=st.integers(min_value=0, max_value=len(DEV_TEXT)),
    junk=st.binary(max_size=40)
    | st.sampled_from([b"&a ", b"*a", b"[[[[", b"{", b"\xff", b": :", b"\t", b"<<: *a", b"!!set"]),
)
def test_any_corruption_of_a_stack_file(cut: int, junk: bytes, tmp_path: Path) -> None:
    """Random bytes spliced into the dev stack file: loaded, or StackFileError/SettingsError."""
    file = tmp_path / "Pulumi.dev.yaml"
    file.write_bytes(DEV_TEXT[:cut] + junk + DEV_TEXT[cut:])
    try:
        StackSpec.from_file(file, secrets={"demoKey": "x"})
    except (StackFileError, SettingsError) as err:
        assert len(str(err)) < MAX_MESSAGE * 5


MANIFEST = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {"name": "web"},
    "spec": {
        "selector": {"matchLabels": {"app": "web"}},
        "template": {
            "metadata": {"labels": {"app": "web"}},
            "spec": {
                "containers": [{"name": "c", "image": "busybox", "ports": [{"containerPort": 80}]}]
            },
        },
    },
}
MANIFEST_PATHS = [p for p in _paths(MANIFEST) if p]


@PROPERTY
@given(path=st.sampled_from(MANIFEST_PATHS), value=VALUES, junk=st.binary(max_size=20))
def test_any_manifest_folder(
    path: tuple[Any, ...], value: Any, junk: bytes, tmp_path: Path
) -> None:
    """A manifest with a random value anywhere, plus a file of random bytes: problems, never
    an exception, from the check that runs before anything is created."""
    folder = tmp_path / "m"
    folder.mkdir(exist_ok=True)
    for old in folder.iterdir():
        old.unlink()
    obj = _replace(MANIFEST, path, value)
    try:
        (folder / "a.yaml").write_text(yaml.safe_dump(obj), encoding="utf-8")
    except (yaml.YAMLError, UnicodeEncodeError):
        return
    (folder / "b.yaml").write_bytes(junk)
    source = ManifestSource(name="m", path=str(folder))
    problems = folder_problems(source, "kata-qemu-coco-dev", True)
    assert all(isinstance(p, str) and len(p) < MAX_MESSAGE for p in problems)


CLI_PROPERTY = settings(
    max_examples=max(5, int(os.environ.get("COCO_FUZZ_EXAMPLES", "150")) // 15),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


@CLI_PROPERTY
@given(
    cut=st.integers(min_value=0, max_value=len(DEV_TEXT)),
    junk=st.binary(max_size=40)
    | st.sampled_from([b"&a [*a]", b"*a", b"[" * 200, b"\xff\xfe", b'"\\ud800"', b"1: x"]),
)
def test_the_cli_on_random_corruption(cut: int, junk: bytes, tmp_path: Path) -> None:
    """`python -m automation validate` on a randomly corrupted stack file, under the same
    limits as the corpus: "ok" or a refusal, never a traceback, a hang or 1 GiB."""
    file = tmp_path / "Pulumi.dev.yaml"
    file.write_bytes(DEV_TEXT[:cut] + junk + DEV_TEXT[cut:])
    code, text, rss = run_limited(file)
    assert code != -signal.SIGXCPU, f"hang: over {CPU_SECONDS} CPU seconds"
    assert "Traceback" not in text, text[-3000:]
    assert code in (0, 1, 2), (code, text[-3000:])
    assert len(text) < MAX_MESSAGE and rss < GIB


def test_a_charts_own_values_file_crosses_the_boundary(tmp_path: Path) -> None:
    """An alias bomb in a chart's values.yaml hung `helm template`: refused, keyed, first."""
    from components.manifests import chart_problems

    chart = tmp_path / "chart"
    chart.mkdir()
    (chart / "Chart.yaml").write_text("apiVersion: v2\nname: c\nversion: 0.1.0\n")
    bomb = "a0: &a0 [" + ", ".join(["x"] * 10) + "]\n"
    bomb += "".join(f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]\n" for i in range(1, 9))
    (chart / "values.yaml").write_text(bomb)
    [problem] = chart_problems(str(chart))
    assert f"{chart}/values.yaml" in problem and "alias bomb" in problem
    data = copy.deepcopy(DEV_CONFIG)
    data["manifests"] = [{"name": "shop", "chart": str(chart)}]
    with pytest.raises(SettingsError, match=r"coco:manifests\[0\]\.chart: .*alias bomb"):
        parse(data)
