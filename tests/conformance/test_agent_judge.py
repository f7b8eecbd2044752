"""The Kata agent's own policy engine judges every agent policy the program renders.

Judge: scripts/judges/kata-policy (kata-containers 4.1.0 `src/agent/policy` with regorus at
the revision it pins, requests deserialised into `protocols::agent` types first, policy loaded
as the agent loads an init-data policy). For every workload of every stack file: the pod starts
(sandbox, pause, each container, restarts, the files the runtime copies, termination messages,
logs and exec only where the workload allows them), and every tamper case is denied.
"""

from __future__ import annotations

import copy
import json
import select
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from agent_requests import (
    SA_DIR,
    as_spec_says,
    copy_file,
    create_request,
    create_sandbox_request,
    exec_request,
    pod_copy_files,
    presented_image,
    sandbox_request,
    shared_source,
)
from agent_requests import container_id as make_cid
from judges import judge_dir
from mocks import p256_from_seed

from components.settings import WorkloadSettings, parse, strip_namespace
from components.workload import effective_agent_policy, rendered_pod_spec
from components.workload_template import sealed_dirs
from policies.agent import AGENT_REQUESTS, AgentPolicySpec, render_agent_policy
from policies.agent_container import DEFAULT_CAPS
from policies.sealed import seal

SEALING_KEY, _ = p256_from_seed("test-agent-judge")
"""Any P-256 key: the policy pins a sealed env var's reference and key id, not the signature."""

pytestmark = pytest.mark.conformance

ROOT = Path(__file__).resolve().parents[2]
STACKS = sorted(
    p.name.removeprefix("Pulumi.").removesuffix(".yaml")
    for p in (ROOT / "stacks").glob("Pulumi.*.yaml")
)


