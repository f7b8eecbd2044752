"""Sealed secrets as files: settings, the Secret volume, and the agent policy that admits it.

The Kata agent of kata-containers 4.1.0 unseals files itself (`src/agent/src/rpc.rs`
`cdh_handler_sealed_secrets` -> `confidential_data_hub/mod.rs` `unseal_file`) for every mount
from the guest's shared dir; the program mounts each sealed file's directory from a Secret
holding the signed reference. The CDH's unsealing of that content is judged in
tests/conformance/test_guest_cdh.py; here, what the program renders and what the policy
admits (OPA).
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from agent_requests import copy_file, create_request, pod_copy_files, shared_source
from opa import opa_check_text, opa_eval
from test_guest_features import DIGEST, base_config, problems, render

from components import trustee as kbs
from components.settings import parse
from components.workload import effective_agent_policy
from components.workload_template import sealed_file_key
from policies.agent import render_agent_policy

FILE = "/run/secrets/db/password"


def sealed_files(*files: tuple[str, str]) -> dict[str, Any]:
    return {
        "name": "app",
        "image": DIGEST,
        "sealedFiles": [{"path": p, "sealedFrom": r} for p, r in files],
    }


def config(*files: tuple[str, str]) -> dict[str, Any]:
    return base_config(containers=[sealed_files(*files)])


# --------------------------------------------------------------------------- settings


def test_a_sealed_file_is_accepted() -> None:
    parse(config((FILE, "default/db/password")))


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("run/secrets/x", "absolute file path"),
        ("/password", "absolute file path"),
        ("/run/secrets/", "absolute file path"),
        ("/run/../etc/x", "'..' segment"),
        ("/run/secrets/..data", "not start with '..'"),
        ("/run/secrets/a b", "letters, digits"),
        ("/run/myhosts/x", "is_sealed_secret_path"),  # `ends_with("hosts")`: never unsealed
        ("/var/serviceaccount/x", "is_sealed_secret_path"),
    ],
)
def test_bad_sealed_file_paths_are_refused(path: str, message: str) -> None:
    text = problems(config((path, "default/db/password")))
    assert "coco:workloads[0].containers[0].sealedFiles[0].path" in text
    assert message in text


@pytest.mark.parametrize("path", ["/etc/x", "/var/run/secrets/x", "/dev/x/y", "/proc/x"])
def test_a_directory_over_or_inside_a_runtime_mount_is_refused(path: str) -> None:
    text = problems(config((path, "default/db/password")))
    assert "coco:workloads[0].containers[0].sealedFiles[0].path" in text
    assert "the runtime mounts itself" in text


def test_sealed_file_cross_checks_name_their_key() -> None:
    text = problems(config((FILE, "default/db/nope")))
    assert "coco:workloads[0].containers[0].sealedFiles[0].sealedFrom" in text
    assert "not a resource in coco:trustee.resources" in text
    text = problems(config((FILE, "default/db/password"), (FILE, "default/db/password")))
    assert "sealedFiles[1].path" in text and "listed twice" in text
    text = problems(config((FILE, "default/db/password"), (f"{FILE}/x", "default/db/password")))
    assert "sealedFiles[0].path" in text and "another sealed file's directory" in text
    shared = config((FILE, "default/db/password"))
    other = copy.deepcopy(shared["workloads"][0]) | {"name": "other"}
    other["containers"] = [{"name": "app", "image": DIGEST}]
    shared["workloads"].append(other)
    shared["trustee"]["resources"][0]["readers"] = ["app", "other"]
    text = problems(shared)
    assert "coco:trustee.resources[0].readers" in text and "other" in text


# --------------------------------------------------------------------------- rendering


@pytest.fixture(scope="module")
def wired() -> Any:
    return render(
        config((FILE, "default/db/password"), ("/run/secrets/db/user", "default/image-key/app"))
    )


def test_the_directory_is_a_read_only_secret_volume_of_sealed_references(wired: Any) -> None:
    (deployment,) = [r for r in wired.of_type("apps/v1:Deployment") if r.metadata["name"] == "app"]
    spec = deployment.inputs["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    (mount,) = container["volumeMounts"]
    assert mount["mountPath"] == "/run/secrets/db" and mount["readOnly"] is True
    (volume,) = spec["volumes"]
    assert volume["name"] == mount["name"]
    assert volume["secret"] == {
        "secretName": "app-sealed-secrets",
        "items": [
            {"key": sealed_file_key("app", FILE), "path": "password"},
            {"key": sealed_file_key("app", "/run/secrets/db/user"), "path": "user"},
        ],
    }
    (secret,) = [r for r in wired.of_type("core/v1:Secret") if r.metadata["namespace"] == "demo"]
    assert secret.metadata["name"] == "app-sealed-secrets"
    data = secret.inputs["stringData"]
    for key, path in (
        (sealed_file_key("app", FILE), "default/db/password"),
        (sealed_file_key("app", "/run/secrets/db/user"), "default/image-key/app"),
    ):
        assert data[key].startswith("sealed.")
        payload = json.loads(_b64d(data[key].split(".")[2]))
        assert payload["name"] == f"kbs:///{path}"
    for r in wired.kubernetes():
        if r.metadata.get("namespace") != "trustee":
            assert "value-of-dbPassword" not in json.dumps(r.inputs, default=str)


def _b64d(s: str) -> bytes:
    import base64

    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def test_the_signing_key_goes_to_a_workload_with_only_sealed_files(wired: Any) -> None:
    (rp,) = [
        r
        for r in wired.of_type("core/v1:ConfigMap")
        if r.metadata["name"] == kbs.RESOURCE_POLICY_MAP_NAME
    ]
    text = "\n".join(rp.inputs["data"].values())
    assert "# coco/sealed-secret/signing-key: sample, affirming; bound" in text


# --------------------------------------------------------------------------- agent policy


def sealed_pod_requests(
    directory: str = "/run/secrets/db",
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The CreateContainerRequest and CopyFiles of the sealed-file pod (genpolicy's secret
    volume shape: a read-only bind from the shared-dir entry named after the directory)."""
    req = create_request(DIGEST, [DIGEST], name="app")
    cid = req["container_id"]
    entry = directory.rsplit("/", 1)[1]
    req["OCI"]["Mounts"].append(
        {
            "destination": directory,
            "options": ["rbind", "rprivate", "ro"],
            "source": shared_source(cid, entry),
            "type_": "bind",
        }
    )
    stamp = "..2026_11_30_11_00_00.123456789"
    root = shared_source(cid, entry)
    copies = [
        *pod_copy_files(cid),
        copy_file(root, "Directory"),
        copy_file(f"{root}/{stamp}", "Directory"),
        copy_file(f"{root}/{stamp}/password"),
        copy_file(f"{root}/..data", "Symlink", stamp),
        copy_file(f"{root}/password", "Symlink", "..data/password"),
    ]
    return req, copies


def test_the_agent_policy_admits_the_sealed_volume_and_nothing_else() -> None:
    settings = parse(config((FILE, "default/db/password")))
    text = render_agent_policy(effective_agent_policy(settings.workloads[0]))
    opa_check_text(text)

    def allowed(name: str, request: dict[str, Any]) -> Any:
        return opa_eval(text, request, None, f"data.agent_policy.{name}")

    req, copies = sealed_pod_requests()
    assert allowed("CreateContainerRequest", req) is True
    for c in copies:
        assert allowed("CopyFileRequest", c) is True, c
    moved = copy.deepcopy(req)
    moved["OCI"]["Mounts"][-1]["destination"] = "/run/secrets/other"
    assert allowed("CreateContainerRequest", moved) is False
    writable = copy.deepcopy(req)
    writable["OCI"]["Mounts"][-1]["options"] = ["rbind", "rprivate", "rw"]
    assert allowed("CreateContainerRequest", writable) is False
    other_entry, _ = sealed_pod_requests("/run/secrets/other")
    assert allowed("CopyFileRequest", copy_file(other_entry["OCI"]["Mounts"][-1]["source"])) is (
        False
    )
