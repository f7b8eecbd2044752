"""ConfidentialWorkload: a Pod or Deployment plus everything that makes it confidential.

The security of a CoCo pod lives in details that are easy to get subtly wrong by hand: the
runtime class must match the hardware, the agent policy must travel in init-data (the only
place the TEE measures it), and the KBS must be told the exact digest of that init-data.
This component derives all of them from one `WorkloadSettings`, and exposes the init-data
digest as an output so the composition root can bind the workload's KBS secrets to it.
"""

from __future__ import annotations

import hashlib
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components import labels, tee, tokens
from components.guest_features import image_policy_path
from components.hardening import harden_pod_spec, policy_pins
from components.pod_guards import workload_guards
from components.service import service_spec
from components.settings import ContainerSettings, WorkloadSettings, is_pinned
from policies.agent import AgentPolicySpec, kubernetes_argv, pod_env, render_agent_policy
from policies.agent_container import ContainerPin, host_file_volume_mount
from policies.initdata import (
    INITDATA_ANNOTATION,
    KbsEndpoint,
    annotation_value,
    render_initdata,
)
from policies.registry import image_pull_entries
from policies.sealed import kbs_uri, seal, sealed_env_pattern
from policies.vtpm_initdata import default_algorithm, platform_claim_hex

LEGACY_RUNTIME_HANDLER_ANNOTATION = "io.containerd.cri.runtime-handler"


def effective_agent_policy(settings: WorkloadSettings) -> AgentPolicySpec:
    """The agent policy spec with the production defaults filled in.

    A restrictive policy that names no images would deny the workload its own containers;
    the natural, safe default is "exactly this workload's own pinned images", each started
    with the argv its pod spec gives it where the pod spec fixes one.
    """
    pinned = [image for image in settings.images if is_pinned(image)]
    spec = settings.agent_policy.with_workload_images(pinned)
    spec = spec.with_container_commands(container_commands(settings))
    return spec.with_containers(container_pins(settings), devices=settings.gpus > 0)


def container_pins(settings: WorkloadSettings) -> dict[str, ContainerPin]:
    """Container name -> what the agent policy pins besides image and argv: the env the pod
    spec gives it (after kubelet's expansion), its working dir, user and group where the pod
    spec sets them (the image's otherwise: not pinned), its read-only root, and the
    privileges and token mount of the hardened spec (components/hardening.py)."""
    hardened = template_spec(settings, "")
    return {
        c.name: ContainerPin(
            env=pod_env(c.env, f"containers[{i}]"),
            working_dir=c.working_dir,
            uid=c.run_as_user,
            gid=c.run_as_group,
            read_only_root=c.read_only_root_filesystem,
            sealed_env=tuple(sealed_env_pattern(v.name, v.sealed_from) for v in c.sealed_env),
            # A sealed file's directory is a Secret volume: a read-only bind from the shared
            # dir, whose files the runtime copies in (CopyFile) and the agent unseals.
            volume_mounts=tuple(host_file_volume_mount(d) for d in sealed_dirs(c)),
            **policy_pins(hardened["containers"][i], hardened),
        )
        for i, c in enumerate(settings.containers)
    }


def container_commands(settings: WorkloadSettings) -> dict[str, list[list[str]]]:
    """Pinned image -> the argvs its containers start with, for images whose every container
    sets `command`.

    One container of an image without `command` leaves that image unpinned: its argv comes
    from the image config, which only the registry knows, and pinning the others would
    refuse it.
    """
    argvs: dict[str, list[list[str]]] = {}
    unpinnable: set[str] = set()
    for container in settings.containers:
        if not is_pinned(container.image):
            continue
        if not container.command:
            unpinnable.add(container.image)
            continue
        argv = kubernetes_argv(container.command, container.args, container.env)
        argvs.setdefault(container.image, []).append(argv)
    return {image: found for image, found in argvs.items() if image not in unpinnable}


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


def image_security_policy_uri(settings: WorkloadSettings) -> str | None:
    """cdh.toml `[image] image_security_policy_uri`: the workload's policy.json in the KBS."""
    if settings.image_signatures is None:
        return None
    return kbs_uri(image_policy_path(settings.name))


