"""The baseline program: the same resources, registered from pre-rendered specs.

This is what the coco program would cost if it did nothing of its own: no settings
validation, no policy rendering, no init-data hashing, no component wrappers; only the
registration of the exact objects coco registers, with plain pulumi-kubernetes classes
(`k8s.apps.v1.Deployment(name, metadata=..., spec=...)`), the same Kubernetes provider
settings, and the same values marked secret. The specs are captured from one recorded run of
the real program, so both sides send the engine identical inputs (checked by
`python -m benchmarks.worker verify`).

Only the standard library, pulumi and pulumi_kubernetes are imported here, so the engine
benchmark can copy this file into a bare project that knows nothing of coco.

Spec format (JSON list): `{"type": token, "name": str, "inputs": {...}}`; a value the engine
received as a secret is `{"__secret__": value}`. A chart the program renders (`helm.v3.Chart`,
the dev stack's kata-deploy) is `{"type": CHART_TYPE, "name": release, "inputs": <the options
of its helm:template invoke>}` and is registered as the same plain `helm.v3.Chart` (Helm hooks
dropped, as coco does), so both sides pay for templating the same chart.
"""

from __future__ import annotations

import importlib
import inspect
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

SECRET_MARK = "__secret__"
PROVIDER_TYPE = "pulumi:providers:kubernetes"
CHART_TYPE = "kubernetes:helm.sh/v3:Chart"
_SET_BY_CLASS = frozenset({"apiVersion", "kind"})
"""Inputs every typed Kubernetes class fills in itself."""
_PROVIDER_IMPLICIT = frozenset({"version"})
"""Inputs the SDK adds to provider registrations on its own (the plugin version)."""


