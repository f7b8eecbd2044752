"""Agent policy: every emitted Rego passes `opa check`; allow/deny cases on the real engine."""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from agent_requests import (
    CID,
    copy_file,
    create_request,
    create_sandbox_request,
    exec_request,
    pod_copy_files,
    sandbox_request,
    shared_source,
)
from opa import opa_check, opa_check_text, opa_eval, opa_test
from pydantic import ValidationError

from policies.agent import (
    AGENT_REQUESTS,
    AgentPolicySpec,
    docker_hub_aliases,
    kubernetes_argv,
    render_agent_policy,
)
from policies.agent_container import ContainerPin

REGO_DIR = Path(__file__).resolve().parent.parent / "policies" / "rego"

APP = "ghcr.io/acme/app@sha256:" + "a" * 64
EVIL = "ghcr.io/evil/miner@sha256:" + "b" * 64
HUB = "nginx@sha256:" + "c" * 64

# The request messages of the agent's ttRPC service (kata-containers 4.1.0
# src/libs/protocols/protos/agent.proto, `rpc` lines); the judge tier checks each parses.
AGENT_PROTO_REQUESTS = {
    "AddARPNeighborsRequest", "AddSwapPathRequest", "AddSwapRequest", "CloseStdinRequest",
    "CopyFileRequest", "CreateContainerRequest", "CreateSandboxRequest", "DestroySandboxRequest",
    "ExecProcessRequest", "GetDiagnosticDataRequest", "GetIPTablesRequest", "GetMetricsRequest",
    "GetOOMEventRequest", "GuestDetailsRequest", "ListInterfacesRequest", "ListRoutesRequest",
    "MemAgentCompactConfig", "MemAgentMemcgConfig", "MemHotplugByProbeRequest",
    "OnlineCPUMemRequest", "PauseContainerRequest", "ReadStreamRequest", "RemoveContainerRequest",
    "RemoveStaleVirtiofsShareMountsRequest", "ReseedRandomDevRequest", "ResizeVolumeRequest",
    "ResumeContainerRequest", "SetGuestDateTimeRequest", "SetIPTablesRequest", "SetPolicyRequest",
    "SignalProcessRequest", "StartContainerRequest", "StatsContainerRequest",
    "TtyWinResizeRequest", "UpdateContainerRequest", "UpdateEphemeralMountsRequest",
    "UpdateInterfaceRequest", "UpdateRoutesRequest", "VolumeStatsRequest", "WaitProcessRequest",
    "WriteStreamRequest",
}  # fmt: skip
# The upstream allow-all list (kata-containers src/kata-opa/allow-all.rego); it still names
# requests agent.proto no longer has (PullImageRequest, ReadContainerTerminationMessage,
# StartTracingRequest, StopTracingRequest), which the policy leaves out.
UPSTREAM_ALLOW_ALL = {
    "AddARPNeighborsRequest", "AddSwapRequest", "CloseStdinRequest", "CopyFileRequest",
    "CreateContainerRequest", "CreateSandboxRequest", "DestroySandboxRequest",
    "ExecProcessRequest", "GetMetricsRequest", "GetOOMEventRequest", "GuestDetailsRequest",
    "ListInterfacesRequest", "ListRoutesRequest", "MemHotplugByProbeRequest",
    "OnlineCPUMemRequest", "PauseContainerRequest", "PullImageRequest",
    "ReadContainerTerminationMessage", "ReadStreamRequest", "RemoveContainerRequest",
    "RemoveStaleVirtiofsShareMountsRequest", "ReseedRandomDevRequest", "ResumeContainerRequest",
    "SetGuestDateTimeRequest", "SetPolicyRequest", "SignalProcessRequest",
    "StartContainerRequest", "StartTracingRequest", "StatsContainerRequest",
    "StopTracingRequest", "TtyWinResizeRequest", "UpdateContainerRequest",
    "UpdateEphemeralMountsRequest", "UpdateInterfaceRequest", "UpdateRoutesRequest",
    "WaitProcessRequest", "WriteStreamRequest",
}  # fmt: skip
# Requests genpolicy's rules.rego knows beyond allow-all (docs/agent-policy.md, "Which requests
# it covers").
GENPOLICY_EXTRA = {
    "AddSwapPathRequest", "GetIPTablesRequest", "SetIPTablesRequest", "ResizeVolumeRequest",
    "VolumeStatsRequest", "GetDiagnosticDataRequest", "MemAgentCompactConfig",
    "MemAgentMemcgConfig",
}  # fmt: skip


