"""ConfidentialWorkload: a `coco:workloads` entry plus everything that makes it confidential.

The security of a CoCo pod lives in details that are easy to get subtly wrong by hand: the
runtime class must match the hardware, the agent policy must travel in init-data (the only
place the TEE measures it), and the KBS must be told the exact digest of that init-data.
This component builds the entry's Kubernetes object (components/workload_template.py: the
short form expanded into a full pod template), makes its pod template confidential with the
one recipe every path uses (components/confidential_pod.py), and exposes the init-data
digest as an output so the composition root can bind the workload's KBS secrets to it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components import confidential_pod, labels, podspec, tokens, workload_template
from components.pod_guards import workload_guards
from components.sealed_references import sealed_references_secret
from components.service import service_spec
from components.settings import WorkloadSettings
from policies.agent import AgentPolicySpec
from policies.initdata import KbsEndpoint

RESOURCE_TYPES: dict[str, Any] = {
    "Pod": k8s.core.v1.Pod,
    "Deployment": k8s.apps.v1.Deployment,
    "StatefulSet": k8s.apps.v1.StatefulSet,
    "Job": k8s.batch.v1.Job,
    "CronJob": k8s.batch.v1.CronJob,
}


def prepare(
    settings: WorkloadSettings,
    runtime_class: str,
    environment: str,
    attestation_platform: str | None = None,
) -> confidential_pod.PreparedPod:
    """The entry's object checked against the Kubernetes schema, then its pod template through
    the recipe up to the KBS identity; `PodSpecError` for anything refused."""
    obj = workload_template.workload_object(settings, environment)
    problems = podspec.schema_problems(obj)
    if problems:
        raise podspec.PodSpecError(problems)
    options = workload_template.options(
        settings, runtime_class, attestation_platform=attestation_platform
    )
    return confidential_pod.prepare(podspec.locate(obj), options)


def effective_agent_policy(
    settings: WorkloadSettings, runtime_class: str | None = None
) -> AgentPolicySpec:
    """The agent policy the entry's pods get: the recipe's, on its template as deployed
    (hardened); the runtime class changes nothing in it but must fit the GPUs."""
    options = workload_template.options(settings, _runtime_class(settings, runtime_class))
    template = confidential_pod.as_deployed(workload_template.located(settings, "dev"), options)
    return confidential_pod.effective_policy(template, options)


def rendered_pod_spec(
    settings: WorkloadSettings, runtime_class: str | None = None
) -> dict[str, Any]:
    """The pod spec the entry's pods get (hardened, made confidential): what the kubelet and
    containerd turn into the agent's requests."""
    spec: dict[str, Any] = prepare(
        settings, _runtime_class(settings, runtime_class), "dev"
    ).template["spec"]
    return spec


def _runtime_class(settings: WorkloadSettings, runtime_class: str | None) -> str:
    rc = runtime_class or settings.runtime_class
    if rc is None:
        rc = "kata-qemu-nvidia-gpu-tdx" if settings.gpus else "kata-qemu-coco-dev"
    return rc


@dataclass(frozen=True)
class WorkloadPod:
    """A workload's pod template through the recipe (`prepared`) and, once the KBS endpoint is
    known, finished with its init-data (`pod`): what the component deploys and what the KBS
    binds (`digest`). Made before the component so that a stack can hand the digests to its
    Trustee first: the resource policy needs them, not the workloads' rollouts."""

    prepared: confidential_pod.PreparedPod
    pod: pulumi.Output[confidential_pod.ConfidentialPod]
    digest: pulumi.Output[str]


def workload_pod(
    settings: WorkloadSettings,
    runtime_class: str,
    environment: str,
    kbs_url: pulumi.Input[str],
    kbs_cert_pem: pulumi.Input[str],
    attestation_platform: str | None = None,
) -> WorkloadPod:
    """The entry's `WorkloadPod`; ValueError naming the workload for anything refused."""
    try:
        prepared = prepare(settings, runtime_class, environment, attestation_platform)
    except podspec.PodSpecError as err:
        raise ValueError(f"workload {settings.name!r}:\n{err}") from None
    pod = pulumi.Output.all(kbs_url, kbs_cert_pem).apply(
        lambda args: prepared.finish(KbsEndpoint(url=args[0], cert_pem=args[1]))
    )
    return WorkloadPod(prepared, pod, pod.apply(lambda p: p.digest))


