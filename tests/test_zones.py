"""Topologies (components/topology.py, components/zones.py) and what reaches the untrusted side.

- settings: co-located refused in production unless waived; each topology's shape; the
  init-data KBS URL checked against how the KBS is exposed; the KBS image pinned by digest;
- one stack, two providers (stacks/Pulumi.baremetal-tdx.yaml): every Trustee object goes to
  the trusted cluster's provider, every workload object to the confidential one;
- separate stacks (examples/trusted_zone): the Trustee stack, a confidential stack and the
  Trustee stack again, each run under mocks whose StackReferences answer with the other's
  exported outputs: the KBS URL and certificate reach the workloads' init-data, their digests
  reach the resource policy, and a stack not deployed yet gets no rule;
- the scan: nothing the Trustee guards (KBS keys, secret values, resource and attestation
  policies, reference values) is in any object applied to a confidential cluster, nor in a
  confidential stack's outputs.
"""

from __future__ import annotations

import base64
import copy
import gzip
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from builders import (
    ZoneMocks,
    guarded,
    initdata_of,
    problems_by_key,
    production_tdx_stack,
    run_stack,
    scan,
    stack_config,
)

from components.settings import (
    parse,
    strip_namespace,
)
from components.zones import ServedStack, zone_grants

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples" / "trusted_zone"
TRUST = "organization/coco/trust-zone"
CONF = "organization/coco/tdx-a"
BASE: dict[str, Any] = production_tdx_stack(
    serviceType="NodePort", nodePort=30443, url="https://kbs.example.com:30443"
)


def raw(**changes: Any) -> dict[str, Any]:
    out = copy.deepcopy(BASE)
    for key, value in changes.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = value
    return out


# --------------------------------------------------------------------------- settings


def test_trusted_zone_one_stack_parses() -> None:
    s = parse(BASE)
    assert s.trustee_topology.trustee_cluster is not None and not s.trustee_topology.remote_trustee


def test_production_refuses_co_located_unless_waived() -> None:
    co_located = raw(topology=None)
    co_located["trustee"].pop("nodePort")
    co_located["trustee"]["serviceType"] = "LoadBalancer"
    co_located["trustee"]["url"] = "https://kbs.example.com:8080"
    found = problems_by_key(co_located)
    assert list(found) == ["coco:topology.kind"]
    assert "co-located-trustee" in found["coco:topology.kind"]
    waived = {**co_located, "waivers": [{"check": "co-located-trustee", "reason": "x" * 20}]}
    assert parse(waived).trustee_topology.co_located
    assert parse({**co_located, "environment": "staging"}).trustee_topology.co_located


@pytest.mark.parametrize(
    ("topology", "text"),
    [
        ({"kind": "trusted-zone"}, "trusteeCluster"),
        ({"kind": "trusted-zone", "trusteeCluster": {}}, "name the trusted cluster"),
        ({"kind": "co-located", "role": "trustee"}, "kind: trusted-zone"),
        ({"kind": "trusted-zone", "role": "trustee"}, "confidentialStacks"),
        ({"kind": "trusted-zone", "role": "confidential"}, "trusteeStack"),
        (
            {"kind": "trusted-zone", "role": "confidential", "trusteeStack": "a b"},
            "not a stack name",
        ),
        (
            {
                "kind": "trusted-zone",
                "role": "trustee",
                "confidentialStacks": ["x"],
                "trusteeCluster": {"context": "t"},
            },
            "one-stack form",
        ),
    ],
)
def test_topology_shapes_are_refused_naming_the_key(topology: dict[str, Any], text: str) -> None:
    found = problems_by_key(raw(topology=topology))
    [(_key, message)] = [(k, m) for k, m in found.items() if k.startswith("coco:topology")]
    assert text in message, message


