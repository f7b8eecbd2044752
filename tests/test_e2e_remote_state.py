"""Remote state and a key-service secrets provider, run locally: an S3-compatible backend and
an AWS-KMS-compatible provider (moto's server), with the real engine.

What it shows (docs/operations.md "Remote state and KMS"):
- a stack on `s3://...` with `awskms://...` secrets deploys, and its secret output opens
  only through the key service;
- two concurrent `up`s of one stack: the second is refused by the backend's lock while the
  first runs, and the first then completes with its state intact;
- the coco program refuses a production stack run with the public passphrase on that
  backend, whatever config file (`--config-file` outside stacks/) names the provider.

    bash scripts/setup.sh && source scripts/env.sh && pytest -m e2e tests/test_e2e_remote_state.py
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from automation.spec import PROJECT_DIR

pytestmark = pytest.mark.e2e

PROBE = """\
import os, time
import pulumi

cfg = pulumi.Config()
gate = cfg.get("gate")
if gate and not pulumi.runtime.is_dry_run():
    while not os.path.exists(gate):  # holds the stack's lock until the test opens the gate
        time.sleep(0.05)
pulumi.export("secret", cfg.require_secret("s"))
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def aws(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """moto's server: one S3 bucket, one KMS key behind an alias; the env to reach them."""
    pytest.importorskip("boto3")  # a dev dependency (moto[server]); CI installs it
    import boto3

    if shutil.which("pulumi") is None:
        pytest.fail("the Pulumi engine is missing: run `bash scripts/setup.sh`", pytrace=False)
    port = free_port()
    log = tmp_path_factory.mktemp("moto") / "server.log"
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "moto_server"), "-p", str(port)],
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
    )
    env = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    endpoint = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):  # until the server answers (a readiness wait, not a timing check)
            try:
                boto3.client("s3", endpoint_url=endpoint, **_creds(env)).list_buckets()
                break
            except Exception:
                if server.poll() is not None:
                    pytest.fail(f"moto_server exited: {log.read_text()[-2000:]}")
                time.sleep(0.1)
        boto3.client("s3", endpoint_url=endpoint, **_creds(env)).create_bucket(Bucket="coco")
        kms = boto3.client("kms", endpoint_url=endpoint, **_creds(env))
        key = kms.create_key()["KeyMetadata"]["KeyId"]
        kms.create_alias(AliasName="alias/coco", TargetKeyId=key)
        yield {
            **env,
            "ENDPOINT": endpoint,
            "PULUMI_BACKEND_URL": (
                f"s3://coco?endpoint=127.0.0.1:{port}&disableSSL=true&s3ForcePathStyle=true"
                "&region=us-east-1"
            ),
            "KMS": f"awskms://alias/coco?region=us-east-1&endpoint={endpoint}",
        }
    finally:
        server.terminate()
        server.wait()


