"""The Kata agent policy: which agent API requests the (untrusted) host may make of the guest.

Inside the TEE the Kata agent asks its Rego engine (regorus) `data.agent_policy.<Request>`
for every ttRPC request from the host-side runtime; a rule that is undefined makes the agent
refuse the request with an error, so every request gets an explicit default here. The policy
travels in init-data, so it is measured: the host cannot swap it without changing the
init-data digest that Trustee checks before releasing any secret.

Two presets:
- `allow-all`: kata-containers `src/kata-opa/allow-all.rego` semantics (every request
  allowed). Only for debugging; the production checks refuse it.
- `restrictive`: deny every request through which the host could run code in the guest,
  read its data out, or change the policy, and allow what the pod lifecycle needs. The
  per-request decisions, each with its reason, are the `AGENT_REQUESTS` table below.

Upstream sources, as checked:
- Request names: exactly the request messages of the agent's service in kata-containers
  4.1.0 `src/libs/protocols/protos/agent.proto` (allow-all.rego still names
  `PullImageRequest`, `ReadContainerTerminationMessage`, `StartTracingRequest` and
  `StopTracingRequest`, which that service no longer has); the judge tier parses each name
  into its `protocols::agent` type.
- Request inputs: serde JSON of the `protocols::agent` types (`src/agent/src/policy.rs`);
  CopyFile as the agent's `PolicyCopyFileRequest` (`path`, `file_type`, `symlink_target`, no
  data). Shapes as in genpolicy's captured requests (`tests/policy/testdata`).
- Guest pull: kata runtime `virtcontainers/kata_agent.go` `handleImageGuestPullBlockVolume`
  builds an `image_guest_pull` storage whose `source` is `io.kubernetes.cri.image-name` for
  containers and the sentinel `"pause"` for the sandbox; the agent pulls `source` (or unpacks
  its built-in pause bundle for the sandbox, `image.rs` `unpack_pause_image`).
- Evaluation: kata agent `policy` module `allow_request` queries `data.agent_policy.{ep}`
  and errors when the result is undefined; `AllowRequestsFailingPolicy := true` would turn
  every failure into an allow, so it is pinned to false.

- Container argv: containerd CRI `setOCIProcessArgs`: when the pod spec sets `command`, the
  OCI `Process.Args` are `command + args` and the image's ENTRYPOINT/CMD are not used;
  kubelet expands `$(VAR)` in both first (kubernetes `third_party/forked/golang/expansion`
  `Expand`: `$$` is a literal `$`, `$(NAME)` the variable's value, an unknown name or an
  unclosed `$(` stays as written).

What `restrictive` pins: which images run (by digest), for containers whose pod spec sets
`command` their exact argv, and what each container is (env, mounts, capabilities, ...:
`policies/agent_container.py`, docs/agent-policy.md). It does not pin what only the image
config says (ENTRYPOINT/CMD, WORKDIR, USER where the pod spec leaves them to it).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Literal

from pydantic import BaseModel, ConfigDict, field_validator, model_validator
from pydantic.alias_generators import to_camel

from components.vocabulary import is_pinned
from policies.agent_container import (
    BLOCK_EMPTY_DIR_DRIVER_OPTIONS,
    CONTAINER_MOUNTS,
    CPATH,
    DEFAULT_PATH,
    SHARED_FILES,
    STORAGE_DIR,
    ContainerPin,
    image_volume,
    render_container_rules,
)

PACKAGE = "agent_policy"


def _rego_safe_pin(image: str) -> bool:
    """Pinned by digest, and writable inside a Rego string (no `"` or `\\`)."""
    return is_pinned(image) and '"' not in image and "\\" not in image


PAUSE_SOURCE = "pause"
"""Guest-pull `source` the Kata runtime sets for the sandbox (pause) container."""

_MAX_LINE = 1024
"""regorus 0.9.1 rejects policy lines longer than this; the renderer keeps every line shorter."""

SHARED_CONTAINERS_DIR = "/run/kata-containers/shared/containers/"
"""Where the runtime copies ConfigMaps, Secrets, hosts/resolv.conf when shared_fs=none."""


class RequestDefault(BaseModel):
    """The restrictive preset's decision for one agent request, and why."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    allow: bool
    """The constant default (what the agent answers when no rule below allows it)."""
    reason: str
    rule: str | None = None
    """When set, a conditional rule can still allow the request: what it checks."""
    spec_field: str | None = None
    """The `AgentPolicySpec` field that changes this request's default, if any."""


def _d(
    allow: bool, reason: str, rule: str | None = None, spec_field: str | None = None
) -> RequestDefault:
    return RequestDefault(allow=allow, reason=reason, rule=rule, spec_field=spec_field)


