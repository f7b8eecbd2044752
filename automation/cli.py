"""`python -m automation <command>`: the embedding API as a command line.

    validate  --stack-file F | --stack NAME      settings and secrets provider, no engine: "ok"
                                                 or every problem
    preview   [--stack NAME] [--policy-pack DIR]  what up would change
    up        [--stack NAME] [--policy-pack DIR]  deploy
    refresh   [--stack NAME]                      reconcile state with reality
    destroy   [--stack NAME] [--remove]           delete the stack's resources
    outputs   [--stack NAME] [--show-secrets]     stack outputs as JSON (secrets masked)
    cancel    [--stack NAME] [--force]            stop what holds the stack's lock (a running
                                                 engine here, or a crashed one) and clear
                                                 its pending operations
    render    --out DIR [--stack NAME]            manifests + policies + init-data into DIR
    fleet     preview|up|refresh STACK... [--parallel K] [--from FILE]
                                                 many stacks at once, a summary table; exit 1
                                                 if any failed (automation/fleet_cli.py)
    policy-config [--stack NAME] [--out FILE]     the stack's --policy-pack-config for policies/pack
    reference-values [--tee T] FILE               the referenceValues block that affirms FILE's
                                                 claims (an EAR token, its body, or TEE claims)
    explain-attestation FILE [--stack-file F]     per trust-vector component, the claim and
                                                 reference value that decided it

Every non-dev stack runs through the policy gate: `preview` and `up` add policies/pack with
the stack's levels (mandatory in production, advisory elsewhere), and `up` previews first
and stops on a mandatory violation. Organisation exceptions: $COCO_POLICY_EXCEPTIONS.

The stack's settings come from `--stack-file` (default `stacks/Pulumi.<stack>.yaml`).
Secret values: secure values already in the stack file, `--secret KEY=VALUE`, or
`--secret-env KEY=ENVVAR` (keeps the value out of shell history and process lists).

Ctrl-C (or SIGTERM) cancels the engine as `pulumi` does (operations in flight finish, the state is
saved, the stack unlocked): exit 130 with a one-line message. After a crash (`kill -9`) the
next command recovers the stack by itself (docs/operations.md).

Exit codes: 0 ok; 1 the engine ran and failed (or `validate` found problems); 2 bad input:
invalid settings, unreadable stack file, bad arguments, missing passphrase; 130 interrupted.
`fleet`: 1 when any stack failed or was refused (each reported in the table, the others run);
2 when the selectors match no stack.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

from automation import fleet_cli
from automation.attestation_tools import ClaimsError, explain, reference_values_yaml, tee_claims
from automation.engine import EngineInterrupted
from automation.errors import (
    CocoAutomationError,
    CocoDeploymentError,
    EngineNotFoundError,
    SecretsProviderError,
    StackFileError,
)
from automation.operations import (
    cancel,
    destroy,
    outputs,
    policy_config,
    preview,
    refresh,
    render,
    up,
)
from automation.results import OperationResult
from automation.secret_options import add_secret_options
from automation.spec import (
    Backend,
    StackSpec,
    check_secrets_provider,
    load_stack_file,
    stack_file_path,
)
from components.settings import SettingsError, parse, strip_namespace
from policies.pack.production import PolicyExceptionsError

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130


class BadInput(Exception):
    """A command-line argument that cannot be used (exit code 2)."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m automation",
        description="Preview, deploy, refresh, destroy and render coco stacks.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help_text: str, *, settings: bool = True) -> argparse.ArgumentParser:
        p = commands.add_parser(name, help=help_text, description=help_text)
        p.add_argument(
            "--stack",
            help="stack name (default: the <name> of --stack-file Pulumi.<name>.yaml, else dev)",
        )
        if settings:
            p.add_argument(
                "--stack-file",
                type=Path,
                help="stack file with the coco: settings (default: stacks/Pulumi.<stack>.yaml)",
            )
            add_secret_options(p, "a secret config value, e.g. demoKey=... (repeatable)")
        return p

    def engine(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--backend-url",
            help="state backend (default: $PULUMI_BACKEND_URL, else file://<repo>/.state)",
        )

    def packs(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--policy-pack",
            action="append",
            default=[],
            type=Path,
            metavar="DIR",
            help="run a policy pack, e.g. policies/pack (repeatable)",
        )

    command("validate", "validate a stack's settings without running the engine")
    for name, text in (
        ("preview", "show what `up` would change"),
        ("up", "deploy the stack"),
        ("refresh", "reconcile the stack's state with what exists"),
    ):
        p = command(name, text)
        engine(p)
        if name != "refresh":
            packs(p)
    p = command("destroy", "delete every resource of the stack", settings=False)
    engine(p)
    p.add_argument("--remove", action="store_true", help="also remove the stack and its workspace")
    p = command(
        "cancel",
        "stop what holds the stack's lock (a running engine on this host, or a crashed one) "
        "and clear its pending operations",
        settings=False,
    )
    engine(p)
    p.add_argument(
        "--force",
        action="store_true",
        help="also remove a lock held from another host (only when that engine is known gone)",
    )
    p = command("outputs", "print the stack outputs as JSON", settings=False)
    engine(p)
    p.add_argument("--show-secrets", action="store_true", help="print secret outputs in clear")
    p = command(
        "policy-config",
        "write the stack's --policy-pack-config for policies/pack and print its environment",
    )
    p.add_argument("--out", type=Path, metavar="FILE", help="write the JSON here (default: stdout)")
    p.add_argument(
        "--policy-exceptions",
        type=Path,
        metavar="FILE",
        help="organisation's exceptions {policy: {enforcementLevel, reason}} "
        "(default: $COCO_POLICY_EXCEPTIONS)",
    )
    p = command(
        "reference-values",
        "print the coco:trustee.referenceValues block that affirms a token's or claims' TEE",
        settings=False,
    )
    p.add_argument("--tee", help="the TEE whose claims to read (default: the one in FILE)")
    p.add_argument("file", type=Path, metavar="FILE", help="EAR token, its body, or TEE claims")
    p = command(
        "explain-attestation",
        "say which claim and reference value decided each trust-vector component",
        settings=False,
    )
    p.add_argument("file", type=Path, metavar="FILE", help="EAR token, its body, or TEE claims")
    p.add_argument(
        "--stack-file",
        type=Path,
        help="compare with this stack's reference values (default: --stack's stack file, if given)",
    )
    p = command("render", "render manifests, policies and init-data into a folder (GitOps)")
    p.add_argument("--out", type=Path, required=True, metavar="DIR", help="output folder")
    packs(p)
    fleet_cli.add_parser(commands)
    return parser


