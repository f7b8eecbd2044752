"""The checks that span several keys of a stack configuration, run by `settings.parse` after
each model has checked its own fields.

Each helper checks one part (a workload, the resources, the cluster) and names the config
key to fix; `cross_checks` runs them in the order `SettingsError` lists their problems.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

from components import kata_chart, releases, tee
from components.checks.guest import guest_problems
from components.checks.reachability import reachability_problems
from components.checks.signed_images import signed_images_problems
from components.checks.topology import topology_problems
from components.peerpods.settings import PeerPodsCluster, attestation_platform
from components.problems import Problem
from components.reference_coverage import coverage_gaps
from components.stack_settings import (
    BareMetalCluster,
    StackSettings,
    WorkloadSettings,
    secret_refs,
)
from components.vocabulary import NAMESPACE, full_key
from policies.attestation import reference_value_problems
from policies.gpu_attestation import gpu_value_problems
from policies.vtpm_initdata import VTPM_ALGORITHM, VTPM_PLATFORMS


def cross_checks(s: StackSettings, is_secret: Callable[[str], bool] | None) -> list[Problem]:
    """Checks that span several keys: hardware fit, references, the production checklist.

    In a fixed order (the order `SettingsError` lists them in): workloads, manifests, registry
    credentials, resources, guest features, signed images, secret references, reference values,
    topology, reachability, measurements, then the cluster and the render target."""
    problems: list[Problem] = []
    name_counts = Counter(w.name for w in s.workloads)
    for i, w in enumerate(s.workloads):
        problems += _workload_problems(s, i, w, name_counts)
    problems += _manifest_problems(s, name_counts)
    problems += _registry_problems(s)
    problems += _resource_problems(s, name_counts)
    problems += guest_problems(s)
    problems += signed_images_problems(s)
    if is_secret is not None:
        problems += _secret_ref_problems(s, is_secret)
    problems += _reference_value_problems(s)
    problems += topology_problems(s)
    problems += reachability_problems(s)
    problems += _measurement_problems(s)
    problems += _cluster_problems(s)
    return problems


def _workload_problems(
    s: StackSettings, i: int, w: WorkloadSettings, name_counts: Counter[str]
) -> list[Problem]:
    """One workload: its runtime class fits the hardware and its GPUs, its images can be
    pinned by its agent policy, and production's checklist."""
    problems: list[Problem] = []
    hw = s.hardware
    key = f"{NAMESPACE}:workloads[{i}]"
    if name_counts[w.name] > 1:
        problems.append(Problem(f"{key}.name", f"workload name {w.name!r} is used twice"))
    if w.runtime_class is not None:
        why = tee.mismatch(w.runtime_class, hw)
        if why:
            choices = ", ".join(tee.classes_for(hw)) or "none"
            problems.append(Problem(f"{key}.runtimeClass", f"{why}; classes that fit: {choices}"))
            return problems
    try:
        rc = s.runtime_class_of(w)
    except ValueError as exc:
        problems.append(Problem(f"{key}.runtimeClass", str(exc)))
        return problems
    spec = tee.CATALOGUE[rc]
    if w.gpus and not spec.gpu:
        problems.append(
            Problem(
                f"{key}.gpus",
                f"runtime class {rc!r} has no GPU pass-through; use a kata-qemu-nvidia-gpu-* "
                "class on a cluster with `gpu`, or set gpus to 0",
            )
        )
    if spec.gpu and not w.gpus:
        problems.append(
            Problem(f"{key}.gpus", f"runtime class {rc!r} is for GPU pods: set gpus >= 1")
        )
    chart = isinstance(s.cluster, BareMetalCluster) and s.cluster.install.method == "chart"
    if chart and spec.kata_deploy_shim is None:
        problems.append(
            Problem(f"{key}.runtimeClass", f"{rc!r} cannot be installed by kata-deploy")
        )
    if (
        isinstance(s.cluster, PeerPodsCluster)
        and attestation_platform(s.cluster.cloud) in VTPM_PLATFORMS
        and w.initdata.algorithm not in (None, VTPM_ALGORITHM)
    ):
        problems.append(
            Problem(
                f"{key}.initdata.algorithm",
                f"Azure confidential VMs bind init-data by extending vTPM PCR8, which takes "
                f"a sha256 digest only (the attester refuses, the verifier panics on, a "
                f"{w.initdata.algorithm} one): use sha256 or omit it",
            )
        )
    # The Kubernetes schema and the confidential-pod recipe's rules, tags and digests
    # included, on the object the entry stands for (components/workload_template.py).
    from components.workload_template import problems as template_problems

    pinned = s.production and not s.waived("unpinned-images")
    problems += [
        Problem(f"{key}.{where}" if where else key, why)
        for where, why in template_problems(w, rc, pinned, s.environment)
    ]
    if s.production:
        problems += _production_workload_problems(s, key, w, rc)
    return problems


