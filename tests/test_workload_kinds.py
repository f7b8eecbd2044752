"""Full pod templates in `coco:workloads` (components/workload_template.py): every kind, the
short form as sugar, the keys of refusals; each object checked against the real Kubernetes
OpenAPI schemas kubernetes-validate ships (components/podspec.py `SCHEMA_VERSIONS`)."""

from __future__ import annotations

import copy
from typing import Any

import pulumi
import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from k8s_schema import validate_manifest
from mocks import DecodingMocks, fake_pem, resolve
from pydantic import ValidationError
from test_hostile_input import DEV_CONFIG, MAX_MESSAGE, PROPERTY, VALUES, _paths, _replace

from components import labels, podspec, workload_template
from components.confidential_pod import confidential_pod
from components.settings import SettingsError, WorkloadSettings, parse
from components.workload import ConfidentialWorkload
from policies.initdata import INITDATA_ANNOTATION, KbsEndpoint

APP = "registry.example.com/app@sha256:" + "a" * 64
INIT = "registry.example.com/migrate@sha256:" + "b" * 64
KBS = KbsEndpoint(url="https://kbs.example.com:8080", cert_pem=fake_pem("CERTIFICATE", "kbs"))

FULL_TEMPLATE: dict[str, Any] = {
    "metadata": {"labels": {"app": "web"}},
    "spec": {
        "serviceAccountName": "web",
        "securityContext": {"runAsNonRoot": True, "fsGroup": 2000},
        "initContainers": [{"name": "migrate", "image": INIT, "command": ["/migrate"]}],
        "containers": [
            {
                "name": "app",
                "image": APP,
                "command": ["/app"],
                "securityContext": {
                    "allowPrivilegeEscalation": False,
                    "capabilities": {"drop": ["ALL"]},
                    "runAsUser": 1000,
                },
                "readinessProbe": {"httpGet": {"path": "/ready", "port": 8443}},
                "livenessProbe": {"tcpSocket": {"port": 8443}},
                "volumeMounts": [
                    {"name": "cache", "mountPath": "/cache"},
                    {"name": "config", "mountPath": "/etc/app", "readOnly": True},
                ],
                "resources": {"requests": {"memory": "256Mi"}, "limits": {"memory": "512Mi"}},
            }
        ],
        "volumes": [
            {"name": "cache", "emptyDir": {}},
            {"name": "config", "configMap": {"name": "web-config"}},
        ],
    },
}
KIND_SPEC: dict[str, dict[str, Any]] = {
    "Pod": {},
    "Deployment": {"strategy": {"type": "RollingUpdate"}},
    "StatefulSet": {"serviceName": "web", "podManagementPolicy": "Parallel"},
    "Job": {"backoffLimit": 2},
    "CronJob": {"schedule": "0 3 * * *", "concurrencyPolicy": "Forbid"},
}


def entry(kind: str, **extra: Any) -> WorkloadSettings:
    data: dict[str, Any] = {
        "name": "web",
        "namespace": "shop",
        "kind": kind,
        "template": copy.deepcopy(FULL_TEMPLATE),
        **({"spec": KIND_SPEC[kind]} if KIND_SPEC[kind] else {}),
        **extra,
    }
    return WorkloadSettings.model_validate(data)


@pytest.mark.parametrize("kind", list(KIND_SPEC))
def test_every_kind_is_valid_kubernetes_before_and_after_the_recipe(kind: str) -> None:
    settings = entry(kind)
    obj = workload_template.workload_object(settings, "production")
    assert obj["kind"] == kind
    assert podspec.schema_problems(obj) == []
    assert workload_template.problems(settings, "kata-qemu-tdx", require_digests=True) == []
    loc = podspec.locate(obj)
    pod = confidential_pod(loc, workload_template.options(settings, "kata-qemu-tdx"), KBS)
    confidential = workload_template.workload_object(settings, "production", pod.template)
    assert podspec.schema_problems(confidential) == []
    spec = podspec.locate(confidential).pod_spec
    assert spec["runtimeClassName"] == "kata-qemu-tdx"
    assert spec["serviceAccountName"] == "web"
    if kind in ("Job", "CronJob"):
        assert spec["restartPolicy"] == "Never"
    # The init container is pinned as the app container is: its own image and argv.
    assert sorted(pod.policy.allowed_images) == sorted([APP, INIT])
    assert pod.policy.container_commands[INIT] == [["/migrate"]]
    assert pod.policy.containers["app"].uid == 1000
    assert pod.policy.containers["app"].block_volumes == 1


