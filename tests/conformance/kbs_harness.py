"""Run the real Trustee KBS on exactly what the program renders, the way the pod would.

`render()` runs a stack's program under Pulumi mocks, except that the key pairs are made by the
program's own dynamic provider (`components.tls._SelfSignedProvider.create`), so the TLS and
token-signer keys are the ones the program generates, not test fixtures. It collects the
Trustee namespace's ConfigMaps, the KBS Deployment's pod spec, the workloads' init-data, and the
contents of every Secret the Deployment mounts: in 'create' mode from the Secret objects, in
'reference' mode (how the dev stack renders) from what the program hands the user's secret
manager (its outputs and the `...From` config values).

`KbsPod` then plays kubelet and container runtime on a temporary root: it writes each volume
(ConfigMap, Secret, projected, emptyDir) at its mount path with the kubelet's modes, runs the
rendered init container's script, mounts the resource repository, and starts the `kbs` binary
with the rendered config, every absolute mount path prefixed with the temporary root and the
socket moved to 127.0.0.1:<free port>. When the tests run as root, the init container and the
KBS run as the pod's uid/gid, so a layout the KBS cannot write fails here as in the cluster.
"""

from __future__ import annotations

import base64
import copy
import gzip
import json
import os
import re
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import yaml
from mocks import DYNAMIC, CloudMocks
from pulumi.runtime import rpc

from components import trustee as kbs
from components.settings import load, parse, secret_refs, strip_namespace
from components.stack import build
from components.tls import _SelfSignedProvider

ROOT = Path(__file__).resolve().parents[2]
INITDATA_ANNOTATION = "io.katacontainers.config.hypervisor.cc_init_data"
START_TIMEOUT_S = 60.0
CLIENT_TIMEOUT_S = 60.0


class KeyMakingMocks(CloudMocks):
    """Records like CloudMocks (so peer-pods stacks render too); key pairs come from the
    program's own provider."""

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str | None, dict]:  # type: ignore[type-arg]
        ident, state = super().new_resource(args)
        if args.typ == DYNAMIC and "key_algorithm" in args.inputs:
            props = {k: v for k, v in args.inputs.items() if not k.startswith("__")}
            made = _SelfSignedProvider().create(props)
            outs = dict(made.outs or {})
            state.update(outs)
            state["private_key_pem"] = rpc.wrap_rpc_secret(outs["private_key_pem"])
        return ident, state


@dataclass
class Rendered:
    """What one render of a stack gives the KBS, and the workloads it serves."""

    config_maps: dict[str, dict[str, str]]
    secrets: dict[str, dict[str, str]]
    pod_spec: dict[str, Any]
    template_annotations: dict[str, str]
    initdata: dict[str, str]
    """Workload name -> its init-data TOML, decoded from its pod annotation."""
    resource_values: dict[str, str]
    """KBS resource path -> the configured secret value."""
    certificate_pem: str
    workload_secrets: dict[str, dict[str, str]] = field(default_factory=dict)
    """Secrets the program creates outside the Trustee namespace (e.g. a workload's sealed
    references), by name."""


def stack_config(name: str) -> dict[str, Any]:
    doc = yaml.safe_load((ROOT / "stacks" / f"Pulumi.{name}.yaml").read_text())
    config: dict[str, Any] = doc["config"]
    return config


