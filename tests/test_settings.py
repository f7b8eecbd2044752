"""Stack settings: every problem reported at once, each with its config key and a fix."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from builders import PINNED, production_tdx_stack, settings_error

from components.settings import json_schema, parse

ROOT = Path(__file__).resolve().parent.parent
BASE: dict[str, Any] = production_tdx_stack(
    serviceType="LoadBalancer", url="https://kbs.example.com:8080"
)


def raw(**changes: Any) -> dict[str, Any]:
    out = copy.deepcopy(BASE)
    out.update(changes)
    return out


def problems(data: dict[str, Any], **kw: Any) -> str:
    return str(settings_error(data, **kw))


def test_valid_production_stack_parses() -> None:
    s = parse(BASE, is_secret=lambda k: k == "coco:appKey")
    assert s.production
    assert s.runtime_class_of(s.workloads[0]) == "kata-qemu-tdx"


def test_unknown_key_is_named() -> None:
    data = raw(cluster={"kind": "baremetal", "tee": "tdx", "teee": "x"})
    assert "coco:cluster.teee: unknown key" in problems(data)


def test_bad_enum_names_key() -> None:
    msg = problems(raw(cluster={"kind": "baremetal", "tee": "tdz"}))
    assert "coco:cluster.tee" in msg


def test_every_problem_is_reported_together() -> None:
    data = raw(
        environment="prod",
        workloads=[{"name": "Bad_Name", "containers": [{"name": "app", "image": PINNED}]}],
    )
    msg = problems(data)
    assert "coco:environment" in msg
    assert "coco:workloads[0].name" in msg
    assert "2 problems" in msg


def test_runtime_class_hardware_mismatch_names_both() -> None:
    wl = [
        {
            "name": "app",
            "runtimeClass": "kata-qemu-snp",
            "containers": [{"name": "app", "image": PINNED}],
        }
    ]
    msg = problems(raw(workloads=wl))
    assert "coco:workloads[0].runtimeClass" in msg
    assert "kata-qemu-snp" in msg and "TEE tdx" in msg


def test_gpu_class_on_cluster_without_gpus() -> None:
    wl = [
        {
            "name": "app",
            "gpus": 1,
            "memory": "64Gi",
            "containers": [{"name": "app", "image": PINNED}],
        }
    ]
    msg = problems(raw(workloads=wl))
    assert "coco:workloads[0].runtimeClass" in msg


def test_s390x_class_on_x86() -> None:
    wl = [
        {
            "name": "app",
            "runtimeClass": "kata-qemu-se",
            "containers": [{"name": "app", "image": PINNED}],
        }
    ]
    assert "is for s390x" in problems(raw(workloads=wl))


def test_production_refuses_coco_dev_unless_waived() -> None:
    data = raw(cluster={"kind": "baremetal", "tee": "none"})
    data["trustee"]["referenceValues"] = {
        "launch_digest": ["abcde"],
        "svn": ["1"],
        "major_version": 1,
        "minimum_minor_version": 4,
    }
    assert "refuses kata-qemu-coco-dev" in problems(data)
    data["waivers"] = [
        {"check": "coco-dev-runtime", "reason": "staging hardware not delivered yet"}
    ]
    parse(data)


def test_waiver_needs_a_reason() -> None:
    data = raw(waivers=[{"check": "coco-dev-runtime", "reason": "ok"}])
    assert "coco:waivers[0].reason" in problems(data)


def test_production_refuses_allow_all_agent_policy() -> None:
    wl = copy.deepcopy(BASE["workloads"])
    wl[0]["agentPolicy"] = {"preset": "allow-all"}
    assert "coco:workloads[0].agentPolicy.preset" in problems(raw(workloads=wl))


def test_production_refuses_unbound_resource() -> None:
    t = copy.deepcopy(BASE["trustee"])
    t["resources"] = [{"path": "default/key/1", "valueFrom": "k", "allowUnbound": True}]
    assert "coco:trustee.resources[0].allowUnbound" in problems(raw(trustee=t))


def test_resource_without_readers_must_say_so() -> None:
    t = copy.deepcopy(BASE["trustee"])
    t["resources"] = [{"path": "default/key/1", "valueFrom": "k"}]
    assert "has no readers" in problems(raw(trustee=t))


def test_reference_values_are_typed_per_tee_and_named_in_errors() -> None:
    t = copy.deepcopy(BASE["trustee"])
    t["referenceValues"] = {"mr_td": ["aa" * 48], "snp_bootloader": ["3"], "mr_seam": ["bb"]}
    found = problems(raw(trustee=t))
    assert "coco:trustee.referenceValues.snp_bootloader" in found
    assert "coco:trustee.referenceValues.mr_seam" in found
    assert "coco:trustee.referenceValues.mr_td" not in found
    t["referenceValues"] = {
        **BASE["trustee"]["referenceValues"],
        "snp_smt_enabled": False,
        "snp_bootloader": [3],
    }
    ok = parse(raw(trustee=t), is_secret=lambda k: k == "coco:appKey")
    assert ok.trustee.reference_values["snp_smt_enabled"] is False
    t["referenceValues"] = {"mr_td": [{"nested": 1}]}
    assert "coco:trustee.referenceValues.mr_td" in problems(raw(trustee=t))


def test_production_needs_reference_values() -> None:
    t = copy.deepcopy(BASE["trustee"])
    t["referenceValues"] = {}
    assert "coco:trustee.referenceValues" in problems(raw(trustee=t))


def test_production_refuses_reference_values_that_cannot_reach_affirming() -> None:
    """Issue 21: every component the default policy sets must be able to affirm, or the
    resource (minTrust affirming by default) is never released; the error names what is missing."""
    t = copy.deepcopy(BASE["trustee"])
    del t["referenceValues"]["xfam"]
    del t["referenceValues"]["rtmr_2"]
    found = problems(raw(trustee=t))
    assert "coco:trustee.referenceValues: default/key/1 requires affirming tdx evidence" in found
    assert "executables needs rtmr_2" in found and "configuration needs xfam" in found
    assert "hardware" not in found.split("requires affirming tdx evidence")[1].split(". Add")[0]
    # minTrust warning asks for less; a custom policy may compare anything; outside
    # production it is a warning (components/stack.py), not an error.
    lowered = copy.deepcopy(t)
    lowered["resources"][0]["minTrust"] = "warning"
    parse(raw(trustee=lowered), is_secret=lambda k: k == "coco:appKey")
    custom = copy.deepcopy(t)
    custom["attestationPolicy"] = "package policy\n"
    parse(raw(trustee=custom), is_secret=lambda k: k == "coco:appKey")
    parse(raw(trustee=t, environment="staging"), is_secret=lambda k: k == "coco:appKey")


def test_azure_snp_reference_values_are_strings_as_the_verifier_emits_them() -> None:
    """az-snp-vtpm claims are format!-ed strings (trustee az_snp_vtpm/mod.rs): integers and
    booleans never match them, and the error says which form to use."""
    t = copy.deepcopy(BASE["trustee"])
    t["referenceValues"] = {
        **BASE["trustee"]["referenceValues"],
        "tcb_snp": [22],
        "smt_allowed": [True],
    }
    found = problems(raw(trustee=t))
    assert "coco:trustee.referenceValues.tcb_snp" in found and '["3"] (a decimal string' in found
    assert "coco:trustee.referenceValues.smt_allowed" in found and '["false"]' in found
    t["referenceValues"] = {
        **BASE["trustee"]["referenceValues"],
        "tcb_snp": ["22"],
        "smt_allowed": ["true"],
    }
    parse(raw(trustee=t), is_secret=lambda k: k == "coco:appKey")


def test_production_needs_pinned_images() -> None:
    wl = [{"name": "app", "containers": [{"name": "app", "image": "nginx:1.27"}]}]
    assert "coco:workloads[0].containers[0].image" in problems(raw(workloads=wl))


def test_malformed_digest() -> None:
    wl = [{"name": "app", "containers": [{"name": "app", "image": "nginx@sha256:abc"}]}]
    assert "malformed digest" in problems(raw(workloads=wl))


def test_reader_must_exist() -> None:
    t = copy.deepcopy(BASE["trustee"])
    t["resources"][0]["readers"] = ["ghost"]
    assert "'ghost' is not a workload" in problems(raw(trustee=t))


def test_secret_reference_must_be_a_secret() -> None:
    msg = problems(BASE, is_secret=lambda k: False)
    assert "coco:trustee.resources[0].valueFrom" in msg
    assert "pulumi config set --secret appKey" in msg


def test_render_with_created_secrets_is_refused() -> None:
    t = copy.deepcopy(BASE["trustee"])
    t["secretsDelivery"] = "create"
    data = raw(trustee=t, kubernetes={"renderDir": "out"})
    assert "coco:trustee.secretsDelivery" in problems(data)


PREINSTALLED_TDX = {"kind": "baremetal", "tee": "tdx", "install": {"method": "preinstalled"}}


def test_render_defaults_to_referenced_secrets() -> None:
    s = parse(raw(kubernetes={"renderDir": "out"}, cluster=PREINSTALLED_TDX))
    assert s.secrets_delivery() == "reference"
    assert parse(BASE).secrets_delivery() == "create"


def test_render_refuses_what_cannot_be_rendered() -> None:
    cluster = {"kind": "baremetal", "tee": "tdx", "gpu": {}, "labelNodes": ["node-1"]}
    msg = problems(raw(kubernetes={"renderDir": "out"}, cluster=cluster))
    # kata-deploy renders (helm.v3.Chart); the GPU Operator and node labels cannot.
    assert "coco:cluster.install.method" not in msg
    assert "coco:cluster.gpu.operator.install" in msg
    assert "coco:cluster.labelNodes: node labels patch live Node objects" in msg


def test_chart_without_nfd_needs_labelled_nodes() -> None:
    cluster = {"kind": "baremetal", "tee": "tdx", "useNfd": False}
    assert "no pod can be scheduled" in problems(raw(cluster=cluster))


def test_sev_reader_cannot_be_attested() -> None:
    cluster = {"kind": "baremetal", "tee": "sev", "install": {"method": "preinstalled"}}
    wl = copy.deepcopy(BASE["workloads"])
    assert "which Trustee cannot attest" in problems(raw(cluster=cluster, workloads=wl))


def test_se_needs_s390x() -> None:
    assert "needs arch 's390x'" in problems(raw(cluster={"kind": "baremetal", "tee": "se"}))


def test_gpu_needs_tdx_or_snp() -> None:
    msg = problems(raw(cluster={"kind": "baremetal", "tee": "none", "gpu": {}}))
    assert "coco:cluster" in msg and "tdx" in msg


def test_json_schema_is_exported_by_cli() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "components.settings", "--schema"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    schema = json.loads(out.stdout)
    assert schema == json.loads(json.dumps(json_schema()))
    assert "workloads" in schema["properties"]
    assert "runtimeClass" in json.dumps(schema)


def test_unknowable_container_argv_names_the_key_and_the_fixes() -> None:
    container = {
        "name": "app",
        "image": PINNED,
        "command": ["/app/server"],
        "args": ["--upstream=$(KUBERNETES_SERVICE_HOST)"],
    }
    wl = [{"name": "app", "containers": [container]}]
    msg = problems(raw(workloads=wl))
    assert "coco:workloads[0]" in msg
    assert "containers[0] (app): args[0]: $(KUBERNETES_SERVICE_HOST)" in msg
    assert "pinCommands: false" in msg
    wl[0]["agentPolicy"] = {"pinCommands": False}
    assert parse(raw(workloads=wl), is_secret=lambda k: k == "coco:appKey").workloads


def test_certificate_renewal_window() -> None:
    trustee = copy.deepcopy(BASE["trustee"])
    trustee["tls"] = {"validityHours": 48, "renewBeforeHours": 48}
    msg = problems(raw(trustee=trustee))
    assert "coco:trustee.tls" in msg and "renewBeforeHours (48)" in msg
    trustee["tls"] = {"validityHours": 48}
    tls = parse(raw(trustee=trustee), is_secret=lambda k: k == "coco:appKey").trustee.tls
    assert tls.renewal_hours == 12
    assert parse(BASE, is_secret=lambda k: k == "coco:appKey").trustee.tls.renewal_hours == 720


@pytest.mark.parametrize("path", ["default/.key/1", ".default/key/1", "default/key/.1"])
def test_resource_path_segment_cannot_start_with_a_dot(path: str) -> None:
    # trustee resource/backend.rs ResourceDesc regex: such a path is refused by the KBS.
    t = copy.deepcopy(BASE["trustee"])
    t["resources"][0]["path"] = path
    assert "coco:trustee.resources[0].path" in problems(raw(trustee=t))


def test_resource_path_segment_may_contain_a_dot() -> None:
    t = copy.deepcopy(BASE["trustee"])
    t["resources"][0]["path"] = "default/key.v2/1.0"
    s = parse(raw(trustee=t), is_secret=lambda k: k == "coco:appKey")
    assert s.trustee.resources[0].path == "default/key.v2/1.0"


@pytest.mark.parametrize("url", ["https://[", "https://kbs.example.com:99999", "https://kbs:0"])
def test_a_kbs_url_guests_could_not_dial_is_refused_with_its_key(url: str) -> None:
    """An open bracket or a port out of range passes a pattern but not the URL parser that
    the reachability checks use: refused as `coco:trustee.url`, never a traceback (found by
    tests/test_hostile_input.py)."""
    data = raw()
    data["trustee"] = {**data["trustee"], "url": url}
    text = problems(data)
    assert "coco:trustee.url" in text and "1-65535" in text