def ask(policy: str, request: str, input_doc: Any) -> Any:
    return opa_eval(policy, input_doc, None, f"data.agent_policy.{request}")


@pytest.fixture(scope="module")
def restrictive() -> str:
    text = render_agent_policy(AgentPolicySpec(allowed_images=[APP, HUB]))
    opa_check_text(text)
    return text


SPECS = {
    "default": AgentPolicySpec(),
    "restrictive-images": AgentPolicySpec(allowed_images=[APP]),
    "exec-logs": AgentPolicySpec(
        allowed_images=[APP], allow_exec=True, exec_commands=[["/bin/ls", "-l"]], allow_logs=True
    ),
    "exec-any": AgentPolicySpec(allowed_images=[APP], allow_exec=True, allow_copy_file=False),
    "allow-all": AgentPolicySpec(preset="allow-all"),
    "allow-all-except-exec": AgentPolicySpec(
        preset="allow-all", overrides={"ExecProcessRequest": False}
    ),
    "overrides": AgentPolicySpec(
        allowed_images=[APP], overrides={"CreateContainerRequest": True, "GetMetricsRequest": True}
    ),
    "pinned-argv": AgentPolicySpec(
        allowed_images=[APP, HUB],
        container_commands={APP: [["/app/server", "--port", "8080"], ["/app/migrate"]]},
    ),
}


@pytest.mark.parametrize("name", sorted(SPECS))
def test_every_policy_passes_opa_check(name: str) -> None:
    opa_check_text(render_agent_policy(SPECS[name]))


def test_request_table_covers_upstream_lists() -> None:
    assert set(AGENT_REQUESTS) == AGENT_PROTO_REQUESTS
    gone = {"PullImageRequest", "ReadContainerTerminationMessage"}
    gone |= {"StartTracingRequest", "StopTracingRequest"}
    assert set(AGENT_REQUESTS) == (UPSTREAM_ALLOW_ALL - gone) | GENPOLICY_EXTRA
    for name, info in AGENT_REQUESTS.items():
        assert info.reason, name


@pytest.mark.parametrize("name", sorted(SPECS))
def test_every_request_is_defined_for_any_input(name: str) -> None:
    """An undefined rule makes the agent error out; every request must evaluate to a bool."""
    text = render_agent_policy(SPECS[name])
    result = opa_eval(text, {}, None, "data.agent_policy")
    for request in AGENT_REQUESTS:
        assert isinstance(result[request], bool), (name, request)
    assert result["AllowRequestsFailingPolicy"] is False


def test_restrictive_defaults_match_table() -> None:
    """Constant requests answer their table default; ruled ones are denied without a match."""
    text = render_agent_policy(AgentPolicySpec())
    unmatched = {"storages": [], "OCI": {"Annotations": {}}, "path": "/etc/passwd"}
    result = opa_eval(text, unmatched | {"guest_hook_path": "/hooks"}, None, "data.agent_policy")
    for request, info in AGENT_REQUESTS.items():
        assert result[request] is info.allow, request


def test_listed_image_allowed(restrictive: str) -> None:
    assert ask(restrictive, "CreateContainerRequest", create_request(APP, [APP])) is True


def test_docker_hub_spelling_allowed(restrictive: str) -> None:
    full = "docker.io/library/" + HUB
    assert ask(restrictive, "CreateContainerRequest", create_request(full, [full])) is True
    assert ask(restrictive, "CreateContainerRequest", create_request(HUB, [HUB])) is True
    # The runtime's guest-pull source is the image-name annotation itself (kata runtime
    # handleImageGuestPullBlockVolume): two spellings in one request are not a real request.
    assert ask(restrictive, "CreateContainerRequest", create_request(HUB, [full])) is False


