"""The confidential-pod recipe: a pod template in, the confidential pod template out.

What makes a pod confidential is the same whichever way the pod arrives: coco's own
`coco:workloads` (components/workload.py, once its short form has expanded into a full
template, components/workload_template.py), a folder of manifests or a chart
(`coco:manifests`), a program's own objects through the public `confidential(...)` transform
(components/transform.py), and peer pods (their pod VMs' default init-data,
components/peerpods/component.py, is this recipe's init-data step without a pod). So it is
written once, here, as one pure function of (pod template, runtime class, policy options,
KBS identity) -> (confidential pod template, init-data, digest, agent policy):

1. **The template goes in** (`prepare`). A step that rewrites the template before anything
   reads it (hardening defaults) belongs first, so that what is validated and measured is
   what is deployed.
2. **It is validated** (`problems`): what a TEE cannot honour and what the restrictive agent
   policy cannot pin (components/podspec.py), registry credentials that would reach the
   host, and the one rule for tags and digests (`image_problem`). Every problem at once,
   each naming the object and field.
3. **It is made confidential**: the agent policy derived from exactly this template (images,
   argvs, env, users, mounts, sealed values), the runtime class, the GPU resource, coco's
   labels. None of this depends on the KBS, so a component can do it before it registers
   anything (`PreparedPod`).
4. **The KBS identity is added** (`PreparedPod.finish`): the init-data document (KBS URL and
   certificate, the agent policy, image settings), its digest as the TEE reports it, and the
   annotations carrying both.

`confidential_pod` runs the four steps; the same inputs give byte-identical output. A
component whose KBS identity is a Pulumi output calls `prepare` when it is built (a refusal
stops the program before any resource exists) and `finish` inside the output.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from components import labels, podspec, tee
from components.hardening import HardeningSettings, harden_pod_spec
from components.vocabulary import is_pinned
from policies.agent import AgentPolicySpec, render_agent_policy
from policies.initdata import (
    INITDATA_ANNOTATION,
    KbsEndpoint,
    annotation_value,
    render_initdata,
)
from policies.registry import RegistryAccess, image_pull_entries
from policies.vtpm_initdata import default_algorithm, platform_claim_hex

LEGACY_RUNTIME_HANDLER_ANNOTATION = "io.containerd.cri.runtime-handler"


@dataclass(frozen=True)
class PodOptions:
    """Everything the recipe needs besides the template and the KBS identity."""

    runtime_class: str
    agent_policy: AgentPolicySpec = dataclasses.field(default_factory=AgentPolicySpec)
    algorithm: tee.DigestAlgorithm | None = None
    """The init-data digest algorithm; None: what the platform and runtime class take."""
    gpus: int = 0
    require_digests: bool = False
    """Production and signature verification: every image pinned by digest, whatever the
    agent policy (a tag can be moved under the pod)."""
    annotations: Mapping[str, str] = dataclasses.field(default_factory=dict)
    """Added to the template's own; coco's annotations override both."""
    environment: str | None = None
    """When set, the pod gets coco's labels (role `workload`, this environment), so the
    policy pack's production checklist applies to it (policies/pack/objects.py
    `is_production`)."""
    registry: RegistryAccess | None = None
    """Private registry under guest pull (policies/registry.py): the pod's imagePullSecrets
    are refused, since they would hand the credentials to the host."""
    image_security_policy_uri: str | None = None
    """`kbs:///...` of the image signature policy the guest's image-rs enforces (cdh.toml
    `[image]`)."""
    attestation_platform: str | None = None
    """The verifier the KBS judges these pods with: it decides how init-data is bound
    (policies/vtpm_initdata.py: PCR8 and sha256 on Azure vTPM)."""
    legacy_runtime_handler_annotation: bool = False
    """Also set io.containerd.cri.runtime-handler (older containerd)."""
    sealed: podspec.SealedRefs = dataclasses.field(default_factory=dict)
    hardening: HardeningSettings = dataclasses.field(default_factory=HardeningSettings)
    """The hardened defaults the template gets before anything reads it
    (components/hardening.py), so the agent policy pins what the pods run with."""
    """Secret keys holding sealed references (components/podspec.py `SealedRefs`): env
    entries reading them are pinned as sealed values instead of refused."""

    def __post_init__(self) -> None:
        spec = tee.lookup(self.runtime_class)  # raises for an unknown class
        if self.gpus and not spec.gpu:
            raise ValueError(
                f"runtime class {self.runtime_class!r} has no GPU pass-through; use a "
                "kata-qemu-nvidia-gpu-* class, or set gpus to 0"
            )

    @property
    def digest_algorithm(self) -> tee.DigestAlgorithm:
        """The option, else what the platform's attester and verifier accept (sha256 on Azure
        vTPM), else the runtime class's default."""
        return self.algorithm or default_algorithm(
            self.attestation_platform, tee.lookup(self.runtime_class).default_digest
        )