class Judge:
    """One kata-policy-judge process: JSON lines in, JSON lines out."""

    def __init__(self, binary: Path) -> None:
        self.proc = subprocess.Popen(
            [str(binary)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )

    def ask(
        self, policy: Path, kind: str, request: Any, session: str | None = None, raw: bool = False
    ) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        line = {"policy": str(policy), "kind": kind, "request": request, "raw": raw}
        if session is not None:
            line["session"] = session
        self.proc.stdin.write(json.dumps(line) + "\n")
        self.proc.stdin.flush()
        ready, _, _ = select.select([self.proc.stdout], [], [], 60)
        assert ready, "the judge did not answer within 60 s"
        answer: dict[str, Any] = json.loads(self.proc.stdout.readline())
        return answer

    def allowed(self, policy: Path, kind: str, request: Any, session: str | None = None) -> bool:
        answer = self.ask(policy, kind, request, session)
        assert answer.get("error") is None, f"{kind}: {answer['error']}"
        return bool(answer["allowed"])

    def close(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)


@contextmanager
def kata_policy_judge() -> Iterator[Judge]:
    """A kata-policy judge process, closed when the block ends (one per test module)."""
    running = Judge(judge_dir("kata-policy") / "bin" / "kata-policy-judge")
    try:
        yield running
    finally:
        running.close()


@pytest.fixture(scope="module")
def judge() -> Iterator[Judge]:
    with kata_policy_judge() as running:
        yield running


def stack_workloads(name: str) -> list[WorkloadSettings]:
    doc = yaml.safe_load((ROOT / "stacks" / f"Pulumi.{name}.yaml").read_text())
    config = doc["config"]
    plain = {k: v for k, v in config.items() if not (isinstance(v, dict) and "secure" in v)}
    return list(parse(strip_namespace(plain)).workloads)


# The restrictive ones: an allow-all policy (refused in production) has nothing to close.
WORKLOADS = [
    (s, w) for s in STACKS for w in stack_workloads(s) if w.agent_policy.preset == "restrictive"
]
IDS = [f"{s}-{w.name}" for s, w in WORKLOADS]


@dataclass
class Pod:
    """One workload's rendered policy and the requests its pod's start really makes."""

    settings: WorkloadSettings
    spec: AgentPolicySpec
    policy: Path
    pod: str

    def cid(self, container: str, attempt: int = 0) -> str:
        return make_cid(self.settings.name, container, str(attempt))

    @property
    def sandbox(self) -> str:
        return make_cid(self.settings.name, "sandbox")

    def container(self, index: int, attempt: int = 0) -> dict[str, Any]:
        c = self.settings.containers[index]
        pin = self.spec.containers[c.name]
        argvs = self.spec.container_commands.get(c.image)
        argv = argvs[0] if argvs else ["/docker-entrypoint.sh", "serve"]
        # Sealed env vars arrive as kubelet copies them from the Secret: the sealed reference.
        sealed = [f"{v.name}={seal(v.sealed_from, SEALING_KEY)}" for v in c.sealed_env]
        request = create_request(
            presented_image(c.image),
            cid=self.cid(c.name, attempt),
            args=list(argv),
            name=c.name,
            env=[*pin.env, *sealed],
            namespace=self.settings.namespace,
            pod=self.pod,
            sandbox=self.sandbox,
            # Where the pod spec leaves them to the image, any image's values.
            cwd=pin.working_dir or "/srv",
            uid=65532 if pin.uid is None else pin.uid,
            gid=pin.gid,
            read_only_root=pin.read_only_root,
            hardened=False,
        )
        # What the rendered (hardened, components/hardening.py) pod spec makes containerd
        # and the kubelet send: no new privileges, no capabilities, no token mount.
        spec = rendered_pod_spec(self.settings)
        as_spec_says(request, spec["containers"][index], spec)
        # Sealed files: each directory a Secret volume, bound read-only from the shared dir.
        for d in sealed_dirs(c):
            source = shared_source(request["container_id"], d.rsplit("/", 1)[1])
            request["OCI"]["Mounts"].append(_mount(d, source, ["rbind", "rprivate", "ro"]))
        return request


def sealed_copies(c: Any, cid: str) -> list[dict[str, Any]]:
    """What the runtime copies for a container's sealed-file Secret volumes (kubelet's
    AtomicWriter layout: a timestamped directory, `..data` and one symlink per file)."""
    stamp = "..2026_11_30_11_00_00.123456789"
    out = []
    for d in sealed_dirs(c):
        root = shared_source(cid, d.rsplit("/", 1)[1])
        names = [f.name for f in c.sealed_files if f.directory == d]
        out += [copy_file(root, "Directory"), copy_file(f"{root}/{stamp}", "Directory")]
        out += [copy_file(f"{root}/{stamp}/{n}") for n in names]
        out.append(copy_file(f"{root}/..data", "Symlink", stamp))
        out += [copy_file(f"{root}/{n}", "Symlink", f"..data/{n}") for n in names]
    return out


@pytest.fixture(params=WORKLOADS, ids=IDS)
def pod(request: pytest.FixtureRequest, tmp_path: Path) -> Pod:
    _, workload = request.param
    spec = effective_agent_policy(workload)
    path = tmp_path / "policy.rego"
    path.write_text(render_agent_policy(spec), encoding="utf-8")
    name = workload.name if workload.kind == "Pod" else f"{workload.name}-6674f9448-xjrzf"
    return Pod(workload, spec, path, name)


def test_the_stacks_give_workloads_to_judge() -> None:
    """Guards against an empty parametrization (the stack files hold 8 today)."""
    assert len(WORKLOADS) >= 5


def test_every_container_is_pinned(pod: Pod) -> None:
    assert set(pod.spec.containers) == {c.name for c in pod.settings.containers}


def test_the_pod_starts_and_restarts(judge: Judge, pod: Pod) -> None:
    """Sandbox, pause, every container (twice: a restart gets a new id), the files the
    runtime copies, the lifecycle requests, termination messages."""
    # One engine per policy file (the judge's default session), as one pod's agent has.
    ok = lambda kind, req: judge.allowed(pod.policy, kind, req)  # noqa: E731
    assert ok("CreateSandboxRequest", create_sandbox_request(pod.sandbox, pod.pod))
    assert ok(
        "CreateContainerRequest", sandbox_request(pod.settings.namespace, pod.pod, pod.sandbox)
    )
    for attempt in (0, 1):
        for i, c in enumerate(pod.settings.containers):
            cid = pod.cid(c.name, attempt)
            for copied in [*pod_copy_files(cid), *sealed_copies(c, cid)]:
                assert ok("CopyFileRequest", copied), copied
            assert ok("CreateContainerRequest", pod.container(i, attempt)), c.name
            assert ok("StartContainerRequest", {"container_id": cid})
            assert ok("WaitProcessRequest", {"container_id": cid, "exec_id": cid})
            assert ok("StatsContainerRequest", {"container_id": cid})
            diagnostic = {"container_id": cid, "log_type": "termination_log"}
            assert ok("GetDiagnosticDataRequest", diagnostic) is pod.spec.allow_termination_messages
            assert ok("SignalProcessRequest", {"container_id": cid, "exec_id": cid, "signal": 15})
            assert ok("RemoveContainerRequest", {"container_id": cid, "timeout": 0})
    for kind in ("GuestDetailsRequest", "OnlineCPUMemRequest", "GetOOMEventRequest"):
        assert ok(kind, {})
    assert ok("DestroySandboxRequest", {})


def test_logs_and_exec_only_where_allowed(judge: Judge, pod: Pod) -> None:
    cid = pod.cid(pod.settings.containers[0].name)
    read = {"container_id": cid, "exec_id": cid, "len": 4096}
    assert judge.allowed(pod.policy, "ReadStreamRequest", read) is pod.spec.allow_logs
    probe = exec_request(["/bin/sh", "-c", "cat /proc/self/environ"], cid)
    assert judge.allowed(pod.policy, "ExecProcessRequest", probe) is (
        pod.spec.allow_exec and not pod.spec.exec_commands
    )
    for argv in pod.spec.exec_commands:
        assert judge.allowed(pod.policy, "ExecProcessRequest", exec_request(argv, cid))
    stdin = {"container_id": cid, "exec_id": cid, "data": []}
    assert judge.allowed(pod.policy, "WriteStreamRequest", stdin) is pod.spec.allow_exec


def _with(request: dict[str, Any], change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    out = copy.deepcopy(request)
    change(out)
    return out


def _mount(dest: str, source: str, options: list[str], type_: str = "bind") -> dict[str, Any]:
    return {"destination": dest, "options": options, "source": source, "type_": type_}


def _tampers(pod: Pod) -> dict[str, dict[str, Any]]:
    """Each way a host could run its own code with the pinned image and argv, or weaken the
    container around it. Every one must be denied."""
    base = pod.container(0)
    cid = base["container_id"]
    argv0 = base["OCI"]["Process"]["Args"][0]
    oci: Callable[[Callable[[dict[str, Any]], None]], dict[str, Any]] = lambda f: _with(  # noqa: E731
        base, lambda r: f(r["OCI"])
    )
    pinned = pod.spec.containers[pod.settings.containers[0].name].env

    def change_env(o: dict[str, Any]) -> None:
        env = o["Process"]["Env"]
        target = pinned[0] if pinned else env[0]
        env[env.index(target)] = target.split("=", 1)[0] + "=/tmp/evil"

    def drop_ro(o: dict[str, Any]) -> None:
        # The token's mount when the pod has one, else /sys (both must be read-only).
        dests = {m["destination"] for m in o["Mounts"]}
        target = SA_DIR if SA_DIR in dests else "/sys"
        for m in o["Mounts"]:
            if m["destination"] == target:
                m["options"] = [x for x in m["options"] if x != "ro"] + ["rw"]

    def new_privileges(o: dict[str, Any]) -> None:
        o["Process"]["NoNewPrivileges"] = False

    def default_caps(o: dict[str, Any]) -> None:
        for key in ("Bounding", "Effective", "Permitted"):
            o["Process"]["Capabilities"][key] = list(DEFAULT_CAPS)

    def token_mount(o: dict[str, Any]) -> None:
        if SA_DIR not in {m["destination"] for m in o["Mounts"]}:
            source = shared_source(cid, "serviceaccount")
            o["Mounts"].append(_mount(SA_DIR, source, ["rbind", "rprivate", "ro"]))

    def privileged(o: dict[str, Any]) -> None:
        caps = [*o["Process"]["Capabilities"]["Bounding"], "CAP_SYS_ADMIN", "CAP_SYS_MODULE"]
        for key in ("Bounding", "Effective", "Permitted"):
            o["Process"]["Capabilities"][key] = caps
        o["Linux"]["MaskedPaths"] = []
        o["Linux"]["ReadonlyPaths"] = []
        o["Linux"]["Devices"] = [{"Path": "/dev/sda", "Type": "b", "Major": 8, "Minor": 0}]

    def add_cap(o: dict[str, Any]) -> None:
        o["Process"]["Capabilities"]["Effective"].append("CAP_SYS_PTRACE")

    evil = shared_source(cid, "evil")
    return {
        "bind mount over the binary from the shared dir": oci(
            lambda o: o["Mounts"].append(_mount(argv0, evil, ["rbind", "ro"]))
        ),
        "bind mount of a copied file over the binary": oci(
            lambda o: o["Mounts"].append(
                _mount(argv0, shared_source(cid, "hosts", "2"), ["rbind", "rprivate", "ro"])
            )
        ),
        "LD_PRELOAD into the shared dir": oci(
            lambda o: o["Process"]["Env"].append(f"LD_PRELOAD={evil}/x.so")
        ),
        "changed env value": oci(change_env),
        "second value for a pinned env name": oci(
            lambda o: o["Process"]["Env"].append(
                (pinned[0].split("=", 1)[0] if pinned else "PATH") + "=/tmp/evil"
            )
        ),
        "added mount": oci(lambda o: o["Mounts"].append(_mount("/opt", evil, ["rbind", "rw"]))),
        "mount source swapped": oci(
            lambda o: [
                m.update(source=evil) for m in o["Mounts"] if m["destination"] == "/etc/hosts"
            ]
        ),
        "dropped read-only flag": oci(drop_ro),
        "privilege escalation back": oci(new_privileges),
        "default capabilities back": oci(default_caps),
        "service-account token mounted": oci(token_mount),
        "privileged": oci(privileged),
        "added capability": oci(add_cap),
        "ambient capability": oci(
            lambda o: o["Process"]["Capabilities"]["Ambient"].append("CAP_KILL")
        ),
        "extra sysctl": oci(lambda o: o["Linux"]["Sysctl"].update({"kernel.core_pattern": "|/x"})),
        "sandbox_pidns": _with(base, lambda r: r.update(sandbox_pidns=True)),
        "OCI hook": oci(lambda o: o.update(Hooks={"Prestart": [{"Path": "/bin/sh"}]})),
        "second storage": _with(
            base, lambda r: r["storages"].append(dict(r["storages"][0], mount_point="/opt"))
        ),
        "other image pulled": _with(
            base, lambda r: r["storages"][0].update(source="ghcr.io/evil/miner@sha256:" + "b" * 64)
        ),
        "relative cwd": oci(lambda o: o["Process"].update(Cwd="../../tmp")),
        "device": _with(
            base,
            lambda r: r["devices"].append(
                {
                    "id": "0",
                    "type_": "blk",
                    "vm_path": "/dev/vdb",
                    "container_path": "/dev/x",
                    "options": [],
                }
            ),
        ),
        "termination path elsewhere": oci(
            lambda o: o["Annotations"].update(
                {"io.kubernetes.container.terminationMessagePath": "/etc/hosts"}
            )
        ),
        "other user": oci(lambda o: o["Process"]["User"].update(UID=0)),
        "other working dir": oci(lambda o: o["Process"].update(Cwd="/tmp")),
        "writable root": oci(lambda o: o["Root"].update(Readonly=not o["Root"]["Readonly"])),
        "unknown container name": oci(
            lambda o: o["Annotations"].update({"io.kubernetes.cri.container-name": "intruder"})
        ),
        "sandbox type with a real image": _with(
            base,
            lambda r: r["OCI"]["Annotations"].update(
                {
                    "io.kubernetes.cri.container-type": "sandbox",
                    "io.katacontainers.pkg.oci.container_type": "pod_sandbox",
                }
            ),
        ),
    }


TAMPERS = sorted(
    _tampers(Pod(WORKLOADS[0][1], effective_agent_policy(WORKLOADS[0][1]), Path(), "x"))
)


@pytest.mark.parametrize("case", TAMPERS)
def test_tampered_container_denied(judge: Judge, pod: Pod, case: str) -> None:
    assert judge.allowed(pod.policy, "CreateContainerRequest", pod.container(0))
    pin = pod.spec.containers[pod.settings.containers[0].name]
    unpinned = {
        "other user": pin.uid is None,
        "other working dir": pin.working_dir is None,
        # Hardening relaxed by its named option (components/hardening.py): not pinned.
        "privilege escalation back": not pin.no_new_privileges,
        "default capabilities back": pin.capabilities is None,
        "service-account token mounted": pin.service_account_token,
    }
    if unpinned.get(case):
        # The pod spec leaves it to the image: not pinned (docs/agent-policy.md).
        assert judge.allowed(pod.policy, "CreateContainerRequest", _tampers(pod)[case])
        return
    if case == "device" and pod.spec.allow_devices:
        # GPU workloads: the runtime passes devices through; `allowDevices` is documented as
        # not pinning them (docs/agent-policy.md), and it is on only for them.
        assert pod.settings.gpus > 0
        assert judge.allowed(pod.policy, "CreateContainerRequest", _tampers(pod)[case])
        return
    assert not judge.allowed(pod.policy, "CreateContainerRequest", _tampers(pod)[case]), case


def test_tampered_sandbox_denied(judge: Judge, pod: Pod) -> None:
    pause = sandbox_request(pod.settings.namespace, pod.pod, pod.sandbox)
    bad = {
        "pidns": _with(pause, lambda r: r.update(sandbox_pidns=True)),
        "other argv": _with(pause, lambda r: r["OCI"]["Process"].update(Args=["/bin/sh"])),
        "LD_PRELOAD": _with(pause, lambda r: r["OCI"]["Process"]["Env"].append("LD_PRELOAD=/x")),
        "writable resolv.conf": _with(
            pause, lambda r: r["OCI"]["Mounts"][-1].update(options=["rbind", "rw"])
        ),
        "real image": _with(
            pause, lambda r: r["storages"][0].update(source="docker.io/library/busybox:latest")
        ),
    }
    for name, request in bad.items():
        assert not judge.allowed(pod.policy, "CreateContainerRequest", request), name
    sandbox = create_sandbox_request(pod.sandbox, pod.pod)
    for name, request in {
        "pidns": _with(sandbox, lambda r: r.update(sandbox_pidns=True)),
        "kernel module": _with(
            sandbox, lambda r: r.update(kernel_modules=[{"name": "evil", "parameters": []}])
        ),
        "guest hook": _with(sandbox, lambda r: r.update(guest_hook_path="/attacker")),
        "storage": _with(
            sandbox,
            lambda r: r["storages"].append(dict(r["storages"][0], source="/dev/vdb", driver="blk")),
        ),
    }.items():
        assert not judge.allowed(pod.policy, "CreateSandboxRequest", request), name


def test_copy_file_abuse_denied(judge: Judge, pod: Pod) -> None:
    cid = pod.cid(pod.settings.containers[0].name)
    sa = shared_source(cid, "serviceaccount")
    abuse = {
        "symlink to an absolute path": {
            "path": f"{sa}/lnk",
            "file_type": "Symlink",
            "symlink_target": "/usr/bin",
        },
        "symlink up": {"path": f"{sa}/lnk", "file_type": "Symlink", "symlink_target": "../../x"},
        "symlink at the top of the shared dir": {
            "path": sa,
            "file_type": "Symlink",
            "symlink_target": "abc",
        },
        "socket or device": {"path": f"{sa}/sock", "file_type": "Unknown"},
        "into the rootfs (shared)": {
            "path": f"/run/kata-containers/shared/containers/{cid}/rootfs/bin/sh",
            "file_type": "Regular",
        },
        "into the rootfs (guest pull)": {
            "path": f"/run/kata-containers/{cid}/rootfs/bin/sh",
            "file_type": "Regular",
        },
        "outside": {"path": "/etc/ssl/cert.pem", "file_type": "Regular"},
        "traversal": {"path": f"{sa}/../../../../usr/bin/kata-agent", "file_type": "Regular"},
        "entry the pod does not use": {"path": shared_source(cid, "evil"), "file_type": "Regular"},
        "executable file (an argv could name it)": {
            "path": f"{sa}/..data/run",
            "file_type": "Regular",
            "file_mode": 0o100755,
        },
    }
    for name, request in abuse.items():
        assert not judge.allowed(pod.policy, "CopyFileRequest", request), name


def test_set_policy_and_host_controls_denied(judge: Judge, pod: Pod) -> None:
    denied = {
        "SetPolicyRequest": {
            "policy": "package agent_policy\ndefault ExecProcessRequest := true\n"
        },
        "SetGuestDateTimeRequest": {"Sec": 0, "Usec": 0},
        "AddSwapRequest": {"PCIPath": [1]},
        "UpdateContainerRequest": {"container_id": pod.cid("x")},
        "GetDiagnosticDataRequest": {"container_id": pod.cid("x"), "log_type": "stacks"},
    }
    for kind, request in denied.items():
        assert not judge.allowed(pod.policy, kind, request), kind


def test_every_policy_request_is_an_agent_request(judge: Judge, tmp_path: Path) -> None:
    """Each name the policy defines is a request message of agent.proto: the judge parses it."""
    policy = tmp_path / "p.rego"
    policy.write_text(render_agent_policy(AgentPolicySpec()), encoding="utf-8")
    for kind in sorted(AGENT_REQUESTS):
        answer = judge.ask(policy, kind, {})
        assert answer["error"] is None, f"{kind}: {answer['error']}"
    assert "no such agent request" in judge.ask(policy, "PullImageRequest", {})["error"]


def test_a_field_the_agent_does_not_have_cannot_pass(judge: Judge, tmp_path: Path) -> None:
    """CopyFile input has no `data`: the judge refuses a request shape the agent never sends."""
    policy = tmp_path / "p.rego"
    policy.write_text(render_agent_policy(AgentPolicySpec()), encoding="utf-8")
    answer = judge.ask(
        policy, "CopyFileRequest", {"path": "/x", "file_type": "Regular", "data": ""}
    )
    assert "data" in (answer["error"] or "")
    answer = judge.ask(policy, "CreateContainerRequest", {"OCI": {"Mounts": [{"type": "bind"}]}})
    assert "type" in (answer["error"] or "")


def test_raw_copy_file_converted_as_the_agent_does(judge: Judge, tmp_path: Path) -> None:
    """A protocol CopyFileRequest (file_mode, data) becomes the policy's shape in the agent's
    own conversion: a symlink's target is its data."""
    policy = tmp_path / "p.rego"
    policy.write_text(render_agent_policy(AgentPolicySpec()), encoding="utf-8")
    sa = shared_source(make_cid("a"), "serviceaccount")
    link = {"path": f"{sa}/token", "file_mode": 0o120777, "data": list(b"..data/token")}
    assert judge.ask(policy, "CopyFileRequest", link, raw=True)["allowed"] is True
    out = {"path": f"{sa}/token", "file_mode": 0o120777, "data": list(b"/etc/shadow")}
    assert judge.ask(policy, "CopyFileRequest", out, raw=True)["allowed"] is False
    sock = {"path": f"{sa}/s", "file_mode": 0o140755}
    assert judge.ask(policy, "CopyFileRequest", sock, raw=True)["allowed"] is False


def _genpolicy_testdata() -> Path:
    return judge_dir("kata-policy") / "genpolicy-testdata"


def test_genpolicy_copy_file_cases_agree(judge: Judge, tmp_path: Path) -> None:
    """genpolicy's own CopyFile cases, the entry renamed to one this pod uses, decide the same
    in our policy."""
    policy = tmp_path / "p.rego"
    policy.write_text(render_agent_policy(AgentPolicySpec()), encoding="utf-8")
    cases = json.loads((_genpolicy_testdata() / "copyfile" / "testcases.json").read_text())
    assert len(cases) >= 15
    for case in cases:
        text = json.dumps(case["request"]).replace("-foo..", "-serviceaccount/foo..")
        request = json.loads(text.replace("-foo", "-serviceaccount"))
        assert judge.allowed(policy, "CopyFileRequest", request) is case["allowed"], case


def _key_paths(value: Any, at: str = "") -> set[str]:
    if isinstance(value, dict):
        out = set()
        for k, v in value.items():
            if k in ("Annotations", "Sysctl", "driver_options"):  # maps/lists of data
                out.add(f"{at}.{k}")
                continue
            out.add(f"{at}.{k}")
            out |= _key_paths(v, f"{at}.{k}")
        return out
    if isinstance(value, list):
        return set().union(*(_key_paths(v, f"{at}[]") for v in value)) if value else set()
    return set()


@pytest.mark.parametrize(
    ("captured", "ours"),
    [
        ("state/createcontainer", lambda: sandbox_request()),
        ("createcontainer/env_vars", lambda: create_request("a@sha256:" + "a" * 64)),
    ],
)
def test_request_shapes_are_the_captured_ones(captured: str, ours: Callable[[], Any]) -> None:
    """Our builders produce the key structure of genpolicy's captured requests."""
    case = json.loads((_genpolicy_testdata() / captured / "testcases.json").read_text())[0]
    real = _key_paths(case["request"])
    mine = _key_paths(ours())
    assert mine <= real | {".OCI.Linux.Resources.Memory"}, sorted(mine - real)
    assert real - mine <= {
        ".OCI.Linux.Resources.Memory.Swap",
        ".OCI.Linux.Resources.Memory.Limit",
    } | {p for p in real if p.startswith(".OCI.Linux.Resources.Memory.")}, sorted(real - mine)


def _mount_paths(pod_yaml: Path) -> set[str]:
    """Every `mountPath` a captured test's pod spec declares (its own volumes)."""
    found: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("mountPath"), str):
                found.add(node["mountPath"])
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    for doc in yaml.safe_load_all(pod_yaml.read_text()):
        walk(doc)
    return found


def test_runtime_mounts_of_every_admitted_capture_pass_our_tables() -> None:
    """Every mount the runtime adds in genpolicy's admitted CreateContainer captures (all but
    the test pods' own volumes) has a destination, type and options our tables allow, and
    carries the options they require: the tables are not narrower than real runtimes. The
    rest are the test images' VOLUMEs (redis: /data, /node-conf), which `imageVolumes` admits.
    """
    from policies.agent_container import CONTAINER_MOUNTS, SANDBOX_MOUNTS, image_volume

    tables = {
        True: {m.destination: m for m in SANDBOX_MOUNTS},
        False: {m.destination: m for m in CONTAINER_MOUNTS},
    }
    checked = 0
    for cases_file in sorted(_genpolicy_testdata().rglob("testcases.json")):
        volumes = _mount_paths(cases_file.parent / "pod.yaml")
        for case in json.loads(cases_file.read_text()):
            if case["kind"] != "CreateContainerRequest" or not case["allowed"]:
                continue
            oci = case["request"].get("OCI", {})
            sandbox = oci.get("Annotations", {}).get("io.kubernetes.cri.container-type")
            table = tables[sandbox == "sandbox"]
            for mount in oci.get("Mounts", []):
                if mount["destination"] in volumes:
                    continue
                pin = table.get(mount["destination"]) or image_volume(mount["destination"])
                assert mount["type_"] == pin.type, (cases_file, mount)
                assert set(mount["options"]) <= set(pin.options), (cases_file, mount)
                assert set(pin.required) <= set(mount["options"]), (cases_file, mount)
                checked += 1
    assert checked >= 50