def test_tagged_digest_presented_without_tag() -> None:
    """containerd drops the tag of `name:tag@sha256:...` (genpolicy capture env_vars)."""
    tagged = "ghcr.io/acme/app:1.2" + APP[len("ghcr.io/acme/app") :]
    text = render_agent_policy(AgentPolicySpec(allowed_images=[tagged]))
    assert ask(text, "CreateContainerRequest", create_request(APP, [APP])) is True
    assert ask(text, "CreateContainerRequest", create_request(tagged, [tagged])) is True


def test_pause_sandbox_allowed(restrictive: str) -> None:
    assert ask(restrictive, "CreateContainerRequest", sandbox_request()) is True
    for copied in pod_copy_files(CID):
        assert ask(restrictive, "CopyFileRequest", copied) is True, copied


def _tamper(change: Any) -> dict[str, Any]:
    req = create_request(APP, [APP], env=["API_PORT=8443"], hardened=False)
    change(req["OCI"])
    return req


PINNED = AgentPolicySpec(allowed_images=[APP]).with_containers(
    {"app": ContainerPin(env=("API_PORT=8443",))}, devices=False
)
EVIL_SRC = shared_source(CID, "evil")


@pytest.mark.parametrize(
    ("change", "allowed"),
    [
        pytest.param(lambda o: None, True, id="as-rendered"),
        pytest.param(
            lambda o: o["Mounts"].append(
                {
                    "destination": "/app/server",
                    "source": EVIL_SRC,
                    "type_": "bind",
                    "options": ["rbind"],
                }
            ),
            False,
            id="bind-over-binary",
        ),
        pytest.param(
            lambda o: o["Process"]["Env"].append("LD_PRELOAD=/x.so"), False, id="ld-preload"
        ),
        pytest.param(
            lambda o: o["Process"]["Env"].__setitem__(-1, "API_PORT=1"), False, id="env-changed"
        ),
        pytest.param(lambda o: o["Process"]["Env"].pop(), False, id="env-dropped"),
        pytest.param(
            lambda o: o["Process"]["Env"].append("REDIS_SERVICE_HOST=10.0.0.1"), True, id="svc-link"
        ),
        pytest.param(
            lambda o: o["Mounts"][-1].update(options=["rbind", "rprivate", "rw"]),
            False,
            id="sa-token-writable",
        ),
        pytest.param(
            lambda o: o["Process"]["Capabilities"]["Bounding"].append("CAP_SYS_ADMIN"),
            False,
            id="added-cap",
        ),
        pytest.param(lambda o: o["Linux"].update(MaskedPaths=[]), False, id="unmasked"),
        pytest.param(lambda o: o["Linux"]["Sysctl"].update({"kernel.x": "1"}), False, id="sysctl"),
    ],
)
def test_container_is_closed(change: Any, allowed: bool) -> None:
    text = render_agent_policy(PINNED)
    assert ask(text, "CreateContainerRequest", _tamper(change)) is allowed


HARDENED_PIN = ContainerPin(
    env=("API_PORT=8443",), no_new_privileges=True, capabilities=(), service_account_token=False
)


@pytest.mark.parametrize(
    ("pin", "hardened", "change", "allowed"),
    [
        pytest.param(HARDENED_PIN, True, lambda o: None, True, id="hardened-as-rendered"),
        pytest.param(
            HARDENED_PIN,
            True,
            lambda o: o["Process"].update(NoNewPrivileges=False),
            False,
            id="escalation-back",
        ),
        pytest.param(
            HARDENED_PIN,
            True,
            lambda o: o["Process"]["Capabilities"].update(Bounding=["CAP_CHOWN"]),
            False,
            id="a-default-cap-back",
        ),
        pytest.param(HARDENED_PIN, False, lambda o: None, False, id="bare-request"),
        pytest.param(
            ContainerPin(env=("API_PORT=8443",)), True, lambda o: None, True, id="unpinned-hardened"
        ),
        pytest.param(
            ContainerPin(env=("API_PORT=8443",), capabilities=("CAP_CHOWN",)),
            False,
            lambda o: o["Process"]["Capabilities"].update(
                Bounding=["CAP_CHOWN"], Effective=["CAP_CHOWN"], Permitted=["CAP_CHOWN"]
            ),
            True,
            id="kept-cap",
        ),
    ],
)
def test_hardening_pins_privileges_and_token(
    pin: ContainerPin, hardened: bool, change: Any, allowed: bool
) -> None:
    """What components/hardening.py sets is pinned: NoNewPrivileges, the capabilities that
    `drop` leaves, no service-account token mount (the bare request has all three back)."""
    text = render_agent_policy(
        AgentPolicySpec(allowed_images=[APP]).with_containers({"app": pin}, devices=False)
    )
    req = create_request(APP, [APP], env=["API_PORT=8443"], hardened=hardened)
    change(req["OCI"])
    assert ask(text, "CreateContainerRequest", req) is allowed