def _creds(env: dict[str, str]) -> dict[str, Any]:
    return {
        "aws_access_key_id": env["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": env["AWS_SECRET_ACCESS_KEY"],
        "region_name": env["AWS_REGION"],
    }


def pulumi(project: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["pulumi", *args], cwd=project, env=env, capture_output=True, text=True, check=False
    )


def engine_env(aws: dict[str, str]) -> dict[str, str]:
    """The shell's engine environment (env.sh: engine, plugin cache), no passphrase, the moto
    backend (PULUMI_BACKEND_URL wins over any login)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PULUMI_CONFIG_PASSPHRASE")}
    env.update({k: v for k, v in aws.items() if k not in ("ENDPOINT", "KMS")})
    return env


def test_s3_state_kms_secrets_and_two_concurrent_ups(aws: dict[str, str], tmp_path: Path) -> None:
    import boto3

    project = tmp_path / "probe"
    project.mkdir()
    (project / "Pulumi.yaml").write_text(
        yaml.safe_dump(
            {
                "name": "probe",
                "runtime": {
                    "name": "python",
                    "options": {"virtualenv": str(PROJECT_DIR / ".venv")},
                },
            }
        )
    )
    (project / "__main__.py").write_text(PROBE)
    env = engine_env(aws)
    init = pulumi(project, env, "stack", "init", "prod", "--secrets-provider", aws["KMS"])
    assert init.returncode == 0, init.stderr
    assert pulumi(project, env, "config", "set", "--secret", "s", "kept-in-kms").returncode == 0
    stack_file = yaml.safe_load((project / "Pulumi.prod.yaml").read_text())
    assert stack_file["secretsprovider"] == aws["KMS"] and stack_file["encryptedkey"]
    gate = tmp_path / "gate"
    assert pulumi(project, env, "config", "set", "gate", str(gate)).returncode == 0

    first = subprocess.Popen(
        ["pulumi", "up", "--yes", "--non-interactive"],
        cwd=project,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    s3 = boto3.client("s3", endpoint_url=aws["ENDPOINT"], **_creds(aws))
    for _ in range(3000):  # until the first up holds the lock (readiness, not timing)
        listed = s3.list_objects_v2(Bucket="coco", Prefix=".pulumi/locks/")
        if listed.get("KeyCount"):
            break
        assert first.poll() is None, first.communicate()[0]
        time.sleep(0.05)
    second = pulumi(project, env, "up", "--yes", "--non-interactive")
    assert second.returncode != 0
    assert "the stack is currently locked by 1 lock(s)" in second.stdout + second.stderr
    gate.touch()
    out, _ = first.communicate()
    assert first.returncode == 0, out[-3000:]
    assert s3.list_objects_v2(Bucket="coco", Prefix=".pulumi/locks/").get("KeyCount", 0) == 0
    shown = pulumi(project, env, "stack", "output", "secret", "--show-secrets")
    assert shown.stdout.strip() == "kept-in-kms"
    exported = pulumi(project, env, "stack", "export")
    assert exported.returncode == 0 and '"pending_operations"' not in exported.stdout


def test_public_passphrase_refused_on_s3_with_a_config_file_elsewhere(
    aws: dict[str, str], tmp_path: Path
) -> None:
    """The bypass of issue 23: a production coco stack encrypted with the public passphrase,
    its real config in a file outside stacks/ (`pulumi up --config-file`), while
    stacks/Pulumi.<stack>.yaml names a key service. The program refuses it, on the S3
    backend, before registering anything."""
    project = tmp_path / "coco"
    project.mkdir()
    for name in ("__main__.py", "components", "policies"):
        src = PROJECT_DIR / name
        if src.is_dir():
            shutil.copytree(src, project / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(src, project / name)
    doc = yaml.safe_load((PROJECT_DIR / "Pulumi.yaml").read_text())
    doc["runtime"]["options"]["virtualenv"] = str(PROJECT_DIR / ".venv")
    (project / "Pulumi.yaml").write_text(yaml.safe_dump(doc))
    (project / "stacks").mkdir()
    env = {**engine_env(aws), "PULUMI_CONFIG_PASSPHRASE": "coco-local-dev"}
    # The decoy: what stacks/ says (a key service).
    kms = pulumi(project, env, "stack", "init", "decoy", "--secrets-provider", aws["KMS"])
    assert kms.returncode == 0, kms.stderr
    decoy = (project / "stacks" / "Pulumi.decoy.yaml").read_text()
    # The real one: the passphrase provider with the public passphrase, kept elsewhere.
    init = pulumi(project, env, "stack", "init", "prod", "--secrets-provider", "passphrase")
    assert init.returncode == 0, init.stderr
    secret = pulumi(project, env, "config", "set", "--secret", "apiDbPassword", "x")
    assert secret.returncode == 0, secret.stderr
    real = yaml.safe_load((project / "stacks" / "Pulumi.prod.yaml").read_text())
    assert real["encryptionsalt"]
    config = yaml.safe_load((PROJECT_DIR / "stacks" / "Pulumi.baremetal-tdx.yaml").read_text())
    settings = {
        k: v for k, v in config["config"].items() if not (isinstance(v, dict) and "secure" in v)
    }
    settings["coco:kubernetes"] = {"renderDir": str(tmp_path / "out")}
    real["config"] = {**settings, **real["config"]}
    elsewhere = tmp_path / "elsewhere" / "prod.yaml"
    elsewhere.parent.mkdir()
    elsewhere.write_text(yaml.safe_dump(real))
    (project / "stacks" / "Pulumi.prod.yaml").write_text(decoy)
    up = pulumi(project, env, "up", "--yes", "--non-interactive", "--config-file", str(elsewhere))
    text = up.stdout + up.stderr
    assert up.returncode != 0
    assert "runs with the public development passphrase" in text, text[-3000:]
    assert "Traceback" not in text
    exported = pulumi(project, env, "stack", "export")
    resources = json.loads(exported.stdout)["deployment"].get("resources") or []
    created = [r["type"] for r in resources if r["type"] != "pulumi:pulumi:Stack"]
    assert created == [], "nothing but the stack itself is registered"


def test_render_of_a_kms_stack(aws: dict[str, str], tmp_path: Path) -> None:
    """`python -m automation render` of a production stack whose secrets provider is the key
    service and whose secure value is in its file: the throwaway render stack keeps that
    provider, so the file's encrypted key opens (it failed with `cipher: message
    authentication failed` when the render forced the passphrase provider)."""
    keys = tmp_path / "keys"
    keys.mkdir()
    (keys / "Pulumi.yaml").write_text("name: coco\nruntime: python\n")
    env = {**engine_env(aws), "PULUMI_CONFIG_PASSPHRASE": "coco-local-dev"}
    init = pulumi(keys, env, "stack", "init", "render-keys", "--secrets-provider", aws["KMS"])
    assert init.returncode == 0, init.stderr
    set_secret = pulumi(keys, env, "config", "set", "--secret", "coco:apiDbPassword", "s3cret")
    assert set_secret.returncode == 0, set_secret.stderr
    made = yaml.safe_load((keys / "Pulumi.render-keys.yaml").read_text())
    doc = yaml.safe_load((PROJECT_DIR / "stacks" / "Pulumi.baremetal-tdx.yaml").read_text())
    doc["secretsprovider"] = made["secretsprovider"]
    doc["encryptedkey"] = made["encryptedkey"]
    doc["config"]["coco:apiDbPassword"] = made["config"]["coco:apiDbPassword"]
    stack_file = tmp_path / "Pulumi.prod.yaml"
    stack_file.write_text(yaml.safe_dump(doc))
    out = tmp_path / "out"
    render = subprocess.run(
        [
            sys.executable,
            "-m",
            "automation",
            "render",
            "--stack-file",
            str(stack_file),
            "--out",
            str(out),
        ],
        cwd=PROJECT_DIR,
        env={**env, "PULUMI_BACKEND_URL": f"file://{tmp_path / 'unused-state'}"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert render.returncode == 0, (render.stdout + render.stderr)[-4000:]
    assert "message authentication failed" not in render.stderr
    assert list(out.rglob("*.yaml"))
    # baremetal-tdx is a one-stack trusted zone: the KBS renders apart, for the trusted cluster.
    zone = out / "trusted-zone"
    assert any("key-broker" in f.name or "kbs" in f.name for f in zone.rglob("*.yaml"))
    outside = [f for f in out.rglob("*.yaml") if zone not in f.parents]
    assert outside and not any("deployment-trustee" in f.name for f in outside)
