"""The guest's own components judge sealed secrets, image policies and keys end to end.

Built by `scripts/judges/cdh/build.sh` from guest-components d4dce5c (what kata 4.1.0's guest
runs): the attestation agent (`ttrpc-aa`, sample attester), the Confidential Data Hub
(`cdh-oneshot`) and our `cdh-config-judge` (the hub's own config types). The KBS is the real
Trustee v0.21.0 of `scripts/judges/kbs`, started on the rendered stack by the kbs harness.

The guest is played as in the pod VM: the AA is started with the workload's rendered init-data
(`--initdata_toml`, as the Kata agent starts it) and the rendered `aa.toml`; the CDH with the
rendered `cdh.toml`, talking to the AA over ttrpc. The one change to both files is the KBS URL
(the in-cluster service name becomes the local KBS's `https://localhost:<port>`), which the
KBS certificate covers through the harness's `localhost` overlay; the init-data the AA binds
is the rendered one, byte for byte.

What this proves: the sealed string the program puts in the workload's Secret is accepted by
the CDH (signature verified with the key the KBS serves at the `kid` URI) and unseals to the
configured value; the image security policy and the cosign key are fetched through the CDH and
parse with image-rs's own `Policy` type; another workload's init-data gets none of them; the
rendered `cdh.toml` parses with the hub's own `CdhConfig` with no ignored key. What it does
not: an image pull with signature verification or layer decryption (no registry here), and
any hardware binding of init-data (the sample verifier copies the digest unchecked).
"""

from __future__ import annotations

import base64
import copy
import json
import os
import shutil
import subprocess
import tempfile
import time
import tomllib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from judges import judge_dir
from kbs_harness import KbsPod, Rendered, render, stack_config

from components.guest_features import image_key_path, image_policy_path
from components.workload_template import sealed_file_key, sealed_secret_key
from policies.sealed import SIGNING_KEY_RESOURCE, kbs_uri

pytestmark = pytest.mark.conformance

SECRET = "default/key/1"
TIMEOUT_S = 90


SEALED_FILE = "/run/secrets/demo/key"


def _cosign_public_key() -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def guest_config() -> dict[str, Any]:
    """The dev stack; `hello` gets a sealed env var and file (from default/key/1) and image
    signatures,
    and a second workload `other` (another image, so another init-data) reads nothing."""
    config = copy.deepcopy(stack_config("dev"))
    tls = config["coco:trustee"].setdefault("tls", {})
    tls["dnsNames"] = sorted({*tls.get("dnsNames", []), "localhost"})
    (hello,) = config["coco:workloads"]
    hello["containers"][0]["sealedEnv"] = [{"name": "DEMO_KEY", "sealedFrom": SECRET}]
    hello["containers"][0]["sealedFiles"] = [{"path": SEALED_FILE, "sealedFrom": SECRET}]
    hello["imageSignatures"] = {"keys": [{"name": "release", "publicKey": _cosign_public_key()}]}
    other = {**copy.deepcopy(hello), "name": "other"}
    other.pop("imageSignatures")
    other["containers"][0].pop("sealedEnv")
    other["containers"][0].pop("sealedFiles")
    other["containers"][0]["image"] = "registry.example.com/coco/other@sha256:" + "ab" * 32
    config["coco:workloads"] = [hello, other]
    return config


@pytest.fixture(scope="module")
def kbs_judge() -> Path:
    return judge_dir("kbs")


CDH_RECIPE = Path(__file__).resolve().parents[2] / "scripts" / "judges" / "cdh" / "build.sh"


def cdh_judge_dir() -> Path:
    """The cdh judge's build (the guest's AA and CDH), or a skip saying why not."""
    # scripts/judges.sh builds only executable recipes: a recipe switched off (chmod -x)
    # skips these tests with that reason instead of failing on a missing build.
    if not os.access(CDH_RECIPE, os.X_OK):
        pytest.skip("judge cdh not enabled yet (scripts/judges/cdh/build.sh is not executable)")
    return judge_dir("cdh")


@pytest.fixture(scope="module")
def cdh_judge() -> Path:
    return cdh_judge_dir()