AGENT_REQUESTS: dict[str, RequestDefault] = {
    "AddARPNeighborsRequest": _d(
        False, "static ARP entries from the host are not needed by pod networking (genpolicy)"
    ),
    "AddSwapPathRequest": _d(
        False, "swap on a host-chosen path pages guest memory out where the host can read it"
    ),
    "AddSwapRequest": _d(
        False, "swap on a host-provided device pages guest memory out where the host can read it"
    ),
    "CloseStdinRequest": _d(False, "only meaningful for interactive exec", spec_field="allow_exec"),
    "CopyFileRequest": _d(
        False,
        "with shared_fs=none the runtime copies ConfigMaps, Secrets, hosts and resolv.conf this "
        "way; anywhere else it would plant host files in the guest",
        rule=f"a regular file, directory or relative symlink under one of the pod's entries in "
        f"{SHARED_CONTAINERS_DIR} (hosts, hostname, resolv.conf, termination-log, "
        "serviceaccount), with no '..' segment; no symlink at the top of the shared dir",
        spec_field="allow_copy_file",
    ),
    "CreateContainerRequest": _d(
        False,
        "the host chooses what runs: only the pause sandbox and allow-listed image digests",
        rule="sandbox with the built-in pause image, or a container whose image name and "
        "guest-pull source are an allowed digest, started with its pinned argv if it has one, "
        "its pod-spec env exactly and only image/runtime env besides, only the mounts the pod "
        "spec implies (types, sources, options, read-only flags) and only the storages its "
        "emptyDirs need (guest tmpfs, guest-encrypted fresh disks), default capabilities, masked "
        "paths, containerd's sysctls, no devices, no OCI hooks, no shared PID namespace",
        spec_field="allowed_images",
    ),
    "CreateSandboxRequest": _d(
        False,
        "guest hooks and kernel modules would run host-chosen code in the guest",
        rule="no guest_hook_path, no kernel_modules, no shared PID namespace, only the "
        "sandbox's /dev/shm storage",
    ),
    "DestroySandboxRequest": _d(True, "teardown; the host can stop the VM anyway"),
    "ExecProcessRequest": _d(
        False,
        "runs a host-chosen command inside a container: code execution in the TEE",
        rule="argv exactly one of exec_commands (any argv when none are listed)",
        spec_field="allow_exec",
    ),
    "GetDiagnosticDataRequest": _d(
        False,
        "the agent serves only `termination_log`: a container's termination message, which "
        "kubelet shows in the pod status (the file behind the pinned termination-log mount)",
        rule='log_type "termination_log"',
        spec_field="allow_termination_messages",
    ),
    "GetIPTablesRequest": _d(False, "exposes the guest packet filter; not needed (genpolicy)"),
    "GetMetricsRequest": _d(
        False, "guest metrics reveal workload behaviour; only kata-monitor uses them"
    ),
    "GetOOMEventRequest": _d(True, "read-only OOM notifications the runtime reports to kubelet"),
    "GuestDetailsRequest": _d(True, "read-only capability query in the boot handshake"),
    "ListInterfacesRequest": _d(False, "not needed to run pods (genpolicy)"),
    "ListRoutesRequest": _d(False, "not needed to run pods (genpolicy)"),
    "MemAgentCompactConfig": _d(False, "host tuning of guest memory reclaim; not needed"),
    "MemAgentMemcgConfig": _d(False, "host tuning of guest memory reclaim; not needed"),
    "MemHotplugByProbeRequest": _d(
        False, "CoCo sizes the sandbox statically; no memory hotplug (genpolicy)"
    ),
    "OnlineCPUMemRequest": _d(True, "onlines the CPUs and memory the host provisioned at start"),
    "PauseContainerRequest": _d(False, "freezing containers is not part of the pod lifecycle"),
    "ReadStreamRequest": _d(
        False,
        "container stdout/stderr (kubectl logs, exec output) can carry secrets out of the TEE",
        spec_field="allow_logs",
    ),
    "RemoveContainerRequest": _d(True, "teardown of a container the host can kill anyway"),
    "RemoveStaleVirtiofsShareMountsRequest": _d(True, "housekeeping of host-controlled shares"),
    "ReseedRandomDevRequest": _d(False, "host-chosen entropy could weaken guest randomness"),
    "ResizeVolumeRequest": _d(False, "not needed to run pods (genpolicy)"),
    "ResumeContainerRequest": _d(False, "pairs with PauseContainerRequest"),
    "SetGuestDateTimeRequest": _d(
        False, "a host-set clock defeats certificate and token expiry checks"
    ),
    "SetIPTablesRequest": _d(False, "the host could redirect or open in-guest traffic"),
    "SetPolicyRequest": _d(False, "the host could replace this policy with a permissive one"),
    "SignalProcessRequest": _d(True, "stopping containers; the host can kill the VM anyway"),
    "StartContainerRequest": _d(True, "only starts containers CreateContainerRequest admitted"),
    "StatsContainerRequest": _d(True, "cgroup resource statistics kubelet needs"),
    "TtyWinResizeRequest": _d(True, "changes a terminal size; carries no data"),
    "UpdateContainerRequest": _d(
        False, "the host could change a running container's resources or devices (genpolicy)"
    ),
    "UpdateEphemeralMountsRequest": _d(False, "not needed to run pods (genpolicy)"),
    "UpdateInterfaceRequest": _d(True, "pod network setup; the network is untrusted regardless"),
    "UpdateRoutesRequest": _d(True, "pod network setup; the network is untrusted regardless"),
    "VolumeStatsRequest": _d(False, "not needed to run pods (genpolicy)"),
    "WaitProcessRequest": _d(True, "waits for a process to exit; carries no data in"),
    "WriteStreamRequest": _d(
        False, "writes host data into a process's stdin", spec_field="allow_exec"
    ),
}
"""Every agent request with its restrictive default. Unlisted requests are undefined in the
generated policy, which the agent treats as a refusal."""