def test_hardened_pod_refuses_the_token_mount() -> None:
    text = render_agent_policy(
        AgentPolicySpec(allowed_images=[APP]).with_containers({"app": HARDENED_PIN}, devices=False)
    )
    bare = create_request(APP, [APP], env=["API_PORT=8443"], hardened=False)
    req = create_request(APP, [APP], env=["API_PORT=8443"])
    token = next(m for m in bare["OCI"]["Mounts"] if m["destination"].endswith("serviceaccount"))
    req["OCI"]["Mounts"].append(token)
    assert ask(text, "CreateContainerRequest", req) is False


def test_user_cwd_and_read_only_root_pinned_where_set() -> None:
    pin = ContainerPin(working_dir="/app", uid=10001, gid=10001, read_only_root=True)
    text = render_agent_policy(
        AgentPolicySpec(allowed_images=[APP]).with_containers({"app": pin}, devices=False)
    )
    good = dict(cwd="/app", uid=10001, read_only_root=True)
    assert ask(text, "CreateContainerRequest", create_request(APP, [APP], **good)) is True
    for bad in ({"uid": 0}, {"cwd": "/tmp"}, {"read_only_root": False}):
        req = create_request(APP, [APP], **(good | bad))
        assert ask(text, "CreateContainerRequest", req) is False, bad


def test_image_volumes_admitted_only_when_listed() -> None:
    """containerd mounts an image VOLUME from the shared dir (genpolicy image_volume)."""
    req = create_request(APP, [APP])
    source = shared_source(req["container_id"], "data")
    req["OCI"]["Mounts"].append(
        {"destination": "/data", "source": source, "type_": "bind", "options": ["rbind", "rw"]}
    )
    closed = render_agent_policy(AgentPolicySpec(allowed_images=[APP]))
    assert ask(closed, "CreateContainerRequest", req) is False
    listed = render_agent_policy(AgentPolicySpec(allowed_images=[APP], image_volumes=["/data"]))
    assert ask(listed, "CreateContainerRequest", req) is True
    assert ask(listed, "CopyFileRequest", copy_file(source + "/x")) is True
    assert ask(closed, "CopyFileRequest", copy_file(source + "/x")) is False
    with pytest.raises(ValidationError, match="absolute"):
        AgentPolicySpec(image_volumes=["/data/../etc"])
    with pytest.raises(ValidationError, match="already"):
        AgentPolicySpec(image_volumes=["/etc/hosts"])


def test_sandbox_pidns_denied(restrictive: str) -> None:
    req = create_request(APP, [APP])
    req["sandbox_pidns"] = True
    assert ask(restrictive, "CreateContainerRequest", req) is False
    sandbox = create_sandbox_request() | {"sandbox_pidns": True}
    assert ask(restrictive, "CreateSandboxRequest", sandbox) is False


def test_termination_messages(restrictive: str) -> None:
    req = {"container_id": CID, "log_type": "termination_log"}
    assert ask(restrictive, "GetDiagnosticDataRequest", req) is True
    assert ask(restrictive, "GetDiagnosticDataRequest", req | {"log_type": "x"}) is False
    off = render_agent_policy(AgentPolicySpec(allow_termination_messages=False))
    assert ask(off, "GetDiagnosticDataRequest", req) is False


