"""The user's own manifests and charts, deployed as confidential workloads.

A `coco:manifests` entry names a folder of YAML or a local Helm chart. Folders are read and
checked while the settings are validated (`problems`), so a manifest that is not valid
Kubernetes, a workload the TEE cannot run, or a tag without digest in production stops the
program before anything is registered, naming the file, object and field. A chart is rendered
by the Kubernetes provider (helm.v3.Chart, as components/releases.py's kata-deploy render),
so its objects are checked by the same transformation as they are decoded, still before any of
them is registered.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import yaml

from components import podspec, tokens
from components.guest_features import image_policy_path
from components.manifest_settings import ManifestSource
from components.transform import Confidential, ConfidentialOptions, dropped_hook, prepare
from policies.sealed import kbs_uri


def yaml_files(folder: Path) -> list[Path]:
    """The folder's YAML files, recursively, in a fixed order (renders are deterministic)."""
    return sorted(p for p in folder.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file())


def read_folder(folder: Path) -> list[tuple[Path, dict[str, Any]]]:
    """Every object in the folder's YAML files with the file it came from; `ValueError`
    naming the file for text that is not YAML or a document that is not an object."""
    if not folder.is_dir():
        raise ValueError(f"{folder} is not a folder")
    objects = []
    for path in yaml_files(folder):
        try:
            docs = list(yaml.safe_load_all(path.read_text()))
        except yaml.YAMLError as err:
            raise ValueError(f"{path}: not YAML ({err})") from None
        for i, doc in enumerate(docs):
            if doc is None:
                continue
            if not isinstance(doc, dict) or "kind" not in doc or "apiVersion" not in doc:
                raise ValueError(f"{path}: document {i} is not a Kubernetes object")
            objects.append((path, doc))
    if not objects:
        raise ValueError(f"{folder} holds no Kubernetes objects (*.yaml, *.yml)")
    return objects


def options_for(
    source: ManifestSource,
    runtime_class: str,
    production: bool,
    environment: str | None = None,
    attestation_platform: str | None = None,
) -> ConfidentialOptions:
    return ConfidentialOptions(
        runtime_class=runtime_class,
        attestation_platform=attestation_platform,
        agent_policy=source.agent_policy,
        gpus=source.gpus,
        require_digests=production or source.image_signatures is not None,
        annotations=dict(source.annotations),
        environment=environment,
        registry=source.registry,
        image_security_policy_uri=(
            kbs_uri(image_policy_path(source.name)) if source.image_signatures else None
        ),
    )


def folder_problems(source: ManifestSource, runtime_class: str, production: bool) -> list[str]:
    """Everything wrong with a folder source's objects, each naming file, object and field."""
    assert source.path is not None
    try:
        objects = read_folder(Path(source.path))
    except ValueError as err:
        return [str(err)]
    options = options_for(source, runtime_class, production)
    problems = []
    for path, obj in objects:
        if dropped_hook(obj) is not None:
            continue  # left out when deployed (components/transform.py `dropped_hook`)
        if podspec.is_workload(obj):
            try:
                prepare(with_namespace(obj, source.namespace), options)
            except podspec.PodSpecError as err:
                problems += [f"{path.name}: {p}" for p in err.problems]
        else:
            problems += [
                f"{path.name}: {p}"
                for p in podspec.schema_problems(obj)
                if "has no such kind" not in p
            ]
    return problems


def with_namespace(obj: dict[str, Any], namespace: str) -> dict[str, Any]:
    """`obj` with the source's namespace where the object names none (as `kubectl apply -n`)."""
    meta = dict(obj.get("metadata") or {})
    meta.setdefault("namespace", namespace)
    return {**obj, "metadata": meta}


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
        group: pulumi.Resource
        if source.chart is not None:
            group = k8s.helm.v3.Chart(
                source.name,
                k8s.helm.v3.LocalChartOpts(
                    path=source.chart,
                    namespace=source.namespace,
                    values=source.values,
                    transformations=[self.confidential.transformation],
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
                transformations=[self.confidential.transformation],
                opts=child,
            )
        self.group = group
        self.digests = self.confidential.digests_of(group)
        self.register_outputs({"initdataDigests": self.digests})