def _production_workload_problems(
    s: StackSettings, key: str, w: WorkloadSettings, rc: str
) -> list[Problem]:
    """What production refuses in a workload, unless waived."""
    problems: list[Problem] = []
    if rc == "kata-qemu-coco-dev" and not s.waived("coco-dev-runtime"):
        problems.append(
            Problem(
                f"{key}.runtimeClass",
                "production refuses kata-qemu-coco-dev (no hardware protection): run on "
                "TEE hardware or waive 'coco-dev-runtime' with a reason",
            )
        )
    if w.agent_policy.preset == "allow-all" and not s.waived("allow-all-agent-policy"):
        problems.append(
            Problem(
                f"{key}.agentPolicy.preset",
                "production refuses the allow-all agent policy: use 'restrictive' or "
                "waive 'allow-all-agent-policy' with a reason",
            )
        )
    return problems


def _resource_problems(s: StackSettings, name_counts: Counter[str]) -> list[Problem]:
    """Each KBS resource's readers exist and can be attested; production binds every one."""
    problems: list[Problem] = []
    hw = s.hardware
    names = [w.name for w in s.workloads]
    sources = {m.name for m in s.manifests}
    for i, r in enumerate(s.trustee.resources):
        key = f"{NAMESPACE}:trustee.resources[{i}]"
        # A Trustee stack of the split trusted zone names workloads of other stacks: checked
        # when it reads their exported digests (components/zones.py).
        for reader in r.readers if s.trustee_topology.role != "trustee" else []:
            if reader in sources and reader not in name_counts:
                continue
            if reader not in name_counts:
                problems.append(
                    Problem(
                        f"{key}.readers",
                        f"{reader!r} is not a workload in coco:workloads or coco:manifests "
                        f"(known: {', '.join([*names, *sorted(sources)]) or 'none'})",
                    )
                )
                continue
            reader_rc = s.workload(reader).runtime_class
            if reader_rc is None and hw.tee == "sev":
                reader_rc = tee.default_class(hw)
            if hw.host == "baremetal" and reader_rc == "kata-qemu-sev":
                problems.append(
                    Problem(
                        f"{key}.readers",
                        f"{reader!r} runs on {reader_rc!r}, which Trustee cannot attest "
                        "(no verifier for AMD SEV): it can read no KBS resource; "
                        "move it to kata-qemu-snp",
                    )
                )
        if r.allow_unbound and s.production and not s.waived("unbound-resource-policy"):
            problems.append(
                Problem(
                    f"{key}.allowUnbound",
                    "production refuses a resource without init-data binding: list its readers "
                    "or waive 'unbound-resource-policy' with a reason",
                )
            )
    return problems


def _reference_value_problems(s: StackSettings) -> list[Problem]:
    """Reference values typed as the attestation policy compares them."""
    problems: list[Problem] = []
    rv_problems = reference_value_problems(
        s.trustee.reference_values, custom_policy=s.trustee.attestation_policy is not None
    )
    nvidia = s.trustee.verifiers.nvidia
    for rv_name, why in gpu_value_problems(
        s.trustee.reference_values, nvidia.mode if nvidia is not None else None
    ).items():
        rv_problems.setdefault(rv_name, why)
    for rv_name, why in rv_problems.items():
        problems.append(Problem(f"{NAMESPACE}:trustee.referenceValues.{rv_name}", why))
    return problems


