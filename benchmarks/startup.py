"""Part 2: start-up cost per stack kind, and import hygiene.

A bare-metal stack must never load the AWS, Azure or GCP SDKs: they are large generated
packages, and a `pulumi preview` of an on-prem TDX cluster should not pay for any of them.
Each stack in `stacks/` runs in a fresh interpreter that does what a preview does before its
first registration: import `components.settings` and `components.stack`, parse the stack's
settings and, for peer pods, import the one cloud module `build` loads for that cloud. That
is the import figure. The same interpreter then runs `build` under mocks, because the cloud
SDKs load their submodules (`aws.ec2`, `gcp.compute`, ...) only when first used: the build
figure and the whole-process peak RSS show what a cloud really costs. Which SDKs ended up in
`sys.modules` is checked after both: bare metal none, peer pods exactly their own cloud's.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks import measure

STACKS_DIR = measure.REPO / "stacks"
CLOUD_SDK = {"aws": "pulumi_aws", "azure": "pulumi_azure_native", "gcp": "pulumi_gcp"}


def stack_file(name: str) -> Path:
    return STACKS_DIR / f"Pulumi.{name}.yaml"


def stack_config(stack: str) -> dict[str, Any]:
    """The `config:` map of stacks/Pulumi.<stack>.yaml (full keys, secure values as dicts)."""
    import yaml

    doc = yaml.safe_load(stack_file(stack).read_text()) or {}
    config: dict[str, Any] = doc.get("config") or {}
    return config


def describe(stack: str) -> str:
    """`baremetal` or `peerpods/<cloud>`, read from the config without importing coco."""
    cluster = stack_config(stack).get("coco:cluster") or {}
    if cluster.get("kind") == "peerpods":
        return f"peerpods/{(cluster.get('cloud') or {}).get('provider')}"
    return str(cluster.get("kind", "baremetal"))


def stack_names() -> list[str]:
    return sorted(
        p.name.removeprefix("Pulumi.").removesuffix(".yaml")
        for p in STACKS_DIR.glob("Pulumi.*.yaml")
    )


def stacks_to_measure(quick: bool) -> list[str]:
    """Every stack in stacks/; `quick` keeps `dev` and one stack of each other kind."""
    if not quick:
        return stack_names()
    kinds_seen: set[str] = set()
    chosen: list[str] = []
    for name in stack_names():
        kind = describe(name)
        if name == "dev" or kind not in kinds_seen:
            chosen.append(name)
            if name != "dev":
                kinds_seen.add(kind)
    return chosen


def allowed_sdks(kind: str) -> list[str]:
    """The cloud SDKs a stack of this kind may load: its own cloud's, or none."""
    if kind.startswith("peerpods/"):
        return [CLOUD_SDK[kind.split("/", 1)[1]]]
    return []


@dataclass(frozen=True)
class StartupRow:
    stack: str
    kind: str
    import_s: float
    import_rss_mib: float
    build_s: float | None
    max_rss_mib: float
    cloud_sdks: list[str]
    modules: int

    @property
    def ok(self) -> bool:
        return self.kind == "-" or self.cloud_sdks == allowed_sdks(self.kind)


def measure_stack(stack: str, repeats: int) -> StartupRow:
    runs = [measure.run(measure.python_worker("startup", stack)) for _ in range(repeats)]
    results = [r.result for r in runs]
    return StartupRow(
        stack=stack,
        kind=describe(stack),
        import_s=measure.median([r["import_s"] for r in results]),
        import_rss_mib=measure.median([r["import_rss_kib"] for r in results]) / 1024,
        build_s=measure.median([r["build_s"] for r in results]),
        max_rss_mib=measure.median([r.max_rss_kib for r in runs]) / 1024,
        cloud_sdks=sorted(set().union(*(r["cloud_sdks"] for r in results))),
        modules=int(results[-1]["modules"]),
    )


def measure_floor(repeats: int) -> StartupRow:
    """`import pulumi, pulumi_kubernetes`: what any Kubernetes program pays, for scale."""
    runs = [measure.run(measure.python_worker("startup-baseline")) for _ in range(repeats)]
    results = [r.result for r in runs]
    rss = measure.median([r.max_rss_kib for r in runs]) / 1024
    return StartupRow(
        stack="baseline: import pulumi, pulumi_kubernetes",
        kind="-",
        import_s=measure.median([r["import_s"] for r in results]),
        import_rss_mib=rss,
        build_s=None,
        max_rss_mib=rss,
        cloud_sdks=sorted(set().union(*(r["cloud_sdks"] for r in results))),
        modules=int(results[-1]["modules"]),
    )


def run_part(quick: bool, repeats: int) -> list[StartupRow]:
    rows = [measure_floor(repeats)]
    rows += [measure_stack(stack, repeats) for stack in stacks_to_measure(quick)]
    return rows