@pytest.mark.parametrize("kind", list(KIND_SPEC))
def test_every_kind_registers_under_mocks_with_the_entry_name(kind: str) -> None:
    """The resource keeps the entry's name whatever its kind (the URN of an existing Pod or
    Deployment is unchanged); the pods carry the runtime class and the init-data."""
    settings = entry(kind)
    mocks = DecodingMocks()
    pulumi.runtime.set_mocks(mocks, preview=False)

    def build() -> dict[str, Any]:
        wl = ConfidentialWorkload("web", settings, "kata-qemu-tdx", "dev", KBS.url, KBS.cert_pem)
        return {"digest": wl.initdata_digest}

    values, _ = resolve(build)
    (obj,) = [r for r in mocks.kubernetes() if r.name == "web"]
    assert obj.kind == kind
    for recorded in mocks.kubernetes():  # what the provider would send, against the real API
        validate_manifest(recorded.inputs)
    loc = podspec.locate({"apiVersion": "x", "kind": kind, **obj.inputs})
    assert loc.pod_spec["runtimeClassName"] == "kata-qemu-tdx"
    assert loc.metadata["annotations"][labels.INITDATA_DIGEST_ANNOTATION] == values["digest"]
    assert INITDATA_ANNOTATION in loc.metadata["annotations"]
    assert loc.metadata["labels"][labels.WORKLOAD] == "web"


def test_the_short_form_is_sugar_for_the_full_template() -> None:
    short = WorkloadSettings.model_validate(
        {
            "name": "web",
            "containers": [
                {
                    "name": "app",
                    "image": APP,
                    "command": ["/app"],
                    "env": {"A": "1"},
                    "ports": [8443],
                    "runAsUser": 1000,
                    "resources": {"requests": {"cpu": "100m"}},
                }
            ],
            "memory": "1Gi",
            "annotations": {"team": "a"},
        }
    )
    full = WorkloadSettings.model_validate(
        {
            "name": "web",
            "template": {
                "metadata": {"annotations": {"team": "a"}},
                "spec": {
                    "containers": [
                        {
                            "name": "app",
                            "image": APP,
                            "command": ["/app"],
                            "env": [{"name": "A", "value": "1"}],
                            "ports": [{"containerPort": 8443}],
                            "securityContext": {"runAsUser": 1000},
                            "resources": {
                                "limits": {"memory": "1Gi"},
                                "requests": {"cpu": "100m"},
                            },
                        }
                    ]
                },
            },
        }
    )
    assert workload_template.pod_template(short, "dev") == workload_template.pod_template(
        full, "dev"
    )
    pods = [
        confidential_pod(
            workload_template.located(s, "dev"), workload_template.options(s, "kata-qemu-tdx"), KBS
        )
        for s in (short, full)
    ]
    assert pods[0] == pods[1]


def test_the_template_merges_over_the_short_form_by_name() -> None:
    """Probes on a short-form container: the template's container of the same name merges
    into it; sealed volumes stay beside the template's own."""
    settings = WorkloadSettings.model_validate(
        {
            "name": "web",
            "containers": [{"name": "app", "image": APP, "env": {"A": "1"}}],
            "template": {
                "spec": {
                    "containers": [
                        {
                            "name": "app",
                            "readinessProbe": {"httpGet": {"path": "/", "port": 80}},
                            "env": [{"name": "B", "value": "2"}],
                        },
                        {"name": "sidecar", "image": INIT},
                    ]
                }
            },
        }
    )
    [app, sidecar] = workload_template.pod_template(settings, "dev")["spec"]["containers"]
    assert app["image"] == APP and "readinessProbe" in app
    assert app["env"] == [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]
    assert sidecar["name"] == "sidecar"
    assert sorted(settings.images) == sorted([APP, INIT])


def test_refusals_are_keyed_by_what_the_user_wrote() -> None:
    tagged = WorkloadSettings.model_validate(
        {"name": "web", "containers": [{"name": "app", "image": "nginx:1.27"}]}
    )
    assert [k for k, _ in workload_template.problems(tagged, "kata-qemu-tdx", True)] == [
        "containers[0].image"
    ]
    template = copy.deepcopy(FULL_TEMPLATE)
    template["spec"]["volumes"].append({"name": "node", "hostPath": {"path": "/"}})
    template["spec"]["containers"][0]["portz"] = [1]
    bad = WorkloadSettings.model_validate({"name": "web", "template": template})
    keys = [k for k, _ in workload_template.problems(bad, "kata-qemu-tdx", False)]
    assert keys and all(k.startswith("template.spec.containers[0]") for k in keys), keys
    del template["spec"]["containers"][0]["portz"]
    host = WorkloadSettings.model_validate({"name": "web", "template": template})
    found = workload_template.problems(host, "kata-qemu-tdx", False)
    assert [k for k, _ in found] == ["template.spec.volumes[2].hostPath"]
    cron = WorkloadSettings.model_validate(
        {"name": "web", "kind": "CronJob", "template": FULL_TEMPLATE}
    )
    (key, why) = workload_template.problems(cron, "kata-qemu-tdx", False)[0]
    assert key.startswith("spec") and "schedule" in why