@pytest.mark.parametrize(
    ("trustee", "key", "text"),
    [
        ({"nodePort": None}, "coco:trustee.nodePort", "random port"),
        ({"nodePort": 30444}, "coco:trustee.url", "30444"),
        ({"serviceType": "LoadBalancer", "nodePort": None}, "coco:trustee.url", "8080"),
        ({"serviceType": "LoadBalancer"}, "coco:trustee.nodePort", "NodePort"),
        ({"serviceType": "ClusterIP", "nodePort": None}, "coco:trustee.serviceType", "ClusterIP"),
        ({"serviceType": "ClusterIP", "nodePort": None}, "coco:trustee.url", "not a name"),
        ({"url": None}, "coco:trustee.url", "cannot resolve"),
        ({"image": "ghcr.io/x/kbs:built-in-as-v0.21.0"}, "coco:trustee.image", "digest"),
    ],
)
def test_kbs_reachability_is_checked_at_preview(
    trustee: dict[str, Any], key: str, text: str
) -> None:
    data = raw()
    for k, v in trustee.items():
        if v is None:
            data["trustee"].pop(k, None)
        else:
            data["trustee"][k] = v
    found = problems_by_key(data)
    assert key in found, found
    assert text in found[key]


def test_kbs_image_tag_is_accepted_with_a_reasoned_waiver() -> None:
    data = raw(waivers=[{"check": "unpinned-kbs-image", "reason": "mirror comes next sprint"}])
    data["trustee"]["image"] = "ghcr.io/confidential-containers/key-broker-service:v0.21.0"
    assert parse(data).production


def test_node_port_reachability_holds_in_dev_too() -> None:
    data = raw(environment="dev", topology=None)
    data["trustee"].pop("nodePort")
    assert "coco:trustee.nodePort" in problems_by_key(data)


def test_split_roles_keep_trustee_and_workloads_apart() -> None:
    confidential = raw(
        topology={"kind": "trusted-zone", "role": "confidential", "trusteeStack": TRUST}
    )
    assert "coco:trustee" in problems_by_key(confidential)
    confidential.pop("trustee")
    assert parse(confidential).trustee_topology.remote_trustee
    sealed = copy.deepcopy(confidential)
    sealed["workloads"][0]["containers"][0]["sealedEnv"] = [
        {"name": "K", "sealedFrom": "default/key/1"}
    ]
    assert "coco:workloads[0].containers" in problems_by_key(sealed)
    layered = {**confidential, "layer": {"kind": "platform"}}
    assert "coco:layer" in problems_by_key(layered)
    trustee = raw(
        topology={"kind": "trusted-zone", "role": "trustee", "confidentialStacks": [CONF]}
    )
    assert "coco:workloads" in problems_by_key(trustee)
    trustee.pop("workloads")
    assert parse(trustee).trustee_topology.role == "trustee"  # readers live in the other stacks


# --------------------------------------------------------------------------- running stacks


def resource_policy(mocks: ZoneMocks) -> str:
    [policy] = [
        r for r in mocks.of_type("core/v1:ConfigMap") if r.metadata["name"] == "kbs-resource-policy"
    ]
    text: str = policy.inputs["data"]["policy.rego"]
    return text