def test_image_env_options() -> None:
    spec = AgentPolicySpec(allowed_images=[APP], image_env_any=["BUILD_ID"])
    req = create_request(APP, [APP])
    req["OCI"]["Process"]["Env"].append("BUILD_ID=42")
    assert ask(render_agent_policy(spec), "CreateContainerRequest", req) is True
    req["OCI"]["Process"]["Env"].append("NODE_OPTIONS=--require /x")
    assert ask(render_agent_policy(spec), "CreateContainerRequest", req) is False
    with pytest.raises(ValidationError, match="LD_PRELOAD"):
        AgentPolicySpec(image_env_any=["LD_PRELOAD"])
    links = create_request(APP, [APP])
    links["OCI"]["Process"]["Env"].append("REDIS_SERVICE_HOST=10.0.0.1")
    no_links = AgentPolicySpec(allowed_images=[APP], allow_service_links=False)
    assert ask(render_agent_policy(no_links), "CreateContainerRequest", links) is False


@pytest.mark.parametrize(
    "request_doc",
    [
        pytest.param(create_request(EVIL, [EVIL]), id="image-not-on-list"),
        pytest.param(create_request(APP.split("@")[0] + ":latest", [APP]), id="tag-not-digest"),
        pytest.param(create_request(APP, [EVIL]), id="listed-name-other-pull-source"),
        pytest.param(create_request(APP, [APP, EVIL]), id="second-pull-source"),
        pytest.param(create_request(APP, []), id="no-guest-pull"),
        pytest.param(create_request(EVIL, [EVIL], "sandbox"), id="sandbox-pulling-an-image"),
        pytest.param(create_request(APP, [APP], "weird"), id="unknown-container-type"),
    ],
)
def test_unlisted_or_unbound_images_denied(restrictive: str, request_doc: dict[str, Any]) -> None:
    assert ask(restrictive, "CreateContainerRequest", request_doc) is False


def test_oci_hooks_denied(restrictive: str) -> None:
    req = create_request(APP, [APP])
    req["OCI"]["Hooks"] = {"Prestart": [{"Path": "/bin/sh", "Args": ["sh", "-c", "id"]}]}
    assert ask(restrictive, "CreateContainerRequest", req) is False


def test_rootfs_shadowing_denied(restrictive: str) -> None:
    req = create_request(APP, [APP])
    shadow = copy.deepcopy(req["storages"][0])
    shadow.update(driver="blk", source="/dev/vdb", driver_options=[])
    req["storages"].append(shadow)
    assert ask(restrictive, "CreateContainerRequest", req) is False


def test_exec_denied_by_default(restrictive: str) -> None:
    assert ask(restrictive, "ExecProcessRequest", exec_request(["/bin/sh"])) is False


def test_exec_only_listed_argv() -> None:
    text = render_agent_policy(SPECS["exec-logs"])
    assert ask(text, "ExecProcessRequest", exec_request(["/bin/ls", "-l"])) is True
    assert ask(text, "ExecProcessRequest", exec_request(["/bin/ls", "-la"])) is False
    assert ask(text, "ExecProcessRequest", exec_request(["/bin/sh", "-c", "/bin/ls -l"])) is False
    assert ask(text, "ReadStreamRequest", {"container_id": CID, "exec_id": "x", "len": 10}) is True


def test_exec_any_argv_when_allowed_without_list() -> None:
    text = render_agent_policy(SPECS["exec-any"])
    assert ask(text, "ExecProcessRequest", exec_request(["/bin/sh"])) is True
    assert ask(text, "WriteStreamRequest", {"container_id": CID, "data": "aWQK"}) is True
    copied = copy_file(shared_source(CID, "hosts"))
    assert ask(text, "CopyFileRequest", copied) is False


def test_set_policy_denied(restrictive: str) -> None:
    req = {"policy": "package agent_policy\ndefault ExecProcessRequest := true\n"}
    assert ask(restrictive, "SetPolicyRequest", req) is False


def test_logs_and_stdin_denied_by_default(restrictive: str) -> None:
    assert ask(restrictive, "ReadStreamRequest", {"container_id": CID, "len": 4096}) is False
    assert ask(restrictive, "WriteStreamRequest", {"container_id": CID, "data": "aWQK"}) is False


SHARED = "/run/kata-containers/shared/containers/"


