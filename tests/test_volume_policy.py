"""configMap/secret/projected/downwardAPI and emptyDir volumes under the restrictive agent
policy (OPA): the pod starts, every tampered mount, storage or copy is denied, and the pod-spec
checks refuse what the policy cannot pin (subPath, executable modes, a runtime mount's path,
PersistentVolumeClaims, other volume kinds)."""

from __future__ import annotations

import copy

import pytest
from opa import opa_check_text, opa_eval
from volume_cases import (
    BLOCK,
    bad_copies,
    block_storage,
    good_copies,
    good_request,
    pod,
    policy_text,
    tampered,
)

from components import podspec
from policies.agent import AgentPolicySpec


def ask(policy: str, request: str, input_doc: object) -> object:
    return opa_eval(policy, input_doc, None, f"data.agent_policy.{request}")


@pytest.fixture(scope="module")
def text() -> str:
    rendered = policy_text()
    opa_check_text(rendered)
    return rendered


def test_pod_with_volumes_starts(text: str) -> None:
    req = good_request()
    assert ask(text, "CreateContainerRequest", req) is True
    for c in good_copies(req["container_id"]):
        assert ask(text, "CopyFileRequest", c) is True, c


@pytest.mark.parametrize("case", sorted(tampered()))
def test_tampered_mount_denied(text: str, case: str) -> None:
    assert ask(text, "CreateContainerRequest", tampered()[case]) is False


@pytest.mark.parametrize("case", sorted(bad_copies("0" * 64)))
def test_bad_copy_denied(text: str, case: str) -> None:
    req = good_request()
    assert ask(text, "CopyFileRequest", bad_copies(req["container_id"])[case]) is False


def test_policy_without_the_volumes_denies_their_mounts() -> None:
    """The old behaviour for a pod spec without volumes: the same mounts are not admitted."""
    plain = copy.deepcopy(pod())
    plain["spec"].pop("volumes")
    plain["spec"]["containers"][0].pop("volumeMounts")
    assert ask(policy_text(plain), "CreateContainerRequest", good_request()) is False


def _problems(obj: dict[str, object]) -> str:
    with pytest.raises(podspec.PodSpecError) as err:
        podspec.check(obj, AgentPolicySpec())
    return str(err.value)


def test_unpinnable_volume_shapes_refused() -> None:
    obj = pod()
    spec = obj["spec"]
    spec["containers"][0]["volumeMounts"][0]["subPath"] = "simple_value1"
    spec["volumes"][0]["configMap"]["items"][0]["mode"] = 0o755
    spec["volumes"][1]["secret"]["defaultMode"] = 0o500
    spec["containers"][0]["volumeMounts"][1]["mountPath"] = "/etc/hosts"
    spec["containers"][0]["volumeMounts"][2]["mountPath"] = "/opt/a b"
    spec["containers"][0]["volumeMounts"][3]["mountPropagation"] = "HostToContainer"
    message = _problems(obj)
    assert "volumeMounts.0.subPath" in message
    assert "configMap.items.0.mode: mode 0o755" in message
    assert "secret.defaultMode: mode 0o500" in message
    assert "volumeMounts.1.mountPath: /etc/hosts" in message
    assert "volumeMounts.2.mountPath: '/opt/a b'" in message
    assert "volumeMounts.3.mountPropagation" in message


def test_persistent_volume_claim_refused_with_the_reason() -> None:
    obj = pod()
    obj["spec"]["volumes"].append({"name": "data", "persistentVolumeClaim": {"claimName": "d"}})
    index = len(obj["spec"]["volumes"]) - 1
    message = _problems(obj)
    assert f"volumes.{index}.persistentVolumeClaim: a PersistentVolume's contents" in message
    assert "writes never reach it" in message


def test_stateful_set_volume_claim_template_refused() -> None:
    """A StatefulSet's claim templates become PVC volumes the pod spec does not list: the
    mount naming one is refused for the PVC reason (the old code let it through to the agent,
    which would refuse the container inside the TEE)."""
    template = pod()
    template["spec"]["containers"][0]["volumeMounts"].append({"name": "data", "mountPath": "/d"})
    obj = {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": "db"},
        "spec": {
            "serviceName": "db",
            "selector": {"matchLabels": {"app": "db"}},
            "template": {"metadata": {"labels": {"app": "db"}}, "spec": template["spec"]},
            "volumeClaimTemplates": [
                {
                    "metadata": {"name": "data"},
                    "spec": {
                        "accessModes": ["ReadWriteOnce"],
                        "resources": {"requests": {"storage": "1Gi"}},
                    },
                }
            ],
        },
    }
    index = len(template["spec"]["containers"][0]["volumeMounts"]) - 1
    message = _problems(obj)
    assert f"containers.0.volumeMounts.{index}.name: 'data' is no volume of the pod" in message
    assert "a PersistentVolume's contents" in message


@pytest.mark.parametrize(
    ("volume", "field"),
    [
        ({"nfs": {"server": "nfs.example", "path": "/export"}}, "nfs"),
        ({"emptyDir": {"medium": "HugePages"}}, "emptyDir.medium"),
    ],
)
def test_other_volume_kinds_still_refused(volume: dict[str, object], field: str) -> None:
    obj = pod()
    obj["spec"]["volumes"].append({"name": "other", **volume})
    index = len(obj["spec"]["volumes"]) - 1
    assert f"volumes.{index}.{field}: the " in _problems(obj)


def test_downward_api_executable_mode_refused() -> None:
    obj = pod()
    podinfo = next(v for v in obj["spec"]["volumes"] if v["name"] == "podinfo")
    podinfo["downwardAPI"]["items"][0]["mode"] = 0o755
    assert "downwardAPI.items.0.mode: mode 0o755 has execute bits" in _problems(obj)


def test_disk_empty_dir_without_fs_group_pins_no_group() -> None:
    """Without a pod fsGroup the block storage must carry none (the runtime sends none for a
    root-owned emptyDir directory); with one, exactly that group."""
    obj = pod()
    obj["spec"].pop("securityContext")
    text = policy_text(obj)
    req = good_request()
    req["storages"] = [
        block_storage(s["source"], None) if s["driver"] == "blk" else s for s in req["storages"]
    ]
    assert ask(text, "CreateContainerRequest", req) is True
    source = next(iter(BLOCK.values()))[0]
    next(s for s in req["storages"] if s["source"] == source)["fs_group"] = {"group_id": 2000}
    assert ask(text, "CreateContainerRequest", req) is False