def test_one_stack_puts_the_trustee_on_the_trusted_provider_only() -> None:
    config = stack_config(ROOT / "stacks" / "Pulumi.baremetal-tdx.yaml")
    mocks, _outputs, secrets = run_stack(config, "baremetal-tdx", {})
    k8s = mocks.kubernetes()
    trusted = [r for r in k8s if mocks.provider_of(r) == "k8s-trustee"]
    confidential = [r for r in k8s if mocks.provider_of(r) == "k8s"]
    assert sorted(trusted + confidential, key=id) == sorted(k8s, key=id), "two providers only"
    assert {r.metadata.get("namespace", r.metadata["name"]) for r in trusted} == {"trustee"}
    assert any(r.kind == "Deployment" and r.metadata["name"] == "kbs" for r in trusted)
    assert any(
        r.kind == "Deployment" and r.metadata["name"] == "payments-api" for r in confidential
    )
    [service] = [r for r in trusted if r.kind == "Service"]
    assert service.inputs["spec"]["type"] == "NodePort"
    assert service.inputs["spec"]["ports"][0]["nodePort"] == 30443
    # The init-data sends guests to exactly the pinned node port.
    [workload] = [r for r in confidential if r.kind == "Deployment"]
    aa = initdata_of(workload)["data"]["aa.toml"]
    assert "https://kbs.tdx-prod.example.com:30443" in aa
    # The scan: nothing the Trustee guards is applied to the confidential cluster.
    assert scan(confidential, {}, guarded(config, secrets)) == []
    # ... while the trusted side does hold them (the scan would see a leak).
    assert scan(trusted, {}, guarded(config, secrets)) != []


def test_separate_stacks_flow_without_a_cycle() -> None:
    trust_cfg = stack_config(EXAMPLES / "Pulumi.trust-zone.yaml")
    conf_cfg = stack_config(EXAMPLES / "Pulumi.tdx-a.yaml")

    # 1. Trustee stack first: the confidential stack exists but exports nothing yet.
    first, trust_out, trust_secrets = run_stack(trust_cfg, "trust-zone", {CONF: {}})
    assert "default/key" not in resource_policy(first)
    assert trust_out["kbs"]["url"] == "https://kbs.trust-zone.example.com:8080"
    assert "BEGIN CERTIFICATE" in trust_out["kbs"]["certificatePem"]

    # 2. The confidential stack reads the KBS URL and certificate into its init-data.
    conf, conf_out, conf_secrets = run_stack(conf_cfg, "tdx-a", {TRUST: trust_out})
    assert conf_secrets == {}
    [workload] = [r for r in conf.of_type("apps/v1:Deployment")]
    initdata = initdata_of(workload)
    assert "https://kbs.trust-zone.example.com:8080" in initdata["data"]["aa.toml"]
    cert_line = trust_out["kbs"]["certificatePem"].splitlines()[1]
    assert cert_line in initdata["data"]["cdh.toml"]
    digest = conf_out["workloads"]["payments-api"]["initdataDigest"]
    assert conf_out["kbsReaders"]["payments-api"] == {
        "digests": [digest],
        "platform": "tdx",
        "gpus": False,
    }

    # 3. The Trustee stack again: the resource policy binds the exported digest.
    second, _, _ = run_stack(trust_cfg, "trust-zone", {CONF: conf_out})
    policy = resource_policy(second)
    assert digest in policy and "default" in policy and "db" in policy
    assert digest not in resource_policy(first)

    # The scan: the confidential stack's objects and outputs hold nothing guarded, nor do
    # the Trustee stack's outputs (a StackReference copies them all into the confidential
    # stack's state).
    needles = guarded(trust_cfg, trust_secrets)
    assert scan([], trust_out, needles) == []
    assert scan(conf.resources, conf_out, needles) == []
    assert scan(second.resources, {}, needles) != []  # the trusted side holds them


def served(readers: dict[str, Any] | None, **changes: Any) -> ServedStack:
    base: dict[str, Any] = {
        "name": CONF,
        "readers": readers,
        "hardware": {"host": "baremetal", "arch": "x86_64", "tee": "tdx", "gpu": False},
        "kbs_url": "https://kbs.trust-zone.example.com:8080",
        "kbs_certificate": "CERT",
    }
    return ServedStack(**(base | changes))


