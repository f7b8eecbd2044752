"""A `coco:workloads` entry as the Kubernetes object it stands for, before it is confidential.

An entry is a full Kubernetes workload: `kind` (Pod, Deployment, StatefulSet, Job, CronJob),
`template` (a PodTemplateSpec: probes, securityContext, volumes, serviceAccountName,
initContainers, ... exactly as the Kubernetes API spells them) and `spec` (the object's other
spec fields: a CronJob's `schedule`, a Job's `backoffLimit`, a StatefulSet's `serviceName`).
The short form (`containers` with image, command, args, env, ports, resources, working dir,
user, sealed values; `memory`; `labels`; `annotations`) is sugar: it expands into the same
template, and `template` is merged over it (containers, init containers, volumes and env
entries by name; any other list replaces the expanded one). The object is then checked
against the Kubernetes schema like a manifest (components/podspec.py), and its pod template
goes through the confidential-pod recipe (components/confidential_pod.py).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from typing import Any

from components import confidential_pod, labels, podspec
from components.confidential_pod import PodOptions
from components.guest_features import image_policy_path
from components.stack_settings import ContainerSettings, WorkloadSettings
from policies.sealed import kbs_uri

API_VERSIONS: dict[str, str] = {
    "Pod": "v1",
    "Deployment": "apps/v1",
    "StatefulSet": "apps/v1",
    "Job": "batch/v1",
    "CronJob": "batch/v1",
}
REPLICATED = frozenset({"Deployment", "StatefulSet"})
"""Kinds with `replicas` and a label selector coco sets to the workload's own label."""
RUN_TO_COMPLETION = frozenset({"Job", "CronJob"})
MERGED_BY_NAME = frozenset({"containers", "initContainers", "volumes", "env"})
"""Lists whose items `template` merges with the short form's by `name` (kubectl's strategic
merge keys for these fields); any other list in `template` replaces the expanded one."""


def sealed_secret_name(settings: WorkloadSettings) -> str:
    """The Kubernetes Secret holding a workload's sealed references (never a value)."""
    return f"{settings.name}-sealed-secrets"


def sealed_secret_key(container: str, var: str) -> str:
    return f"{container}.{var}"


def sealed_file_key(container: str, path: str) -> str:
    """The Secret key of a sealed file (a path is not a valid key; env keys have no `-`)."""
    return f"{container}.file-{hashlib.sha256(path.encode()).hexdigest()[:16]}"


def sealed_dirs(container: ContainerSettings) -> list[str]:
    """The directories of a container's sealed files, one Secret volume each."""
    return sorted({f.directory for f in container.sealed_files})


def sealed_volume_name(container: str, directory: str) -> str:
    """A volume name (DNS label) per container and directory."""
    digest = hashlib.sha256(f"{container}\0{directory}".encode()).hexdigest()[:16]
    return f"sealed-{digest}"


def sealed_refs(settings: WorkloadSettings) -> dict[tuple[str, str], str]:
    """(Secret, key) -> KBS resource of every sealed env var: the recipe pins these entries
    as sealed values (components/podspec.py `SealedRefs`)."""
    return {
        (sealed_secret_name(settings), sealed_secret_key(c.name, v.name)): v.sealed_from
        for c in settings.containers
        for v in c.sealed_env
    }


def sealed_values(settings: WorkloadSettings) -> dict[str, str]:
    """Secret key -> KBS resource of every sealed env var and file (what the Secret seals)."""
    return {
        sealed_secret_key(c.name, v.name): v.sealed_from
        for c in settings.containers
        for v in c.sealed_env
    } | {
        sealed_file_key(c.name, f.path): f.sealed_from
        for c in settings.containers
        for f in c.sealed_files
    }


def sealed_volumes(settings: WorkloadSettings) -> list[dict[str, Any]]:
    """The pod's Secret volumes for sealed files: each holds only its directory's files."""
    return [
        {
            "name": sealed_volume_name(c.name, d),
            "secret": {
                "secretName": sealed_secret_name(settings),
                "items": [
                    {"key": sealed_file_key(c.name, f.path), "path": f.name}
                    for f in sorted(c.sealed_files, key=lambda f: f.path)
                    if f.directory == d
                ],
            },
        }
        for c in settings.containers
        for d in sealed_dirs(c)
    ]


