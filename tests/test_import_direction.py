"""Imports flow one way: vocabulary -> policies -> settings models -> validation -> render ->
resources -> program, with no circle anywhere (docs/architecture.md).

Why: a module that imports one above it, or a circle of modules, is a knot: none of them can
be read, tested or moved alone, and a circle works only as long as the import order happens to
suit it. Every module of `components/`, `policies/` and `automation/` is read as text (`ast`,
nothing is imported) and every import it holds counts: at the top, inside a function, under
`if TYPE_CHECKING:`; a type-only import still ties the two modules together.

`LAYERS` is the one place a module's layer is declared: a new module fails
`test_every_module_has_a_layer` until it is placed. A module may import its own layer and the
ones below; `from pkg import name` is an import of `pkg.name` when that is a module, else of
`pkg`. A package `__init__` that imports nothing (a docstring) holds nothing and has no layer.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
ROOTS = ("components", "policies", "automation")

LAYERS: dict[str, tuple[str, ...]] = {
    # Names and rules every other layer shares: no settings, no resources.
    "vocabulary": (
        "components.vocabulary",  # KBS resource paths and URIs, digests, secret references
        "components.problems",  # a config problem and the error that lists them
        "components.tee",  # the runtime-class catalogue and hardware
        "components.labels",
        "components.tokens",
        "components.releases",
        "components.value_ranges",
        "components.yaml_input",
    ),
    # Pure builders of the documents the TEE and the KBS read (init-data, Rego, TOML), and the
    # policy pack's checks of what a program registers.
    "policies": (
        "policies.agent",
        "policies.agent_container",
        "policies.appraisal",
        "policies.attestation",
        "policies.gpu_attestation",
        "policies.image_policy",
        "policies.initdata",
        "policies.registry",
        "policies.resource",
        "policies.sealed",
        "policies.vtpm_initdata",
        "policies.pack.checks",
        "policies.pack.objects",
        "policies.pack.signatures",
        "policies.pack.zones",
    ),
    # The typed stack configuration (pydantic models) and the per-field rules they enforce.
    "settings": (
        "components.config_types",
        "components.kata_chart",
        "components.layer_settings",
        "components.manifest_settings",
        "components.service",
        "components.verifier_settings",
        "components.hardening",  # hardened pod defaults: options and the pure rewrite
        "components.checklist",
        "components.guest_features",
        "components.topology",
        "components.reachability",
        "components.peerpods.settings",
        "components.stack_settings",
    ),
    # Checks that span keys or read input files, before any resource: `components.settings`
    # (parse, load) runs them all. The pod-template checks (podspec, transform's `prepare`)
    # are here because settings validation runs them on every manifest folder.
    "validation": (
        "components.checks.cross",
        "components.checks.guest",
        "components.checks.manifests",
        "components.checks.reachability",
        "components.checks.signed_images",
        "components.checks.topology",
        "components.reference_coverage",
        "components.kube_schemas",  # Kubernetes schema validators, built once per process
        "components.podspec",
        "components.confidential_pod",  # the one recipe that makes a pod template confidential
        "components.workload_template",  # a coco:workloads entry as its Kubernetes object
        "components.transform",
        "components.settings",
        "components.preflight",
        "components.secrets_provider",
    ),
    # Documents made from validated settings, without registering anything.
    "render": ("components.kbs_render",),
    # Pulumi resources: ComponentResources, dynamic providers and what they call.
    "resources": (
        "components.tls",
        "components.kbs_admin",
        "components.kbs_admin_resources",
        "components.protection",
        "components.pod_guards",  # NetworkPolicy and PodDisruptionBudget of pods coco owns
        "components.sealed_references",  # the Secret of signed references sealed values read
        "components.trustee",
        "components.workload",
        "components.manifests",
        "components.chart_check",  # every chart rendered and checked before any resource
        "components.cluster",
        "components.peerpods.common",
        "components.peerpods.render",  # a render's cluster side without its cloud
        "components.peerpods.aws",
        "components.peerpods.azure",
        "components.peerpods.gcp",
        "components.peerpods.component",
    ),
    # What runs: the stack builders, the component package, the policy pack's entry points,
    # the Automation API and its command line.
    "program": (
        "components.stack",
        "components.external_trustee",
        "components.zones",
        "components.layers",
        "components.cancellation",
        "components.package.args",
        "components.package.components",
        "components.package.provider",
        "components.package.__main__",
        "policies.pack.production",
        "policies.pack.__main__",
        "automation",
        "automation.errors",
        "automation.engine",
        "automation.events",
        "automation.results",
        "automation.config",
        "automation.spec",
        "automation.workspace",
        "automation.operations",
        "automation.fleet",
        "automation.fleet_stacks",
        "automation.fleet_report",
        "automation.secret_options",
        "automation.fleet_cli",
        "automation.zones",
        "automation.attestation_tools",
        "automation.cli",
        "automation.__main__",
    ),
}


def layer_of(table: Mapping[str, Iterable[str]]) -> dict[str, int]:
    """Module -> its layer's rank (0 is the lowest)."""
    ranks: dict[str, int] = {}
    for rank, modules in enumerate(table.values()):
        for module in modules:
            assert module not in ranks, f"{module} is placed twice"
            ranks[module] = rank
    return ranks


