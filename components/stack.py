"""The composition root: settings -> components -> stack outputs.

Data flows one way. The KBS certificate comes first, because every workload's init-data
embeds it; the workloads come next, because the KBS resource policy must name their
init-data digests; the Trustee comes last and receives those digests as Pulumi outputs, so
nobody ever runs `sha384sum` by hand and a changed policy or image re-binds automatically.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import pulumi
import pulumi_kubernetes as k8s

from components import labels, protection, tee
from components.checks.guest import sealed_users
from components.cluster import ConfidentialCluster
from components.config_types import KubernetesTarget
from components.guest_features import image_key_path, image_policy_path
from components.manifests import ConfidentialManifests
from components.peerpods.settings import PeerPodsCluster, attestation_platform
from components.reference_coverage import coverage_gaps
from components.stack_settings import BareMetalCluster, KbsResource, StackSettings
from components.tls import SelfSignedTls
from components.trustee import Trustee, TrusteeTls
from components.vocabulary import full_key, secret_config
from components.workload import ConfidentialWorkload, WorkloadPod, workload_pod
from policies.image_policy import render_any_image_policy, render_image_policy
from policies.registry import check_docker_config
from policies.resource import ResourceGrant
from policies.sealed import SIGNING_KEY_RESOURCE, public_jwk


def hardware_dict(hardware: tee.Hardware) -> dict[str, Any]:
    """The hardware as the platform stack exports it (plain JSON; no `tee` for peer pods,
    since Pulumi drops null values from outputs)."""
    out: dict[str, Any] = {"host": hardware.host, "arch": hardware.arch, "gpu": hardware.gpu}
    if hardware.tee is not None:
        out["tee"] = hardware.tee
    return out


@dataclass
class Stack:
    """Handles to what `build` created, for tests and embedding programs."""

    settings: StackSettings
    provider: k8s.Provider | None
    tls: TrusteeTls
    workloads: dict[str, ConfidentialWorkload]
    trustee: Trustee


def platform_of(settings: StackSettings, runtime_class: str) -> str:
    """The attestation platform name the KBS sees for pods of this runtime class."""
    if isinstance(settings.cluster, PeerPodsCluster):
        return attestation_platform(settings.cluster.cloud)
    platform = tee.lookup(runtime_class).attestation_platform
    if platform is None:  # settings validation refuses such readers; this is a backstop
        raise ValueError(f"pods of runtime class {runtime_class!r} cannot attest to Trustee")
    return platform


def platform_or_none(settings: StackSettings, runtime_class: str) -> str | None:
    """`platform_of`, or None for a class no verifier attests (it reads no KBS resource)."""
    try:
        return platform_of(settings, runtime_class)
    except ValueError:
        return None


def grant_for(
    settings: StackSettings,
    resource: KbsResource,
    digests: dict[str, str],
    runtime_classes: dict[str, str],
    manifest_digests: Mapping[str, Mapping[str, str]] | None = None,
) -> ResourceGrant:
    """The resource-policy rule for one KBS resource, from its readers' init-data digests.

    A reader naming a `coco:manifests` source stands for every workload in it
    (`manifest_digests`: source name -> `Kind/namespace/name` -> digest)."""
    sources = manifest_digests or {}
    readers = [settings.workload(r) for r in resource.readers if r not in sources]
    source_names = [r for r in resource.readers if r in sources]
    require_gpu = resource.require_gpu
    if require_gpu is None:
        require_gpu = any(w.gpus > 0 for w in readers) or any(
            m.gpus > 0 for m in settings.manifests if m.name in source_names
        )
    named = [w.name for w in readers] + source_names
    return ResourceGrant(
        path=resource.path,
        initdata_digests=sorted(
            {digests[w.name] for w in readers}
            | {d for n in source_names for d in sources[n].values()}
        ),
        platforms=sorted({platform_of(settings, runtime_classes[n]) for n in named}),
        min_trust=resource.min_trust,
        require_gpu=require_gpu,
    )


def all_runtime_classes(settings: StackSettings) -> dict[str, str]:
    """Workload or manifest-source name -> its runtime class (the cluster installs them all)."""
    classes = {w.name: settings.runtime_class_of(w) for w in settings.workloads}
    classes.update({m.name: settings.manifest_runtime_class(m) for m in settings.manifests})
    return classes


def generated_grant(
    settings: StackSettings,
    path: str,
    readers: list[str],
    digests: dict[str, str],
    runtime_classes: dict[str, str],
    manifest_digests: Mapping[str, Mapping[str, str]] | None = None,
) -> ResourceGrant:
    """The rule for a resource the program generates, released to `readers` only (a reader
    naming a `coco:manifests` source stands for every workload in it)."""
    sources = manifest_digests or {}
    return ResourceGrant(
        path=path,
        initdata_digests=sorted(
            {digests[r] for r in readers if r not in sources}
            | {d for r in readers if r in sources for d in sources[r].values()}
        ),
        platforms=sorted({platform_of(settings, runtime_classes[r]) for r in readers}),
    )


def public_resources(
    settings: StackSettings, signer: SelfSignedTls | None
) -> tuple[dict[str, pulumi.Input[str]], dict[str, list[str]]]:
    """The generated public KBS resources (path -> value) and their readers (path -> names):
    the sealed-secret verification key (a P-256 JWK, the `kid` every sealed secret names),
    and per workload or manifests source with `imageSignatures` its policy.json and cosign
    public keys (a source's policy needs the keys for any image: its chart renders later)."""
    values: dict[str, pulumi.Input[str]] = {}
    readers: dict[str, list[str]] = {}
    users = sealed_users(settings)
    if users and signer is not None:
        values[SIGNING_KEY_RESOURCE] = signer.public_key_pem.apply(public_jwk)
        readers[SIGNING_KEY_RESOURCE] = users
    for w in settings.workloads:
        if w.image_signatures is None:
            continue
        key_paths = [image_key_path(w.name, k.name) for k in w.image_signatures.keys]
        policy = image_policy_path(w.name)
        values[policy] = render_image_policy(w.images, key_paths)
        readers[policy] = [w.name]
        for k, path in zip(w.image_signatures.keys, key_paths, strict=True):
            values[path] = k.public_key
            readers[path] = [w.name]
    for m in settings.manifests:
        if m.image_signatures is None:
            continue
        key_paths = [image_key_path(m.name, k.name) for k in m.image_signatures.keys]
        policy = image_policy_path(m.name)
        values[policy] = render_any_image_policy(key_paths)
        readers[policy] = [m.name]
        for k, path in zip(m.image_signatures.keys, key_paths, strict=True):
            values[path] = k.public_key
            readers[path] = [m.name]
    return values, readers


def export_workload_digests(
    workloads: dict[str, ConfidentialWorkload],
    manifests: dict[str, ConfidentialManifests] | None = None,
) -> None:
    """The `workloads` (and `manifests`) outputs: each one's runtime class and init-data digest,
    the same shape in every topology, so a Trustee stack or a user reads them one way."""
    pulumi.export(
        "workloads",
        {
            n: {
                "runtimeClass": wl.runtime_class,
                "algorithm": wl.algorithm,
                "initdataDigest": wl.initdata_digest,
            }
            for n, wl in workloads.items()
        },
    )
    if manifests:
        pulumi.export("manifests", {n: m.digests for n, m in manifests.items()})


TRUSTEE_PROVIDER = "k8s-trustee"
"""The second Kubernetes provider of a one-stack trusted zone: the trusted cluster."""


def _provider(settings: StackSettings, trusted: KubernetesTarget | None = None) -> k8s.Provider:
    """The Kubernetes provider (of `coco:kubernetes`, or of the `trusted` cluster the Trustee
    goes to); ConfigMaps and Secrets update in place, so a changed policy or secret reaches
    the running KBS without replacing the object it is mounted from."""
    target = trusted or settings.kubernetes
    name = "k8s" if trusted is None else TRUSTEE_PROVIDER
    mutable = {"enable_config_map_mutable": True, "enable_secret_mutable": True}
    if target.render_dir:
        return k8s.Provider(name, render_yaml_to_directory=target.render_dir, **mutable)
    kubeconfig = os.path.expanduser(target.kubeconfig) if target.kubeconfig else None
    return k8s.Provider(name, kubeconfig=kubeconfig, context=target.context, **mutable)


@dataclass
class Platform:
    """The cluster side of a stack: what the trust side deploys onto."""

    provider: k8s.Provider
    ready: list[pulumi.Resource]
    """What must exist before workloads start (kata-deploy, RuntimeClasses, the adaptor)."""
    offered: pulumi.Input[list[str]]
    """The runtime classes the cluster offers."""
    kubeconfig: pulumi.Output[str] | None = None
    """The kubeconfig of a cluster the stack created (peer pods), else None."""


class KbsEndpoint(Protocol):
    """Where guests reach the KBS: its URL and the certificate they pin (a `TrusteeTls`, or
    a Trustee stack's exported KBS, components/zones.py)."""

    @property
    def url(self) -> pulumi.Input[str]: ...

    @property
    def certificate_pem(self) -> pulumi.Input[str]: ...


def build_platform(settings: StackSettings, tls: KbsEndpoint | None) -> Platform:
    """The cluster side: kata-deploy, GPU Operator and RuntimeClasses, or the cloud side of
    peer pods (network, cluster, IAM, adaptor; it needs the KBS `tls` for its init-data)."""
    env = settings.environment
    # State and identity (clusters, IAM, KBS keys) are `protect`ed in production.
    protect = protection.options(settings.protected)
    runtime_classes = all_runtime_classes(settings)
    if isinstance(settings.cluster, BareMetalCluster):
        provider = _provider(settings)
        cluster = ConfidentialCluster(
            "cluster",
            settings.cluster,
            env,
            sorted(set(runtime_classes.values())),
            settings.kubernetes.rendering,
            opts=pulumi.ResourceOptions.merge(
                pulumi.ResourceOptions(providers={"kubernetes": provider}), protect
            ),
        )
        return Platform(provider, list(cluster.ready), cluster.runtime_classes)
    from components.peerpods.component import PeerPods  # cloud SDKs load only here

    if tls is None:
        raise ValueError("peer pods need the KBS certificate for the adaptor's init-data")
    # A render writes the cluster side into renderDir, whether or not a deploy creates the
    # cluster (components/peerpods/render.py).
    rendering = settings.kubernetes.rendering
    created = settings.cluster.cloud.cluster.create and not rendering
    given = None if created else _provider(settings)
    peerpods = PeerPods(
        "peerpods",
        settings.cluster,
        env,
        kbs_url=tls.url,
        kbs_cert_pem=tls.certificate_pem,
        opts=pulumi.ResourceOptions.merge(
            pulumi.ResourceOptions(providers={"kubernetes": given}) if given else None, protect
        ),
        rendering=rendering,
    )
    if rendering:
        # What the render leaves out (the cloud side, releases, Secrets): automation render
        # writes it into NOT-RENDERED.md and prints it.
        pulumi.export("notRendered", peerpods.not_rendered)
        if peerpods.chart_values is not None:
            pulumi.export("peerpodsChartValues", peerpods.chart_values)
    provider = peerpods.provider or given
    if provider is None:
        raise RuntimeError("PeerPods created a cluster but exposed no Kubernetes provider")
    return Platform(provider, [peerpods], peerpods.runtime_classes, peerpods.kubeconfig)


def build(settings: StackSettings) -> Stack:
    """Create every component of the stack and export its outputs (the single-stack form)."""
    tls = TrusteeTls("kbs", settings.trustee)
    return build_trust(settings, tls, build_platform(settings, tls))


def deploy_workloads(
    settings: StackSettings,
    kbs_url: pulumi.Input[str],
    kbs_cert_pem: pulumi.Input[str],
    platform: Platform,
    signer: SelfSignedTls | None,
) -> tuple[dict[str, ConfidentialWorkload], dict[str, ConfidentialManifests]]:
    """The confidential workloads on `platform`, their init-data pointing at the KBS
    (`kbs_url`, `kbs_cert_pem`): their namespaces, `coco:workloads` and `coco:manifests`."""
    namespaces = workload_namespaces(settings, platform)
    manifests = deploy_manifests(settings, kbs_url, kbs_cert_pem, platform, signer, namespaces)
    pods = workload_pods(settings, kbs_url, kbs_cert_pem)
    workloads = deploy_workload_pods(
        settings, pods, kbs_url, kbs_cert_pem, platform, signer, namespaces
    )
    return workloads, manifests


def _workload_options(
    platform: Platform,
    namespaces: Mapping[str, k8s.core.v1.Namespace],
    namespace: str,
) -> pulumi.ResourceOptions:
    """On the platform's cluster, after it is ready and after the entry's namespace."""
    deps: list[pulumi.Resource] = list(platform.ready)
    if namespace in namespaces:
        deps.append(namespaces[namespace])
    return pulumi.ResourceOptions(providers={"kubernetes": platform.provider}, depends_on=deps)


def workload_namespaces(
    settings: StackSettings, platform: Platform
) -> dict[str, k8s.core.v1.Namespace]:
    """The namespaces `coco:workloads` and `coco:manifests` name (`default` exists)."""
    env = settings.environment
    if not settings.production and settings.trustee_topology.role != "confidential":
        # Refused in production by the settings; elsewhere the stack may be half-measured.
        for key, why in coverage_gaps(settings):
            pulumi.log.warn(f"{key}: {why}")
    wanted = {w.namespace for w in settings.workloads} | {m.namespace for m in settings.manifests}
    return {
        ns: k8s.core.v1.Namespace(
            f"ns-{ns}",
            metadata={"name": ns, "labels": labels.common(env, labels.ROLE_WORKLOAD)},
            # After the cluster is ready (its RuntimeClasses read or created): a preinstalled
            # cluster missing a class then fails before any object exists, also on
            # `up --skip-preview`, which has no preview to stop at.
            opts=pulumi.ResourceOptions(
                providers={"kubernetes": platform.provider}, depends_on=platform.ready
            ),
        )
        for ns in sorted(wanted - {"default"})
    }


def workload_pods(
    settings: StackSettings, kbs_url: pulumi.Input[str], kbs_cert_pem: pulumi.Input[str]
) -> dict[str, WorkloadPod]:
    """Each `coco:workloads` entry's pod made confidential and its init-data digest, before
    any resource: the digests are all the Trustee's resource policy needs."""
    runtime_classes = all_runtime_classes(settings)
    return {
        w.name: workload_pod(
            w,
            runtime_classes[w.name],
            settings.environment,
            kbs_url,
            kbs_cert_pem,
            attestation_platform=platform_or_none(settings, runtime_classes[w.name]),
        )
        for w in settings.workloads
    }


def deploy_workload_pods(
    settings: StackSettings,
    pods: Mapping[str, WorkloadPod],
    kbs_url: pulumi.Input[str],
    kbs_cert_pem: pulumi.Input[str],
    platform: Platform,
    signer: SelfSignedTls | None,
    namespaces: Mapping[str, k8s.core.v1.Namespace],
) -> dict[str, ConfidentialWorkload]:
    """The `coco:workloads` components, from their `workload_pods`."""
    runtime_classes = all_runtime_classes(settings)
    return {
        w.name: ConfidentialWorkload(
            w.name,
            w,
            runtime_classes[w.name],
            settings.environment,
            kbs_url=kbs_url,
            kbs_cert_pem=kbs_cert_pem,
            opts=_workload_options(platform, namespaces, w.namespace),
            sealing_key_pem=signer.private_key_pem if signer is not None else None,
            attestation_platform=platform_or_none(settings, runtime_classes[w.name]),
            pod=pods[w.name],
        )
        for w in settings.workloads
    }


def deploy_manifests(
    settings: StackSettings,
    kbs_url: pulumi.Input[str],
    kbs_cert_pem: pulumi.Input[str],
    platform: Platform,
    signer: SelfSignedTls | None,
    namespaces: Mapping[str, k8s.core.v1.Namespace],
) -> dict[str, ConfidentialManifests]:
    """The `coco:manifests` components (their digests are known once they are made)."""
    runtime_classes = all_runtime_classes(settings)
    return {
        m.name: ConfidentialManifests(
            m,
            runtime_classes[m.name],
            settings.production and not settings.waived("unpinned-images"),
            settings.environment,
            kbs_url=kbs_url,
            kbs_cert_pem=kbs_cert_pem,
            opts=_workload_options(platform, namespaces, m.namespace),
            attestation_platform=platform_or_none(settings, runtime_classes[m.name]),
            key=f"coco:manifests[{i}]",
            rendering=settings.kubernetes.rendering,
            sealing_key_pem=signer.private_key_pem if signer is not None else None,
        )
        for i, m in enumerate(settings.manifests)
    }


def build_trust(settings: StackSettings, tls: TrusteeTls, platform: Platform) -> Stack:
    """The trust side on `platform`: workloads (their init-data pins `tls`), the Trustee that
    releases their secrets, and the stack outputs.

    The Trustee is made before the workload components: its resource policy needs only the
    init-data digests, which `workload_pods` computes from the settings and the KBS
    certificate. Registered first, its chain (token signer, keys, the KBS rollout) runs
    while the workloads roll out, instead of queueing behind every workload object in the
    engine (docs/benchmarks.md, real apply)."""
    protect = protection.options(settings.protected)
    runtime_classes = all_runtime_classes(settings)
    signer = _sealed_secret_signer(settings, protect)
    namespaces = workload_namespaces(settings, platform)
    manifests = deploy_manifests(
        settings, tls.url, tls.certificate_pem, platform, signer, namespaces
    )
    pods = workload_pods(settings, tls.url, tls.certificate_pem)
    public, public_readers = public_resources(settings, signer)
    delivery = settings.secrets_delivery()
    digests = {n: p.digest for n, p in pods.items()}
    trustee = Trustee(
        "trustee",
        settings.trustee,
        settings.environment,
        tls=tls,
        grants=_grants(settings, digests, manifests, public, public_readers, runtime_classes),
        resource_values=_resource_values(settings) if delivery == "create" else {},
        secrets_delivery=delivery,
        tee_platforms=sorted({platform_of(settings, rc) for rc in runtime_classes.values()}),
        opts=_trustee_options(settings, platform, protect),
        public_resources=public,
    )
    workloads = deploy_workload_pods(
        settings, pods, tls.url, tls.certificate_pem, platform, signer, namespaces
    )
    _export_trust(settings, tls, platform, trustee, workloads, manifests)
    return Stack(settings, platform.provider, tls, workloads, trustee)


def _sealed_secret_signer(
    settings: StackSettings, protect: pulumi.ResourceOptions
) -> SelfSignedTls | None:
    """The sealed-secret signing key (ES256), when a workload seals secrets: generated by the
    program, a Pulumi secret; only its public JWK reaches the KBS. `protect`ed with the other
    KBS keys in production."""
    if not sealed_users(settings):
        return None
    return SelfSignedTls(
        "sealed-secret-signer",
        common_name="coco sealed-secret signer",
        validity_hours=settings.trustee.tls.validity_hours,
        key_algorithm="ecdsa-p256",
        opts=protect,
    )


def reader_digests(
    workloads: Mapping[str, pulumi.Output[str]],
    manifests: Mapping[str, ConfidentialManifests],
) -> pulumi.Output[list[Any]]:
    """[workload name -> init-data digest, manifests source -> its workloads' digests]: what
    the resource policy binds each grant to, from each workload's digest."""
    names = sorted(workloads)
    sources = sorted(manifests)
    digests = pulumi.Output.all(*[workloads[n] for n in names]).apply(
        lambda ds: dict(zip(names, ds, strict=True))
    )
    source_digests = pulumi.Output.all(*[manifests[n].digests for n in sources]).apply(
        lambda ds: dict(zip(sources, ds, strict=True))
    )
    return pulumi.Output.all(digests, source_digests)


def _grants(
    settings: StackSettings,
    workloads: Mapping[str, pulumi.Output[str]],
    manifests: Mapping[str, ConfidentialManifests],
    public: Mapping[str, pulumi.Input[str]],
    public_readers: Mapping[str, list[str]],
    runtime_classes: dict[str, str],
) -> pulumi.Output[list[ResourceGrant]]:
    """Every resource's grant, declared then generated, once the readers' init-data digests
    are known."""
    return reader_digests(workloads, manifests).apply(
        lambda d: (
            [
                grant_for(settings, r, d[0], runtime_classes, d[1])
                for r in settings.trustee.resources
            ]
            + [
                generated_grant(settings, p, public_readers[p], d[0], runtime_classes, d[1])
                for p in sorted(public)
            ]
        )
    )


def _resource_values(settings: StackSettings) -> dict[str, pulumi.Output[str]]:
    """'create' mode: each resource's value from its secret config key (registry credentials
    checked to be a Docker config.json first)."""
    pulled = {w.registry.credentials_resource for w in settings.workloads if w.registry}
    return {
        r.path: registry_credentials(r, secret_config(r.value_from))
        if r.path in pulled
        else secret_config(r.value_from)
        for r in settings.trustee.resources
    }


def _trustee_options(
    settings: StackSettings, platform: Platform, protect: pulumi.ResourceOptions
) -> pulumi.ResourceOptions:
    """Where the Trustee goes: the platform's cluster once it is ready, or the trusted zone's
    own cluster, which nothing on the confidential cluster holds back."""
    trustee_opts = pulumi.ResourceOptions(providers={"kubernetes": platform.provider})
    trustee_deps: list[pulumi.Resource] = list(platform.ready)
    trusted = settings.trustee_topology.trustee_cluster
    if trusted is not None:  # trusted zone: its own cluster
        trustee_opts = pulumi.ResourceOptions(
            providers={"kubernetes": _provider(settings, trusted.target())}
        )
        trustee_deps = []  # nothing on the confidential cluster holds the Trustee back
    return pulumi.ResourceOptions.merge(
        trustee_opts,
        pulumi.ResourceOptions.merge(protect, pulumi.ResourceOptions(depends_on=trustee_deps)),
    )


def _export_trust(
    settings: StackSettings,
    tls: TrusteeTls,
    platform: Platform,
    trustee: Trustee,
    workloads: dict[str, ConfidentialWorkload],
    manifests: dict[str, ConfidentialManifests],
) -> None:
    """The trust side's stack outputs; in 'reference' mode also the keys the user's secret
    manager needs, which the rendered manifests only reference."""
    pulumi.export("environment", settings.environment)
    pulumi.export("kbsUrl", tls.url)
    pulumi.export("kbsCertificate", tls.certificate_pem)
    pulumi.export("runtimeClasses", platform.offered)
    pulumi.export("resourcePolicy", trustee.resource_policy)
    export_workload_digests(workloads, manifests)
    if settings.kubernetes.render_dir:
        pulumi.export("renderDir", settings.kubernetes.render_dir)
    if settings.secrets_delivery() == "reference":
        pulumi.export("kbsTlsPrivateKey", pulumi.Output.secret(tls.private_key_pem))
        pulumi.export("kbsTokenSignerCertificate", trustee.token_signer_certificate_pem)
        pulumi.export(
            "kbsTokenSignerPrivateKey", pulumi.Output.secret(trustee.token_signer_private_key_pem)
        )
        pulumi.export("requiredSecrets", trustee.required_secrets)


def registry_credentials(resource: KbsResource, value: pulumi.Output[str]) -> pulumi.Output[str]:
    """The secret value of a registry-credentials resource, checked to be a Docker
    config.json image-rs can use (policies/registry.py) before the KBS serves it."""

    def check(text: str) -> str:
        try:
            check_docker_config(text)
        except ValueError as err:
            raise ValueError(
                f"{full_key(resource.value_from)}: registry credentials for {resource.path}: {err}"
            ) from None
        return text

    return value.apply(check)
