"""The rules of `coco:topology` that span other keys: what each topology needs of the Trustee
settings, the workloads and the layout (components/topology.py holds the model)."""

from __future__ import annotations

from pydantic.alias_generators import to_camel

from components.problems import Problem
from components.stack_settings import StackSettings
from components.topology import CO_LOCATED_WAIVER
from components.vocabulary import NAMESPACE


def topology_problems(s: StackSettings) -> list[Problem]:
    """Cross-key rules of the topology, each naming the key to fix."""
    t = s.trustee_topology
    key = f"{NAMESPACE}:topology"
    problems: list[Problem] = []
    if t.co_located:
        if s.production and not s.waived(CO_LOCATED_WAIVER):
            problems.append(
                Problem(
                    f"{key}.kind",
                    "production refuses a Trustee on the confidential cluster (its admins and "
                    "control plane are untrusted, and would hold every KBS key and secret): "
                    "use kind: trusted-zone (docs/topologies.md), or waive "
                    f"'{CO_LOCATED_WAIVER}' with a reason",
                )
            )
        return problems
    if s.layer is not None and t.role is not None:
        problems.append(
            Problem(
                f"{NAMESPACE}:layer",
                "coco:layer and a topology role are two different splits: drop coco:layer "
                "(the confidential stack holds its cluster side and workloads)",
            )
        )
    tr = s.trustee
    if t.role == "confidential":
        # Compared with the defaults, not `model_fields_set`: the Automation API writes every
        # top-level key, `coco:trustee: {}` included (automation/config.py).
        if s.trustee != type(s.trustee)():
            problems.append(
                Problem(
                    f"{NAMESPACE}:trustee",
                    "a confidential-cluster stack deploys no Trustee: move coco:trustee "
                    f"(resources, policies, reference values) to the Trustee stack "
                    f"{t.trustee_stack!r}",
                )
            )
        for i, w in enumerate(s.workloads):
            wkey = f"{NAMESPACE}:workloads[{i}]"
            if w.image_signatures is not None or w.registry is not None:
                problems.append(
                    Problem(
                        wkey,
                        "imageSignatures and registry are not offered yet with separate "
                        "Trustee stacks: use the one-stack trusted-zone form (trusteeCluster)",
                    )
                )
        problems += _generated_resource_problems(s, "separate Trustee stacks")
        return problems
    if t.kind == "external":
        return problems + _external_problems(s)
    # The Trustee serves guests of another cluster: it must be exposed, at a URL they reach.
    if tr.service_type == "ClusterIP" and tr.ingress is None:
        problems.append(
            Problem(
                f"{NAMESPACE}:trustee.serviceType",
                "a ClusterIP Service is reachable only inside the trusted cluster, not from the "
                "confidential cluster's guests: use LoadBalancer or NodePort, or an ingress",
            )
        )
    if tr.url is None:
        problems.append(
            Problem(
                f"{NAMESPACE}:trustee.url",
                "guests on the confidential cluster cannot resolve the trusted cluster's "
                "in-cluster name: set the URL they reach (load balancer or node address)",
            )
        )
    if t.role == "trustee" and (s.workloads or s.manifests):
        problems.append(
            Problem(
                f"{NAMESPACE}:workloads",
                "the Trustee stack runs no confidential workload: move coco:workloads and "
                "coco:manifests to the confidential-cluster stacks",
            )
        )
    return problems


def _generated_resource_problems(s: StackSettings, where: str) -> list[Problem]:
    """Sealed secrets and signed images need KBS resources the program generates (a signing
    key, image policies): not offered yet where this stack deploys no Trustee."""
    problems: list[Problem] = []
    for i, w in enumerate(s.workloads):
        wkey = f"{NAMESPACE}:workloads[{i}]"
        if w.image_signatures is not None:
            problems.append(Problem(f"{wkey}.imageSignatures", f"not offered yet with {where}"))
        if any(c.sealed_env or c.sealed_files for c in w.containers):
            problems.append(
                Problem(
                    f"{wkey}.containers",
                    f"sealed secrets are not offered yet with {where}: use the one-stack "
                    "trusted-zone form (trusteeCluster)",
                )
            )
    for i, m in enumerate(s.manifests):
        if m.image_signatures is not None:
            problems.append(
                Problem(
                    f"{NAMESPACE}:manifests[{i}].imageSignatures",
                    f"not offered yet with {where}: use trusteeCluster",
                )
            )
        if m.sealed_secrets:
            problems.append(
                Problem(
                    f"{NAMESPACE}:manifests[{i}].sealedSecrets",
                    f"sealed secrets are not offered yet with {where}: use trusteeCluster",
                )
            )
    return problems


def _external_problems(s: StackSettings) -> list[Problem]:
    """An external Trustee: coco deploys no KBS, so the keys that shape one do not apply."""
    problems = _generated_resource_problems(s, "an external Trustee")
    if s.layer is not None:
        problems.append(
            Problem(
                f"{NAMESPACE}:layer",
                "coco:layer is not offered with an external Trustee: one stack holds the "
                "cluster side, the workloads and what it sets on the KBS",
            )
        )
    tr = s.trustee
    key = f"{NAMESPACE}:trustee"
    deployed_only = {
        "url": f"the KBS URL of an external Trustee is {NAMESPACE}:topology.external.url",
        "node_port": "coco exposes no KBS for an external Trustee",
        "ingress": "coco exposes no KBS for an external Trustee",
        "secrets_delivery": "an external Trustee gets each resource through its admin API, "
        "from the resource's valueFrom secret config key",
    }
    for field, why in deployed_only.items():
        if getattr(tr, field) is not None:
            problems.append(Problem(f"{key}.{to_camel(field)}", f"remove it: {why}"))
    return problems
