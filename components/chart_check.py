"""Every `coco:manifests` chart rendered and checked when the program starts, before any
resource is registered.

Why: a chart's objects exist only once Helm renders them. Checked only as the provider renders
the chart for deployment (`helm.v3.Chart` transformations, inside an output), a refusal came
after the program had registered the cluster side and the Trustee, so `up` (which the
Automation API runs without a preview) created them and then failed half-way. Here each chart
is rendered first, synchronously, with the same options `ConfidentialManifests` gives
`helm.v3.Chart` (path, namespace, values, release name = the source's name), and its objects
go through the same checks (components/checks/manifests.py `source_problems`); any problem stops the
program with every chart's problems, keyed `coco:manifests[i]`.

The render goes through a Kubernetes provider of its own, `coco-chart-check`, in render mode
(`renderYamlToDirectory`, never written: no resource uses this provider), so it needs no
cluster and works for every stack kind, a cluster the stack creates included:
pulumi-kubernetes `invoke_helm_template.go` templates client-side (`ClientOnly`). Like every
provider of that package it still loads the ambient kubeconfig ($KUBECONFIG, ~/.kube/config;
provider.go `Configure`) and, when that cluster answers, asks it for its Kubernetes version
and API versions for the template; with none, Helm's defaults. A chart that renders
differently against the deploy cluster is still checked as deployed, by the transformation
(the backstop).
"""

from __future__ import annotations

import json
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components.manifest_settings import ManifestSource
from components.problems import Problem, SettingsError
from components.stack_settings import StackSettings
from components.vocabulary import NAMESPACE
from components.yaml_input import clip

CHECK_PROVIDER = "coco-chart-check"
CHECK_RENDER_DIR = ".coco-chart-check"
"""The check provider's render folder: a constant (no provider diff between machines), never
written (the provider only templates)."""

HELM_TEMPLATE = "kubernetes:helm:template"


def template_options(source: ManifestSource) -> dict[str, Any]:
    """The `jsonOpts` `helm.v3.Chart` sends for the source (pulumi_kubernetes helm/v3
    `LocalChartOpts.to_json`: the options set, `release_name` = the Chart's name)."""
    return {
        "path": source.chart,
        "namespace": source.namespace,
        "values": source.values,
        "release_name": source.name,
    }


def rendered_objects(source: ManifestSource, provider: pulumi.ProviderResource) -> list[Any]:
    """The chart's objects as the provider decodes them (`helm template`, client-side)."""
    result = pulumi.runtime.invoke(
        HELM_TEMPLATE,
        {"jsonOpts": json.dumps(template_options(source), sort_keys=True)},
        pulumi.InvokeOptions(provider=provider),
    )
    found = (result.value or {}).get("result") or []
    return list(found) if isinstance(found, list) else []


def checks_charts(settings: StackSettings) -> bool:
    """Whether this stack deploys `coco:manifests` charts (the platform layer and a
    trusted zone's Trustee stack deploy no workloads)."""
    if settings.layer is not None and settings.layer.kind == "platform":
        return False
    if settings.trustee_topology.role == "trustee":
        return False
    return any(m.chart is not None for m in settings.manifests)


def chart_problems(settings: StackSettings) -> list[Problem]:
    """Every problem of every chart source, keyed `coco:manifests[i] (chart <path>)`."""
    if not checks_charts(settings):
        return []
    # Loaded only for a stack with charts: the manifests checks load the Kubernetes schemas.
    from components.checks.manifests import describe_source, options_for, source_problems

    # kubeconfig "": the SDK would otherwise copy $KUBECONFIG into the provider's inputs, which
    # the provider refuses next to renderYamlToDirectory (provider.go CheckConfig).
    provider = k8s.Provider(
        CHECK_PROVIDER, render_yaml_to_directory=CHECK_RENDER_DIR, kubeconfig=""
    )
    production = settings.production and not settings.waived("unpinned-images")
    refuse = settings.kubernetes.rendering and settings.environment != "dev"
    problems: list[Problem] = []
    for i, source in enumerate(settings.manifests):
        if source.chart is None:
            continue
        key = f"{NAMESPACE}:manifests[{i}] ({describe_source(source)})"
        try:
            objects = rendered_objects(source, provider)
        except Exception as err:  # the provider's error, keyed, not a traceback
            problems.append(Problem(key, f"helm template failed: {clip(str(err), 2000)}"))
            continue
        options = options_for(source, settings.manifest_runtime_class(source), production)
        found = source_problems(
            source, [o for o in objects if isinstance(o, dict)], options, refuse
        )
        problems += [Problem(key, p) for p in found]
    return problems


def check_charts(settings: StackSettings, stack: str | None = None) -> None:
    """Raise `SettingsError` listing every chart problem (the program's start refuses)."""
    problems = chart_problems(settings)
    if problems:
        raise SettingsError(problems, stack)