def docker_hub_aliases(image: str) -> tuple[str, ...]:
    """The spellings one digest-pinned Docker Hub reference can take in a request.

    containerd may put the reference into `io.kubernetes.cri.image-name` as the pod spec wrote
    it (`nginx@sha256:...`) or normalised (`docker.io/library/nginx@sha256:...`). The digest
    pins the content either way, so both spellings are the same image.
    """
    name, _, digest = image.partition("@")
    first, slash, rest = name.partition("/")
    is_hub = not slash or ("." not in first and ":" not in first and first != "localhost")
    if first == "docker.io" and slash:
        short = rest.removeprefix("library/") if rest.count("/") == 1 else rest
        return tuple(sorted({image, f"{short}@{digest}", f"docker.io/{rest}@{digest}"}))
    if not is_hub:
        return (image,)
    full = f"docker.io/{name}" if slash else f"docker.io/library/{name}"
    return tuple(sorted({image, f"{full}@{digest}"}))


def image_spellings(image: str) -> tuple[str, ...]:
    """Every spelling of a digest-pinned reference that may reach the agent.

    containerd presents `name:tag@sha256:...` without the tag (`internal/cri/server/
    container_create.go` keeps the repo digest; genpolicy's captured `createcontainer/env_vars`
    request shows `ghcr.io/.../gid@sha256:...` for a pod spec image `.../gid:latest@sha256:...`),
    and Docker Hub names with or without `docker.io/library/` (`docker_hub_aliases`).
    """
    name, _, digest = image.partition("@")
    out = set(docker_hub_aliases(image))
    last = name.rsplit("/", 1)[-1]
    if ":" in last:
        out.update(docker_hub_aliases(f"{name.rsplit(':', 1)[0]}@{digest}"))
    return tuple(sorted(out))


def _expand(value: str, env: Mapping[str, str], where: str) -> str:
    """Kubelet's `$(VAR)` expansion of one command/args element, refusing what we cannot see.

    Mirrors kubernetes `expansion.Expand`. A `$(NAME)` that `env` does not define could still
    be set by kubelet (service-link variables such as `KUBERNETES_SERVICE_HOST`, `valueFrom`),
    and an env value holding `$` is itself expanded; either would make the pinned argv differ
    from what the agent sees, so both are errors rather than guesses.
    """
    out: list[str] = []
    i = 0
    while i < len(value):
        char = value[i]
        if char != "$" or i + 1 == len(value):
            out.append(char)
            i += 1
            continue
        nxt = value[i + 1]
        if nxt == "$":
            out.append("$")
            i += 2
        elif nxt == "(" and (close := value.find(")", i + 2)) != -1:
            name = value[i + 2 : close]
            if not name:  # no variable is called "", so kubelet keeps "$()" as written
                out.append("$()")
                i = close + 1
                continue
            if name not in env:
                raise ValueError(
                    f"{where}: $({name}) is not a literal env variable of this container, so the "
                    "value kubelet expands it to cannot be known here"
                )
            if "$" in env[name]:
                raise ValueError(
                    f"{where}: $({name}) refers to an env value that itself contains '$' "
                    "(kubelet expands it too)"
                )
            out.append(env[name])
            i = close + 1
        else:
            out.append("$" + nxt)
            i += 2
    return "".join(out)


def pod_env(env: Mapping[str, str], where: str) -> tuple[str, ...]:
    """The pod spec's env as the container receives it, as `NAME=value` entries.

    Kubelet (`pkg/kubelet/kubelet_pods.go` makeEnvironmentVariables) expands `$(VAR)` in a value
    from the variables defined before it; coco's pod spec lists them sorted by name. A
    reference this program cannot resolve is an error (`_expand`), not a guess.
    """
    seen: dict[str, str] = {}
    for name in sorted(env):
        seen[name] = _expand(env[name], seen, f"{where}.env.{name}")
    return tuple(f"{k}={v}" for k, v in sorted(seen.items()))


def declared_env(env: Sequence[tuple[str, str]], where: str) -> tuple[str, ...]:
    """`pod_env` for a pod spec written by someone else: kubelet expands each value from the
    variables defined before it in the order the list declares them (not sorted), and a
    later entry of the same name replaces the earlier one's value."""
    seen: dict[str, str] = {}
    for name, value in env:
        seen[name] = _expand(value, seen, f"{where}.env.{name}")
    return tuple(f"{k}={v}" for k, v in sorted(seen.items()))


