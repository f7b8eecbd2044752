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
- Request names: kata-containers `src/kata-opa/allow-all.rego` (incl. the newer
  `ReadContainerTerminationMessage`) and genpolicy `src/tools/genpolicy/rules.rego` (the
  newer `AddSwapPathRequest`, `GetDiagnosticDataRequest`, `GetIPTablesRequest`,
  `SetIPTablesRequest`, `ResizeVolumeRequest`, `VolumeStatsRequest`, `MemAgentCompactConfig`,
  `MemAgentMemcgConfig`, and `AllowRequestsFailingPolicy`).
- Request inputs: genpolicy `rules.rego` reads `input.OCI.Annotations[...]`,
  `input.OCI.Process.Args`, `input.storages[_].driver/source`, `input.process.Args` (exec),
  `input.path` (copy file), `input.guest_hook_path` and `input.kernel_modules` (sandbox).
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

What `restrictive` pins: which images run (by digest) and, for containers whose pod spec
sets `command`, their exact argv. It does not pin argv that comes from the image itself, nor
the environment or mounts; genpolicy-style per-pod rules would be needed for those.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Literal

from pydantic import BaseModel, ConfigDict, field_validator, model_validator
from pydantic.alias_generators import to_camel

PACKAGE = "agent_policy"

_DIGEST_REF = re.compile(r"\A[^\s@\"\\]+@sha256:[0-9a-f]{64}\Z")
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
        rule=f"path under {SHARED_CONTAINERS_DIR} with no '..' segment",
        spec_field="allow_copy_file",
    ),
    "CreateContainerRequest": _d(
        False,
        "the host chooses what runs: only the pause sandbox and allow-listed image digests",
        rule="sandbox with the built-in pause image, or a container whose image name and every "
        "guest-pull source is an allowed digest, started with its pinned argv if it has one; "
        "no OCI hooks, no rootfs shadowing",
        spec_field="allowed_images",
    ),
    "CreateSandboxRequest": _d(
        False,
        "guest hooks and kernel modules would run host-chosen code in the guest",
        rule="no guest_hook_path and no kernel_modules",
    ),
    "DestroySandboxRequest": _d(True, "teardown; the host can stop the VM anyway"),
    "ExecProcessRequest": _d(
        False,
        "runs a host-chosen command inside a container: code execution in the TEE",
        rule="argv exactly one of exec_commands (any argv when none are listed)",
        spec_field="allow_exec",
    ),
    "GetDiagnosticDataRequest": _d(
        False, "diagnostic dumps (stacks, properties) expose guest internals to the host"
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
    "PullImageRequest": _d(
        False,
        "pulls an image into the guest; guest pull normally goes through container storages",
        rule="image is an allowed digest",
        spec_field="allowed_images",
    ),
    "ReadContainerTerminationMessage": _d(
        False, "reads a guest file back to the host (the file path is host-influenced)"
    ),
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
    "StartTracingRequest": _d(False, "tracing exports guest internals"),
    "StatsContainerRequest": _d(True, "cgroup resource statistics kubelet needs"),
    "StopTracingRequest": _d(False, "pairs with StartTracingRequest"),
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
                    "argv kubelet starts it with cannot be known here"
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

    @field_validator("allowed_images")
    @classmethod
    def _pinned(cls, v: list[str]) -> list[str]:
        for image in v:
            if not _DIGEST_REF.match(image) or len(image) > _MAX_LINE // 2:
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
            if not _DIGEST_REF.match(image):
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
# source is the runtime's "pause" sentinel); any other container must name an allowed image
# and pull only allowed images. OCI hooks would run host binaries in the guest, and a
# non-guest-pull storage mounted on the rootfs would replace the pulled image.
CreateContainerRequest if {
	input.OCI.Annotations["io.kubernetes.cri.container-type"] == "sandbox"
	count(guest_pull_sources) == 1
	every source in guest_pull_sources {
		source == @PAUSE@
	}
	no_oci_hooks
	not rootfs_shadowed
}

CreateContainerRequest if {
	input.OCI.Annotations["io.kubernetes.cri.container-type"] == "container"
	input.OCI.Annotations["io.kubernetes.cri.image-name"] in allowed_images
	count(guest_pull_sources) > 0
	every source in guest_pull_sources {
		source in allowed_images
	}
	container_args_allowed
	no_oci_hooks
	not rootfs_shadowed
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

guest_pull_sources := [s.source | some s in input.storages; s.driver == "image_guest_pull"]

no_oci_hooks if {
	input.OCI.Hooks == null
}

no_oci_hooks if {
	not input.OCI.Hooks
}

rootfs_paths contains input.OCI.Root.Path

rootfs_paths contains concat("/", ["/run/kata-containers", input.container_id, "rootfs"])

rootfs_shadowed if {
	some s in input.storages
	s.driver != "image_guest_pull"
	s.mount_point in rootfs_paths
}
"""

_CREATE_CONTAINER_RULES = _CREATE_CONTAINER_RULES.replace("@PAUSE@", json.dumps(PAUSE_SOURCE))

_PULL_IMAGE_RULE = """\
PullImageRequest if {
	input.image in allowed_images
}
"""

_CREATE_SANDBOX_RULES = """\
# CreateSandboxRequest: guest hooks and kernel modules are host-chosen code in the guest.
CreateSandboxRequest if {
	not has_guest_hooks
	not has_kernel_modules
}

has_guest_hooks if {
	input.guest_hook_path != ""
}

has_kernel_modules if {
	count(input.kernel_modules) > 0
}
"""

_COPY_FILE_RULE = """\
# CopyFileRequest: only into the per-container shared directory, never out of it.
CopyFileRequest if {
	startswith(input.path, @SHARED@)
	every part in split(input.path, "/") {
		part != ".."
	}
}
""".replace("@SHARED@", json.dumps(SHARED_CONTAINERS_DIR))

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
    if "CreateContainerRequest" in names_with_rules or "PullImageRequest" in names_with_rules:
        rules.append(f"allowed_images := {_rego_set(_all_image_spellings(spec.allowed_images))}\n")
    if "CreateContainerRequest" in names_with_rules:
        rules.append(_CREATE_CONTAINER_RULES)
        rules.append(_pinned_container_args(spec.container_commands))
    if "PullImageRequest" in names_with_rules:
        rules.append(_PULL_IMAGE_RULE)
    if "CreateSandboxRequest" in names_with_rules:
        rules.append(_CREATE_SANDBOX_RULES)
    if "CopyFileRequest" in names_with_rules:
        rules.append(_COPY_FILE_RULE)
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
        for spelling in docker_hub_aliases(image):
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
        out.update(docker_hub_aliases(image))
    return sorted(out)