class ConfidentialWorkload(pulumi.ComponentResource):
    """A confidential workload object, its init-data, and the digest the KBS must bind."""

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
        pod: WorkloadPod | None = None,
    ) -> None:
        """`sealing_key_pem`: the stack's sealed-secret signing key (a secret), needed when
        a container has `sealedEnv` or `sealedFiles`. `attestation_platform`: the verifier the
        KBS judges the pods with (it decides how init-data is bound, e.g. vTPM PCR8 on Azure).
        `pod`: the entry's `workload_pod`, when the caller made it already (for the same
        settings, class, environment, KBS and platform)."""
        super().__init__(
            tokens.token("ConfidentialWorkload"),
            name,
            None,
            tokens.options("ConfidentialWorkload", opts),
        )
        self.runtime_class = runtime_class
        made = pod or workload_pod(
            settings, runtime_class, environment, kbs_url, kbs_cert_pem, attestation_platform
        )
        prepared = made.prepared
        self.algorithm = prepared.algorithm
        self.agent_policy = prepared.agent_policy
        self.initdata = made.pod.apply(lambda p: p.initdata)
        self.initdata_digest = made.digest

        child = pulumi.ResourceOptions(parent=self)
        self.initdata_config = self._initdata_config(name, settings, environment, child)
        self.sealed_secret = self._sealed_secret(
            name, settings, environment, sealing_key_pem, child
        )
        annotations = made.pod.apply(lambda p: p.template["metadata"]["annotations"])
        self.object = self._object(name, settings, environment, prepared, annotations, child)
        self.service = self._service(name, settings, environment, child)
        self.guards = workload_guards(
            name,
            settings,
            workload_template.object_labels(settings, environment),
            workload_template.selector(settings),
            prepared.template["spec"],
            kbs_url,
            child,
        )
        self.register_outputs(
            {
                "runtimeClass": runtime_class,
                "initdataDigest": self.initdata_digest,
                "algorithm": self.algorithm,
                "agentPolicyRelaxations": prepared.policy.relaxations(),
            }
        )

    def _initdata_config(
        self,
        name: str,
        settings: WorkloadSettings,
        environment: str,
        child: pulumi.ResourceOptions,
    ) -> k8s.core.v1.ConfigMap:
        """The init-data and agent policy as reviewable objects: GitOps diffs show exactly
        what the TEE will measure, and the policy pack can check them without decoding."""
        return k8s.core.v1.ConfigMap(
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
                "policy.rego": self.agent_policy,
                "algorithm": self.algorithm,
                "runtime-class": self.runtime_class,
            },
            opts=child,
        )

    def _sealed_secret(
        self,
        name: str,
        settings: WorkloadSettings,
        environment: str,
        sealing_key_pem: pulumi.Output[str] | None,
        child: pulumi.ResourceOptions,
    ) -> k8s.core.v1.Secret | None:
        """The Secret of signed sealed references the containers' `sealedEnv`/`sealedFiles`
        read (only when they have any); signing needs the stack's sealing key."""
        sealed = workload_template.sealed_values(settings)
        if not sealed:
            return None
        if sealing_key_pem is None:
            raise ValueError(
                f"workload {settings.name!r} has sealedEnv or sealedFiles but no signing key"
            )
        return sealed_references_secret(
            f"{name}-sealed-secrets",
            name=workload_template.sealed_secret_name(settings),
            namespace=settings.namespace,
            workload=settings.name,
            environment=environment,
            references=sealed,
            sealing_key_pem=sealing_key_pem,
            opts=child,
        )

    @staticmethod
    def _object(
        name: str,
        settings: WorkloadSettings,
        environment: str,
        prepared: confidential_pod.PreparedPod,
        annotations: pulumi.Output[Any],
        child: pulumi.ResourceOptions,
    ) -> pulumi.CustomResource:
        """The entry's object of its kind, its pod template the recipe's with the init-data
        annotations (known once the KBS endpoint is). The resource name is the entry's name
        for every kind, so the URNs of the Pods and Deployments deployed before the other
        kinds existed are unchanged."""
        template = {
            "metadata": {**prepared.template["metadata"], "annotations": annotations},
            "spec": prepared.template["spec"],
        }
        obj = workload_template.workload_object(settings, environment, template)
        resource: pulumi.CustomResource = RESOURCE_TYPES[settings.kind](
            name, metadata=obj["metadata"], spec=obj["spec"], opts=child
        )
        return resource

    @staticmethod
    def _service(
        name: str, settings: WorkloadSettings, environment: str, child: pulumi.ResourceOptions
    ) -> k8s.core.v1.Service | None:
        """The entry's Service, when it asks for one: the workload's own pods behind it."""
        if settings.service is None:
            return None
        return k8s.core.v1.Service(
            f"{name}-service",
            metadata={
                "name": settings.name,
                "namespace": settings.namespace,
                "labels": workload_template.object_labels(settings, environment),
            },
            spec=service_spec(settings.service, workload_template.selector(settings)),
            opts=child,
        )