def render(stack: str, config: dict[str, Any]) -> Rendered:
    """Run the program for stack `stack` with `config` (a stack file's `config:` mapping)."""
    plain = {k: v for k, v in config.items() if not (isinstance(v, dict) and "secure" in v)}
    settings = parse(strip_namespace(plain))
    secrets = {
        ref if ":" in ref else f"coco:{ref}": f"kbs-judge-{ref}-value-{i}"
        for i, (_, ref) in enumerate(secret_refs(settings))
    }
    values = {k: v if isinstance(v, str) else json.dumps(v) for k, v in plain.items()} | secrets
    mocks = KeyMakingMocks()
    pulumi.runtime.set_mocks(mocks, project="coco", stack=stack, preview=False)
    pulumi.runtime.set_all_config(values, secret_keys=list(secrets))
    handed: dict[str, Any] = {}

    @pulumi.runtime.test  # type: ignore[untyped-decorator]
    def program() -> Any:
        result = build(load())

        async def collect() -> None:
            handed["tls.crt"] = await result.tls.certificate_pem.future()
            handed["tls.key"] = await result.tls.private_key_pem.future()
            handed["signer.crt"] = await result.trustee.token_signer_certificate_pem.future()
            handed["signer.key"] = await result.trustee.token_signer_private_key_pem.future()
            handed["required"] = result.trustee.required_secrets

        return collect()

    try:
        program()
    finally:
        pulumi.runtime.set_all_config({})

    ns = settings.trustee.namespace
    resource_values = {
        r.path: secrets[r.value_from if ":" in r.value_from else f"coco:{r.value_from}"]
        for r in settings.trustee.resources
    }
    config_maps = {
        r.metadata["name"]: dict(r.inputs.get("data") or {})
        for r in mocks.of_type("core/v1:ConfigMap")
        if r.metadata.get("namespace") == ns
    }
    created = {
        r.metadata["name"]: dict(r.inputs.get("stringData") or {})
        for r in mocks.of_type("core/v1:Secret")
        if r.metadata.get("namespace") == ns
    }
    if settings.secrets_delivery() == "create":
        secret_data = created
    else:
        # What the user's secret manager puts into the Secrets the manifests reference.
        assert not created, "reference mode renders no Secret"
        secret_data = {
            kbs.TLS_SECRET_NAME: {"tls.crt": handed["tls.crt"], "tls.key": handed["tls.key"]},
            kbs.TOKEN_SIGNER_SECRET_NAME: {
                "tls.crt": handed["signer.crt"],
                "tls.key": handed["signer.key"],
            },
        }
        for path, value in resource_values.items():
            secret_data[kbs.resource_secret_name(path)] = {kbs.RESOURCE_SECRET_KEY: value}
        assert {k: sorted(v) for k, v in secret_data.items()} == {
            k: sorted(v) for k, v in handed["required"].items()
        }
    (deployment,) = [
        r
        for r in mocks.of_type("apps/v1:Deployment")
        if r.metadata.get("namespace") == ns and r.metadata["name"] == kbs.DEPLOYMENT_NAME
    ]
    template = deployment.inputs["spec"]["template"]
    initdata: dict[str, str] = {}
    for r in mocks.of_type("apps/v1:Deployment") + mocks.of_type("core/v1:Pod"):
        spec = r.inputs["spec"]
        meta, pod = (
            (spec["template"]["metadata"], spec["template"]["spec"])
            if "template" in spec
            else (r.inputs["metadata"], spec)
        )
        annotation = (meta.get("annotations") or {}).get(INITDATA_ANNOTATION)
        if pod.get("runtimeClassName") and annotation:
            initdata[r.metadata["name"]] = gzip.decompress(base64.b64decode(annotation)).decode()
    return Rendered(
        config_maps=config_maps,
        secrets=secret_data,
        pod_spec=template["spec"],
        template_annotations=dict(template["metadata"].get("annotations") or {}),
        initdata=initdata,
        resource_values=resource_values,
        certificate_pem=handed["tls.crt"],
        workload_secrets={
            r.metadata["name"]: dict(r.inputs.get("stringData") or {})
            for r in mocks.of_type("core/v1:Secret")
            if r.metadata.get("namespace") != ns
        },
    )


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _rewrite(text: str, root: Path, mount_paths: list[str]) -> str:
    """Prefix every absolute mount path in `text` with `root` (one pass: no double prefix)."""
    alternatives = "|".join(re.escape(m) for m in sorted(mount_paths, key=len, reverse=True))
    pattern = re.compile(rf"(?<![\w./-])({alternatives})(?=[/\s\"']|$)", re.MULTILINE)
    return pattern.sub(lambda m: f"{root}{m.group(1)}", text)


