"""The user's own manifests and charts, deployed as confidential workloads.

A `coco:manifests` entry names a folder of YAML or a local Helm chart. Folders are read and
checked while the settings are validated (components/checks/manifests.py), so a manifest that
is not valid Kubernetes, a workload the TEE cannot run, or a tag without digest in production
stops the program before anything is registered, naming the file, object and field. A chart
is rendered by the Kubernetes provider (helm.v3.Chart, as components/releases.py's kata-deploy
render), so its objects are checked by the same transformation as they are decoded, still
before any of them is registered.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import yaml

from components import podspec, tokens
from components.checks.manifests import MAX_ENTRIES as MAX_ENTRIES
from components.checks.manifests import MAX_TOTAL_BYTES as MAX_TOTAL_BYTES
from components.checks.manifests import MAX_YAML_FILES as MAX_YAML_FILES
from components.checks.manifests import chart_problems as chart_problems
from components.checks.manifests import folder_problems as folder_problems
from components.checks.manifests import options_for, read_folder, with_namespace
from components.checks.manifests import shape_problem as shape_problem
from components.checks.manifests import without_nulls as without_nulls
from components.checks.manifests import yaml_files as yaml_files
from components.manifest_settings import ManifestSource
from components.transform import Confidential
from components.yaml_input import clip

Transformation = Callable[[dict[str, Any], pulumi.ResourceOptions], None]


def plaintext_secret(obj: dict[str, Any]) -> bool:
    """A Secret object carrying values (`data` or `stringData`)."""
    return (
        obj.get("kind") == "Secret"
        and str(obj.get("apiVersion")) == "v1"
        and bool(obj.get("data") or obj.get("stringData"))
    )


def keyed_transformation(
    base: Transformation, key: str, source: str, refuse_secrets: bool
) -> Transformation:
    """`base`, its refusals raised as one `pulumi.RunError` keyed by the `coco:manifests[i]`
    entry and naming the object (a chart's objects are checked only as the provider renders
    them: a bare `PodSpecError` came out as a Python traceback without the key).

    With `refuse_secrets` (a non-dev render) a Secret holding values is refused: it would be
    written in plain text into the folder a GitOps tool commits. Refused rather than
    converted: only the chart knows which of its pods read it, and a KBS resource needs a
    reader's init-data binding; the fix names the ways out (docs/charts.md).
    """

    def transformation(obj: dict[str, Any], opts: pulumi.ResourceOptions) -> None:
        if refuse_secrets and plaintext_secret(obj):
            raise pulumi.RunError(
                f"{key} ({source}): {podspec.describe(obj)} would be written in plain text "
                "into the render folder: deliver it from your secret manager and point the "
                "chart at it (most charts take an `existingSecret` value), or move the "
                "workload that reads it to coco:workloads, whose `sealedEnv` reads a KBS "
                "resource (docs/guest-features.md)"
            )
        try:
            base(obj, opts)
        except podspec.PodSpecError as err:
            problems = "; ".join(clip(p) for p in err.problems[:20])
            raise pulumi.RunError(f"{key} ({source}): {problems}") from None

    return transformation


class ConfidentialManifests(pulumi.ComponentResource):
    """One `coco:manifests` entry: its objects, workloads made confidential."""

    digests: pulumi.Output[dict[str, str]]
    """`Kind/namespace/name` -> init-data digest hex of every workload in the source."""

    def __init__(
        self,
        source: ManifestSource,
        runtime_class: str,
        production: bool,
        environment: str,
        kbs_url: pulumi.Input[str],
        kbs_cert_pem: pulumi.Input[str],
        opts: pulumi.ResourceOptions | None = None,
        attestation_platform: str | None = None,
        key: str | None = None,
        rendering: bool = False,
    ) -> None:
        super().__init__(
            tokens.token("ConfidentialManifests"),
            source.name,
            None,
            tokens.options("ConfidentialManifests", opts),
        )
        self.runtime_class = runtime_class
        self.confidential = Confidential(
            options_for(source, runtime_class, production, environment, attestation_platform),
            kbs_url,
            kbs_cert_pem,
        )
        child = pulumi.ResourceOptions(parent=self)
        transformation = keyed_transformation(
            self.confidential.transformation,
            key or f"coco:manifests ({source.name})",
            f"chart {source.chart}" if source.chart is not None else f"folder {source.path}",
            refuse_secrets=rendering and environment != "dev",
        )
        group: pulumi.Resource
        if source.chart is not None:
            group = k8s.helm.v3.Chart(
                source.name,
                k8s.helm.v3.LocalChartOpts(
                    path=source.chart,
                    namespace=source.namespace,
                    values=source.values,
                    transformations=[transformation],
                ),
                opts=child,
            )
        else:
            objects = [
                with_namespace(o, source.namespace) for _, o in read_folder(Path(source.path or ""))
            ]
            group = k8s.yaml.ConfigGroup(
                source.name,
                yaml=[yaml.safe_dump_all(objects, sort_keys=True)],
                transformations=[transformation],
                opts=child,
            )
        self.group = group
        self.digests = self.confidential.digests_of(group)
        self.register_outputs({"initdataDigests": self.digests})
