"""What each measured subprocess runs: `python -m benchmarks.worker <command> ...`.

Commands (each prints one `BENCH-RESULT {json}` line, see `measure.report`):

    capture N SPECS     run the real program once under recording mocks; write the custom
                        resources it registered (type, name, inputs) to SPECS
    capture-stack STACK SPECS
                        the same for a stacks/ file, Kubernetes objects only (engine part)
    program N SPECS [GC]
                        timed: the project's `__main__.py` (`build(load())`) for the
                        N-workload fleet, under mocks; GC = collector thresholds `a,b,c`
    baseline N SPECS [GC]
                        timed: register SPECS with plain pulumi-kubernetes, under mocks
    verify N SPECS      register SPECS under recording mocks; check they equal SPECS
    startup STACK       import components.settings + components.stack, parse a stack
                        (a stacks/ file), load what `build`
                        would load for it, then run `build` under mocks; report the times
                        and which cloud SDKs got imported
    startup-baseline    import pulumi and pulumi_kubernetes only (the floor of any program)

Both timed commands do their imports, config set-up and spec loading before the clock
starts, and time exactly one `run_pulumi_func` (the program plus every registration it
queues, to quiescence), so the ratio compares the programs and nothing else.
"""

from __future__ import annotations

import atexit
import gc
import json
import os
import resource
import runpy
import secrets
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.measure import REPO, current_rss_kib, report

CLOUD_SDKS = ("pulumi_aws", "pulumi_azure_native", "pulumi_gcp")


def _mocks_session(record: bool = False) -> Any:
    """Fresh mocks, installed as the runtime the program and the baseline register against."""
    import pulumi

    from benchmarks.mocks import BenchMocks

    mocks = BenchMocks(record=record)
    pulumi.runtime.set_mocks(mocks, project="coco", stack="bench", preview=False)
    return mocks


def _run_program(func: Callable[[], object]) -> None:
    """Run `func` as a Pulumi program and wait until every registration has completed."""
    from pulumi.runtime.stack import run_pulumi_func
    from pulumi.runtime.sync_await import _sync_await

    def program() -> None:
        func()

    _sync_await(run_pulumi_func(program))


def _set_fleet_config(n: int) -> None:
    import pulumi

    from benchmarks.fleet import fleet_config, fleet_secrets, pulumi_config

    raw = fleet_config(n)
    # The program checks, before any resource, that the kubeconfig it names exists on this
    # machine; under mocks nothing reads it, so an empty file of this worker's stands in.
    kubeconfig = Path(tempfile.mkdtemp(prefix="coco-bench-")) / "kubeconfig"
    kubeconfig.write_text("")
    raw["kubernetes"] = {**raw["kubernetes"], "kubeconfig": str(kubeconfig)}
    config, secret_keys = pulumi_config(raw, fleet_secrets(n))
    pulumi.runtime.set_all_config(config, secret_keys)


def _preload(specs: list[dict[str, Any]]) -> None:
    """Import every pulumi-kubernetes module the resources need (it loads them lazily).

    Done by both timed sides before the clock starts, so neither pays for module loading.
    """
    from benchmarks.baseline import PROVIDER_TYPE, kubernetes_class

    for token in {s["type"] for s in specs}:
        if token == PROVIDER_TYPE or token.startswith("kubernetes:"):
            kubernetes_class(token)


def _program() -> None:
    """The program under test: the project's own `__main__.py` (`build(load())`).

    Run as the Pulumi language host runs it, so whatever the entry point does besides
    building (interpreter tuning, say) is measured too. Its imports are already loaded.
    """
    # The fleet stack is production, and the program refuses the public development passphrase
    # that scripts/env.sh exports (components/secrets_provider.py): this worker process gets a
    # private one, as benchmarks.kube gives its engine.
    os.environ.pop("PULUMI_CONFIG_PASSPHRASE_FILE", None)
    os.environ["PULUMI_CONFIG_PASSPHRASE"] = secrets.token_urlsafe(32)
    runpy.run_path(str(REPO / "__main__.py"), run_name="__main__")


_BASELINE_MAIN = "from benchmarks.baseline import register\n\nregister(prepared)\n"


def _baseline_program(prepared: list[Any]) -> Callable[[], object]:
    """The baseline program, run as the language host runs one, as `_program` runs coco's: a
    `__main__.py` through runpy, whose body calls `register`.

    Not a detail: the SDK records each resource's whole Python stack as it registers
    (pulumi/runtime/resource.py `_get_stack_trace`, a few microseconds a frame), so a baseline
    called straight from the harness would skip the four frames (runpy's three and the
    module's) every real program, coco's and a plain one alike, registers under.
    """
    folder = tempfile.mkdtemp(prefix="coco-bench-baseline-")
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    main = Path(folder) / "__main__.py"
    main.write_text(_BASELINE_MAIN)

    def run() -> None:
        runpy.run_path(str(main), init_globals={"prepared": prepared}, run_name="__main__")

    return run


_GC_THRESHOLDS: tuple[int, int, int] | None = None
"""When set (the `--gc-study` runs), the collector thresholds both timed sides run with."""