@dataclass
class KbsPod:
    """The KBS Deployment's pod, on the local machine (see the module docstring)."""

    rendered: Rendered
    bin_dir: Path
    admin_allow_all: bool = False
    """Test-only probe: open the admin API (`InsecureAllowAll`) to read what the RVPS parsed."""
    binaries: tuple[str, ...] = ("kbs", "kbs-client")
    """Judge binaries copied in; () to lay the pod out for another judge (test_real_evidence)."""
    root: Path = field(init=False)
    port: int = field(init=False)
    proc: subprocess.Popen[bytes] | None = field(init=False, default=None)
    log: Path = field(init=False)

    def __post_init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="coco-kbs-"))
        os.chmod(self.root, 0o755)  # the pod's user must traverse it
        self.port = free_port()
        self.log = self.root / "kbs.log"
        spec = self.rendered.pod_spec
        security = spec.get("securityContext") or {}
        self.uid = int(security.get("runAsUser", os.getuid()))
        self.gid = int(security.get("runAsGroup", os.getgid()))
        self.fs_group = int(security["fsGroup"]) if "fsGroup" in security else None
        self.as_pod_user = os.geteuid() == 0
        (kbs_container,) = [c for c in spec["containers"] if c["name"] == "kbs"]
        self.container = kbs_container
        self.volumes = {v["name"]: v for v in spec["volumes"]}
        self.mount_paths = sorted(
            {
                m["mountPath"]
                for c in spec["containers"] + spec.get("initContainers", [])
                for m in c["volumeMounts"]
            }
        )
        # Binaries are copied in: the pod user cannot reach a root-only cache.
        self.bin = self.root / "bin"
        self.bin.mkdir(mode=0o755)
        for name in self.binaries:
            shutil.copy2(self.bin_dir / "bin" / name, self.bin / name)
            os.chmod(self.bin / name, 0o755)

    # ------------------------------------------------------------------ kubelet

    def path(self, mount_path: str) -> Path:
        return Path(f"{self.root}{mount_path}")

    def _chown(self, path: Path, gid: int | None) -> None:
        if self.as_pod_user and gid is not None:
            os.chown(path, 0, gid)

    def _write(self, dest: Path, text: str, mode: int) -> None:
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.tmp")
        tmp.write_text(text)
        os.chmod(tmp, int(mode))
        self._chown(tmp, self.fs_group)
        os.replace(tmp, dest)  # atomic, as the kubelet's atomic writer swaps ..data

    def _source_files(self, source: dict[str, Any]) -> dict[str, str]:
        """key -> text of one ConfigMap or Secret volume source (with its `items`)."""
        if "configMap" in source:
            ref = source["configMap"]
            data = self.rendered.config_maps[ref["name"]]
        else:
            ref = source["secret"]
            data = self.rendered.secrets[ref.get("secretName") or ref["name"]]
        items = ref.get("items")
        if items is None:
            return dict(data)
        return {item["path"]: data[item["key"]] for item in items}

    def materialize(self, volume_name: str, mount_path: str) -> None:
        volume = self.volumes[volume_name]
        dest = self.path(mount_path)
        if "emptyDir" in volume:
            dest.mkdir(parents=True, exist_ok=True)
            os.chmod(dest, 0o777)  # the kubelet makes emptyDirs world-writable
            return
        if "projected" in volume:
            mode = volume["projected"].get("defaultMode", 0o644)
            files: dict[str, str] = {}
            for source in volume["projected"]["sources"]:
                files.update(self._source_files(source))
        else:
            source = volume
            mode = (volume.get("configMap") or volume.get("secret") or {}).get("defaultMode", 0o644)
            files = self._source_files(source)
        dest.mkdir(parents=True, exist_ok=True)
        for rel, text in files.items():
            self._write(dest / rel, text, mode)
        for d in [dest, *(p for p in dest.rglob("*") if p.is_dir())]:
            os.chmod(d, 0o755)

    def update_secret(self, secret_name: str, key: str, value: str) -> None:
        """The kubelet refreshing a Secret in the projected repository volume, in place."""
        self.rendered.secrets[secret_name][key] = value
        for m in self.container["volumeMounts"]:
            volume = self.volumes[m["name"]]
            for source in (volume.get("projected") or {}).get("sources", []):
                if source.get("secret", {}).get("name") == secret_name:
                    mode = volume["projected"].get("defaultMode", 0o644)
                    for rel, text in self._source_files(source).items():
                        self._write(self.path(m["mountPath"]) / rel, text, mode)

    def _user(self) -> dict[str, Any]:
        if not self.as_pod_user:
            return {}
        return {"user": self.uid, "group": self.gid, "extra_groups": [self.fs_group or self.gid]}

    # ------------------------------------------------------------------ runtime

    def start(self) -> None:
        self.layout()
        self.launch()

    def layout(self) -> None:
        """Volumes, the init container, then the main container's mounts."""
        spec = self.rendered.pod_spec
        for c in spec.get("initContainers", []):
            for m in c["volumeMounts"]:
                self.materialize(m["name"], m["mountPath"])
            argv = [_rewrite(a, self.root, self.mount_paths) for a in c["command"]]
            done = subprocess.run(
                argv, capture_output=True, text=True, timeout=60, check=False, **self._user()
            )
            if done.returncode != 0:
                raise AssertionError(f"init container {c['name']} failed: {done.stderr}")
        for m in self.container["volumeMounts"]:
            if not self.path(m["mountPath"]).exists() or m["name"] not in ("state", "tmp"):
                self.materialize(m["name"], m["mountPath"])

    def config_text(self) -> str:
        """The rendered KBS config with every mount path under the temporary root."""
        config_path = self.container["command"][-1]
        config = self.path(config_path).read_text()
        config = config.replace(f'"0.0.0.0:{kbs.KBS_PORT}"', f'"127.0.0.1:{self.port}"')
        return _rewrite(config, self.root, self.mount_paths)

    def launch(self) -> None:
        """Start `kbs` on the rendered config and wait for `/healthz`."""
        config = self.config_text()
        if self.admin_allow_all:
            closed = 'authorization_mode = "DenyAll"'
            assert closed in config
            config = config.replace(closed, 'authorization_mode = "InsecureAllowAll"')
        self.config_file = self.root / "kbs-config.toml"
        self.config_file.write_text(config)
        os.chmod(self.config_file, 0o644)
        env = {
            "PATH": "/usr/bin:/bin",
            "RUST_LOG": os.environ.get("COCO_KBS_LOG", "info"),
            **{
                e["name"]: _rewrite(e["value"], self.root, self.mount_paths)
                for e in self.container.get("env", [])
            },
        }
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                [str(self.bin / "kbs"), "--config-file", str(self.config_file)],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=self.root,
                start_new_session=True,
                **self._user(),
            )
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"kbs exited with {self.proc.returncode}:\n{self.log_text()}")
            try:
                if self.get("/healthz")[0] == 200:
                    return
            except (OSError, urllib.error.URLError):
                pass
            time.sleep(0.3)
        raise AssertionError(
            f"kbs did not answer /healthz in {START_TIMEOUT_S} s:\n{self.log_text()}"
        )

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        shutil.rmtree(self.root, ignore_errors=True)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")[-6000:] if self.log.exists() else ""

    # ------------------------------------------------------------------ clients

    @property
    def url(self) -> str:
        return f"https://localhost:{self.port}"

    def ca_file(self) -> Path:
        ca = self.root / "kbs-ca.pem"
        if not ca.exists():
            ca.write_text(self.rendered.certificate_pem)
        return ca

    def get(self, path: str) -> tuple[int, bytes]:
        context = ssl.create_default_context(cafile=str(self.ca_file()))
        try:
            with urllib.request.urlopen(f"{self.url}{path}", context=context, timeout=5) as r:
                return int(r.status), bytes(r.read())
        except urllib.error.HTTPError as e:
            return int(e.code), bytes(e.read())

    def client(self, *args: str) -> subprocess.CompletedProcess[str]:
        """`kbs-client --url ... --cert-file <the KBS certificate> ARGS` (sample attester)."""
        return subprocess.run(
            [
                str(self.bin / "kbs-client"),
                "--url",
                self.url,
                "--cert-file",
                str(self.ca_file()),
                *args,
            ],
            capture_output=True,
            text=True,
            timeout=CLIENT_TIMEOUT_S,
            check=False,
            env={"PATH": "/usr/bin:/bin", "HOME": str(self.root), "RUST_LOG": "warn"},
            cwd=self.root,
        )

    def get_resource(self, path: str, initdata: str) -> subprocess.CompletedProcess[str]:
        return self.client("get-resource", "--path", path, initdata)

    def attest(self, initdata: str) -> dict[str, Any]:
        """The EAR token's claims for a sample-TEE attestation carrying `initdata`."""
        done = self.client("attest", initdata)
        if done.returncode != 0:
            raise AssertionError(f"attest failed: {done.stderr}\n{self.log_text()}")
        payload = done.stdout.strip().split(".")[1]
        claims: dict[str, Any] = json.loads(
            base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
        )
        return claims