def image_problem(image: str, policy: AgentPolicySpec, require_digests: bool) -> str | None:
    """The one rule for tags and digests, for every way a pod arrives.

    A tag without digest is refused (1) in production and with signature verification,
    whatever the policy (`require_digests`): a tag can be moved under the pod; and (2)
    whenever the agent policy decides CreateContainerRequest by its rules (the restrictive
    preset): the policy admits images by digest only (policies/agent.py `allowed_images`),
    so the agent would refuse the container inside the TEE. Only the allow-all preset (or an
    override of CreateContainerRequest) runs a tag, and production refuses that preset.
    """
    if is_pinned(image):
        return None
    if require_digests:
        return (
            f"{image!r} has a tag but no digest; production and signature verification pin "
            "every image (name@sha256:...)"
        )
    if policy.decisions()["CreateContainerRequest"] == "rule":
        return (
            f"{image!r} is not pinned by digest, so the restrictive agent policy cannot allow "
            "it (the agent would refuse the container): pin it as name@sha256:<digest>, or use "
            "agentPolicy preset allow-all in a dev stack"
        )
    return None


def problems(template: podspec.Located, options: PodOptions) -> list[str]:
    """Every reason the template cannot be made confidential, each naming object and field."""
    found = podspec.template_problems(template, options.agent_policy, options.sealed)
    if options.registry is not None and template.pod_spec.get("imagePullSecrets"):
        found.append(
            f"{template.field('imagePullSecrets')}: with guest pull the registry credentials "
            "come from the KBS (registry.credentialsResource); an imagePullSecret would hand "
            "them to the host: remove it"
        )
    for field, i, c in podspec.containers(template.pod_spec):
        why = image_problem(c.get("image", ""), options.agent_policy, options.require_digests)
        if why is not None:
            found.append(f"{template.field(field, i, 'image')}: {why}")
    return found


def effective_policy(template: podspec.Located, options: PodOptions) -> AgentPolicySpec:
    """The agent policy this template gets: the options' spec with its defaults filled from
    the template (its own pinned images, the argvs of containers that set `command`, each
    container's env, user, mounts and sealed values; devices for GPU pods)."""
    images = [image for image in podspec.images(template) if is_pinned(image)]
    spec = options.agent_policy.with_workload_images(images)
    if spec.preset == "restrictive" and spec.pin_commands and not spec.container_commands:
        # Only then are argvs pinned: without, an argv kubelet expands from a variable this
        # program cannot know (a service link) is no problem.
        commands = podspec.container_commands(template)
        spec = spec.with_container_commands({i: a for i, a in commands.items() if is_pinned(i)})
    pins = podspec.container_pins(template, options.sealed)
    return spec.with_containers(pins, devices=options.gpus > 0)


def copy_tree(value: Any) -> Any:
    """A copy of the dicts and lists of `value`, sharing its leaves (a program's own objects
    may hold Pulumi outputs or the engine's unknowns, which cannot be deep-copied)."""
    if isinstance(value, dict):
        return {k: copy_tree(v) for k, v in value.items()}
    if isinstance(value, list):
        return [copy_tree(v) for v in value]
    return value


def confidential_spec(template: podspec.Located, options: PodOptions) -> dict[str, Any]:
    """The pod spec with the runtime class and, on the first container, the GPUs (they are
    passed through to the whole pod VM; one container requests them)."""
    spec: dict[str, Any] = copy_tree(template.pod_spec)
    spec["runtimeClassName"] = options.runtime_class
    if options.gpus:
        first = spec["containers"][0]
        resources = first.setdefault("resources", {})
        limits = {**(resources.get("limits") or {}), tee.GPU_RESOURCE: str(options.gpus)}
        resources["limits"] = dict(sorted(limits.items()))
    return spec