def kubernetes_argv(
    command: Sequence[str], args: Sequence[str] | None, env: Mapping[str, str]
) -> list[str]:
    """The OCI `Process.Args` of a container whose pod spec sets `command`.

    containerd starts it with `command + args` (the image's ENTRYPOINT and CMD unused) after
    kubelet's `$(VAR)` expansion, so this is exactly what the agent policy sees.
    """
    if not command:
        raise ValueError("only a container that sets `command` has an argv known in advance")
    parts = [("command", i, v) for i, v in enumerate(command)]
    parts += [("args", i, v) for i, v in enumerate(args or [])]
    return [_expand(v, env, f"{field}[{i}]") for field, i, v in parts]


def _checked_argv(argv: list[str], what: str) -> list[str]:
    if not argv or not argv[0]:
        raise ValueError(f"{what} needs at least a program (argv[0])")
    if len(json.dumps(argv)) > _MAX_LINE - 16:
        raise ValueError(f"{what} {argv[:2]}... is too long for one policy line")
    return argv


def _unique_argvs(argvs: Iterable[list[str]]) -> list[list[str]]:
    unique = {json.dumps(argv) for argv in argvs}
    return [json.loads(a) for a in sorted(unique)]


class AgentPolicySpec(BaseModel):
    """Declarative agent policy: what the host may do to this workload's guest.

    Field names follow the stack-config convention (camelCase in YAML, snake_case here).
    """

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True
    )

    preset: Literal["restrictive", "allow-all"] = "restrictive"
    allowed_images: list[str] = []
    """Images pinned by digest (`name@sha256:<64 hex>`). Empty: the workload component fills
    in the workload's own container images (see `with_workload_images`)."""
    allow_exec: bool = False
    """`kubectl exec`: code execution in the TEE, so off unless explicitly wanted."""
    exec_commands: list[list[str]] = []
    """With allow_exec: the exact argv that may be exec'd. Empty with allow_exec: any argv."""
    allow_logs: bool = False
    """`kubectl logs` (ReadStreamRequest): off because logs can carry secrets out."""
    allow_copy_file: bool = True
    """CopyFileRequest into the shared containers dir: needed for ConfigMaps/Secrets/hosts
    under shared_fs=none; content is host data the pod spec already exposes to the host."""
    pin_commands: bool = True
    """Restrictive: the workload component fills `container_commands` from every container
    whose pod spec sets `command` (off: any argv for the allowed images)."""
    container_commands: dict[str, list[list[str]]] = {}
    """Image digest -> the exact argvs (OCI `Process.Args`) containers of that image may start
    with. Images not listed start with any argv (their ENTRYPOINT/CMD decide). Empty: filled
    in by the workload component when `pin_commands` is on."""
    overrides: dict[str, bool] = {}
    """Per request name: a constant that replaces every default and rule for it."""
    image_env: dict[str, str] = {"PATH": DEFAULT_PATH}
    """Env entries the image config sets (`docker inspect`'s Config.Env), pinned exactly:
    the pod spec does not say them, so list every one the image has (default: containerd's
    default PATH, which most images repeat)."""
    image_env_any: list[str] = []
    """Relaxation: env names that may carry any value (e.g. an image env that changes per
    build). Never a loader variable (`LD_*`)."""
    allow_service_links: bool = True
    """Relaxation: kubelet's service-link env (`<SVC>_SERVICE_HOST=<ip>`, ...) with any
    service name, address and port: the network is the host's anyway, but a workload that
    reads such a variable takes a host-chosen address from it."""
    allow_termination_messages: bool = True
    """GetDiagnosticDataRequest `termination_log`: the container's termination message (at
    most 4 KiB of the pinned /dev/termination-log) goes to the host for the pod status."""
    allow_devices: bool = False
    """Relaxation: devices in CreateContainerRequest (filled on for GPU workloads, whose
    devices the runtime passes through; their device list is not pinned)."""
    image_volumes: list[str] = []
    """Destinations of the VOLUMEs the image config declares (`docker inspect`'s
    Config.Volumes): containerd bind-mounts a read-write shared-dir entry there, which the
    policy then admits (and CopyFile below it)."""
    containers: dict[str, ContainerPin] = {}
    """Container name -> its pinned env and working dir. Empty: filled in by the workload
    component from the pod spec; a policy without a pod spec admits no pod-spec env."""

    @field_validator("image_env_any")
    @classmethod
    def _no_loader_env(cls, v: list[str]) -> list[str]:
        for name in v:
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
                raise ValueError(f"imageEnvAny: {name!r} is not an env variable name")
            if name.startswith("LD_"):
                raise ValueError(
                    f"imageEnvAny: {name} makes the dynamic loader run host-chosen code; pin "
                    "its exact value in imageEnv instead"
                )
        return sorted(set(v))

    @field_validator("image_volumes")
    @classmethod
    def _volume_paths(cls, v: list[str]) -> list[str]:
        taken = {m.destination for m in CONTAINER_MOUNTS}
        for path in v:
            if not re.fullmatch(r"(/[A-Za-z0-9_.][A-Za-z0-9_.-]*)+", path) or "/../" in path + "/":
                raise ValueError(f"imageVolumes: {path!r} must be an absolute path without '..'")
            if path in taken:
                raise ValueError(f"imageVolumes: {path} is a mount the runtime makes already")
        return sorted(set(v))

    @field_validator("image_env")
    @classmethod
    def _image_env_names(cls, v: dict[str, str]) -> dict[str, str]:
        for name in v:
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
                raise ValueError(f"imageEnv: {name!r} is not an env variable name")
        return dict(sorted(v.items()))

    @field_validator("allowed_images")
    @classmethod
    def _pinned(cls, v: list[str]) -> list[str]:
        for image in v:
            if not _rego_safe_pin(image) or len(image) > _MAX_LINE // 2:
                raise ValueError(
                    f"{image!r} is not pinned by digest: use name@sha256:<64 lowercase hex>"
                )
        return sorted(set(v))

    @field_validator("exec_commands")
    @classmethod
    def _argv(cls, v: list[list[str]]) -> list[list[str]]:
        return _unique_argvs(_checked_argv(argv, "an exec command") for argv in v)

    @field_validator("container_commands")
    @classmethod
    def _container_argv(cls, v: dict[str, list[list[str]]]) -> dict[str, list[list[str]]]:
        out: dict[str, list[list[str]]] = {}
        for image in sorted(v):
            if not _rego_safe_pin(image):
                raise ValueError(
                    f"container_commands key {image!r} is not pinned by digest: "
                    "use name@sha256:<64 lowercase hex>"
                )
            if not v[image]:
                raise ValueError(f"container_commands[{image!r}] lists no argv")
            what = f"a container command for {image}"
            out[image] = _unique_argvs(_checked_argv(argv, what) for argv in v[image])
        return out

    @field_validator("overrides")
    @classmethod
    def _known(cls, v: dict[str, bool]) -> dict[str, bool]:
        unknown = sorted(set(v) - set(AGENT_REQUESTS))
        if unknown:
            raise ValueError(
                f"unknown agent request(s) {unknown}; known: {', '.join(sorted(AGENT_REQUESTS))}"
            )
        return dict(sorted(v.items()))

    @model_validator(mode="after")
    def _consistent(self) -> AgentPolicySpec:
        if self.exec_commands and not self.allow_exec:
            raise ValueError("exec_commands are listed but allow_exec is false: set allow_exec")
        if self.preset == "allow-all" and (
            self.allowed_images or self.exec_commands or self.container_commands
        ):
            raise ValueError(
                "the allow-all preset ignores allowed_images, exec_commands and "
                "container_commands: use the restrictive preset, or remove them"
            )
        if self.allowed_images:
            stray = sorted(set(self.container_commands) - set(self.allowed_images))
            if stray:
                raise ValueError(
                    f"container_commands names images that are not in allowed_images: {stray}"
                )
        return self

    def with_workload_images(self, images: Iterable[str]) -> AgentPolicySpec:
        """This spec with `allowed_images` defaulted to the workload's own images.

        An explicit list wins (it may pin more than the pod spec shows, e.g. for upgrades).
        """
        if self.allowed_images or self.preset == "allow-all":
            return self
        data = self.model_dump()
        data["allowed_images"] = list(images)
        return AgentPolicySpec.model_validate(data)

    def with_container_commands(self, commands: Mapping[str, list[list[str]]]) -> AgentPolicySpec:
        """This spec with `container_commands` defaulted to the given pins.

        Only for the restrictive preset with `pin_commands` on, and never over an explicit map;
        pins for images outside an explicit `allowed_images` are dropped (such containers are
        refused by image already).
        """
        if self.container_commands or not self.pin_commands or self.preset == "allow-all":
            return self
        allowed = set(self.allowed_images)
        data = self.model_dump()
        data["container_commands"] = {
            image: list(argvs)
            for image, argvs in commands.items()
            if not allowed or image in allowed
        }
        return AgentPolicySpec.model_validate(data)

    def with_containers(self, pins: Mapping[str, ContainerPin], devices: bool) -> AgentPolicySpec:
        """This spec with `containers` defaulted to the pod spec's pins (never over an explicit
        map) and devices allowed when the pod needs them."""
        if self.preset == "allow-all":
            return self
        data = self.model_dump()
        if not self.containers:
            data["containers"] = {k: v.model_dump() for k, v in pins.items()}
        data["allow_devices"] = self.allow_devices or devices
        return AgentPolicySpec.model_validate(data)

    def relaxations(self) -> list[str]:
        """The options that open this policy beyond the closed default, for review (the
        workload shows them in its outputs, so `pulumi preview` lists them)."""
        if self.preset == "allow-all":
            return ["preset: allow-all"]
        out = [f"imageEnv: {k}={v}" for k, v in self.image_env.items()]
        out += [f"imageEnvAny: {name}" for name in self.image_env_any]
        out += [f"imageVolumes: {path}" for path in self.image_volumes]
        flags = {
            "allowServiceLinks": self.allow_service_links,
            "allowTerminationMessages": self.allow_termination_messages,
            "allowDevices": self.allow_devices,
            "allowCopyFile": self.allow_copy_file,
            "allowExec": self.allow_exec,
            "allowLogs": self.allow_logs,
            "pinCommands: false": not self.pin_commands,
        }
        out += [name for name, on in flags.items() if on]
        out += [f"overrides: {k}={str(v).lower()}" for k, v in self.overrides.items()]
        return out

    def decisions(self) -> dict[str, bool | str]:
        """Per request: True/False when constant, "rule" when a conditional rule decides.

        A readable summary for docs, stack outputs and the policy pack.
        """
        out: dict[str, bool | str] = {}
        for name in sorted(AGENT_REQUESTS):
            out[name] = _decision(self, name)
        return out