# --------------------------------------------------------------------------- the dev stack, served

SECRET = "default/key/1"
OTHER_SECRET = "default/key/2"


def with_localhost(config: dict[str, Any]) -> dict[str, Any]:
    config = copy.deepcopy(config)
    tls = config["coco:trustee"].setdefault("tls", {})
    tls["dnsNames"] = sorted({*tls.get("dnsNames", []), "localhost"})
    return config


def dev_config(**trustee: Any) -> dict[str, Any]:
    """The dev stack, plus workload `other` and resource default/key/2 only `other` reads."""
    config = with_localhost(stack_config("dev"))
    (hello,) = config["coco:workloads"]
    other = {**copy.deepcopy(hello), "name": "other"}
    # Another image, so another agent policy and so another init-data digest.
    other["containers"][0]["image"] = "registry.example.com/coco/other@sha256:" + "ab" * 32
    config["coco:workloads"] = [hello, other]
    config["coco:trustee"]["resources"].append(
        {"path": OTHER_SECRET, "valueFrom": "otherKey", "readers": ["other"]}
    )
    config["coco:trustee"].update(trustee)
    return config


def refused(done: Any) -> bool:
    """kbs-client failed because the KBS's resource policy said no (not for another reason)."""
    return bool(done.returncode != 0 and "PolicyDeny" in done.stderr)


def secret_of(done: Any) -> str:
    assert done.returncode == 0, done.stderr
    return base64.b64decode(done.stdout.strip()).decode()
