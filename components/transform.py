"""`confidential(...)`: make the workloads of existing manifests and charts confidential.

Users bring what they have: a folder of YAML, a Helm chart. Rewriting it in coco's schema is
not an option for most of them, so coco transforms it instead, object by object, the way
Contrast's `contrast generate` and AKS's `katapolicygen` do, but inside the Pulumi program:

- every workload (Pod, Deployment, ReplicaSet, StatefulSet, Job, CronJob) is checked against
  the Kubernetes schema, what a TEE cannot honour and what the agent policy cannot pin
  (components/podspec.py), then gets the runtime class, init-data whose agent policy is
  derived from that exact pod spec (policies/agent.py, the same code coco's own workloads
  use), the GPU resource and annotations, exactly as `ConfidentialWorkload` renders them;
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

import copy
import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pulumi

from components import labels, podspec, tee
from components.hardening import HardeningSettings, harden_pod_spec
from components.settings import is_pinned
from policies.agent import AgentPolicySpec, render_agent_policy
from policies.initdata import (
    INITDATA_ANNOTATION,
    KbsEndpoint,
    annotation_value,
    render_initdata,
)
from policies.registry import RegistryAccess, image_pull_entries
from policies.vtpm_initdata import default_algorithm, platform_claim_hex


@dataclass(frozen=True)
class ConfidentialOptions:
    """What every transformed workload gets; the KBS endpoint comes separately (it may be an
    output of the program)."""

    runtime_class: str
    agent_policy: AgentPolicySpec = field(default_factory=AgentPolicySpec)
    algorithm: tee.DigestAlgorithm | None = None
    gpus: int = 0
    require_digests: bool = False
    """Production: every image must be pinned by digest (a tag can be moved under the pod)."""
    annotations: Mapping[str, str] = field(default_factory=dict)
    environment: str | None = None
    registry: RegistryAccess | None = None
    """Private registry under guest pull (policies/registry.py): the pod's imagePullSecrets
    are refused, since they would hand the credentials to the host."""
    """When set, the object and its pods get coco's labels (role `workload`, this
    environment), so the policy pack's production checklist applies to them as to coco's own
    workloads (policies/pack/objects.py `is_production`)."""
    image_security_policy_uri: str | None = None
    """`kbs:///...` of the image signature policy the guest's image-rs enforces (cdh.toml
    `[image]`), for a `coco:manifests` source with `imageSignatures`."""
    attestation_platform: str | None = None
    """The verifier the KBS judges these pods with: it decides how init-data is bound
    (policies/vtpm_initdata.py: PCR8 and sha256 on Azure vTPM)."""
    hardening: HardeningSettings = field(default_factory=HardeningSettings)
    """The hardened defaults every workload's pod template gets before its agent policy is
    derived (components/hardening.py)."""

    def __post_init__(self) -> None:
        spec = tee.lookup(self.runtime_class)  # raises for an unknown class
        if self.gpus and not spec.gpu:
            raise ValueError(
                f"runtime class {self.runtime_class!r} has no GPU pass-through; use a "
                "kata-qemu-nvidia-gpu-* class, or set gpus to 0"
            )

    @property
    def digest_algorithm(self) -> tee.DigestAlgorithm:
        return self.algorithm or default_algorithm(
            self.attestation_platform, tee.lookup(self.runtime_class).default_digest
        )


@dataclass(frozen=True)
class Prepared:
    """A checked workload: its located pod spec and the agent policy it gets."""

    loc: podspec.Located
    policy_rego: str


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
    (components/cluster.py `_drop_helm_hook`)."""
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
    """Check a workload object and derive its agent policy; raise `PodSpecError` naming the
    object and field for anything coco cannot make confidential."""
    loc = podspec.check(obj, options.agent_policy)
    loc = dataclasses.replace(loc, pod_spec=harden_pod_spec(loc.pod_spec, options.hardening))
    if options.registry is not None and loc.pod_spec.get("imagePullSecrets"):
        raise podspec.PodSpecError(
            [
                f"{loc.field('imagePullSecrets')}: with guest pull the registry credentials "
                "come from the KBS (registry.credentialsResource); an imagePullSecret would "
                "hand them to the host: remove it"
            ]
        )
    if options.require_digests:
        unpinned = [
            f"{loc.field(f, i, 'image')}: {c.get('image')!r} has a tag but no digest; "
            "production and signature verification pin every image (name@sha256:...)"
            for f, i, c in podspec._containers(loc.pod_spec)
            if not is_pinned(c.get("image", ""))
        ]
        if unpinned:
            raise podspec.PodSpecError(unpinned)
    effective = podspec.effective_policy(loc, options.agent_policy, devices=options.gpus > 0)
    return Prepared(loc, render_agent_policy(effective))