@pytest.fixture(scope="module")
def rendered(kbs_judge: Path) -> Rendered:
    return render("dev", guest_config())


@pytest.fixture(scope="module")
def kbs_pod(rendered: Rendered, kbs_judge: Path) -> Iterator[KbsPod]:
    pod = KbsPod(rendered, kbs_judge)
    try:
        pod.start()
        yield pod
    finally:
        pod.stop()


class Guest:
    """The AA and CDH of one pod VM, on a temporary directory."""

    def __init__(
        self,
        bin_dir: Path,
        initdata: str,
        kbs_url: str,
        rendered_url: str,
        wrapper: Sequence[str] = (),
    ) -> None:
        """`wrapper`: an argv prefix both processes run under (local_dns.py: the KBS's name
        mapped to 127.0.0.1, so the guest reaches the URL its init-data names)."""
        self.bin = bin_dir
        self.wrapper = list(wrapper)
        self.root = Path(tempfile.mkdtemp(prefix="coco-guest-"))
        self.data = tomllib.loads(initdata)["data"]
        (self.root / "initdata.toml").write_text(initdata)
        (self.root / "aa.toml").write_text(self.data["aa.toml"].replace(rendered_url, kbs_url))
        (self.root / "cdh.toml").write_text(self.data["cdh.toml"].replace(rendered_url, kbs_url))
        self.socket = self.root / "aa.sock"
        self.log = self.root / "aa.log"
        self.env = {"PATH": "/usr/bin:/bin", "HOME": str(self.root), "RUST_LOG": "info"}
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                [
                    *self.wrapper,
                    str(self.bin / "ttrpc-aa"),
                    "--attestation_sock",
                    f"unix://{self.socket}",
                    "--config-file",
                    str(self.root / "aa.toml"),
                    "--initdata-toml",
                    str(self.root / "initdata.toml"),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
                cwd=self.root,
                start_new_session=True,
            )
        deadline = time.monotonic() + TIMEOUT_S
        while not self.socket.exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"ttrpc-aa did not start:\n{self.log.read_text()[-4000:]}")
            time.sleep(0.2)

    def cdh(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                *self.wrapper,
                str(self.bin / "cdh-oneshot"),
                "--config",
                str(self.root / "cdh.toml"),
                "--retry",
                "0",
                *args,
            ],
            capture_output=True,
            text=True,
            timeout=TIMEOUT_S,
            check=False,
            env={**self.env, "AA_SOCKET": f"unix://{self.socket}"},
            cwd=self.root,
        )

    def unseal(self, sealed: str) -> subprocess.CompletedProcess[str]:
        path = self.root / "sealed"
        path.write_text(sealed)
        return self.cdh("unseal-secret", "--secret-path", str(path))

    def resource(self, path: str) -> subprocess.CompletedProcess[str]:
        return self.cdh("get-resource", "--resource-uri", kbs_uri(path))

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        shutil.rmtree(self.root, ignore_errors=True)


def _rendered_url(rendered: Rendered) -> str:
    cdh = tomllib.loads(tomllib.loads(rendered.initdata["hello"])["data"]["cdh.toml"])
    url: str = cdh["kbc"]["url"]
    return url


@pytest.fixture(scope="module")
def hello(rendered: Rendered, kbs_pod: KbsPod, cdh_judge: Path) -> Iterator[Guest]:
    guest = Guest(
        cdh_judge / "bin", rendered.initdata["hello"], kbs_pod.url, _rendered_url(rendered)
    )
    try:
        yield guest
    finally:
        guest.stop()


@pytest.fixture(scope="module")
def other(rendered: Rendered, kbs_pod: KbsPod, cdh_judge: Path, hello: Guest) -> Iterator[Guest]:
    guest = Guest(
        cdh_judge / "bin", rendered.initdata["other"], kbs_pod.url, _rendered_url(rendered)
    )
    try:
        yield guest
    finally:
        guest.stop()


def _decoded(done: subprocess.CompletedProcess[str]) -> bytes:
    assert done.returncode == 0, done.stderr[-4000:]
    return base64.b64decode(done.stdout.strip().splitlines()[-1])


def sealed_of(rendered: Rendered) -> str:
    return rendered.workload_secrets["hello-sealed-secrets"][sealed_secret_key("app", "DEMO_KEY")]