@pytest.mark.parametrize(
    ("path", "allowed"),
    [
        (SHARED + CID + "-8f2a1b3c4d5e6f70-hosts", True),
        (SHARED + CID + "-0a1b2c3d4e5f6071-serviceaccount/..data/token", True),
        (SHARED + CID + "-0a1b2c3d4e5f6071-config/..data/app.yaml", False),
        (SHARED + CID + "/rootfs/bin/sh", False),
        ("/etc/passwd", False),
        (SHARED + "../../../usr/bin/kata-agent", False),
        (SHARED + CID + "/..", False),
        ("/run/kata-containers/shared/containersX/evil", False),
    ],
)
def test_copy_file_paths(restrictive: str, path: str, allowed: bool) -> None:
    copied = copy_file(path)
    assert ask(restrictive, "CopyFileRequest", copied) is allowed


def test_create_sandbox_without_hooks_or_modules(restrictive: str) -> None:
    base = create_sandbox_request()
    assert ask(restrictive, "CreateSandboxRequest", base) is True
    hooks = base | {"guest_hook_path": "/usr/share/oci/hooks", "kernel_modules": []}
    assert ask(restrictive, "CreateSandboxRequest", hooks) is False
    mods = base | {"guest_hook_path": "", "kernel_modules": [{"name": "x", "parameters": []}]}
    assert ask(restrictive, "CreateSandboxRequest", mods) is False


def test_allow_all_allows_everything() -> None:
    text = render_agent_policy(SPECS["allow-all"])
    for request_doc in (create_request(EVIL, [EVIL]), exec_request(["/bin/sh"]), {}):
        result = opa_eval(text, request_doc, None, "data.agent_policy")
        for request in AGENT_REQUESTS:
            assert result[request] is True, request


def test_allow_all_with_exec_override() -> None:
    text = render_agent_policy(SPECS["allow-all-except-exec"])
    assert ask(text, "ExecProcessRequest", exec_request(["/bin/sh"])) is False
    assert ask(text, "CreateContainerRequest", create_request(EVIL, [EVIL])) is True


def test_override_replaces_rule() -> None:
    text = render_agent_policy(SPECS["overrides"])
    assert ask(text, "CreateContainerRequest", create_request(EVIL, [EVIL])) is True
    assert ask(text, "GetMetricsRequest", {}) is True


def test_rendering_is_deterministic() -> None:
    a = AgentPolicySpec(
        allowed_images=[APP, HUB], allow_exec=True, exec_commands=[["b"], ["a", "1"]]
    )
    b = AgentPolicySpec(
        allowed_images=[HUB, APP, HUB], allow_exec=True, exec_commands=[["a", "1"], ["b"], ["b"]]
    )
    assert render_agent_policy(a) == render_agent_policy(b)
    assert render_agent_policy(a) == render_agent_policy(a.model_copy())


def test_spec_validation() -> None:
    with pytest.raises(ValidationError, match="pinned by digest"):
        AgentPolicySpec(allowed_images=["nginx:latest"])
    with pytest.raises(ValidationError, match="pinned by digest"):
        AgentPolicySpec(allowed_images=["nginx@sha256:" + "A" * 64])
    with pytest.raises(ValidationError, match="allow_exec"):
        AgentPolicySpec(exec_commands=[["/bin/ls"]])
    with pytest.raises(ValidationError, match="unknown agent request"):
        AgentPolicySpec(overrides={"ExecRequest": True})
    with pytest.raises(ValidationError, match="allow-all"):
        AgentPolicySpec(preset="allow-all", allowed_images=[APP])
    with pytest.raises(ValidationError):
        AgentPolicySpec(bogus=True)  # type: ignore[call-arg]
    camel = AgentPolicySpec.model_validate({"allowedImages": [APP], "allowLogs": True})
    assert camel.allowed_images == [APP] and camel.allow_logs


def test_with_workload_images() -> None:
    spec = AgentPolicySpec().with_workload_images([APP, HUB])
    assert spec.allowed_images == sorted([APP, HUB])
    explicit = AgentPolicySpec(allowed_images=[APP]).with_workload_images([HUB])
    assert explicit.allowed_images == [APP]