def _secrets(args: argparse.Namespace, environ: dict[str, str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in args.secret:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise BadInput(f"--secret {item!r}: use KEY=VALUE")
        out[key] = value
    for item in args.secret_env:
        key, sep, var = item.partition("=")
        if not sep or not key or not var:
            raise BadInput(f"--secret-env {item!r}: use KEY=ENVVAR")
        if var not in environ:
            raise BadInput(f"--secret-env {item!r}: environment variable {var} is not set")
        out[key] = environ[var]
    return out


def _spec(args: argparse.Namespace, environ: dict[str, str]) -> StackSpec:
    if args.stack_file is None:
        return StackSpec.from_file(
            stack_file_path(_stack(args)), name=_stack(args), secrets=_secrets(args, environ)
        )
    return StackSpec.from_file(args.stack_file, name=args.stack, secrets=_secrets(args, environ))


def _stack(args: argparse.Namespace) -> str:
    return str(args.stack or "dev")


def _printer(stream: object) -> Callable[[str], None]:
    lock = threading.Lock()

    def emit(line: str) -> None:
        with lock:
            print(line, file=stream, flush=True)  # type: ignore[call-overload]

    return emit


def _report(result: OperationResult, err: Callable[[str], None]) -> None:
    for violation in result.violations:
        err(f"policy: {violation}")
    err(result.summary())


def run(argv: Sequence[str] | None = None, environ: dict[str, str] | None = None) -> int:
    """The CLI, returning its exit code (`main` exits with it)."""
    args = _parser().parse_args(argv)
    env = dict(os.environ if environ is None else environ)
    out = _printer(sys.stdout)
    err = _printer(sys.stderr)
    backend = Backend(url=getattr(args, "backend_url", None))
    try:
        if args.command == "validate":
            try:
                # The environment given to `run` decides the passphrase, as it would for the engine.
                check_secrets_provider(_spec(args, env), Backend(env=env))
            except (SettingsError, SecretsProviderError) as exc:
                err(str(exc))
                return EXIT_FAILED
            out("ok")
            return EXIT_OK
        if args.command == "policy-config":
            return _policy_config(args, out)
        if args.command in ("reference-values", "explain-attestation"):
            return _attestation_tool(args, out)
        if args.command == "outputs":
            values = outputs(_stack(args), backend=backend)
            out(values.to_json(show_secrets=args.show_secrets))
            return EXIT_OK
        if args.command == "cancel":
            out(cancel(_stack(args), backend=backend, on_output=err, force=args.force))
            return EXIT_OK
        if args.command == "fleet":
            return fleet_cli.run_command(args, _secrets(args, env), out, err)
        if args.command == "destroy":
            _report(destroy(_stack(args), backend=backend, on_output=out, remove=args.remove), err)
            return EXIT_OK
        spec = _spec(args, env)
        if args.command == "render":
            result = render(spec, args.out, on_output=out, policy_packs=args.policy_pack)
            _report(result, err)
            err(f"rendered into {args.out.resolve()}")
            return EXIT_OK
        packs = getattr(args, "policy_pack", [])
        if args.command == "preview":
            _report(preview(spec, backend=backend, on_output=out, policy_packs=packs), err)
        elif args.command == "up":
            _report(up(spec, backend=backend, on_output=out, policy_packs=packs), err)
        elif args.command == "refresh":
            _report(refresh(spec, backend=backend, on_output=out), err)
        return EXIT_OK
    except (
        SettingsError,
        StackFileError,
        SecretsProviderError,
        PolicyExceptionsError,
        BadInput,
        ClaimsError,
    ) as exc:
        err(f"error: {exc}")
        return EXIT_BAD_INPUT
    except EngineInterrupted as exc:
        err(f"cancelled: {exc}")
        return EXIT_INTERRUPTED
    except KeyboardInterrupt:  # outside an engine run: nothing was started or is left over
        err("cancelled: interrupted before the engine started; nothing was changed")
        return EXIT_INTERRUPTED
    except (CocoDeploymentError, EngineNotFoundError, CocoAutomationError) as exc:
        err(f"error: {exc}")
        return EXIT_FAILED


def _policy_config(args: argparse.Namespace, out: Callable[[str], None]) -> int:
    """The stack's policy-pack config: settings only (secret values are not needed for it)."""
    name = args.stack if args.stack_file is not None else _stack(args)
    path = args.stack_file or stack_file_path(name)
    sf = load_stack_file(path, name)
    settings = parse(strip_namespace(sf.config), stack=sf.name)
    text = json.dumps(policy_config(settings, args.policy_exceptions), indent=2) + "\n"
    if args.out is None:
        out(text.rstrip("\n"))
    else:
        args.out.write_text(text, encoding="utf-8")
        out(settings.environment)  # for scripts: scripts/up.sh gates every non-dev stack
    return EXIT_OK


def _attestation_tool(args: argparse.Namespace, out: Callable[[str], None]) -> int:
    """`reference-values` / `explain-attestation` (automation/attestation_tools.py)."""
    try:
        text = args.file.read_text(encoding="utf-8")
    except OSError as exc:
        raise BadInput(f"{args.file}: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise BadInput(f"{args.file}: not UTF-8 (byte {exc.start}): give the JSON file") from None
    if args.command == "reference-values":
        tee, claims = tee_claims(text, args.tee)
        out(reference_values_yaml(tee, claims).rstrip("\n"))
        return EXIT_OK
    values = None
    if args.stack_file is not None or args.stack is not None:
        name = args.stack if args.stack_file is not None else _stack(args)
        sf = load_stack_file(args.stack_file or stack_file_path(name), name)
        values = parse(strip_namespace(sf.config), stack=sf.name).trustee.reference_values
    for line in explain(text, values):
        out(line)
    return EXIT_OK


def _terminate_as_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main() -> None:
    # SIGTERM (a CI job cancelled, `systemctl stop`, `timeout`) cancels the engine as ^C
    # does, instead of killing us under it (automation/engine.py).
    signal.signal(signal.SIGTERM, _terminate_as_interrupt)
    raise SystemExit(run())