def short_container(settings: WorkloadSettings, i: int, c: ContainerSettings) -> dict[str, Any]:
    """One short-form container in Kubernetes field names."""
    limits = dict(c.resources.limits)
    requests = dict(c.resources.requests)
    if settings.memory and i == 0:
        # `memory` sizes the pod VM: the first container's limit, unless it sets one.
        limits.setdefault("memory", settings.memory)
    container: dict[str, Any] = {"name": c.name, "image": c.image}
    if c.command is not None:
        container["command"] = list(c.command)
    if c.args is not None:
        container["args"] = list(c.args)
    env: list[dict[str, Any]] = [{"name": k, "value": v} for k, v in sorted(c.env.items())]
    # Sealed secrets: kubelet copies the Secret's sealed reference into the env; the Kata
    # agent hands `sealed.`-prefixed values to the CDH, which unseals them in the guest.
    env += [
        {
            "name": v.name,
            "valueFrom": {
                "secretKeyRef": {
                    "name": sealed_secret_name(settings),
                    "key": sealed_secret_key(c.name, v.name),
                }
            },
        }
        for v in c.sealed_env
    ]
    if env:
        container["env"] = env
    # Sealed files: each directory a read-only Secret volume; the Kata agent unseals its
    # `sealed.` files through the CDH before the container starts.
    mounts = [
        {"name": sealed_volume_name(c.name, d), "mountPath": d, "readOnly": True}
        for d in sealed_dirs(c)
    ]
    if mounts:
        container["volumeMounts"] = mounts
    if c.ports:
        container["ports"] = [{"containerPort": p} for p in c.ports]
    if c.working_dir is not None:
        container["workingDir"] = c.working_dir
    security = {
        k: v
        for k, v in (
            ("runAsUser", c.run_as_user),
            ("runAsGroup", c.run_as_group),
            ("readOnlyRootFilesystem", c.read_only_root_filesystem or None),
        )
        if v is not None
    }
    if security:
        container["securityContext"] = security
    if limits or requests:
        container["resources"] = {
            k: dict(sorted(v.items())) for k, v in (("limits", limits), ("requests", requests)) if v
        }
    return container


def merge(base: Any, over: Any, key: str = "") -> Any:
    """`over` merged into `base`: mappings key by key, lists in `MERGED_BY_NAME` item by
    `name` (an item of `over` merges into the `base` item of its name, new names are
    appended), anything else replaced by `over`."""
    if isinstance(base, Mapping) and isinstance(over, Mapping):
        out = dict(base)
        for k, v in over.items():
            out[k] = merge(base[k], v, k) if k in base else v
        return out
    if key in MERGED_BY_NAME and isinstance(base, list) and isinstance(over, list):
        merged = list(base)
        index = {
            item["name"]: n
            for n, item in enumerate(merged)
            if isinstance(item, dict) and isinstance(item.get("name"), str)
        }
        for item in over:
            name = item.get("name") if isinstance(item, dict) else None
            if isinstance(name, str) and name in index:
                merged[index[name]] = merge(merged[index[name]], item)
            else:
                merged.append(item)
        return merged
    return over


def pod_template(settings: WorkloadSettings, environment: str) -> dict[str, Any]:
    """The entry's pod template: the short form expanded, `template` merged over it, coco's
    labels on top (a workload's pods are always selectable by its own label)."""
    spec: dict[str, Any] = {
        "containers": [short_container(settings, i, c) for i, c in enumerate(settings.containers)]
    }
    volumes = sealed_volumes(settings)
    if volumes:
        spec["volumes"] = volumes
    if settings.kind in RUN_TO_COMPLETION:
        spec["restartPolicy"] = "Never"
    expanded: dict[str, Any] = {"metadata": {}, "spec": spec}
    if settings.annotations:
        expanded["metadata"]["annotations"] = dict(settings.annotations)
    template = merge(expanded, settings.template)
    metadata = template.setdefault("metadata", {})
    given = metadata.get("labels") or {}
    if isinstance(given, dict):  # else left for the schema check to name
        metadata["labels"] = {**given, **settings.labels, **object_labels(settings, environment)}
    return dict(template)


def object_labels(settings: WorkloadSettings, environment: str) -> dict[str, str]:
    return labels.common(environment, labels.ROLE_WORKLOAD, **{labels.WORKLOAD: settings.name})


def selector(settings: WorkloadSettings) -> dict[str, str]:
    return {labels.WORKLOAD: settings.name}