def pod_annotations(
    options: ConfidentialOptions, existing: Mapping[str, str], initdata: str, digest_hex: str
) -> dict[str, str]:
    """The pod template's annotations: the object's own, the options', then ours (which no
    user annotation can override), as `components.workload.pod_annotations`."""
    out = {**existing, **options.annotations}
    if tee.lookup(options.runtime_class).gpu:
        out[tee.GPU_KERNEL_PARAMS_ANNOTATION] = tee.GPU_KERNEL_PARAMS
    out[INITDATA_ANNOTATION] = annotation_value(initdata)
    out[labels.INITDATA_DIGEST_ANNOTATION] = digest_hex
    return dict(sorted(out.items()))


def _pod_metadata(obj: dict[str, Any], loc: podspec.Located) -> dict[str, Any]:
    node: dict[str, Any] = obj
    for part in loc.path[:-1]:
        node = node[part]
    meta: dict[str, Any] = node.setdefault("metadata", {})
    return meta


def _pod_spec(obj: dict[str, Any], loc: podspec.Located) -> dict[str, Any]:
    node: dict[str, Any] = obj
    for part in loc.path:
        node = node[part]
    return node


def apply_spec(obj: dict[str, Any], loc: podspec.Located, options: ConfidentialOptions) -> None:
    """Runtime class and GPU resources on the pod spec, coco's labels, in place."""
    if options.environment is not None:
        coco = labels.common(options.environment, labels.ROLE_WORKLOAD)
        for meta in (obj.setdefault("metadata", {}), _pod_metadata(obj, loc)):
            meta["labels"] = {**(meta.get("labels") or {}), **coco}
    spec = _pod_spec(obj, loc)
    spec.update(loc.pod_spec)  # hardened (components/hardening.py), as the policy pins it
    spec["runtimeClassName"] = options.runtime_class
    if options.gpus:
        first = spec["containers"][0]
        limits = first.setdefault("resources", {}).setdefault("limits", {})
        limits[tee.GPU_RESOURCE] = str(options.gpus)


def make_confidential(
    obj: Mapping[str, Any], options: ConfidentialOptions, kbs: KbsEndpoint
) -> tuple[dict[str, Any], str, str]:
    """The confidential copy of one workload object, its init-data and its digest (hex as the
    TEE reports it). Pure: the same inputs give byte-identical output."""
    prepared = prepare(obj, options)
    out = copy.deepcopy(dict(obj))
    apply_spec(out, prepared.loc, options)
    algorithm = options.digest_algorithm
    initdata = render_initdata(
        kbs,
        prepared.policy_rego,
        algorithm,
        options.image_security_policy_uri,
        image_pull=image_pull_entries(options.registry),
    )
    digest = platform_claim_hex(
        initdata,
        algorithm,
        tee.lookup(options.runtime_class).initdata_field_len,
        options.attestation_platform,
    )
    meta = _pod_metadata(out, prepared.loc)
    meta["annotations"] = pod_annotations(options, meta.get("annotations") or {}, initdata, digest)
    return out, initdata, digest


def _copy_tree(value: Any) -> Any:
    """A copy of the dicts and lists of `value`, sharing its leaves (which may be outputs or
    the engine's unknowns, which cannot be deep-copied)."""
    if isinstance(value, dict):
        return {k: _copy_tree(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy_tree(v) for v in value]
    return value


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
        options = self.options
        prepared = prepare(obj, options)
        name = key(obj)
        if name in self.digests:
            raise podspec.PodSpecError([f"{name}: two workloads with this kind and name"])
        apply_spec(obj, prepared.loc, options)
        algorithm = options.digest_algorithm
        field_len = tee.lookup(options.runtime_class).initdata_field_len
        policy = prepared.policy_rego
        pull = image_pull_entries(options.registry)
        uri = options.image_security_policy_uri
        initdata = self._kbs.apply(
            lambda kbs: render_initdata(kbs, policy, algorithm, uri, image_pull=pull)
        )
        platform = options.attestation_platform
        digest = initdata.apply(
            lambda text: platform_claim_hex(text, algorithm, field_len, platform)
        )
        meta = _pod_metadata(obj, prepared.loc)
        existing = dict(meta.get("annotations") or {})
        meta["annotations"] = pulumi.Output.all(initdata, digest).apply(
            lambda a: pod_annotations(options, existing, a[0], a[1])
        )
        self.digests[name] = digest
        self.initdata[name] = initdata

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
            props = _copy_tree(props)
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