def _decision(spec: AgentPolicySpec, name: str) -> bool | str:
    if name in spec.overrides:
        return spec.overrides[name]
    if spec.preset == "allow-all":
        return True
    base = AGENT_REQUESTS[name]
    if name == "ReadStreamRequest":
        return spec.allow_logs
    if name in ("WriteStreamRequest", "CloseStdinRequest"):
        return spec.allow_exec
    if name == "ExecProcessRequest":
        if not spec.allow_exec:
            return False
        return "rule" if spec.exec_commands else True
    if name == "CopyFileRequest":
        return "rule" if spec.allow_copy_file else False
    if name == "GetDiagnosticDataRequest":
        return "rule" if spec.allow_termination_messages else False
    return "rule" if base.rule else base.allow


def _rego_str(value: str) -> str:
    """A Rego string literal (JSON string syntax, which Rego shares)."""
    return json.dumps(value, ensure_ascii=True)


def _rego_argv(argv: Iterable[str]) -> str:
    """A command line as a Rego array of strings, on one line."""
    return "[" + ", ".join(_rego_str(a) for a in argv) + "]"


def _rego_set(values: Iterable[str]) -> str:
    """A Rego set, one element per line: regorus releases cap policy lines (1024 chars in
    0.9.1), so long allow-lists must not share a line."""
    items = sorted(set(values))
    if not items:
        return "set()"
    return "{\n" + "".join(f"\t{_rego_str(v)},\n" for v in items) + "}"