def modules_under(root: Path, packages: Iterable[str]) -> dict[str, Path]:
    """Dotted name -> file of every module below `root`'s `packages`."""
    found: dict[str, Path] = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join(parts)] = path
    return found


def _imports_nothing(path: Path) -> bool:
    tree = ast.parse(path.read_text(), str(path))
    return not any(isinstance(n, ast.Import | ast.ImportFrom) for n in ast.walk(tree))


def imports(modules: Mapping[str, Path]) -> dict[str, dict[str, int]]:
    """Module -> {imported module of `modules`: line of the first such import}."""
    graph: dict[str, dict[str, int]] = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        found: dict[str, int] = {}
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*up, *([node.module] if node.module else [])])
                for alias in node.names:
                    sub = f"{base}.{alias.name}"
                    targets.append(sub if sub in modules else base)
            for target in targets:
                # the module itself, or the innermost package of ours it sits in
                parts = target.split(".")
                for end in range(len(parts), 0, -1):
                    candidate = ".".join(parts[:end])
                    if candidate in modules:
                        if candidate != name:
                            found.setdefault(candidate, node.lineno)
                        break
        graph[name] = found
    return graph


def cycles(graph: Mapping[str, Mapping[str, int]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, {}):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(found)


def upward(
    graph: Mapping[str, Mapping[str, int]], ranks: Mapping[str, int], names: list[str]
) -> list[str]:
    """Every import of a module from a higher layer, as `a (layer) -> b (layer), line n`."""
    return [
        f"{a} ({names[ranks[a]]}) imports {b} ({names[ranks[b]]}), line {line}"
        for a, targets in sorted(graph.items())
        for b, line in sorted(targets.items())
        if a in ranks and b in ranks and ranks[b] > ranks[a]
    ]


def _placed_modules() -> dict[str, Path]:
    return {
        name: path
        for name, path in modules_under(REPO, ROOTS).items()
        if not (path.name == "__init__.py" and _imports_nothing(path))
    }


def test_every_module_has_a_layer() -> None:
    modules = set(_placed_modules())
    placed = set(layer_of(LAYERS))
    assert sorted(modules - placed) == [], "place each new module in LAYERS"
    assert sorted(placed - modules) == [], "LAYERS names modules that do not exist"


def test_imports_follow_the_layer_order() -> None:
    graph = imports(modules_under(REPO, ROOTS))
    assert upward(graph, layer_of(LAYERS), list(LAYERS)) == []


def test_no_import_cycles() -> None:
    assert cycles(imports(modules_under(REPO, ROOTS))) == []


def test_the_checks_see_a_cycle_and_an_upward_import(tmp_path: Path) -> None:
    """The checks above can fail: a small tree with a circle through a type-only import and a
    function-level import, and a model importing its program."""
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text('"""A package."""\n')
    (pkg / "model.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.check import x\n"
    )
    (pkg / "check.py").write_text("def f():\n    from pkg import model\n")
    (pkg / "program.py").write_text("from . import check\n")
    (pkg / "low.py").write_text("import pkg.program\n")
    graph = imports(modules_under(tmp_path, ["pkg"]))
    assert graph["pkg.check"] == {"pkg.model": 2}
    assert graph["pkg.program"] == {"pkg.check": 1}
    assert cycles(graph) == [["pkg.check", "pkg.model"]]
    table = {"low": ("pkg.low", "pkg.model", "pkg.check"), "program": ("pkg.program",)}
    assert upward(graph, layer_of(table), list(table)) == [
        "pkg.low (low) imports pkg.program (program), line 1"
    ]


@pytest.mark.parametrize("layer", list(LAYERS))
def test_layers_are_not_empty(layer: str) -> None:
    assert LAYERS[layer], f"layer {layer} has no module: drop it or place one there"