@pytest.mark.parametrize(
    ("where", "value", "refused"),
    [
        ("containers", 2**31, True),
        ("containers", 9.223372036854776e18, True),
        ("containers", 1000.5, True),
        ("containers", -1, True),
        ("containers", True, True),
        ("pod", 2**31 - 1, False),
        ("pod", 2**31, True),
        ("containers", 0, False),
    ],
)
def test_user_and_group_ids_are_kubernetes_ids(where: str, value: Any, refused: bool) -> None:
    """The schema's "integer" takes 9.2e18; Kubernetes' IsValidUserID takes 0..MaxInt32."""
    template = copy.deepcopy(FULL_TEMPLATE)
    spec = template["spec"]
    security = spec["containers"][0] if where == "containers" else spec
    security.setdefault("securityContext", {})["runAsGroup"] = value
    entry = WorkloadSettings.model_validate({"name": "web", "template": template})
    found = workload_template.problems(entry, "kata-qemu-tdx", False)
    keys = [k for k, _ in found]
    prefix = "template.spec.containers[0]" if where == "containers" else "template.spec"
    if refused:
        assert set(keys) == {f"{prefix}.securityContext.runAsGroup"}, found
        # Fractions and booleans fail the schema first; the rest only Kubernetes' range.
        assert any("0 to 2147483647" in why or "is not of type" in why for _, why in found)
    else:
        assert found == []


@pytest.mark.parametrize(
    ("field", "value", "key"),
    [
        ("fsGroup", 9.223372036854776e18, "fsGroup"),  # found by the fuzz test below
        ("fsGroup", -1, "fsGroup"),
        ("supplementalGroups", [1000, 2**31], "supplementalGroups[1]"),
    ],
)
def test_pod_group_ids_are_kubernetes_ids(field: str, value: Any, key: str) -> None:
    """The pod's fsGroup and supplementalGroups are group IDs too (IsValidGroupID)."""
    template = copy.deepcopy(FULL_TEMPLATE)
    template["spec"].setdefault("securityContext", {})[field] = value
    entry = WorkloadSettings.model_validate({"name": "web", "template": template})
    found = workload_template.problems(entry, "kata-qemu-tdx", False)
    assert [k for k, _ in found] == [f"template.spec.securityContext.{key}"], found
    assert "0 to 2147483647" in found[0][1]
    template["spec"]["securityContext"][field] = [1000] if field == "supplementalGroups" else 1000
    fine = WorkloadSettings.model_validate({"name": "web", "template": template})
    assert workload_template.problems(fine, "kata-qemu-tdx", False) == []


@pytest.mark.parametrize(
    ("data", "match"),
    [
        ({"kind": "Job", "replicas": 3}, "has no replicas"),
        ({"kind": "Deployment", "spec": {"template": {}}}, r"spec\.template: give the pod"),
        ({"kind": "Deployment", "spec": {"selector": {}}}, r"spec\.selector: coco selects"),
        ({"kind": "Pod", "spec": {"backoffLimit": 1}}, "a Pod has no `spec`"),
        (
            {"kind": "Job", "template": {"spec": {"restartPolicy": "Always"}}},
            "takes Never .* or OnFailure",
        ),
        ({"containers": []}, "give at least one container"),
    ],
)
def test_entry_shapes_the_kind_cannot_take(data: dict[str, Any], match: str) -> None:
    base: dict[str, Any] = {"name": "web", "containers": [{"name": "app", "image": APP}]}
    with pytest.raises(ValidationError, match=match):
        WorkloadSettings.model_validate({**base, **data})


FUZZ_CONFIG: dict[str, Any] = {
    **DEV_CONFIG,
    "workloads": [
        {
            **DEV_CONFIG["workloads"][0],
            "kind": "StatefulSet",
            "spec": {"serviceName": "web"},
            "template": copy.deepcopy(FULL_TEMPLATE),
        }
    ],
}
FUZZ_PATHS = [
    ("workloads", 0, *p)
    for key in ("template", "spec")
    for p in _paths(FUZZ_CONFIG["workloads"][0][key], (key,))
]


def test_the_fuzzed_entry_is_valid_as_written() -> None:
    assert parse(FUZZ_CONFIG, stack="dev").workloads[0].kind == "StatefulSet"


@PROPERTY
@given(path=st.sampled_from(FUZZ_PATHS), value=VALUES)
@example(path=("workloads", 0, "template", "spec", "initContainers", 0, "command"), value=[""])
@example(  # passes the schema's "integer", above Kubernetes' IsValidUserID (found by this test)
    path=("workloads", 0, "template", "spec", "containers", 0, "securityContext", "runAsUser"),
    value=9.223372036854776e18,
)
@example(path=("workloads", 0, "template", "spec", "securityContext", "fsGroup"), value=2.0**63)
def test_any_value_anywhere_in_a_template(path: tuple[Any, ...], value: Any) -> None:
    """A random value anywhere in a full pod template or object spec: settings, or a bounded
    SettingsError naming coco: keys, never another exception."""
    try:
        parse(_replace(FUZZ_CONFIG, path, value), stack="dev")
    except SettingsError as err:
        assert len(str(err)) < MAX_MESSAGE * 5
        assert all(p.key.startswith("coco:workloads[0]") for p in err.problems), err
