"""`confidential(...)`: make the workloads of existing manifests and charts confidential.

Users bring what they have: a folder of YAML, a Helm chart. Rewriting it in coco's schema is
not an option for most of them, so coco transforms it instead, object by object, the way
Contrast's `contrast generate` and AKS's `katapolicygen` do, but inside the Pulumi program:

- every workload (Pod, Deployment, ReplicaSet, StatefulSet, Job, CronJob) is checked against
  the Kubernetes schema (components/podspec.py), then its pod template goes through the
  confidential-pod recipe (components/confidential_pod.py, the one coco's own workloads use):
  what a TEE cannot honour and what the agent policy cannot pin are refused, and it gets the
  runtime class, the GPU resource, and init-data whose agent policy is derived from that
  exact pod template;
- its init-data digest is collected in `digests`, so the KBS resource policy can be bound to
  it (policies/resource.py `ResourceGrant.initdata_digests`);
- every other object (Service, ConfigMap, CRDs...) passes unchanged;
- Helm hooks that only run outside an install (`test`, `*-delete`, `*-rollback`) are dropped
  (`dropped_hook`): `helm.v3.Chart` leaves `test` hooks out itself but renders delete and
  rollback hooks as ordinary objects (tests/conformance/test_kube_chart.py shows both), and
  `helm template` output in a folder holds every hook, so Pulumi would run a cleanup Job or
  `helm create`'s `test-connection` Pod at every deploy; install and upgrade hooks (a
  migration Job) are the app's own workloads, made confidential like the rest.

Two entry points, one behaviour:
- `Confidential.transformation`: a `transformations=[...]` entry for
  `k8s.helm.v3.Chart`, `k8s.yaml.ConfigFile` and `k8s.yaml.ConfigGroup`, which run it on each
  object's plain manifest in this process before any resource is registered (so a refused
  workload fails the preview with nothing created);
- `Confidential.transform(args)`: a `ResourceOptions(transforms=[...])` entry for a program's
  own `k8s.apps.v1.Deployment(...)` & co.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import pulumi

from components import confidential_pod, labels, podspec
from components.confidential_pod import PodOptions, PreparedPod, copy_tree
from policies.initdata import KbsEndpoint

ConfidentialOptions = PodOptions
"""What every transformed workload gets (the recipe's options); the KBS endpoint comes
separately (it may be an output of the program)."""


@dataclass(frozen=True)
class Prepared:
    """A checked workload object: its located pod template and the recipe's KBS-independent
    half for it."""

    loc: podspec.Located
    pod: PreparedPod

    @property
    def policy_rego(self) -> str:
        return self.pod.agent_policy


HELM_HOOK_ANNOTATION = "helm.sh/hook"
INSTALL_HOOKS = frozenset({"pre-install", "post-install", "pre-upgrade", "post-upgrade"})
"""Hook phases a deploy stands for: created with the release (Helm runs them around install
and upgrade), so a hook naming one of them is kept as an ordinary object."""


def dropped_hook(obj: Mapping[str, Any]) -> str | None:
    """The hook phases of a Helm hook object that no deploy runs (`helm test`'s
    `test`/`test-success`/`test-failure`, `pre-delete`/`post-delete`,
    `pre-rollback`/`post-rollback`), or None for an object coco keeps.

    Helm runs such a hook only on `helm test`, uninstall or rollback, never at install. A
    Pulumi deploy has no such moments: applied, the object would run at deploy time (a delete
    hook's cleanup on the first sync), so coco leaves it out, as the kata-deploy render does
    (components/cluster.py `drop_helm_hook`)."""
    annotations = (obj.get("metadata") or {}).get("annotations") or {}
    value = annotations.get(HELM_HOOK_ANNOTATION)
    if not isinstance(value, str):
        return None
    phases = {p.strip() for p in value.split(",") if p.strip()}
    if not phases or phases & INSTALL_HOOKS:
        return None
    return ",".join(sorted(phases))


def key(obj: Mapping[str, Any]) -> str:
    """`Kind/namespace/name`: how a transformed workload is named in `digests`."""
    meta = obj.get("metadata") or {}
    return f"{obj.get('kind')}/{meta.get('namespace') or 'default'}/{meta.get('name')}"


def prepare(obj: Mapping[str, Any], options: ConfidentialOptions) -> Prepared:
    """Check a workload object (its Kubernetes schema, then the recipe's rules for its pod
    template) and derive its agent policy; raise `PodSpecError` naming the object and field
    for anything coco cannot make confidential."""
    loc = podspec.check(obj, options.agent_policy, options.sealed)
    # `loc` as deployed (hardened), so callers reading it see what the policy pins.
    return Prepared(
        confidential_pod.as_deployed(loc, options), confidential_pod.prepare(loc, options)
    )


def _pod_parent(obj: dict[str, Any], loc: podspec.Located) -> dict[str, Any]:
    """The mapping that holds the pod template's `metadata` and `spec` (the object itself
    for a Pod)."""
    node: dict[str, Any] = obj
    for part in loc.path[:-1]:
        node = node[part]
    return node


def apply_spec(obj: dict[str, Any], prepared: Prepared, options: ConfidentialOptions) -> None:
    """The recipe's pod spec and pod labels into `obj`, and coco's labels on the object
    itself, in place (the pod annotations come with the KBS identity)."""
    if options.environment is not None:
        coco = labels.common(options.environment, labels.ROLE_WORKLOAD)
        meta = obj.setdefault("metadata", {})
        meta["labels"] = {**(meta.get("labels") or {}), **coco}
    parent = _pod_parent(obj, prepared.loc)
    template = prepared.pod.template
    parent.setdefault("metadata", {})["labels"] = template["metadata"].get("labels")
    if parent["metadata"]["labels"] is None:
        del parent["metadata"]["labels"]
    parent[prepared.loc.path[-1]] = template["spec"]


def make_confidential(
    obj: Mapping[str, Any], options: ConfidentialOptions, kbs: KbsEndpoint
) -> tuple[dict[str, Any], str, str]:
    """The confidential copy of one workload object, its init-data and its digest (hex as the
    TEE reports it). Pure: the same inputs give byte-identical output."""
    prepared = prepare(obj, options)
    out = copy_tree(dict(obj))
    apply_spec(out, prepared, options)
    pod = prepared.pod.finish(kbs)
    _pod_parent(out, prepared.loc).setdefault("metadata", {})["annotations"] = pod.template[
        "metadata"
    ]["annotations"]
    return out, pod.initdata, pod.digest


class Confidential:
    """A transformation that makes every workload it sees confidential (see module doc)."""

    def __init__(
        self,
        options: ConfidentialOptions,
        kbs_url: pulumi.Input[str],
        kbs_cert_pem: pulumi.Input[str] | None = None,
    ) -> None:
        self.options = options
        self._kbs = pulumi.Output.all(kbs_url, kbs_cert_pem).apply(
            lambda a: KbsEndpoint(url=a[0], cert_pem=a[1])
        )
        self.digests: dict[str, pulumi.Output[str]] = {}
        """`Kind/namespace/name` -> init-data digest hex, for the KBS resource policy."""
        self.initdata: dict[str, pulumi.Output[str]] = {}
        self.dropped: dict[str, str] = {}
        """`Kind/namespace/name` -> hook phases of the Helm hooks left out (`dropped_hook`)."""

    def _drop_hook(self, obj: dict[str, Any]) -> bool:
        """Replace a hook no deploy runs by an empty `v1/List` (which registers nothing,
        pulumi-kubernetes' documented way to omit an object); True when it was one."""
        phases = dropped_hook(obj)
        if phases is None:
            return False
        self.dropped[key(obj)] = phases
        obj.clear()
        obj.update({"apiVersion": "v1", "kind": "List", "items": []})
        return True

    def _rewrite(self, obj: dict[str, Any]) -> None:
        """Check `obj` now (errors fail the program before anything is registered), then
        set the runtime class and the init-data annotations (an output: the KBS endpoint may
        be one) in place."""
        if not podspec.is_workload(obj):
            return
        prepared = prepare(obj, self.options)
        name = key(obj)
        if name in self.digests:
            raise podspec.PodSpecError([f"{name}: two workloads with this kind and name"])
        apply_spec(obj, prepared, self.options)
        pod = self._kbs.apply(prepared.pod.finish)
        meta = _pod_parent(obj, prepared.loc).setdefault("metadata", {})
        meta["annotations"] = pod.apply(lambda p: p.template["metadata"]["annotations"])
        self.digests[name] = pod.apply(lambda p: p.digest)
        self.initdata[name] = pod.apply(lambda p: p.initdata)

    def digests_of(self, group: pulumi.Resource) -> pulumi.Output[dict[str, str]]:
        """`digests` once `group` (a helm.v3.Chart or yaml.ConfigFile/ConfigGroup) has run the
        transformation on its objects: they are decoded inside an output, so `digests` is
        filled only after that output resolves."""
        resources: pulumi.Output[Any] = group.resources  # type: ignore[attr-defined]

        def collect(_: Any) -> pulumi.Output[dict[str, str]]:
            found = dict(sorted(self.digests.items()))
            if not found:
                return pulumi.Output.from_input({})
            return pulumi.Output.all(**found)

        return resources.apply(collect)

    def __call__(self, obj: dict[str, Any], opts: pulumi.ResourceOptions | None = None) -> None:
        """Rewrite one plain manifest in place (see `transformation`)."""
        if not self._drop_hook(obj):
            self._rewrite(obj)

    @property
    def transformation(self) -> Callable[[dict[str, Any], pulumi.ResourceOptions], None]:
        """`transformations=[coco.transformation]` entry (helm.v3.Chart, yaml.ConfigFile,
        yaml.ConfigGroup). A plain function, because helm.v3 `ChartOpts.to_json` serializes
        each transformation's `__dict__` (this object's holds outputs, which cannot be)."""

        def transformation(obj: dict[str, Any], opts: pulumi.ResourceOptions) -> None:
            if not self._drop_hook(obj):
                self._rewrite(obj)

        return transformation

    def transform(self, args: pulumi.ResourceTransformArgs) -> pulumi.ResourceTransformResult:
        """`ResourceOptions(transforms=[...])` entry for a program's own Kubernetes objects."""
        props = dict(args.props)
        if args.type_.startswith("kubernetes:") and podspec.is_workload(props):
            props = copy_tree(props)
            self._rewrite(props)
        return pulumi.ResourceTransformResult(props=props, opts=args.opts)


def confidential(
    runtime_class: str,
    kbs_url: pulumi.Input[str],
    kbs_cert_pem: pulumi.Input[str] | None = None,
    **options: Any,
) -> Confidential:
    """`coco = confidential("kata-qemu-tdx", kbs_url, kbs_cert)`, then
    `transformations=[coco.transformation]` or `ResourceOptions(transforms=[coco.transform])`."""
    return Confidential(ConfidentialOptions(runtime_class, **options), kbs_url, kbs_cert_pem)