def test_zone_grants_refuse_what_cannot_be_right() -> None:
    settings = parse(strip_namespace(stack_config(EXAMPLES / "Pulumi.trust-zone.yaml")))
    url = "https://kbs.trust-zone.example.com:8080"
    one: Callable[..., list[Any]] = lambda *s: zone_grants(settings, list(s), url, "CERT")  # noqa: E731
    entry = {"digests": ["ab" * 48], "platform": "tdx", "gpus": False}
    [grant] = one(served({"payments-api": entry}))
    assert grant.initdata_digests == ["ab" * 48] and grant.platforms == ["tdx"]
    assert one(served(None)) == [], "not deployed yet: no rule"
    with pytest.raises(ValueError, match=r"coco:trustee\.resources\[0\]\.readers"):
        one(served({"other": entry}))
    with pytest.raises(ValueError, match=r"coco:topology\.confidentialStacks.*runs on"):
        one(served({"payments-api": entry}, hardware={"host": "baremetal", "tee": "snp"}))
    with pytest.raises(ValueError, match="sends guests to"):
        one(served({"payments-api": entry}, kbs_url="https://elsewhere:8080"))
    # Two clusters, one reader each: both digests bound.
    second = served({"payments-api": {**entry, "digests": ["cd" * 48]}}, name="org/coco/tdx-b")
    [both] = one(served({"payments-api": entry}), second)
    assert both.initdata_digests == sorted(["ab" * 48, "cd" * 48])


def test_confidential_stack_needs_a_deployed_trustee_stack() -> None:
    conf_cfg = stack_config(EXAMPLES / "Pulumi.tdx-a.yaml")
    with pytest.raises(Exception, match=r"coco:topology\.trusteeStack.*exports no"):
        run_stack(conf_cfg, "tdx-a", {TRUST: {}})


def ingress_config(url: str) -> dict[str, Any]:
    data = raw()
    data["trustee"].pop("nodePort")
    data["trustee"].update(
        serviceType="ClusterIP",
        url=url,
        ingress={
            "className": "nginx",
            "annotations": {"nginx.ingress.kubernetes.io/ssl-passthrough": "true"},
        },
    )
    return data


def test_ingress_exposes_the_kbs_at_the_url_host_on_443() -> None:
    assert parse(ingress_config("https://kbs.example.com")).trustee.ingress is not None
    found = problems_by_key(ingress_config("https://kbs.example.com:8443"))
    assert "443" in found["coco:trustee.url"]
    found = problems_by_key(ingress_config("https://kbs.trustee.svc"))
    assert "in-cluster" in found["coco:trustee.url"]


def test_ingress_object_passes_tls_through_to_the_kbs_service() -> None:
    config = {f"coco:{k}": v for k, v in ingress_config("https://kbs.example.com").items()}
    mocks, _, _ = run_stack(config, "ingress", {})
    [ingress] = mocks.of_type("networking.k8s.io/v1:Ingress")
    assert mocks.provider_of(ingress) == "k8s-trustee"
    assert ingress.metadata["namespace"] == "trustee"
    assert ingress.metadata["annotations"] == {
        "nginx.ingress.kubernetes.io/ssl-passthrough": "true"
    }
    spec = ingress.inputs["spec"]
    assert spec["ingressClassName"] == "nginx"
    [rule] = spec["rules"]
    assert rule["host"] == "kbs.example.com"
    assert rule["http"]["paths"][0]["backend"]["service"] == {
        "name": "kbs",
        "port": {"number": 8080},
    }
    assert "tls" not in spec, "no TLS termination: the guest pins the KBS's own certificate"


# --------------------------------------------------------------------------- the policy pack


def pack_resources(mocks: ZoneMocks) -> list[Any]:
    """The stack's Kubernetes objects as the policy engine hands them over, each with the
    provider it was registered with."""
    from pulumi_policy import PolicyProviderResource, PolicyResource

    out = []
    for r in mocks.kubernetes():
        ref = mocks.providers[f"{r.type}::{r.name}"]
        provider_urn = ref.rsplit("::", 1)[0] if ref else ""
        provider = PolicyProviderResource("pulumi:providers:kubernetes", {}, provider_urn, "p")
        urn = f"urn:pulumi:s::coco::{r.type}::{r.name}"
        out.append(PolicyResource(r.type, r.inputs, urn, r.name, None, provider, None, [], {}))  # type: ignore[arg-type]
    return out