def test_cdh_unseals_the_programs_sealed_secret(rendered: Rendered, hello: Guest) -> None:
    """The CDH verifies the ES256 signature with the JWK the KBS serves at `kid`, then fetches
    the referenced resource: the configured value, never present on the host side."""
    sealed = sealed_of(rendered)
    assert rendered.resource_values[SECRET] not in sealed
    assert _decoded(hello.unseal(sealed)).decode() == rendered.resource_values[SECRET]


def test_cdh_unseals_the_programs_sealed_file(rendered: Rendered, hello: Guest) -> None:
    """A sealed file's content (the Secret item the agent finds in the mounted directory and
    hands to the CDH, kata 4.1.0 `unseal_file`) unseals the same way; another init-data gets
    nothing."""
    content = rendered.workload_secrets["hello-sealed-secrets"][sealed_file_key("app", SEALED_FILE)]
    assert content.startswith("sealed.") and rendered.resource_values[SECRET] not in content
    assert _decoded(hello.unseal(content)).decode() == rendered.resource_values[SECRET]


def test_a_tampered_sealed_secret_is_refused(rendered: Rendered, hello: Guest) -> None:
    """Same signature, another reference (the host pointing at another resource): refused."""
    header, payload, signature = sealed_of(rendered).removeprefix("sealed.").split(".")
    body = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    body["name"] = kbs_uri("default/key/2")
    forged = base64.urlsafe_b64encode(json.dumps(body).encode()).rstrip(b"=").decode()
    done = hello.unseal(f"sealed.{header}.{forged}.{signature}")
    assert done.returncode != 0