def workload_object(
    settings: WorkloadSettings, environment: str, template: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The Kubernetes object of the entry, around `template` (default: its own expanded pod
    template; the component passes the confidential one)."""
    pod = dict(template if template is not None else pod_template(settings, environment))
    kind = settings.kind
    meta: dict[str, Any] = {"name": settings.name, "namespace": settings.namespace}
    if kind == "Pod":
        pod_meta = pod.get("metadata") or {}
        return {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {**pod_meta, **meta},
            "spec": pod["spec"],
        }
    meta["labels"] = object_labels(settings, environment)
    spec: dict[str, Any] = dict(settings.spec)
    if kind in REPLICATED:
        spec["replicas"] = settings.replicas
        spec["selector"] = {"matchLabels": selector(settings)}
    if kind == "CronJob":
        job = dict(spec.get("jobTemplate") or {})
        job["spec"] = {**(job.get("spec") or {}), "template": pod}
        spec["jobTemplate"] = job
    else:
        spec["template"] = pod
    return {"apiVersion": API_VERSIONS[kind], "kind": kind, "metadata": meta, "spec": spec}


def located(settings: WorkloadSettings, environment: str) -> podspec.Located:
    """The entry's pod template, located in its object (for the recipe and its errors)."""
    return podspec.locate(workload_object(settings, environment))


def options(
    settings: WorkloadSettings,
    runtime_class: str,
    require_digests: bool = False,
    attestation_platform: str | None = None,
) -> PodOptions:
    """The recipe's options for the entry."""
    return PodOptions(
        runtime_class=runtime_class,
        agent_policy=settings.agent_policy,
        algorithm=settings.initdata.algorithm,
        gpus=settings.gpus,
        require_digests=require_digests or settings.image_signatures is not None,
        registry=settings.registry,
        image_security_policy_uri=(
            kbs_uri(image_policy_path(settings.name)) if settings.image_signatures else None
        ),
        attestation_platform=attestation_platform,
        legacy_runtime_handler_annotation=settings.legacy_runtime_handler_annotation,
        sealed=sealed_refs(settings),
        hardening=settings.hardening,
    )


_PROBLEM = re.compile(r"^(?P<path>[A-Za-z0-9_.]+): (?P<why>.*)$", re.DOTALL)


def problems(
    settings: WorkloadSettings,
    runtime_class: str,
    require_digests: bool,
    environment: str = "dev",
) -> list[tuple[str, str]]:
    """(key below the entry, why) for everything Kubernetes or the recipe refuses in the
    entry: the object's schema (both supported Kubernetes versions), then its pod template.
    `environment` only labels the object: the stack's own makes it the very object the
    component deploys.

    Keys name what the user wrote: `containers[0].image` for a short-form container,
    `template.spec.volumes[1]` for the template, `spec.schedule` for the object's spec."""
    obj = workload_object(settings, environment)
    texts = podspec.schema_problems(obj)
    if not texts:
        try:
            confidential_pod.prepare(
                podspec.locate(obj), options(settings, runtime_class, require_digests)
            )
        except podspec.PodSpecError as err:
            texts = err.problems
    where = podspec.describe(obj) + ": "
    pod_path = podspec.POD_SPEC_PATHS[settings.kind]
    return [_keyed(t.removeprefix(where), pod_path, len(settings.containers)) for t in texts]


def _keyed(text: str, pod_path: tuple[str, ...], short: int) -> tuple[str, str]:
    """A podspec problem (`spec.template.spec.containers.0.image: why`) as (key, why), the key
    in the entry's own terms."""
    match = _PROBLEM.match(text)
    if match is None:
        return "", text
    parts = match["path"].split(".")
    why = match["why"]
    depth = len(pod_path)
    if parts[:depth] == list(pod_path):
        rest = parts[depth:]
        if (
            len(rest) >= 2
            and rest[0] == "containers"
            and rest[1].isdigit()
            and int(rest[1]) < short
        ):
            return _dotted(["containers", *rest[1:]]), why
        return _dotted(["template", "spec", *rest]), why
    if parts[: depth - 1] == list(pod_path[:-1]) and parts[depth - 1 : depth] == ["metadata"]:
        return _dotted(["template", *parts[depth - 1 :]]), why
    return _dotted(parts), why


def _dotted(parts: list[str]) -> str:
    """`containers.0.image` as `containers[0].image` (the form of every coco: key)."""
    out = ""
    for part in parts:
        out += f"[{part}]" if part.isdigit() else (f".{part}" if out else part)
    return out