def digest_algorithm(
    settings: WorkloadSettings, runtime_class: str, platform: str | None = None
) -> tee.DigestAlgorithm:
    """The workload's choice, else what the platform's attester and verifier accept (sha256 on
    Azure vTPM: policies/vtpm_initdata.py), else the runtime class's default."""
    return settings.initdata.algorithm or default_algorithm(
        platform, tee.lookup(runtime_class).default_digest
    )


def pod_annotations(
    settings: WorkloadSettings, runtime_class: str, initdata_annotation: str, digest_hex: str
) -> dict[str, str]:
    """Annotations every pod of the workload carries; user annotations cannot override ours."""
    spec = tee.lookup(runtime_class)
    out = dict(settings.annotations)
    if spec.gpu:
        out[tee.GPU_KERNEL_PARAMS_ANNOTATION] = tee.GPU_KERNEL_PARAMS
    if settings.legacy_runtime_handler_annotation:
        out[LEGACY_RUNTIME_HANDLER_ANNOTATION] = runtime_class
    out[INITDATA_ANNOTATION] = initdata_annotation
    out[labels.INITDATA_DIGEST_ANNOTATION] = digest_hex
    return dict(sorted(out.items()))


def pod_spec(settings: WorkloadSettings, runtime_class: str) -> dict[str, Any]:
    """The pod spec (Kubernetes field names) with the runtime class and GPU resources."""
    containers: list[dict[str, Any]] = []
    for i, c in enumerate(settings.containers):
        limits = dict(c.resources.limits)
        requests = dict(c.resources.requests)
        if settings.gpus and i == 0:
            # GPUs are passed through to the whole pod VM; one container requests them.
            limits[tee.GPU_RESOURCE] = str(settings.gpus)
        if settings.memory and i == 0:
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
                k: dict(sorted(v.items()))
                for k, v in (("limits", limits), ("requests", requests))
                if v
            }
        containers.append(container)
    spec: dict[str, Any] = {"runtimeClassName": runtime_class, "containers": containers}
    volumes = sealed_volumes(settings)
    if volumes:
        spec["volumes"] = volumes
    return spec


def template_spec(settings: WorkloadSettings, runtime_class: str) -> dict[str, Any]:
    """The pod spec as rendered: `pod_spec` with the hardened defaults (the agent policy is
    derived from this same spec, so it pins what the pods get)."""
    return harden_pod_spec(pod_spec(settings, runtime_class), settings.hardening)