_CREATE_CONTAINER_RULES = """\
# CreateContainerRequest: the sandbox gets the guest's built-in pause bundle (its guest-pull
# source is the runtime's "pause" sentinel); any other container must name an allowed image,
# pull exactly that image onto its own rootfs, and be what the pod spec says it is
# (policies/agent_container.py: env, mounts, capabilities, ...). OCI hooks would run host
# binaries in the guest; any other storage could replace or add to what the image holds.
CreateContainerRequest if {
	input.OCI.Annotations["io.kubernetes.cri.container-type"] == "sandbox"
	input.OCI.Annotations["io.katacontainers.pkg.oci.container_type"] == "pod_sandbox"
	only_guest_pull(@PAUSE@)
	input.OCI.Process.Args == ["/pause"]
	env_closed([])
	cwd_closed("/")
	input.OCI.Root.Readonly == true
	mounts_closed(sandbox_mounts, [])
	oci_closed
}

CreateContainerRequest if {
	input.OCI.Annotations["io.kubernetes.cri.container-type"] == "container"
	input.OCI.Annotations["io.katacontainers.pkg.oci.container_type"] == "pod_container"
	container_image in allowed_images
	pin := container_pin
	container_storages(container_image, pin)
	container_args_allowed
	env_closed(pin.env)
	sealed_env_closed(pin.sealed_env)
	cwd_closed(pin.working_dir)
	user_closed(pin)
	privileges_closed(pin)
	service_account_closed(pin)
	mounts_closed(container_mounts, pin.volume_mounts)
	oci_closed
}

# An image whose containers set `command` in the pod spec starts only with that argv; other
# images start with whatever their ENTRYPOINT and CMD say.
container_args_allowed if {
	not pinned_container_args[container_image]
}

container_args_allowed if {
	input.OCI.Process.Args in pinned_container_args[container_image]
}

container_image := input.OCI.Annotations["io.kubernetes.cri.image-name"]

# Exactly one storage: the guest pull of `source` onto this container's rootfs.
only_guest_pull(source) if {
	count(input.storages) == 1
	some s in input.storages
	s.driver == "image_guest_pull"
	s.source == source
	s.mount_point == rootfs_path
}

# A container's storages: exactly one guest pull of its image onto its rootfs, the guest
# tmpfs of each memory emptyDir (by volume name) its pod spec mounts (kata runtime-rs
# `volume/ephemeral_volume.rs`: driver "ephemeral", source and fstype "tmpfs", mount point
# /run/kata-containers/sandbox/ephemeral/<name>, options only `fsgid=<gid>`), and at most one
# guest-encrypted block storage per disk-emptyDir mount (runtime-rs
# `volume/block_emptydir_volume.rs`, genpolicy rules.rego allow_storage with blk/scsi and
# allow_mount_point_by_device_id): a virtio-blk PCI path or SCSI address, LUKS2 with an
# ephemeral in-guest key over a filesystem the guest creates, mounted at
# /run/kata-containers/sandbox/storage/<base64url of the source>, group as the pod's fsGroup.
container_storages(source, pin) if {
	count([s | some s in input.storages; s.driver == "image_guest_pull"]) == 1
	count([s | some s in input.storages; s.driver in {"blk", "scsi"}]) <= pin.block_volumes
	every s in input.storages {
		storage_listed(s, source, pin)
	}
}

storage_listed(s, source, _) if {
	s.driver == "image_guest_pull"
	s.source == source
	s.mount_point == rootfs_path
}

storage_listed(s, _, pin) if {
	s.driver == "ephemeral"
	s.source == "tmpfs"
	s.fstype == "tmpfs"
	count(s.driver_options) == 0
	s.fs_group == null
	some name in pin.ephemeral_volumes
	s.mount_point == concat("/", ["/run/kata-containers/sandbox/ephemeral", name])
	every o in s.options {
		regex.match("^fsgid=[0-9]+$", o)
	}
}

storage_listed(s, _, pin) if {
	block_device(s)
	s.driver_options == @BLOCK_OPTIONS@
	s.fstype == "ext4"
	count(s.options) == 0
	s.shared == true
	s.mount_point == concat("/", [@STORAGE_DIR@, base64url.encode(s.source)])
	fs_group_pinned(s.fs_group, pin.fs_group)
}

block_device(s) if {
	s.driver == "blk"
	regex.match("^[0-9a-f]{2}(/[0-9a-f]{2})?$", s.source)
}

block_device(s) if {
	s.driver == "scsi"
	regex.match("^[0-9]+:[0-9]+$", s.source)
}

fs_group_pinned(have, want) if {
	want == null
	have == null
}

fs_group_pinned(have, want) if {
	want != null
	have.group_id == want
}

no_oci_hooks if {
	input.OCI.Hooks == null
}
"""