def test_docker_hub_aliases() -> None:
    d = "@sha256:" + "c" * 64
    assert set(docker_hub_aliases("nginx" + d)) == {"nginx" + d, "docker.io/library/nginx" + d}
    assert set(docker_hub_aliases("docker.io/library/nginx" + d)) == {
        "nginx" + d,
        "docker.io/library/nginx" + d,
    }
    assert set(docker_hub_aliases("acme/app" + d)) == {"acme/app" + d, "docker.io/acme/app" + d}
    assert docker_hub_aliases("ghcr.io/acme/app" + d) == ("ghcr.io/acme/app" + d,)
    assert docker_hub_aliases("localhost:5000/app" + d) == ("localhost:5000/app" + d,)


def test_decisions_summary() -> None:
    decisions = SPECS["exec-logs"].decisions()
    assert decisions["ExecProcessRequest"] == "rule"
    assert decisions["ReadStreamRequest"] is True
    assert decisions["SetPolicyRequest"] is False
    assert decisions["CreateContainerRequest"] == "rule"


def test_rego_suite(tmp_path: Path) -> None:
    """policies/rego/agent_policy_test.rego against the policy for its fixture spec."""
    (tmp_path / "agent_policy.rego").write_text(render_agent_policy(PINNED), encoding="utf-8")
    fixtures = {
        "container": create_request(APP, [APP], env=["API_PORT=8443"]),
        "pause": sandbox_request(),
        "sandbox": create_sandbox_request(),
        "exec": exec_request(["/bin/sh", "-c", "cat /proc/self/environ"]),
        "copies": pod_copy_files(CID),
        "evil_source": EVIL_SRC,
    }
    (tmp_path / "data.json").write_text(json.dumps({"fixtures": fixtures}), encoding="utf-8")
    shutil.copy(REGO_DIR / "agent_policy_test.rego", tmp_path)
    opa_check([tmp_path])
    results = opa_test(tmp_path)
    assert len(results) >= 15


@pytest.mark.parametrize("name", sorted(SPECS))
def test_lines_fit_regorus_limit(name: str) -> None:
    """regorus 0.9.1 rejects policy lines over 1024 characters (kata pins it)."""
    many = AgentPolicySpec(
        allowed_images=[f"registry.example.com/team/app-{i}@sha256:{i:064x}" for i in range(50)]
    )
    for spec in (SPECS[name], many):
        assert max(map(len, render_agent_policy(spec).splitlines())) < 1024


# --------------------------------------------------------------------------- container argv

SERVER = ["/app/server", "--port", "8080"]


@pytest.mark.parametrize(
    ("argv", "allowed"),
    [
        pytest.param(SERVER, True, id="pinned-argv"),
        pytest.param(["/app/migrate"], True, id="second-pinned-argv"),
        pytest.param(["/app/server"], False, id="args-dropped"),
        pytest.param([*SERVER, "--debug"], False, id="arg-added"),
        pytest.param(["/bin/sh", "-c", "/app/server --port 8080"], False, id="shell-wrapped"),
    ],
)
def test_pinned_image_starts_only_with_its_argv(argv: list[str], allowed: bool) -> None:
    text = render_agent_policy(SPECS["pinned-argv"])
    assert ask(text, "CreateContainerRequest", create_request(APP, [APP], args=argv)) is allowed


def test_unpinned_image_keeps_its_own_argv() -> None:
    text = render_agent_policy(SPECS["pinned-argv"])
    req = create_request(HUB, [HUB], args=["nginx", "-g", "daemon off;"])
    assert ask(text, "CreateContainerRequest", req) is True


def test_pinned_argv_holds_for_every_docker_hub_spelling() -> None:
    text = render_agent_policy(
        AgentPolicySpec(allowed_images=[HUB], container_commands={HUB: [["nginx"]]})
    )
    full = "docker.io/library/" + HUB
    assert ask(text, "CreateContainerRequest", create_request(full, [full], args=["nginx"])) is True
    evil = create_request(full, [full], args=["/bin/sh"])
    assert ask(text, "CreateContainerRequest", evil) is False


def test_pause_sandbox_unaffected_by_pins() -> None:
    text = render_agent_policy(SPECS["pinned-argv"])
    assert ask(text, "CreateContainerRequest", sandbox_request()) is True


