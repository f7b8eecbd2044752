"""Which state backend is used: `scripts/env.sh` and the Automation API respect the one the
operator chose (PULUMI_BACKEND_URL, or a `pulumi login`), and fall back to the repo's
`.state` only when none was chosen."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from automation.spec import PROJECT_DIR, Backend, current_login


def env_sh(home: Path, tools: Path, script: str = "", **env: str) -> str:
    """PULUMI_BACKEND_URL after sourcing env.sh (and `script`) in a clean shell."""
    base = {"HOME": str(home), "PATH": os.environ["PATH"], "COCO_TOOLS_HOME": str(tools)}
    # `set -euo pipefail`: scripts/setup.sh and the judges' recipes source it that way.
    text = (
        f'set -euo pipefail\nsource "{PROJECT_DIR}/scripts/env.sh"\n{script}\n'
        'printf %s "${PULUMI_BACKEND_URL:-}"'
    )
    out = subprocess.run(
        ["bash", "-c", text], env={**base, **env}, capture_output=True, text=True, check=True
    )
    return out.stdout


def login(home: Path, url: str) -> None:
    home.mkdir(parents=True, exist_ok=True)
    (home / "credentials.json").write_text(
        f'{{\n    "current": "{url}",\n    "accessTokens": {{\n        "{url}": ""\n    }}\n}}\n'
    )


def test_env_sh_default_and_an_explicit_url(tmp_path: Path) -> None:
    tools = tmp_path / "tools"
    assert env_sh(tmp_path, tools) == f"file://{PROJECT_DIR}/.state"
    assert env_sh(tmp_path, tools, PULUMI_BACKEND_URL="s3://mine") == "s3://mine"


def test_env_sh_respects_a_login_in_the_users_own_home(tmp_path: Path) -> None:
    login(tmp_path / ".pulumi", "s3://bucket-from-my-login")
    assert env_sh(tmp_path, tmp_path / "tools") == "s3://bucket-from-my-login"
    login(tmp_path / "ph", "s3://other")
    assert env_sh(tmp_path, tmp_path / "tools", PULUMI_HOME=str(tmp_path / "ph")) == "s3://other"


def test_env_sh_leaves_a_login_in_its_pulumi_home_to_the_cli(tmp_path: Path) -> None:
    """A login made after sourcing takes effect on re-sourcing (the default is re-decided)."""
    tools = tmp_path / "tools"
    ph = tools / "pulumi-home"
    script = f'{login_sh(ph, "s3://later")}\nsource "{PROJECT_DIR}/scripts/env.sh"'
    assert env_sh(tmp_path, tools, script) == ""  # the CLI reads its own login
    assert current_login({"PULUMI_HOME": str(ph)}) == "s3://later"


def login_sh(home: Path, url: str) -> str:
    return (
        f'mkdir -p "{home}" && printf \'{{\\n    "current": "{url}"\\n}}\\n\' '
        f'> "{home}/credentials.json"'
    )


def test_the_api_resolves_the_same_backend(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PULUMI_BACKEND_URL", raising=False)
    monkeypatch.setenv("PULUMI_HOME", str(tmp_path))
    assert Backend().resolved_url == f"file://{PROJECT_DIR}/.state"
    login(tmp_path, "s3://logged-in")
    assert Backend().resolved_url == "s3://logged-in"
    monkeypatch.setenv("PULUMI_BACKEND_URL", "s3://env")
    assert Backend().resolved_url == "s3://env"
    assert Backend(url="file:///x").resolved_url == "file:///x"


def test_current_login_reads_what_pulumi_login_writes(tmp_path: Path) -> None:
    pulumi = shutil.which("pulumi")
    if pulumi is None:
        pytest.skip("the engine is not built (scripts/setup.sh)")
    env = {**os.environ, "PULUMI_HOME": str(tmp_path / "home")}
    env.pop("PULUMI_BACKEND_URL", None)
    url = f"file://{tmp_path / 'state'}"
    (tmp_path / "state").mkdir()
    subprocess.run([pulumi, "login", url], env=env, check=True, capture_output=True)
    assert current_login(env) == url