def _measurement_problems(s: StackSettings) -> list[Problem]:
    """Production: the reference values can affirm what the resources require."""
    problems: list[Problem] = []
    # A confidential stack of the split form holds no reference values: its Trustee stack
    # checks them. An external Trustee's are set by this stack (admin API), so checked here.
    measured_here = s.trustee_topology.role != "confidential"
    if s.production and measured_here and not s.waived("missing-reference-values"):
        # Resources that require affirming evidence the reference values cannot give
        # (components/reference_coverage.py); warned about outside production (stack.py).
        problems += [Problem(key, why) for key, why in coverage_gaps(s)]
    if (
        s.production
        and measured_here
        and not s.trustee.reference_values
        and not s.waived("missing-reference-values")
    ):
        problems.append(
            Problem(
                f"{NAMESPACE}:trustee.referenceValues",
                "production needs reference values (e.g. mr_td, rtmr_1 for TDX; "
                "snp_launch_measurement for SNP) or a waiver of 'missing-reference-values'",
            )
        )
    return problems


def _cluster_problems(s: StackSettings) -> list[Problem]:
    """The cluster and the render target: what cannot be rendered, installed or reached."""
    problems: list[Problem] = []
    if s.kubernetes.rendering and isinstance(s.cluster, BareMetalCluster):
        bm = s.cluster
        if bm.gpu is not None and bm.gpu.operator.install:
            problems.append(
                Problem(
                    f"{NAMESPACE}:cluster.gpu.operator.install",
                    "the GPU Operator is a Helm release and cannot be rendered: set it to false "
                    "with renderDir, or deploy to a cluster",
                )
            )
        if bm.label_nodes:
            problems.append(
                Problem(
                    f"{NAMESPACE}:cluster.labelNodes",
                    "node labels patch live Node objects and cannot be rendered: label the "
                    "nodes yourself, or deploy to a cluster",
                )
            )
    if (
        isinstance(s.cluster, BareMetalCluster)
        and s.cluster.install.method == "chart"
        and kata_chart.is_local_chart(s.cluster.install.chart)
    ):
        why = kata_chart.local_chart_problem(s.cluster.install.chart, s.cluster.install.version)
        if why:
            problems.append(Problem(f"{NAMESPACE}:cluster.install.chart", why))
    if isinstance(s.cluster, PeerPodsCluster) and kata_chart.is_local_chart(
        s.cluster.adaptor.chart
    ):
        adaptor = s.cluster.adaptor
        why = kata_chart.local_chart_problem(
            adaptor.chart,
            adaptor.version,
            name="peerpods",
            fix="give the folder of the peerpods chart at that version, its dependencies in its "
            "charts/ (`helm pull --untar` of the OCI reference, then `helm dependency build`), "
            f"or the OCI reference {releases.PEERPODS.chart} (a render then lists it)",
            version_key=f"{NAMESPACE}:cluster.adaptor.version",
        )
        if why:
            problems.append(Problem(f"{NAMESPACE}:cluster.adaptor.chart", why))
    if (
        isinstance(s.cluster, BareMetalCluster)
        and s.cluster.install.method == "chart"
        and not s.cluster.use_nfd
        and not s.cluster.label_nodes
    ):
        problems.append(
            Problem(
                f"{NAMESPACE}:cluster.labelNodes",
                "with useNfd false, no node carries the TEE label and no pod can be scheduled: "
                "list the TEE nodes in labelNodes, or set useNfd true",
            )
        )
    # A peer-pods render writes the cluster side only; the cloud side is listed as not
    # rendered (components/peerpods/render.py).
    if (
        isinstance(s.cluster, PeerPodsCluster)
        and s.trustee.url is None
        and not s.trustee_topology.remote_trustee
    ):
        problems.append(
            Problem(
                f"{NAMESPACE}:trustee.url",
                "pod VMs run outside the cluster and cannot resolve the in-cluster KBS "
                "service: set the KBS URL they reach (NodePort, load balancer or ingress)",
            )
        )
    if s.kubernetes.rendering and s.trustee.secrets_delivery == "create":
        problems.append(
            Problem(
                f"{NAMESPACE}:trustee.secretsDelivery",
                "rendering writes Secret objects in plain text: use 'reference' with renderDir "
                "and deliver the Secrets through your secret manager",
            )
        )
    return problems