def test_pack_refuses_a_trustee_sharing_the_confidential_provider() -> None:
    from policies.pack.zones import trustee_in_trusted_zone

    trusted_zone = stack_config(ROOT / "stacks" / "Pulumi.baremetal-tdx.yaml")
    mocks, _, _ = run_stack(trusted_zone, "baremetal-tdx", {})
    assert trustee_in_trusted_zone(pack_resources(mocks)) == []
    co_located = dict(trusted_zone)
    co_located.pop("coco:topology")
    co_located["coco:waivers"] = [{"check": "co-located-trustee", "reason": "x" * 20}]
    mocks, _, _ = run_stack(co_located, "baremetal-tdx", {})
    findings = trustee_in_trusted_zone(pack_resources(mocks))
    assert findings and all(f.production for f in findings)
    flagged = {f.urn.rsplit("::", 1)[-1] for f in findings if f.urn}
    assert {"trustee-kbs", "trustee-resource-policy", "trustee-tls"} <= flagged
    assert not any(n.startswith("payments-api") for n in flagged)


def test_pack_refuses_a_kbs_image_by_tag() -> None:
    from policies.pack.zones import kbs_image_pinned

    config = stack_config(ROOT / "stacks" / "Pulumi.baremetal-tdx.yaml")
    mocks, _, _ = run_stack(config, "baremetal-tdx", {})
    [kbs] = [r for r in mocks.of_type("apps/v1:Deployment") if r.metadata["name"] == "kbs"]
    assert kbs_image_pinned(kbs.type, kbs.inputs) == []
    tagged = copy.deepcopy(kbs.inputs)
    tagged["spec"]["template"]["spec"]["containers"][0]["image"] = "ghcr.io/x/kbs:v0.21.0"
    [problem] = kbs_image_pinned(kbs.type, tagged)
    assert "'kbs'" in problem and "coco:trustee.image" in problem
    [workload] = [r for r in mocks.of_type("apps/v1:Deployment") if r.metadata["name"] != "kbs"]
    assert kbs_image_pinned(workload.type, workload.inputs) == []


def test_policy_config_disables_trustee_rules_on_a_confidential_stack() -> None:
    from components.tee import Hardware
    from policies.pack.production import stack_policy_config

    hw = Hardware(host="baremetal", arch="x86_64", tee="tdx")
    normal = stack_policy_config("production", hw)
    remote = stack_policy_config("production", hw, remote_trustee=True)
    changed = {k for k in normal if normal[k] != remote[k]}
    assert changed == {"kbs-resource-policy-bound", "reference-values-provisioned"}
    assert {remote[k]["enforcementLevel"] for k in changed} == {"disabled"}
    assert normal["trustee-in-trusted-zone"]["enforcementLevel"] == "mandatory"


@pytest.mark.parametrize(
    ("rego", "denies"),
    [
        ("package policy\n\nimport rego.v1\n\ndefault allow = false\n", True),
        ("package policy\ndefault allow := false  # nothing yet\n", True),
        ("package policy\ndefault allow = true\n", False),
        ("package policy\ndefault allow = false\nallow = true\n", False),
        ("package policy\ndefault allow = false\nallow if {\n\ttrue\n}\n", False),
        ("package policy\n", False),
    ],
)
def test_a_deny_all_resource_policy_needs_no_binding(rego: str, denies: bool) -> None:
    """The Trustee stack's first deploy (no reader deployed yet) renders a policy that
    releases nothing: the pack's kbs-resource-policy-bound lets exactly that one through."""
    from policies.pack.checks import denies_everything, kbs_resource_policy_bound

    assert denies_everything(rego) is denies
    resource = pack_resource_policy(rego)
    assert (kbs_resource_policy_bound([resource]) == []) is denies


