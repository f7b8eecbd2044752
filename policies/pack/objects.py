"""Reading Kubernetes objects as the policy engine hands them over (Pulumi property maps).

The pack finds what it checks by labels and pod templates, never by resource names, so a
renamed object cannot escape the checklist. Values may be the policy SDK's read-only proxies
(`Mapping`/`Sequence`, not `dict`/`list`), so everything here uses the abstract types.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from components import labels, tee

POD = "kubernetes:core/v1:Pod"
CONFIG_MAP = "kubernetes:core/v1:ConfigMap"
RUNTIME_CLASS = "kubernetes:node.k8s.io/v1:RuntimeClass"

_TEMPLATE_PATHS: dict[str, tuple[str, ...]] = {
    "kubernetes:apps/v1:Deployment": ("spec", "template"),
    "kubernetes:apps/v1:StatefulSet": ("spec", "template"),
    "kubernetes:apps/v1:DaemonSet": ("spec", "template"),
    "kubernetes:apps/v1:ReplicaSet": ("spec", "template"),
    "kubernetes:batch/v1:Job": ("spec", "template"),
    "kubernetes:batch/v1:CronJob": ("spec", "jobTemplate", "spec", "template"),
    "kubernetes:core/v1:ReplicationController": ("spec", "template"),
}
POD_TYPES = frozenset({POD, *_TEMPLATE_PATHS})
"""Resource types that run pods: a Pod, or a controller with a pod template."""

PRODUCTION = "production"
RUNTIME_RS_SUFFIX = "-runtime-rs"


def mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def sequence(value: Any) -> Sequence[Any]:
    if isinstance(value, Sequence) and not isinstance(value, str | bytes):
        return value
    return ()


def dig(value: Any, *path: str) -> Any:
    for key in path:
        value = mapping(value).get(key)
    return value


def object_labels(props: Mapping[str, Any]) -> Mapping[str, Any]:
    return mapping(dig(props, "metadata", "labels"))


def role(props: Mapping[str, Any]) -> str | None:
    value = object_labels(props).get(labels.ROLE)
    return value if isinstance(value, str) else None


@dataclass(frozen=True)
class PodTemplate:
    """The pod a Pod or controller runs: its metadata (labels, annotations) and spec."""

    metadata: Mapping[str, Any]
    spec: Mapping[str, Any]

    @property
    def runtime_class(self) -> str | None:
        value = self.spec.get("runtimeClassName")
        return value if isinstance(value, str) and value else None

    @property
    def annotations(self) -> Mapping[str, Any]:
        return mapping(self.metadata.get("annotations"))

    @property
    def labels(self) -> Mapping[str, Any]:
        return mapping(self.metadata.get("labels"))

    def images(self) -> list[tuple[str, Any]]:
        """(`containers[0]`-style location, image) for every container of the pod."""
        out = []
        for field in ("initContainers", "containers", "ephemeralContainers"):
            for i, container in enumerate(sequence(self.spec.get(field))):
                out.append((f"{field}[{i}]", mapping(container).get("image")))
        return out


def pod_template(resource_type: str, props: Mapping[str, Any]) -> PodTemplate | None:
    """The pod template of a pod-running object, None for any other object."""
    if resource_type == POD:
        return PodTemplate(mapping(props.get("metadata")), mapping(props.get("spec")))
    path = _TEMPLATE_PATHS.get(resource_type)
    if path is None:
        return None
    template = mapping(dig(props, *path))
    return PodTemplate(mapping(template.get("metadata")), mapping(template.get("spec")))


def environment(resource_type: str, props: Mapping[str, Any]) -> str | None:
    """The object's coco environment label (or its pod template's)."""
    value = object_labels(props).get(labels.ENVIRONMENT)
    if value is None:
        template = pod_template(resource_type, props)
        if template is not None:
            value = template.labels.get(labels.ENVIRONMENT)
    return value if isinstance(value, str) else None


def is_production(resource_type: str, props: Mapping[str, Any]) -> bool:
    return environment(resource_type, props) == PRODUCTION


def catalogue_class(runtime_class: str) -> tee.RuntimeClassSpec | None:
    """The catalogue entry of a runtime class, `-runtime-rs` variants included."""
    name = runtime_class.removesuffix(RUNTIME_RS_SUFFIX)
    return tee.CATALOGUE.get(name)


def confidential_pod(resource_type: str, props: Mapping[str, Any]) -> PodTemplate | None:
    """The pod template when the object is meant to run in a TEE, else None.

    Meant to: a coco workload (role label `workload`), or any pod asking for a Kata runtime
    class. A coco workload without a runtime class is exactly what must be caught.
    """
    template = pod_template(resource_type, props)
    if template is None:
        return None
    rc = template.runtime_class
    is_workload = role(props) == labels.ROLE_WORKLOAD
    if is_workload or (rc is not None and rc.startswith("kata")):
        return template
    return None