def _registry_problems(s: StackSettings) -> list[Problem]:
    """Registry credentials are a KBS resource granted to exactly the workloads that pull
    with them: any other reader would get a key to the registry it does not need."""
    problems: list[Problem] = []
    pullers: dict[str, set[str]] = {}
    for i, w in enumerate(s.workloads):
        path = w.registry.credentials_resource if w.registry else None
        if path is None:
            continue
        pullers.setdefault(path, set()).add(w.name)
        if path not in {r.path for r in s.trustee.resources}:
            problems.append(
                Problem(
                    f"{NAMESPACE}:workloads[{i}].registry.credentialsResource",
                    f"{path!r} is not in coco:trustee.resources: add it with the Docker "
                    "config.json as a secret (valueFrom) and this workload as its reader",
                )
            )
    for i, r in enumerate(s.trustee.resources):
        if r.path in pullers and set(r.readers) != pullers[r.path]:
            problems.append(
                Problem(
                    f"{NAMESPACE}:trustee.resources[{i}].readers",
                    f"registry credentials {r.path!r} go only to the workloads pulling with "
                    f"them: set readers to {sorted(pullers[r.path])}",
                )
            )
    return problems


def _manifest_problems(s: StackSettings, workload_names: Counter[str]) -> list[Problem]:
    """coco:manifests: names, runtime class fit, and every object of a YAML folder checked
    (schema, TEE, agent policy, digests in production) before anything is created."""
    if not s.manifests:
        return []
    # loads the Kubernetes schemas: only for stacks with manifests
    from components.checks.manifests import chart_problems, folder_problems

    problems: list[Problem] = []
    seen: set[str] = set()
    for i, m in enumerate(s.manifests):
        key = f"{NAMESPACE}:manifests[{i}]"
        if m.name in seen or m.name in workload_names:
            problems.append(Problem(f"{key}.name", f"{m.name!r} is also another workload's name"))
        seen.add(m.name)
        if m.runtime_class is not None and (why := tee.mismatch(m.runtime_class, s.hardware)):
            problems.append(Problem(f"{key}.runtimeClass", why))
            continue
        try:
            rc = s.manifest_runtime_class(m)
        except ValueError as exc:
            problems.append(Problem(f"{key}.runtimeClass", str(exc)))
            continue
        if m.gpus and not tee.CATALOGUE[rc].gpu:
            problems.append(Problem(f"{key}.gpus", f"runtime class {rc!r} has no GPU pass-through"))
            continue
        if s.production and rc == "kata-qemu-coco-dev" and not s.waived("coco-dev-runtime"):
            problems.append(Problem(f"{key}.runtimeClass", "production refuses kata-qemu-coco-dev"))
        if (
            s.production
            and m.agent_policy.preset == "allow-all"
            and not s.waived("allow-all-agent-policy")
        ):
            problems.append(
                Problem(
                    f"{key}.agentPolicy.preset", "production refuses the allow-all agent policy"
                )
            )
        if m.chart is not None:
            problems += [Problem(f"{key}.chart", p) for p in chart_problems(m.chart)]
        if m.path is not None:
            production = s.production and not s.waived("unpinned-images")
            refuse = s.kubernetes.rendering and s.environment != "dev"
            problems += [
                Problem(f"{key}.path", p) for p in folder_problems(m, rc, production, refuse)
            ]
    return problems


def _secret_ref_problems(s: StackSettings, is_secret: Callable[[str], bool]) -> list[Problem]:
    problems = []
    for key, ref in secret_refs(s):
        if not is_secret(full_key(ref)):
            problems.append(
                Problem(
                    key,
                    f"config key {full_key(ref)!r} must be set as a secret: "
                    f"`pulumi config set --secret {ref} <value>`",
                )
            )
    return problems
