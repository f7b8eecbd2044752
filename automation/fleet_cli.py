"""`python -m automation fleet OPERATION STACK...`: preview, up or refresh many stacks at once.

    python -m automation fleet up 'prod-*' --parallel 4 --secret-env dbPassword=DB_PW
    python -m automation fleet preview --from fleet.txt --stacks-dir fleet/ --log-dir logs/
    python -m automation fleet refresh eu-1 eu-2 --json results.json

Stacks are chosen by name, glob or path, or listed in a file (automation/fleet_stacks.py).
Progress goes to stderr, one line per start and finish (`--verbose` adds every engine line,
prefixed with its stack; `--log-dir` writes each stack's engine output to `<stack>.log`);
the summary table goes to stdout. A stack whose file or settings are invalid is refused with
its keyed error and the others go on.

Exit codes: 0 every stack ok; 1 any stack failed or was refused; 2 bad command line (no
stack matched, bad arguments, missing passphrase); 130 interrupted (every running engine
cancelled cleanly, queued stacks never started).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import threading
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from automation.fleet import FLEET_OPERATIONS, FleetResult, run_fleet
from automation.fleet_report import Progress, table
from automation.fleet_stacks import load_specs, select_stack_files, stack_name
from automation.secret_options import add_secret_options
from automation.spec import STACKS_DIR, Backend

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_INTERRUPTED = 130


def add_parser(commands: Any) -> argparse.ArgumentParser:
    """The `fleet` subcommand on the CLI's subparsers."""
    text = "preview, up or refresh many stacks, a bounded number at a time"
    p: argparse.ArgumentParser = commands.add_parser("fleet", help=text, description=text)
    p.add_argument("operation", choices=FLEET_OPERATIONS, help="what to run on every stack")
    p.add_argument(
        "stacks",
        nargs="*",
        metavar="STACK",
        help="a stack name (stacks/Pulumi.<name>.yaml), a name glob ('prod-*'), or a stack "
        "file path or path glob",
    )
    p.add_argument(
        "--from",
        dest="list_files",
        action="append",
        default=[],
        type=Path,
        metavar="FILE",
        help="a file listing stacks, one name, glob or path a line (repeatable)",
    )
    p.add_argument(
        "--stacks-dir",
        type=Path,
        default=STACKS_DIR,
        metavar="DIR",
        help="where stack names are looked up (default: the repo's stacks/)",
    )
    p.add_argument(
        "--parallel",
        type=_positive,
        default=4,
        metavar="K",
        help="at most K engines at once (default 4; 1 runs the stacks one after another)",
    )
    add_secret_options(
        p, "a secret config value, given to every stack that references KEY (repeatable)"
    )
    p.add_argument(
        "--backend-url",
        help="state backend (default: $PULUMI_BACKEND_URL, else file://<repo>/.state)",
    )
    p.add_argument(
        "--policy-pack",
        action="append",
        default=[],
        type=Path,
        metavar="DIR",
        help="run a policy pack on preview and up, e.g. policies/pack (repeatable)",
    )
    p.add_argument("--verbose", action="store_true", help="also print every engine line")
    p.add_argument("--log-dir", type=Path, metavar="DIR", help="each stack's engine output")
    p.add_argument("--json", type=Path, metavar="FILE", help="also write the results as JSON")
    return p


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: give a whole number of engines, at least 1")
    return value


class _Logs:
    """Per-stack log files, opened on a stack's first line; engine lines come from threads."""

    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self.files: dict[str, IO[str]] = {}
        self.lock = threading.Lock()

    def write(self, stack: str, line: str) -> None:
        with self.lock:
            f = self.files.get(stack)
            if f is None:
                f = self.files[stack] = open(  # noqa: SIM115 - closed in close()
                    self.directory / f"{stack}.log", "w", encoding="utf-8"
                )
            f.write(line + "\n")

    def close(self) -> None:
        with self.lock:
            for f in self.files.values():
                f.close()


def run_command(
    args: argparse.Namespace,
    secrets: dict[str, str],
    out: Callable[[str], None],
    err: Callable[[str], None],
) -> int:
    """The `fleet` command; selection errors (`StackSelectionError`) are raised to the CLI."""
    files = select_stack_files(args.stacks, args.list_files, args.stacks_dir)
    specs, refused = load_specs(files, secrets)
    progress = Progress(args.operation)
    logs = _Logs(args.log_dir) if args.log_dir else None

    def on_output(stack: str, line: str) -> None:
        if logs is not None:
            logs.write(stack, line)
        if args.verbose:
            err(f"[{stack}] {line}")

    try:
        result = run_fleet(
            specs,
            args.operation,
            parallel=args.parallel,
            backend=Backend(url=args.backend_url),
            on_output=on_output if (logs is not None or args.verbose) else None,
            on_progress=lambda event: err(progress.line(event)),
            policy_packs=args.policy_pack,
            refused=refused,
        )
    finally:
        if logs is not None:
            logs.close()
    # Rows in the order the stacks were selected (refused ones where they were named).
    order = [stack_name(f) for f in files]
    result = dataclasses.replace(result, outcomes={n: result.outcomes[n] for n in order})
    out(table(result))
    if args.json:
        args.json.write_text(json.dumps(result.to_dict(), indent=2) + "\n", encoding="utf-8")
    return exit_code(result)


def exit_code(result: FleetResult) -> int:
    if result.interrupted:
        return EXIT_INTERRUPTED
    return EXIT_OK if result.ok else EXIT_FAILED