@pytest.mark.parametrize(
    ("command", "args", "env", "argv"),
    [
        # Known answers from the kubelet/containerd rules (module docstring), worked by hand.
        (["/app/server"], ["--port", "8080"], {}, ["/app/server", "--port", "8080"]),
        (["/app/server"], None, {}, ["/app/server"]),
        (
            ["sh", "-c"],
            ["echo $(GREETING) $$(HOME)"],
            {"GREETING": "hi"},
            ["sh", "-c", "echo hi $(HOME)"],
        ),
        (["run", "--p=$(A)$(B)"], [], {"A": "1", "B": "2"}, ["run", "--p=12"]),
        (["price", "5$", "$x", "a$(b"], None, {}, ["price", "5$", "$x", "a$(b"]),
        (["$$$$"], None, {}, ["$$"]),
        (["echo", "$()", "x$"], None, {}, ["echo", "$()", "x$"]),
    ],
)
def test_kubernetes_argv(
    command: list[str], args: list[str] | None, env: dict[str, str], argv: list[str]
) -> None:
    assert kubernetes_argv(command, args, env) == argv


@pytest.mark.parametrize(
    ("command", "args", "env", "error"),
    [
        (
            ["/app/server"],
            ["--host=$(KUBERNETES_SERVICE_HOST)"],
            {},
            r"args\[0\]: \$\(KUBERNETES_SERVICE_HOST\)",
        ),
        (["/app/$(DIR)/x"], None, {"DIR": "$(OTHER)"}, r"command\[0\].*contains '\$'"),
        ([], ["--flag"], {}, "sets `command`"),
    ],
)
def test_kubernetes_argv_refuses_what_it_cannot_know(
    command: list[str], args: list[str] | None, env: dict[str, str], error: str
) -> None:
    with pytest.raises(ValueError, match=error):
        kubernetes_argv(command, args, env)


def test_container_commands_validation() -> None:
    with pytest.raises(ValidationError, match="not pinned by digest"):
        AgentPolicySpec(container_commands={"nginx:latest": [["nginx"]]})
    with pytest.raises(ValidationError, match="not in allowed_images"):
        AgentPolicySpec(allowed_images=[APP], container_commands={HUB: [["nginx"]]})
    with pytest.raises(ValidationError, match="lists no argv"):
        AgentPolicySpec(container_commands={APP: []})
    with pytest.raises(ValidationError, match="argv\\[0\\]"):
        AgentPolicySpec(container_commands={APP: [[""]]})
    with pytest.raises(ValidationError, match="allow-all"):
        AgentPolicySpec(preset="allow-all", container_commands={APP: [["x"]]})
    spec = AgentPolicySpec(container_commands={APP: [["b"], ["a"], ["b"]]})
    assert spec.container_commands == {APP: [["a"], ["b"]]}


def test_with_container_commands() -> None:
    pins = {APP: [SERVER]}
    assert AgentPolicySpec().with_container_commands(pins).container_commands == pins
    explicit = AgentPolicySpec(container_commands={APP: [["/other"]]})
    assert explicit.with_container_commands(pins).container_commands == {APP: [["/other"]]}
    off = AgentPolicySpec(pin_commands=False)
    assert off.with_container_commands(pins).container_commands == {}
    assert (
        AgentPolicySpec(preset="allow-all").with_container_commands(pins).container_commands == {}
    )
    elsewhere = AgentPolicySpec(allowed_images=[HUB]).with_container_commands(pins)
    assert elsewhere.container_commands == {}


def test_image_spellings() -> None:
    from policies.agent import image_spellings

    d = "@sha256:" + "c" * 64
    assert set(image_spellings("ghcr.io/acme/app:1.2" + d)) == {
        "ghcr.io/acme/app:1.2" + d,
        "ghcr.io/acme/app" + d,
    }
    assert set(image_spellings("nginx:1.27" + d)) == {
        "nginx:1.27" + d,
        "docker.io/library/nginx:1.27" + d,
        "nginx" + d,
        "docker.io/library/nginx" + d,
    }
    # A registry port is not a tag.
    assert image_spellings("localhost:5000/app" + d) == ("localhost:5000/app" + d,)