_CREATE_CONTAINER_RULES = (
    _CREATE_CONTAINER_RULES.replace("@PAUSE@", json.dumps(PAUSE_SOURCE))
    .replace("@BLOCK_OPTIONS@", json.dumps(list(BLOCK_EMPTY_DIR_DRIVER_OPTIONS)))
    .replace("@STORAGE_DIR@", json.dumps(STORAGE_DIR))
)

_CREATE_SANDBOX_RULES = """\
# CreateSandboxRequest: guest hooks and kernel modules are host-chosen code in the guest; a
# shared PID namespace would let one container see and signal another's processes. The only
# storage is the sandbox's /dev/shm (genpolicy-settings.json `sandbox.storages`).
CreateSandboxRequest if {
	input.guest_hook_path == ""
	count(input.kernel_modules) == 0
	input.sandbox_pidns == false
	every s in input.storages {
		sandbox_shm(s)
	}
}

sandbox_shm(s) if {
	s.driver == "ephemeral"
	s.source == "shm"
	s.fstype == "tmpfs"
	s.mount_point == "/run/kata-containers/sandbox/shm"
	every o in s.options {
		shm_option(o)
	}
}

shm_option(o) if {
	o in ["noexec", "nosuid", "nodev", "mode=1777"]
}

shm_option(o) if {
	regex.match("^size=[0-9]+$", o)
}
"""

_COPY_FILE_RULE = """\
# CopyFileRequest (as the agent presents it: path, file_type, symlink_target, file_mode):
# only into the
# shared-dir entries this pod's mounts use, never into a rootfs, never a special file, and a
# symlink only below an entry, relative and without '..' (genpolicy rules.rego
# allow_copy_file).
CopyFileRequest if {
	input.file_type == "Directory"
	copy_path_allowed("")
}

# A regular file without execute bits: a host-written file the container could be started
# with (an argv naming /etc/hosts, or a file below the token mount, which is not noexec)
# must not be executable. Kubelet's files and the token are 0644.
CopyFileRequest if {
	input.file_type == "Regular"
	bits.and(input.file_mode, 73) == 0
	copy_path_allowed("")
}

CopyFileRequest if {
	input.file_type == "Symlink"
	copy_path_allowed("/.+")
	no_dotdot(input.symlink_target)
	not startswith(input.symlink_target, "/")
}

copy_path_allowed(suffix) if {
	no_dotdot(input.path)
	regex.match(concat("", [copy_prefix, "(/.*)?$"]), input.path)
	regex.match(concat("", [copy_prefix, suffix]), input.path)
}

no_dotdot(path) if {
	not regex.match("(^|/)\\\\.\\\\.($|/)", path)
}
"""