def snake(name: str) -> str:
    """`renderYamlToDirectory` -> `render_yaml_to_directory` (Python keyword arguments)."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def kubernetes_class(token: str) -> type[pulumi.CustomResource]:
    """The pulumi-kubernetes class for a type token (`kubernetes:apps/v1:Deployment`).

    The module is the first label of the API group (`rbac.authorization.k8s.io` -> `rbac`,
    `helm.sh` -> `helm`, `core` -> `core`), as pulumi-kubernetes lays out its SDK.
    """
    if token == PROVIDER_TYPE:
        provider: type[pulumi.CustomResource] = k8s.Provider
        return provider
    _, module_path, kind = token.split(":")
    group, version = module_path.split("/")
    module = importlib.import_module(f"pulumi_kubernetes.{group.split('.')[0]}.{version}")
    cls: type[pulumi.CustomResource] = getattr(module, kind)
    return cls


def _init_params(cls: type[pulumi.CustomResource]) -> frozenset[str]:
    init = getattr(cls, "_internal_init", cls.__init__)
    return frozenset(inspect.signature(init).parameters)


def revive_secrets(value: Any) -> Any:
    """Spec values -> program inputs: every `{"__secret__": v}` becomes `Output.secret(v)`."""
    if isinstance(value, dict):
        if set(value) == {SECRET_MARK}:
            return pulumi.Output.secret(revive_secrets(value[SECRET_MARK]))
        return {k: revive_secrets(v) for k, v in value.items()}
    if isinstance(value, list):
        return [revive_secrets(v) for v in value]
    return value


def provider_value(value: Any) -> Any:
    """A provider input as the program passed it: the SDK sends non-strings as JSON text.

    (`enable_secret_mutable=True` reaches the engine as `"true"`; passing that string back
    would be sent as `"\"true\""`.)
    """
    if not isinstance(value, str):
        return value
    try:
        decoded = json.loads(value)
    except ValueError:
        return value
    return value if isinstance(decoded, str) else decoded


@dataclass(frozen=True)
class Prepared:
    """One spec resolved to the callable that registers it (done outside the timed region)."""

    factory: Callable[..., pulumi.Resource]
    name: str
    kwargs: dict[str, Any]
    kubernetes: bool
    generic_type: str | None = None


def prepare(specs: Iterable[dict[str, Any]]) -> list[Prepared]:
    """Resolve every spec to a pulumi-kubernetes class and its keyword arguments.

    Types outside pulumi-kubernetes (the KBS certificate's dynamic or pulumi-tls resources)
    are registered as generic custom resources of the same type, so the engine sees exactly
    the resource set the program registers; there are a fixed handful of them.
    """
    prepared: list[Prepared] = []
    for spec in specs:
        token, name, inputs = spec["type"], spec["name"], spec["inputs"]
        if token == CHART_TYPE:
            prepared.append(Prepared(_chart, name, {"options": inputs}, kubernetes=True))
        elif token == PROVIDER_TYPE or token.startswith("kubernetes:"):
            cls = kubernetes_class(token)
            params = _init_params(cls)
            kwargs: dict[str, Any] = {}
            for key, value in inputs.items():
                if key in _SET_BY_CLASS or (token == PROVIDER_TYPE and key in _PROVIDER_IMPLICIT):
                    continue
                arg = snake(key)
                if arg not in params:
                    raise ValueError(f"{token} {name}: {cls.__name__} takes no input {key!r}")
                kwargs[arg] = provider_value(value) if token == PROVIDER_TYPE else value
            prepared.append(Prepared(cls, name, kwargs, kubernetes=token != PROVIDER_TYPE))
        else:
            prepared.append(
                Prepared(pulumi.CustomResource, name, dict(inputs), False, generic_type=token)
            )
    return prepared


def _drop_hook(obj: dict[str, Any], opts: pulumi.ResourceOptions) -> None:
    """The same transformation as coco's `components.cluster.drop_helm_hook`."""
    if "helm.sh/hook" in ((obj.get("metadata") or {}).get("annotations") or {}):
        obj.clear()
        obj.update({"apiVersion": "v1", "kind": "List", "items": []})


def _chart(name: str, options: dict[str, Any], opts: pulumi.ResourceOptions) -> k8s.helm.v3.Chart:
    """A plain `helm.v3.Chart` of the captured template options (local path or chart ref)."""
    common = {"namespace": options.get("namespace"), "values": options.get("values") or {}}
    config: k8s.helm.v3.ChartOpts | k8s.helm.v3.LocalChartOpts
    if "path" in options:
        config = k8s.helm.v3.LocalChartOpts(
            path=options["path"], transformations=[_drop_hook], **common
        )
    else:
        config = k8s.helm.v3.ChartOpts(
            chart=options["chart"],
            version=options.get("version"),
            transformations=[_drop_hook],
            **common,
        )
    return k8s.helm.v3.Chart(name, config, opts=opts)


def register(prepared: list[Prepared]) -> list[pulumi.Resource]:
    """The baseline program proper: one plain registration per object.

    Every Kubernetes object goes through the one explicit provider (as coco's do), created
    first from its own spec.
    """
    provider: pulumi.ProviderResource | None = None
    created: list[pulumi.Resource] = []
    for p in prepared:
        kwargs = revive_secrets(p.kwargs)
        if p.generic_type is not None:
            created.append(p.factory(p.generic_type, p.name, kwargs))
        elif not p.kubernetes:
            made = p.factory(p.name, **kwargs)
            assert isinstance(made, pulumi.ProviderResource)
            provider = made
            created.append(made)
        elif p.factory is _chart:
            # A component: its objects get the provider through `providers`, as coco's do.
            charts = pulumi.ResourceOptions(providers=[provider] if provider else None)
            created.append(_chart(p.name, opts=charts, **kwargs))
        else:
            opts = pulumi.ResourceOptions(provider=provider)
            created.append(p.factory(p.name, opts=opts, **kwargs))
    return created


def load_specs(path: Path) -> list[dict[str, Any]]:
    specs: list[dict[str, Any]] = json.loads(path.read_text())
    # The provider must exist before the objects that use it.
    return sorted(specs, key=lambda s: s["type"] != PROVIDER_TYPE)


def main(specs_file: str) -> None:
    """Entry point of the engine benchmark's baseline project (`__main__.py` calls it)."""
    register(prepare(load_specs(Path(specs_file))))