class ConfidentialWorkload(pulumi.ComponentResource):
    """A confidential Pod or Deployment, its init-data, and the digest the KBS must bind."""

    initdata: pulumi.Output[str]
    """The init-data TOML document exactly as the guest measures it."""
    initdata_digest: pulumi.Output[str]
    """Hex of the digest as fitted to the TEE field: the value the attestation token carries."""
    agent_policy: str
    runtime_class: str
    algorithm: str

    def __init__(
        self,
        name: str,
        settings: WorkloadSettings,
        runtime_class: str,
        environment: str,
        kbs_url: pulumi.Input[str],
        kbs_cert_pem: pulumi.Input[str],
        opts: pulumi.ResourceOptions | None = None,
        sealing_key_pem: pulumi.Output[str] | None = None,
        attestation_platform: str | None = None,
    ) -> None:
        """`sealing_key_pem`: the stack's sealed-secret signing key (a secret), needed when
        a container has `sealedEnv` or `sealedFiles`. `attestation_platform`: the verifier the
        KBS judges the pods with (it decides how init-data is bound, e.g. vTPM PCR8 on Azure)."""
        super().__init__(
            tokens.token("ConfidentialWorkload"),
            name,
            None,
            tokens.options("ConfidentialWorkload", opts),
        )
        spec = tee.lookup(runtime_class)
        self.runtime_class = runtime_class
        algorithm = digest_algorithm(settings, runtime_class, attestation_platform)
        self.algorithm = algorithm
        effective = effective_agent_policy(settings)
        self.agent_policy = render_agent_policy(effective)
        policy = self.agent_policy
        policy_uri = image_security_policy_uri(settings)

        self.initdata = pulumi.Output.all(kbs_url, kbs_cert_pem).apply(
            lambda args: render_initdata(
                KbsEndpoint(url=args[0], cert_pem=args[1]),
                policy,
                algorithm,
                policy_uri,
                image_pull=image_pull_entries(settings.registry),
            )
        )
        self.initdata_digest = self.initdata.apply(
            lambda text: platform_claim_hex(
                text, algorithm, spec.initdata_field_len, attestation_platform
            )
        )
        annotations = pulumi.Output.all(
            self.initdata.apply(annotation_value), self.initdata_digest
        ).apply(lambda a: pod_annotations(settings, runtime_class, a[0], a[1]))

        child = pulumi.ResourceOptions(parent=self)
        meta_labels = labels.common(
            environment, labels.ROLE_WORKLOAD, **{labels.WORKLOAD: settings.name}
        )
        selector = {labels.WORKLOAD: settings.name}
        pod_labels = {**settings.labels, **meta_labels}

        # The init-data and agent policy as reviewable objects: GitOps diffs show exactly
        # what the TEE will measure, and the policy pack can check them without decoding.
        self.initdata_config = k8s.core.v1.ConfigMap(
            f"{name}-initdata",
            metadata={
                "name": f"{settings.name}-initdata",
                "namespace": settings.namespace,
                "labels": labels.common(
                    environment, labels.ROLE_INITDATA, **{labels.WORKLOAD: settings.name}
                ),
                "annotations": self.initdata_digest.apply(
                    lambda d: {labels.INITDATA_DIGEST_ANNOTATION: d}
                ),
            },
            data={
                "initdata.toml": self.initdata,
                "policy.rego": policy,
                "algorithm": algorithm,
                "runtime-class": runtime_class,
            },
            opts=child,
        )

        sealed = {
            sealed_secret_key(c.name, v.name): v.sealed_from
            for c in settings.containers
            for v in c.sealed_env
        } | {
            sealed_file_key(c.name, f.path): f.sealed_from
            for c in settings.containers
            for f in c.sealed_files
        }
        if sealed:
            if sealing_key_pem is None:
                raise ValueError(
                    f"workload {settings.name!r} has sealedEnv or sealedFiles but no signing key"
                )
            # The sealed form is a signed reference, not the value: the Secret is not secret
            # to the host by design, but stays a Pulumi secret (signature over stack state).
            self.sealed_secret = k8s.core.v1.Secret(
                f"{name}-sealed-secrets",
                metadata={
                    "name": sealed_secret_name(settings),
                    "namespace": settings.namespace,
                    "labels": labels.common(
                        environment, labels.ROLE_WORKLOAD, **{labels.WORKLOAD: settings.name}
                    ),
                },
                type="Opaque",
                string_data=sealing_key_pem.apply(
                    lambda pem: {k: seal(path, pem) for k, path in sorted(sealed.items())}
                ),
                opts=child,
            )

        template = {
            "metadata": {"labels": pod_labels, "annotations": annotations},
            "spec": template_spec(settings, runtime_class),
        }
        self.object: k8s.apps.v1.Deployment | k8s.core.v1.Pod
        if settings.kind == "Deployment":
            self.object = k8s.apps.v1.Deployment(
                name,
                metadata={
                    "name": settings.name,
                    "namespace": settings.namespace,
                    "labels": meta_labels,
                },
                spec={
                    "replicas": settings.replicas,
                    "selector": {"matchLabels": selector},
                    "template": template,
                },
                opts=child,
            )
        else:
            self.object = k8s.core.v1.Pod(
                name,
                metadata={
                    "name": settings.name,
                    "namespace": settings.namespace,
                    "labels": pod_labels,
                    "annotations": annotations,
                },
                spec=template["spec"],
                opts=child,
            )

        self.service: k8s.core.v1.Service | None = None
        if settings.service is not None:
            self.service = k8s.core.v1.Service(
                f"{name}-service",
                metadata={
                    "name": settings.name,
                    "namespace": settings.namespace,
                    "labels": meta_labels,
                },
                spec=service_spec(settings.service, selector),
                opts=child,
            )

        self.guards = workload_guards(name, settings, meta_labels, selector, kbs_url, child)

        self.register_outputs(
            {
                "runtimeClass": runtime_class,
                "initdataDigest": self.initdata_digest,
                "algorithm": algorithm,
                "agentPolicyRelaxations": effective.relaxations(),
            }
        )