def pack_resource_policy(rego: str) -> Any:
    from pulumi_policy import PolicyResource

    props = {
        "metadata": {
            "name": "kbs-resource-policy",
            "labels": {
                "coco.confidentialcontainers.org/role": "resource-policy",
                "coco.confidentialcontainers.org/environment": "production",
            },
        },
        "data": {"policy.rego": rego},
    }
    urn = "urn:pulumi:s::coco::kubernetes:core/v1:ConfigMap::p"
    return PolicyResource("kubernetes:core/v1:ConfigMap", props, urn, "p", None, None, None, [], {})  # type: ignore[arg-type]


def test_peer_pods_confidential_stack_pins_the_trustee_stacks_kbs() -> None:
    """Peer pods: the adaptor's cluster-wide init-data (peer-pods-cm INITDATA) takes the KBS
    URL and certificate from the Trustee stack too, and the stack holds no Trustee."""
    config = stack_config(ROOT / "stacks" / "Pulumi.aws-peerpods.yaml")
    config.pop("coco:trustee")
    config["coco:topology"] = {
        "kind": "trusted-zone",
        "role": "confidential",
        "trusteeStack": TRUST,
    }
    cert = "-----BEGIN CERTIFICATE-----\nTRUSTZONECERT\n-----END CERTIFICATE-----\n"
    trust_out = {"kbs": {"url": "https://kbs.trust-zone.example.com:8080", "certificatePem": cert}}
    mocks, outputs, secrets = run_stack(config, "aws-a", {TRUST: trust_out})
    assert secrets == {}
    [chart] = [r for r in mocks.resources if "INITDATA" in json.dumps(r.inputs)]
    encoded = next(v for k, v in walk(chart.inputs) if k == "INITDATA" and isinstance(v, str) and v)
    adaptor_initdata = gzip.decompress(base64.b64decode(encoded)).decode()
    assert "https://kbs.trust-zone.example.com:8080" in adaptor_initdata
    assert "TRUSTZONECERT" in adaptor_initdata
    assert outputs["kbsReaders"]["payments-api"]["platform"] == "snp"
    assert not any(r.metadata.get("namespace") == "trustee" for r in mocks.kubernetes())
    assert scan(mocks.resources, outputs, ["PRIVATE KEY", "package policy"]) == []


def walk(value: Any) -> Any:
    """Every (key, value) pair in nested dicts and lists."""
    if isinstance(value, dict):
        for k, v in value.items():
            yield k, v
            yield from walk(v)
    elif isinstance(value, list):
        for v in value:
            yield from walk(v)


def test_confidential_stack_settings_round_trip_through_the_automation_config() -> None:
    """The Automation API writes every top-level key (`coco:trustee: {}` too): a confidential
    stack's settings must read back the same, not as a Trustee configured there."""
    from automation.config import settings_to_config

    s = parse(strip_namespace(stack_config(EXAMPLES / "Pulumi.tdx-a.yaml")))
    dumped = settings_to_config(s)
    assert dumped["trustee"] == {}
    assert parse(dumped) == s


def test_up_trusted_zone_refuses_specs_that_are_not_one_zone() -> None:
    from automation import StackSpec
    from automation.zones import up_trusted_zone

    trust = StackSpec.from_file(EXAMPLES / "Pulumi.trust-zone.yaml", secrets={"apiDbPassword": "x"})
    conf = StackSpec.from_file(EXAMPLES / "Pulumi.tdx-a.yaml")
    with pytest.raises(ValueError, match="role is not trustee"):
        up_trusted_zone(conf, [conf])
    with pytest.raises(ValueError, match="trusteeStack"):
        up_trusted_zone(trust, [conf.model_copy(update={"settings": trust.settings})])
    with pytest.raises(ValueError, match="does not list 'tdx-b'"):
        up_trusted_zone(trust, [conf.model_copy(update={"name": "tdx-b"})])