def _hold_collector_settings() -> None:
    """Keep `_GC_THRESHOLDS` for the whole timed region: the program's `__main__.py` sets
    the collector itself (`gc.disable` today), and any change of that setting would make the
    two sides of the equal-terms rows differ again. Its calls become no-ops in this process,
    which ends after one run."""
    gc.set_threshold = lambda *args, **kwargs: None
    gc.disable = gc.enable = lambda: None


def _timed(func: Callable[[], object]) -> dict[str, Any]:
    """Time one run of `func` as a Pulumi program, to quiescence.

    Everything alive before the clock starts (modules, config, the baseline's pre-rendered
    specs) is collected and then frozen out of the garbage collector's reach, so neither side
    pays, inside the timed region, for traversing objects the other side does not hold. The
    collector stays on: what the program creates is collected as it would be in a preview.
    """
    gc.collect()
    gc.freeze()
    if _GC_THRESHOLDS is not None:
        gc.set_threshold(*_GC_THRESHOLDS)
        _hold_collector_settings()
    rss_before = current_rss_kib()
    started = time.perf_counter()
    cpu_started = time.process_time()
    _run_program(func)
    seconds = time.perf_counter() - started
    cpu = time.process_time() - cpu_started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "seconds": seconds,
        "cpu_seconds": cpu,
        "rss_before_kib": rss_before,
        "peak_rss_kib": peak,
        "growth_kib": max(0, peak - rss_before),
    }


# --------------------------------------------------------------------------- spec capture


