"""Every stack file in stacks/ runs the real program under mocks, and what it registers holds.

These are the cross-layer guarantees: the runtime class matches the stack's hardware, the
init-data a pod carries hashes (computed here independently, with hashlib and the field
rule) to exactly the digest the KBS resource policy releases its secrets to, GPU pods get
their resources and kernel parameters, no secret value reaches any input in plain text, and
every Kubernetes object validates against the real Kubernetes schemas.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from k8s_schema import as_manifest, has_schema, validate_manifest
from mocks import CloudMocks, Recorded, RecordingMocks, config_values, is_secret, run_program

from components import tee
from components.settings import StackSettings, parse, secret_refs, strip_namespace

ROOT = Path(__file__).resolve().parent.parent
STACK_FILES = sorted((ROOT / "stacks").glob("Pulumi.*.yaml"))
STACK_NAMES = [p.name.removeprefix("Pulumi.").removesuffix(".yaml") for p in STACK_FILES]
INITDATA_ANNOTATION = "io.katacontainers.config.hypervisor.cc_init_data"
FIELD_BYTES = {"tdx": 48, "snp": 32}
"""TEE fields kata fits init-data into (kata-types initdata.rs); others keep the digest."""


@dataclass
class Run:
    settings: StackSettings
    mocks: RecordingMocks
    secrets: dict[str, str]

    def pods(self) -> Iterator[tuple[Recorded, dict[str, Any], dict[str, Any]]]:
        """(resource, pod metadata, pod spec) for every Pod and Deployment coco created."""
        for r in self.mocks.resources:
            if r.type == "kubernetes:apps/v1:Deployment":
                template = r.inputs["spec"]["template"]
                yield r, template["metadata"], template["spec"]
            elif r.type == "kubernetes:core/v1:Pod":
                yield r, r.inputs["metadata"], r.inputs["spec"]

    def resource_policy(self) -> str:
        found = [
            r
            for r in self.mocks.of_type("core/v1:ConfigMap")
            if r.metadata.get("labels", {}).get("coco.confidentialcontainers.org/role")
            == "resource-policy"
        ]
        assert len(found) == 1, "exactly one resource-policy ConfigMap"
        text: str = found[0].inputs["data"]["policy.rego"]
        return text


def stack_config(name: str) -> dict[str, Any]:
    doc = yaml.safe_load((ROOT / "stacks" / f"Pulumi.{name}.yaml").read_text())
    config: dict[str, Any] = doc["config"]
    return config


def run_stack(name: str) -> Run:
    """Build stack `name` under mocks, with known test values for every secret it reads."""
    config = stack_config(name)
    plain = {k: v for k, v in config.items() if not (isinstance(v, dict) and "secure" in v)}
    settings = parse(strip_namespace(plain))
    secrets = {
        ref if ":" in ref else f"coco:{ref}": f"test-secret-{ref}-0f9e8d7c"
        for _, ref in secret_refs(settings)
    }
    mocks = CloudMocks()
    run_program(mocks, name, config_values(plain) | secrets, secrets)
    return Run(settings, mocks, secrets)


@pytest.fixture(scope="module", params=STACK_NAMES)
def run(request: pytest.FixtureRequest) -> Run:
    return run_stack(request.param)


def independent_claim(toml_text: str, algorithm: str, tee_name: str, vtpm: bool = False) -> str:
    digest = hashlib.new(algorithm, toml_text.encode()).digest()
    if vtpm:
        # Azure vTPM: PCR8 after extending its zero reset value with the sha256 digest
        # (trustee az_snp_vtpm verify_init_data / extend_claim).
        assert algorithm == "sha256", "PCR8 is extended with a sha256 digest"
        return hashlib.sha256(bytes(32) + digest).hexdigest()
    size = FIELD_BYTES.get(tee_name)
    if size is not None:
        digest = digest[:size].ljust(size, b"\0")
    return digest.hex()


def test_every_stack_file_is_covered() -> None:
    assert {"dev", "baremetal-tdx", "baremetal-snp", "gpu-tdx", "s390x-se"} <= set(STACK_NAMES)
    assert {"aws-peerpods", "azure-peerpods", "gcp-peerpods"} <= set(STACK_NAMES)


def test_each_stack_has_trustee_and_a_reading_workload(run: Run) -> None:
    assert run.settings.workloads, "a workload"
    assert any(r.readers for r in run.settings.trustee.resources), "a KBS secret with a reader"
    assert run.mocks.of_type("apps/v1:Deployment"), "the KBS deployment"


def test_runtime_class_matches_hardware(run: Run) -> None:
    pods = list(run.pods())
    workload_pods = [p for p in pods if p[2].get("runtimeClassName")]
    assert len(workload_pods) == len(run.settings.workloads)
    for _, _, spec in workload_pods:
        rc = spec["runtimeClassName"]
        assert tee.mismatch(rc, run.settings.hardware) is None
        assert rc != "kata-qemu-coco-dev" or run.settings.hardware.tee == "none"


def test_initdata_digest_is_what_the_resource_policy_releases(run: Run) -> None:
    policy = run.resource_policy()
    for _, meta, spec in run.pods():
        if not spec.get("runtimeClassName"):
            continue
        text = gzip.decompress(base64.b64decode(meta["annotations"][INITDATA_ANNOTATION])).decode()
        doc = tomllib.loads(text)
        assert doc["version"] == "0.1.0"
        assert set(doc["data"]) >= {"aa.toml", "cdh.toml", "policy.rego"}
        assert run.settings.trustee.service_url() in doc["data"]["aa.toml"]
        spec_tee = tee.lookup(spec["runtimeClassName"]).tee
        cloud = getattr(run.settings.cluster, "cloud", None)
        azure = getattr(cloud, "provider", None) == "azure"
        claim = independent_claim(text, doc["algorithm"], spec_tee, vtpm=azure)
        assert meta["annotations"]["coco.confidentialcontainers.org/initdata-digest"] == claim
        assert claim in policy, "the KBS releases the workload's secret to this exact digest"


def test_gpu_pods_get_gpus_and_kernel_params(run: Run) -> None:
    for w in run.settings.workloads:
        rc = run.settings.runtime_class_of(w)
        (meta, spec) = next((m, s) for r, m, s in run.pods() if r.metadata.get("name") == w.name)
        limits = spec["containers"][0].get("resources", {}).get("limits", {})
        if tee.lookup(rc).gpu:
            assert limits["nvidia.com/pgpu"] == str(w.gpus)
            assert limits["memory"] == w.memory
            assert meta["annotations"][tee.GPU_KERNEL_PARAMS_ANNOTATION] == "nvrc.smi.srs=1"
        else:
            assert "nvidia.com/pgpu" not in limits
            assert tee.GPU_KERNEL_PARAMS_ANNOTATION not in meta["annotations"]


def _plain_parts(value: Any) -> Any:
    """`value` with every secret-wrapped part dropped: what the engine stores unencrypted."""
    if is_secret(value):
        return None
    if isinstance(value, dict):
        return {k: _plain_parts(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain_parts(v) for v in value]
    return value


def test_no_secret_value_in_plain_text(run: Run) -> None:
    assert run.secrets
    for r in run.mocks.resources:
        plain = json.dumps(_plain_parts(r.raw_inputs), default=str)
        for key, value in run.secrets.items():
            assert value not in plain, f"{key} in plain text in {r.type} {r.name}"
            assert base64.b64encode(value.encode()).decode() not in plain


def test_secret_values_reach_kbs_only_as_secrets(run: Run) -> None:
    secrets = [
        r
        for r in run.mocks.of_type("core/v1:Secret")
        if r.metadata.get("labels", {}).get("coco.confidentialcontainers.org/role")
        == "kbs-resource"
    ]
    if run.settings.secrets_delivery() == "reference":
        assert secrets == []
        return
    assert len(secrets) == len(run.settings.trustee.resources)
    for s in secrets:
        assert "stringData.value" in s.secret_paths or "stringData" in s.secret_paths


def test_every_manifest_validates_against_kubernetes_schemas(run: Run) -> None:
    checked = 0
    for r in run.mocks.kubernetes():
        if r.type.startswith("kubernetes:helm.sh") or r.type == "pulumi:providers:kubernetes":
            continue
        obj = as_manifest(r.inputs)
        if not isinstance(obj, dict) or "kind" not in obj or not has_schema(obj):
            continue
        validate_manifest(obj)
        checked += 1
    assert checked >= 4


def test_same_config_gives_byte_identical_objects() -> None:
    first = run_stack("baremetal-tdx")
    second = run_stack("baremetal-tdx")

    def dump(run: Run) -> list[str]:
        return sorted(
            json.dumps([r.type, r.name, r.inputs], sort_keys=True, default=str)
            for r in run.mocks.kubernetes()
        )

    assert dump(first) == dump(second)


def test_container_argv_is_pinned_in_the_measured_agent_policy() -> None:
    """baremetal-tdx sets `command`: the policy in its init-data admits exactly that argv."""
    from agent_requests import create_request
    from opa import opa_eval

    run = run_stack("baremetal-tdx")
    [(_, meta, spec)] = [p for p in run.pods() if p[2].get("runtimeClassName")]
    [container] = spec["containers"]
    text = gzip.decompress(base64.b64decode(meta["annotations"][INITDATA_ANNOTATION])).decode()
    policy = tomllib.loads(text)["data"]["policy.rego"]
    # Known answer: command + args after kubelet's $(API_PORT) expansion from the stack's env.
    expected = ["/app/payments-api", "--listen=:8443", "--kbs-secret=/run/secrets/payments-key"]

    def create(argv: list[str]) -> Any:
        env = [f"{e['name']}={e['value']}" for e in container.get("env", [])]
        security = container.get("securityContext", {})
        request = create_request(
            container["image"],
            [container["image"]],
            args=argv,
            name=container["name"],
            env=env,
            cwd=container.get("workingDir", "/"),
            uid=security.get("runAsUser", 0),
            gid=security.get("runAsGroup"),
            read_only_root=security.get("readOnlyRootFilesystem", False),
        )
        return opa_eval(policy, request, None, "data.agent_policy.CreateContainerRequest")

    assert create(expected) is True
    assert create(["/bin/sh", "-c", "cat /run/secrets/payments-key"]) is False
    assert create(expected[:1]) is False


def _selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector["matchLabels"].items())


def test_every_coco_pod_is_hardened_and_guarded(run: Run) -> None:
    """components/hardening.py: every pod coco renders (workloads and the KBS) carries the
    hardened defaults, a NetworkPolicy selects it, and a PodDisruptionBudget does when it has
    more than one replica."""
    policies = run.mocks.of_type("networking.k8s.io/v1:NetworkPolicy")
    budgets = run.mocks.of_type("policy/v1:PodDisruptionBudget")
    deployments = run.mocks.of_type("apps/v1:Deployment")
    assert len(deployments) == len(run.settings.workloads) + 1, "the workloads and the KBS"
    for d in deployments:
        meta, template = d.inputs["metadata"], d.inputs["spec"]["template"]
        spec = template["spec"]
        assert spec["automountServiceAccountToken"] is False
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        for c in [*spec.get("initContainers", []), *spec["containers"]]:
            assert c["securityContext"]["allowPrivilegeEscalation"] is False
            assert c["securityContext"]["capabilities"]["drop"] == ["ALL"]
            assert c["resources"]["requests"]["memory"] and c["resources"]["limits"]["memory"]
            assert c["resources"]["requests"]["cpu"]
        ns, pod_labels = meta["namespace"], template["metadata"]["labels"]
        guarding = [
            p
            for p in policies
            if p.inputs["metadata"]["namespace"] == ns
            and _selects(p.inputs["spec"]["podSelector"], pod_labels)
        ]
        assert len(guarding) == 1, meta["name"]
        assert guarding[0].inputs["spec"]["policyTypes"] == ["Ingress", "Egress"]
        budgeted = [
            b
            for b in budgets
            if b.inputs["metadata"]["namespace"] == ns
            and _selects(b.inputs["spec"]["selector"], pod_labels)
        ]
        assert len(budgeted) == (1 if d.inputs["spec"]["replicas"] > 1 else 0), meta["name"]
    # The workload's memory request equals its limit: the pod VM is sized by the limit.
    for _, _, spec in run.pods():
        if spec.get("runtimeClassName"):
            for c in spec["containers"]:
                assert c["resources"]["requests"]["memory"] == c["resources"]["limits"]["memory"]


def test_the_trustee_registers_before_the_workloads(run: Run) -> None:
    """The resource policy needs the init-data digests, not the workloads: the Trustee (its
    token signer first of all) is registered before any workload object, so its chain does
    not queue behind every workload object in the engine (docs/benchmarks.md, real apply)."""
    order = [(r.type, r.name) for r in run.mocks.resources]
    names = {w.name for w in run.settings.workloads}
    objects = [
        i
        for i, (t, n) in enumerate(order)
        if t.startswith("kubernetes:")
        and t != "kubernetes:core/v1:Namespace"
        and any(n == w or n.startswith(f"{w}-") for w in names)
    ]
    signer = [i for i, (_, n) in enumerate(order) if n == "trustee-token-signer-cert"]
    if not signer or not objects:
        pytest.skip("the stack has no Trustee of its own (external or other zone)")
    assert signer[0] < objects[0], [order[i] for i in range(objects[0] + 1)]