def _copy_prefix(image_volumes: Iterable[str], volume_entries: Iterable[str] = ()) -> str:
    """The shared-dir entries CopyFile may write below: kubelet's files, the token, the
    image VOLUMEs the spec lists and the pod spec's configMap/secret/projected mounts."""
    extra = sorted({*(image_volume(d).shared or "" for d in image_volumes), *volume_entries})
    names = [*SHARED_FILES, *(n for n in extra if n not in SHARED_FILES)]
    alternatives = "|".join(n.replace(".", "\\.") for n in names)
    regex = f"^{CPATH}/(watchable/)?[a-z0-9]{{64}}-[a-z0-9]{{16}}-({alternatives})"
    return f"copy_prefix := {_rego_str(regex)}\n"


_DIAGNOSTIC_RULE = """\
# GetDiagnosticDataRequest: only the termination message (the agent's one log_type).
GetDiagnosticDataRequest if {
	input.log_type == "termination_log"
}
"""

_EXEC_RULE = """\
# ExecProcessRequest: only these exact command lines.
ExecProcessRequest if {
	input.process.Args in allowed_exec_commands
}
"""


def render_agent_policy(spec: AgentPolicySpec) -> str:
    """The policy text for `policy.rego` in init-data. Deterministic for a given spec.

    Uses only core Rego (`in`, `every`, comprehensions, `count`, `concat`, `split`,
    `startswith`), all of which the genpolicy rules already rely on in regorus, and keeps
    every line under regorus's length cap. (During development the output was evaluated with
    regorus 0.9.1, built with the Kata agent's features, and agreed with OPA on every case;
    the container-argv rules were checked the same way, on the nine cases of the tests.)
    """
    lines = [
        "# Kata agent policy generated by coco (policies/agent.py); regenerate, do not edit.",
        f"# preset: {spec.preset}",
        f"package {PACKAGE}",
        "",
        "import rego.v1",
        "",
        "# Never turn policy failures into allows.",
        "default AllowRequestsFailingPolicy := false",
        "",
    ]
    rules: list[str] = []
    names_with_rules: set[str] = set()
    for name in sorted(AGENT_REQUESTS):
        decision = _decision(spec, name)
        info = AGENT_REQUESTS[name]
        if name in spec.overrides:
            comment = "override from the stack configuration"
        elif spec.preset == "allow-all":
            comment = "allow-all preset (kata src/kata-opa/allow-all.rego)"
        else:
            comment = info.reason
        allow = decision is True
        lines.append(f"# {comment}")
        lines.append(f"default {name} := {'true' if allow else 'false'}")
        if decision == "rule":
            names_with_rules.add(name)
    if "CreateContainerRequest" in names_with_rules:
        rules.append(f"allowed_images := {_rego_set(_all_image_spellings(spec.allowed_images))}\n")
        rules.append(_CREATE_CONTAINER_RULES)
        rules.append(_pinned_container_args(spec.container_commands))
        rules.append(
            render_container_rules(
                spec.containers,
                spec.image_env,
                spec.image_env_any,
                spec.allow_service_links,
                spec.allow_devices,
                spec.image_volumes,
            )
        )
    if "CreateSandboxRequest" in names_with_rules:
        rules.append(_CREATE_SANDBOX_RULES)
    if "CopyFileRequest" in names_with_rules:
        rules.append(_COPY_FILE_RULE)
        entries = [
            m.shared for pin in spec.containers.values() for m in pin.volume_mounts if m.shared
        ]
        rules.append(_copy_prefix(spec.image_volumes, entries))
    if "GetDiagnosticDataRequest" in names_with_rules:
        rules.append(_DIAGNOSTIC_RULE)
    if "ExecProcessRequest" in names_with_rules:
        commands = ",\n".join("\t" + _rego_argv(argv) for argv in spec.exec_commands)
        rules.append(f"allowed_exec_commands := [\n{commands},\n]\n")
        rules.append(_EXEC_RULE)
    text = "\n".join(lines) + "\n"
    if rules:
        text += "\n" + "\n".join(rules)
    return text


def _pinned_container_args(commands: Mapping[str, list[list[str]]]) -> str:
    """`pinned_container_args`: every spelling of each pinned image -> its argvs, one per line."""
    by_spelling: dict[str, list[list[str]]] = {}
    for image, argvs in commands.items():
        for spelling in image_spellings(image):
            by_spelling[spelling] = _unique_argvs([*by_spelling.get(spelling, []), *argvs])
    if not by_spelling:
        return "pinned_container_args := {}\n"
    body = ""
    for spelling in sorted(by_spelling):
        body += f"\t{_rego_str(spelling)}: [\n"
        for argv in by_spelling[spelling]:
            body += f"\t\t{_rego_argv(argv)},\n"
        body += "\t],\n"
    return "pinned_container_args := {\n" + body + "}\n"


def _all_image_spellings(images: Iterable[str]) -> list[str]:
    out: set[str] = set()
    for image in images:
        out.update(image_spellings(image))
    return sorted(out)