def to_spec_value(value: Any, where: str) -> Any:
    """A registered input as JSON, secrets marked; anything the baseline cannot replay fails."""
    from pulumi.runtime import rpc

    from benchmarks.baseline import SECRET_MARK

    if rpc.is_rpc_secret(value):
        return {SECRET_MARK: to_spec_value(rpc.unwrap_rpc_secret(value), where)}
    if isinstance(value, dict):
        return {k: to_spec_value(v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, list):
        return [to_spec_value(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if value == rpc.UNKNOWN:
        raise ValueError(f"{where} is unknown: capture runs with preview=False to avoid this")
    if value is None or isinstance(value, str | int | float | bool):
        return value
    raise TypeError(f"{where}: cannot replay a {type(value).__name__} from a spec")


def _specs_of(mocks: Any) -> list[dict[str, Any]]:
    return [
        {
            "type": r.type,
            "name": r.name,
            "inputs": to_spec_value(r.inputs, f"{r.type}::{r.name}"),
        }
        for r in mocks.registrations
    ]


def capture(n: int, specs_path: Path) -> dict[str, Any]:
    _preload_program()
    mocks = _mocks_session(record=True)
    _set_fleet_config(n)
    _run_program(_program)
    specs = _specs_of(mocks)
    specs_path.write_text(json.dumps(specs))
    kinds: dict[str, int] = {}
    for s in specs:
        kind = s["type"].rsplit(":", 1)[-1]
        kinds[kind] = kinds.get(kind, 0) + 1
    return {"resources": len(specs), "components": mocks.components, "kinds": kinds}


def stack_pulumi_config(stack: str) -> tuple[dict[str, str], list[str]]:
    """A stack file's config as the engine hands it over; secure values become placeholders.

    Only their shape matters here, and the real values stay encrypted in the stack file.
    """
    from benchmarks.startup import stack_config

    config: dict[str, str] = {}
    secret_keys: list[str] = []
    for key, value in stack_config(stack).items():
        if isinstance(value, dict) and set(value) == {"secure"}:
            config[key] = "benchmark-placeholder"
            secret_keys.append(key)
        else:
            config[key] = value if isinstance(value, str) else json.dumps(value)
    return config, secret_keys


def capture_stack(stack: str, specs_path: Path) -> dict[str, Any]:
    """Record what a stacks/ file registers, keeping the Kubernetes provider and objects.

    For the engine baseline, which must run as a bare pulumi-kubernetes project: the KBS
    certificate's dynamic resources need coco's own modules to run, so they stay out (the
    program side pays for them, as it should). Secret config values are replaced by a
    placeholder: the specs only need their shape, and the real values stay encrypted.
    """
    import pulumi

    from benchmarks.baseline import CHART_TYPE, PROVIDER_TYPE

    _preload_program()
    config, secret_keys = stack_pulumi_config(stack)
    mocks = _mocks_session(record=True)
    pulumi.runtime.set_all_config(config, secret_keys)
    _run_program(_program)
    specs = [
        s
        for s in _specs_of(mocks)
        if s["type"] == PROVIDER_TYPE or s["type"].startswith("kubernetes:")
    ]
    # A rendered chart (the dev stack's kata-deploy): the baseline templates the same chart
    # with the same options through its own plain `helm.v3.Chart`.
    specs += [
        {"type": CHART_TYPE, "name": opts["release_name"], "inputs": opts} for opts in mocks.charts
    ]
    specs_path.write_text(json.dumps(specs))
    return {"resources": len(specs), "all_custom": mocks.count, "components": mocks.components}


def _preload_program() -> None:
    import components.settings
    import components.stack  # noqa: F401


# --------------------------------------------------------------------------- timed sides


def time_program(n: int, specs_path: Path) -> dict[str, Any]:
    _preload_program()
    _preload(json.loads(specs_path.read_text()))
    mocks = _mocks_session()
    _set_fleet_config(n)
    figures = _timed(_program)
    return {**figures, "resources": mocks.count, "components": mocks.components}


def time_baseline(n: int, specs_path: Path) -> dict[str, Any]:
    from benchmarks.baseline import load_specs, prepare

    specs = load_specs(specs_path)
    _preload(specs)
    prepared = prepare(specs)
    del specs
    mocks = _mocks_session()
    figures = _timed(_baseline_program(prepared))
    return {**figures, "resources": mocks.count, "components": mocks.components}


def verify(specs_path: Path) -> dict[str, Any]:
    """The baseline registers exactly what the program did: same types, names and inputs."""
    from benchmarks.baseline import load_specs, prepare, register

    expected = json.loads(specs_path.read_text())
    mocks = _mocks_session(record=True)
    prepared = prepare(load_specs(specs_path))
    _run_program(lambda: register(prepared))
    got = _specs_of(mocks)
    want = {(s["type"], s["name"]): s["inputs"] for s in expected}
    have = {(s["type"], s["name"]): s["inputs"] for s in got}
    differ = sorted(
        f"{t}::{n}" for (t, n) in want.keys() & have.keys() if want[(t, n)] != have[(t, n)]
    )
    return {
        "equal": want == have,
        "missing": sorted(f"{t}::{n}" for t, n in want.keys() - have.keys())[:10],
        "extra": sorted(f"{t}::{n}" for t, n in have.keys() - want.keys())[:10],
        "differ": differ[:10],
    }


# --------------------------------------------------------------------------- start-up


def startup(stack: str) -> dict[str, Any]:
    """What `pulumi preview` does before and during its first registrations, timed apart.

    `import_s`: import the program's modules and parse the stack's settings (peer pods:
    also import the cloud module `build` loads). `build_s`: then run `build` under mocks,
    which is where the SDKs load the submodules they import lazily (`aws.ec2`, ...), so a
    cloud SDK's real cost shows up here rather than at import.
    """
    started = time.perf_counter()
    from benchmarks.startup import stack_config
    from components.settings import parse, strip_namespace
    from components.stack import build

    settings = parse(strip_namespace(stack_config(stack)), stack=stack)
    from components.peerpods.settings import PeerPodsCluster

    if isinstance(settings.cluster, PeerPodsCluster):
        # What `build` imports for this cloud (lazily, on the peer-pods path only).
        from components.peerpods.component import cloud_module

        cloud_module(settings.cluster.cloud)
    import_s = time.perf_counter() - started
    import_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    import_sdks = sorted(m for m in CLOUD_SDKS if m in sys.modules)
    modules = len(sys.modules)

    import pulumi

    from components.settings import full_key, secret_refs
    from tests.mocks import CloudMocks  # the outputs cloud resources answer with

    config, secret_keys = stack_pulumi_config(stack)
    for _, ref in secret_refs(settings):  # the secrets a user sets with `config set --secret`
        if full_key(ref) not in config:
            config[full_key(ref)] = "benchmark-placeholder"
            secret_keys.append(full_key(ref))
    pulumi.runtime.set_mocks(CloudMocks(), project="coco", stack=stack, preview=False)
    pulumi.runtime.set_all_config(config, secret_keys)
    started = time.perf_counter()
    _run_program(lambda: build(settings))
    build_s = time.perf_counter() - started
    return {
        "import_s": import_s,
        "import_rss_kib": import_rss,
        "import_cloud_sdks": import_sdks,
        "modules": modules,
        "build_s": build_s,
        "cloud_sdks": sorted(m for m in CLOUD_SDKS if m in sys.modules),
    }


def startup_baseline() -> dict[str, Any]:
    started = time.perf_counter()
    import pulumi  # noqa: F401
    import pulumi_kubernetes  # noqa: F401

    return {
        "import_s": time.perf_counter() - started,
        "cloud_sdks": sorted(m for m in CLOUD_SDKS if m in sys.modules),
        "modules": len(sys.modules),
    }


def main(argv: list[str]) -> int:
    command, args = argv[0], argv[1:]
    if command == "capture":
        report(capture(int(args[0]), Path(args[1])))
    elif command == "capture-stack":
        report(capture_stack(args[0], Path(args[1])))
    elif command in ("program", "baseline"):
        if len(args) > 2:  # optional third argument: collector thresholds, `a,b,c`
            thresholds = tuple(int(x) for x in args[2].split(","))
            global _GC_THRESHOLDS
            _GC_THRESHOLDS = (thresholds[0], thresholds[1], thresholds[2])
        timed = time_program if command == "program" else time_baseline
        report(timed(int(args[0]), Path(args[1])))
    elif command == "verify":
        report(verify(Path(args[1])))
    elif command == "startup":
        report(startup(args[0]))
    elif command == "startup-baseline":
        report(startup_baseline())
    else:
        print(f"unknown command {command!r}; see the module docstring", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