def pod_initdata(
    kbs: KbsEndpoint,
    agent_policy: str,
    algorithm: tee.DigestAlgorithm,
    image_security_policy_uri: str | None = None,
    registry: RegistryAccess | None = None,
) -> str:
    """The init-data TOML a pod VM measures: the KBS it attests to, the agent policy, and the
    image settings of cdh.toml (policies/initdata.py)."""
    return render_initdata(
        kbs,
        agent_policy,
        algorithm,
        image_security_policy_uri,
        image_pull=image_pull_entries(registry),
    )


@dataclass(frozen=True)
class ConfidentialPod:
    """The recipe's result."""

    template: dict[str, Any]
    """`{metadata, spec}`: runtime class, GPUs, labels, init-data annotations."""
    initdata: str
    """The init-data TOML document exactly as the guest measures it."""
    digest: str
    """Hex of the init-data digest as the TEE reports it: what the KBS binds secrets to."""
    agent_policy: str
    """The rendered agent policy (Rego), carried in `initdata`."""
    policy: AgentPolicySpec
    algorithm: tee.DigestAlgorithm


@dataclass(frozen=True)
class PreparedPod:
    """A validated template made confidential in everything but the KBS identity."""

    template: dict[str, Any]
    """`{metadata, spec}` without the init-data annotations."""
    options: PodOptions
    policy: AgentPolicySpec
    agent_policy: str

    @property
    def algorithm(self) -> tee.DigestAlgorithm:
        return self.options.digest_algorithm

    def annotations(self, initdata: str, digest: str) -> dict[str, str]:
        """The pod's annotations: the template's own, the options', then coco's (which no
        user annotation can override)."""
        options = self.options
        out = {**(self.template["metadata"].get("annotations") or {}), **options.annotations}
        if tee.lookup(options.runtime_class).gpu:
            out[tee.GPU_KERNEL_PARAMS_ANNOTATION] = tee.GPU_KERNEL_PARAMS
        if options.legacy_runtime_handler_annotation:
            out[LEGACY_RUNTIME_HANDLER_ANNOTATION] = options.runtime_class
        out[INITDATA_ANNOTATION] = annotation_value(initdata)
        out[labels.INITDATA_DIGEST_ANNOTATION] = digest
        return dict(sorted(out.items()))

    def finish(self, kbs: KbsEndpoint) -> ConfidentialPod:
        """Step 4: the init-data for this KBS, its digest, and the annotations carrying them."""
        options = self.options
        algorithm = self.algorithm
        initdata = pod_initdata(
            kbs, self.agent_policy, algorithm, options.image_security_policy_uri, options.registry
        )
        digest = platform_claim_hex(
            initdata,
            algorithm,
            tee.lookup(options.runtime_class).initdata_field_len,
            options.attestation_platform,
        )
        metadata = {**self.template["metadata"], "annotations": self.annotations(initdata, digest)}
        return ConfidentialPod(
            template={"metadata": metadata, "spec": self.template["spec"]},
            initdata=initdata,
            digest=digest,
            agent_policy=self.agent_policy,
            policy=self.policy,
            algorithm=algorithm,
        )


def as_deployed(template: podspec.Located, options: PodOptions) -> podspec.Located:
    """Step 1: the template with the hardened defaults it will be deployed with
    (components/hardening.py); every later step reads this one."""
    return dataclasses.replace(
        template, pod_spec=harden_pod_spec(template.pod_spec, options.hardening)
    )


def prepare(template: podspec.Located, options: PodOptions) -> PreparedPod:
    """Steps 1 to 3: validate the template and make it confidential up to the KBS identity;
    `PodSpecError` lists every problem."""
    # Step 1: the template as it will be deployed: hardened defaults filled in.
    template = as_deployed(template, options)
    # Step 2: validated.
    found = problems(template, options)
    if found:
        raise podspec.PodSpecError(found)
    # Step 3: made confidential.
    policy = effective_policy(template, options)
    metadata: dict[str, Any] = copy_tree(template.metadata)
    if options.environment is not None:
        coco = labels.common(options.environment, labels.ROLE_WORKLOAD)
        metadata["labels"] = {**(metadata.get("labels") or {}), **coco}
    return PreparedPod(
        template={"metadata": metadata, "spec": confidential_spec(template, options)},
        options=options,
        policy=policy,
        agent_policy=render_agent_policy(policy),
    )


def confidential_pod(
    template: podspec.Located, options: PodOptions, kbs: KbsEndpoint
) -> ConfidentialPod:
    """The recipe: (pod template, runtime class, policy options, KBS identity) ->
    (confidential pod template, init-data, digest, agent policy). Pure."""
    return prepare(template, options).finish(kbs)
