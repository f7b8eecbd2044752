"""The `--secret` / `--secret-env` options every stack command takes, defined once.

Secret config values reach a stack only from the command line or the environment, never from
a file in the repository: `--secret KEY=VALUE` (visible in the process list, so for tests and
throwaway values) or `--secret-env KEY=ENVVAR` (read from the environment). The command line
(`automation/cli.py`) and the fleet command (`automation/fleet_cli.py`) parse them the same
way, so they are declared here.
"""

from __future__ import annotations

import argparse


def add_secret_options(parser: argparse.ArgumentParser, secret_help: str) -> None:
    """`--secret KEY=VALUE` (help `secret_help`) and `--secret-env KEY=ENVVAR`, repeatable."""
    parser.add_argument(
        "--secret",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help=secret_help,
    )
    parser.add_argument(
        "--secret-env",
        action="append",
        default=[],
        metavar="KEY=ENVVAR",
        help="a secret config value read from an environment variable (repeatable)",
    )