def config_judge(bin_dir: Path, kind: str, path: Path) -> subprocess.CompletedProcess[str]:
    """`cdh-config-judge KIND PATH`: the hub's (or image-rs's) own types on a rendered file;
    stdout is a JSON verdict listing the keys those types ignored."""
    return subprocess.run(
        [str(bin_dir / "cdh-config-judge"), kind, str(path)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_cdh_fetches_the_image_policy_and_key(rendered: Rendered, hello: Guest) -> None:
    policy = _decoded(hello.resource(image_policy_path("hello")))
    assert json.loads(policy)["default"] == [{"type": "reject"}]
    key = _decoded(hello.resource(image_key_path("hello", "release")))
    assert b"BEGIN PUBLIC KEY" in key
    path = hello.root / "policy.json"
    path.write_bytes(policy)
    judged = config_judge(hello.bin, "policy", path)
    assert judged.returncode == 0, judged.stdout + judged.stderr


def test_another_init_data_gets_nothing(rendered: Rendered, other: Guest) -> None:
    assert other.unseal(sealed_of(rendered)).returncode != 0
    for path in (image_policy_path("hello"), image_key_path("hello", "release"), SECRET):
        done = other.resource(path)
        assert done.returncode != 0, path


@pytest.mark.parametrize("workload", ["hello", "other"])
def test_rendered_cdh_toml_parses_with_the_hubs_own_types(
    rendered: Rendered, cdh_judge: Path, workload: str, tmp_path: Path
) -> None:
    cdh = tomllib.loads(rendered.initdata[workload])["data"]["cdh.toml"]
    (tmp_path / "cdh.toml").write_text(cdh)
    done = config_judge(cdh_judge / "bin", "cdh", tmp_path / "cdh.toml")
    verdict = json.loads(done.stdout)
    assert done.returncode == 0 and verdict["ignored"] == [], verdict


def test_a_misspelled_cdh_key_is_caught(cdh_judge: Path, tmp_path: Path) -> None:
    """The evaluator is not a rubber stamp: upstream ignores the typo, the judge reports it."""
    (tmp_path / "cdh.toml").write_text(
        '[kbc]\nname = "cc_kbc"\nurl = "https://kbs.example:8080"\n\n'
        '[image]\nimage_security_policy_url = "kbs:///a/b/c"\n'
    )
    done = config_judge(cdh_judge / "bin", "cdh", tmp_path / "cdh.toml")
    verdict = json.loads(done.stdout)
    assert done.returncode == 1 and verdict["ignored"] == ["image.image_security_policy_url"]


def test_no_skip_verification_is_rendered(rendered: Rendered) -> None:
    for text in rendered.initdata.values():
        assert "skip_sealed_secret_verification" not in text


# --------------------------------------------------------------------------- KBS side only


def test_kbs_serves_the_generated_resources_to_their_reader_only(
    rendered: Rendered, kbs_pod: KbsPod
) -> None:
    """With Trustee's own client (sample attester): the sealed-secret JWK, the image policy and
    the cosign key go to `hello`'s init-data, and the KBS's policy refuses them to `other`."""
    paths = [SIGNING_KEY_RESOURCE, image_policy_path("hello"), image_key_path("hello", "release")]
    for path in paths:
        done = kbs_pod.get_resource(path, rendered.initdata["hello"])
        assert done.returncode == 0, (path, done.stderr)
        value = base64.b64decode(done.stdout.strip())
        if path == SIGNING_KEY_RESOURCE:
            jwk = json.loads(value)
            assert jwk["kty"] == "EC" and jwk["crv"] == "P-256" and "d" not in jwk
        denied = kbs_pod.get_resource(path, rendered.initdata["other"])
        assert denied.returncode != 0 and "PolicyDeny" in denied.stderr, path


# --------------------------------------------------------------------------- agent policy


def test_the_kata_agent_admits_exactly_the_sealed_reference(
    rendered: Rendered, tmp_path: Path
) -> None:
    """The Kata agent's own policy engine (kata-policy judge) on `hello`'s rendered policy:
    the container starts with the sealed reference kubelet copies from the Secret, and not
    with another reference, a plain value, or without it."""
    from agent_requests import create_request, presented_image, shared_source
    from test_agent_judge import Judge

    data = tomllib.loads(rendered.initdata["hello"])["data"]
    policy = tmp_path / "policy.rego"
    policy.write_text(data["policy.rego"], encoding="utf-8")
    (hello_settings,) = [w for w in load_settings(guest_config()).workloads if w.name == "hello"]
    container = hello_settings.containers[0]
    sealed = sealed_of(rendered)
    judge = Judge(judge_dir("kata-policy") / "bin" / "kata-policy-judge")
    try:

        def starts(env: list[str]) -> bool:
            request = create_request(
                presented_image(container.image),
                name=container.name,
                env=env,
                namespace=hello_settings.namespace,
                pod="hello-6674f9448-xjrzf",
                cwd="/srv",
                uid=65532,
            )
            return judge.allowed(policy, "CreateContainerRequest", request)

        assert starts([f"DEMO_KEY={sealed}"])
        other_ref = sealed.replace(
            sealed.split(".")[2],
            base64.urlsafe_b64encode(json.dumps({"name": kbs_uri("default/key/2")}).encode())
            .rstrip(b"=")
            .decode(),
        )
        assert not starts([f"DEMO_KEY={other_ref}"])
        assert not starts(["DEMO_KEY=plain-text"])
        assert not starts([])

        def with_mount(destination: str, options: list[str]) -> bool:
            """The sealed file's directory as the runtime mounts a Secret volume."""
            request = create_request(
                presented_image(container.image),
                name=container.name,
                env=[f"DEMO_KEY={sealed}"],
                namespace=hello_settings.namespace,
                pod="hello-6674f9448-xjrzf",
                cwd="/srv",
                uid=65532,
            )
            source = shared_source(request["container_id"], "demo")
            request["OCI"]["Mounts"].append(
                {"destination": destination, "options": options, "source": source, "type_": "bind"}
            )
            return judge.allowed(policy, "CreateContainerRequest", request)

        assert with_mount("/run/secrets/demo", ["rbind", "rprivate", "ro"])
        assert not with_mount("/run/secrets/other", ["rbind", "rprivate", "ro"])
        assert not with_mount("/run/secrets/demo", ["rbind", "rprivate", "rw"])
    finally:
        judge.close()


def load_settings(config: dict[str, Any]) -> Any:
    from components.settings import parse, strip_namespace

    plain = {k: v for k, v in config.items() if not (isinstance(v, dict) and "secure" in v)}
    return parse(strip_namespace(plain))
