"""The user's own manifests and charts, deployed as confidential workloads.

A `coco:manifests` entry names a folder of YAML or a local Helm chart. Folders are read and
checked while the settings are validated (components/checks/manifests.py), so a manifest that
is not valid Kubernetes, a workload the TEE cannot run, or a tag without digest in production
stops the program before anything is registered, naming the file, object and field. A chart
is rendered and checked the same way when the program starts (components/chart_check.py),
before any resource; the Kubernetes provider then renders it for deployment (helm.v3.Chart,
as components/releases.py's kata-deploy render), and the same checks run again on each object
it decodes, as a backstop.

A source's `sealedSecrets` (a chart's env `secretKeyRef` served by the KBS) are applied to
each object before it is checked or deployed (components/checks/manifests.py `seal_refs`);
this module writes the source's sealed Secret of signed references.
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
from components.checks.manifests import describe_source as describe_source
from components.checks.manifests import folder_problems as folder_problems
from components.checks.manifests import (
    options_for,
    read_folder,
    seal_refs,
    secret_problem,
    with_namespace,
)
from components.checks.manifests import plaintext_secret as plaintext_secret
from components.checks.manifests import shape_problem as shape_problem
from components.checks.manifests import without_nulls as without_nulls
from components.checks.manifests import yaml_files as yaml_files
from components.manifest_settings import ManifestSource
from components.sealed_references import sealed_references_secret
from components.transform import Confidential, dropped_hook
from components.yaml_input import clip

Transformation = Callable[[dict[str, Any], pulumi.ResourceOptions], None]


def keyed_transformation(
    base: Transformation, source: ManifestSource, key: str, where: str, refuse_secrets: bool
) -> Transformation:
    """`base` after the source's sealed references (`seal_refs`), its refusals raised as one
    `pulumi.RunError` keyed by the `coco:manifests[i]` entry and naming the object.

    The program checks every source before any resource is registered (folders with the
    settings, charts in components/chart_check.py), with the same `source_problems`; this is
    the backstop for a render that differs from that check (a chart reading the cluster's
    version), so what is deployed is always what was checked.

    With `refuse_secrets` (a non-dev render) a Secret still holding values is refused: it
    would be written in plain text into the folder a GitOps tool commits.
    """

    def transformation(obj: dict[str, Any], opts: pulumi.ResourceOptions) -> None:
        if dropped_hook(obj) is None:  # a dropped hook is never written: nothing to check
            seal_refs(obj, source)
            if why := secret_problem(obj, source, refuse_secrets):
                raise pulumi.RunError(f"{key} ({where}): {why}")
        try:
            base(obj, opts)
        except podspec.PodSpecError as err:
            problems = "; ".join(clip(p) for p in err.problems[:20])
            raise pulumi.RunError(f"{key} ({where}): {problems}") from None

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
        sealing_key_pem: pulumi.Output[str] | None = None,
    ) -> None:
        """`sealing_key_pem`: the stack's sealed-secret signing key (a secret), needed when
        the source has `sealedSecrets`."""
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
            source,
            key or f"coco:manifests ({source.name})",
            describe_source(source),
            refuse_secrets=rendering and environment != "dev",
        )
        self.sealed_secret: k8s.core.v1.Secret | None = None
        if source.sealed_secrets:
            if sealing_key_pem is None:
                raise ValueError(f"source {source.name!r} has sealedSecrets but no signing key")
            self.sealed_secret = sealed_references_secret(
                f"{source.name}-sealed-secrets",
                name=source.sealed_secret_name,
                namespace=source.namespace,
                workload=source.name,
                environment=environment,
                references={r.sealed_key: r.sealed_from for r in source.sealed_secrets},
                sealing_key_pem=sealing_key_pem,
                opts=child,
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
