"""A local Kubernetes control plane for the e2e tests: etcd, kube-apiserver,
kube-controller-manager, kube-scheduler and kwok, all built from upstream's Go modules by
`scripts/judges/kube/build.sh`.

No container runtime is involved: kwok plays every kubelet. It keeps the fake nodes Ready (node
leases) and moves pods through upstream's default "fast" stages (kwok v0.7.0
`kustomize/stage/pod/fast`: scheduled pods become Running and Ready, Job pods Succeeded, deleted
pods are removed), so Deployments roll out and the Kubernetes provider's await logic runs for
real. Everything else is the real control plane: admission (the RuntimeClass plugin merges a
class's `overhead` and `scheduling.nodeSelector` into each pod), server-side validation, the
scheduler placing pods on the nodes that fit, the garbage collector and namespace deletion.

Every process binds 127.0.0.1 on a free port, logs to a file in the cluster's folder, and is
killed when the cluster stops; a component that does not come up within its bounded wait fails
with the tail of its log.
"""

from __future__ import annotations

import base64
import datetime
import ipaddress
import json
import os
import signal
import socket
import ssl
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

START_TIMEOUT = 90.0
"""Seconds each component gets to become healthy (a loaded 2-core machine is slow)."""

SERVICE_CIDR = "10.96.0.0/16"
"""Addresses the API server allocates ClusterIPs from; nothing routes to them (no kube-proxy)."""

POD_CIDR = "10.244.0.1/16"
"""kwok's pod IP pool; its default /24 runs out past 254 pods (the 1000-workload benchmark)."""

TDX = {"intel.feature.node.kubernetes.io/tdx": "true"}
SNP = {"amd.feature.node.kubernetes.io/snp": "true"}
SE = {"feature.node.kubernetes.io/cpu-security.se.enabled": "true"}
KATA = {"katacontainers.io/kata-runtime": "true"}
GPU_CC = {"nvidia.com/cc.ready.state": "true"}
AMD64 = {"kubernetes.io/arch": "amd64", "kubernetes.io/os": "linux"}
S390X = {"kubernetes.io/arch": "s390x", "kubernetes.io/os": "linux"}


@dataclass(frozen=True)
class FakeNode:
    name: str
    labels: dict[str, str]
    extra_capacity: dict[str, str] = field(default_factory=dict)

    @property
    def tee(self) -> str:
        """The node's TEE as the fleet labels it ("none" for a plain node)."""
        if self.labels.get("kubernetes.io/arch") == "s390x":
            return "se"
        if "nvidia.com/cc.ready.state" in self.labels:
            return "gpu-tdx"
        for tee, marker in (("tdx", TDX), ("snp", SNP)):
            if marker.items() <= self.labels.items():
                return tee
        return "none"


# The TEE key counts NFD publishes as extended resources through kata-deploy 4.1.0's
# `kata-tee-keys` NodeFeatureRule (helm-chart templates/node-feature-rules.yaml:
# `@cpu.security.tdx.total_keys`, `@cpu.security.sev.encrypted_state_ids`), which the TDX/SNP
# RuntimeClasses' overhead consumes one per pod; the counts are a small host's.
TDX_KEYS = {"tdx.intel.com/keys": "31"}
SNP_ESIDS = {"sev-snp.amd.com/esids": "99"}

FLEET: tuple[FakeNode, ...] = (
    FakeNode("tdx-0", {**AMD64, **TDX, **KATA}, TDX_KEYS),
    FakeNode("tdx-1", {**AMD64, **TDX, **KATA}, TDX_KEYS),
    FakeNode("snp-0", {**AMD64, **SNP, **KATA}, SNP_ESIDS),
    FakeNode("snp-1", {**AMD64, **SNP, **KATA}, SNP_ESIDS),
    FakeNode("se-0", {**S390X, **SE, **KATA}),
    FakeNode("gpu-0", {**AMD64, **TDX, **GPU_CC, **KATA}, {"nvidia.com/pgpu": "8", **TDX_KEYS}),
    FakeNode("plain-0", dict(AMD64)),
)
"""Nodes like the real fleet's: the NFD labels the runtime classes select on, kata-deploy's
`katacontainers.io/kata-runtime` where the runtime is installed, the TEE key counts, NVIDIA's
CC-ready label and `nvidia.com/pgpu` capacity on the GPU node, and one plain node that must
never get a TEE pod."""


NODE_CAPACITY = {"cpu": "256", "memory": "4Ti", "pods": "2000"}
"""What each fake node offers unless the cluster is started with more (a benchmark's 2000 pods
with a RuntimeClass overhead of one CPU each need more than 256 CPUs a node)."""


def node_manifest(node: FakeNode, capacity: dict[str, str] | None = None) -> dict[str, Any]:
    capacity = {**NODE_CAPACITY, **(capacity or {}), **node.extra_capacity}
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": node.name,
            # kwok's convention for nodes it fakes (it manages all nodes here anyway).
            "annotations": {"kwok.x-k8s.io/node": "fake"},
            "labels": {**node.labels, "kubernetes.io/hostname": node.name, "type": "kwok"},
        },
        "status": {"capacity": capacity, "allocatable": capacity},
    }


# --------------------------------------------------------------------------- certificates


def _name(cn: str, org: str | None = None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, cn)]
    if org:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, org))
    return x509.Name(attrs)


def _pem_key(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


@dataclass
class Pki:
    """The cluster's CA, its serving and client certificates, and the service-account key."""

    dir: Path

    def __post_init__(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        now = datetime.datetime.now(datetime.UTC)
        self._not_before = now - datetime.timedelta(minutes=5)
        self._not_after = now + datetime.timedelta(days=1)
        self.ca_key = ec.generate_private_key(ec.SECP256R1())
        self.ca_cert = (
            x509.CertificateBuilder()
            .subject_name(_name("coco-test-ca"))
            .issuer_name(_name("coco-test-ca"))
            .public_key(self.ca_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(self._not_before)
            .not_valid_after(self._not_after)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    key_cert_sign=True,
                    crl_sign=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .sign(self.ca_key, hashes.SHA256())
        )
        self.ca = self._write("ca.crt", self.ca_cert.public_bytes(serialization.Encoding.PEM))
        self.server_cert, self.server_key = self._issue(
            "kube-apiserver",
            None,
            server=True,
            dns=["localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc"],
            ips=["127.0.0.1", "10.96.0.1"],
        )
        # system:masters: the admin the tests, Pulumi and every component use (one identity
        # keeps the setup small; RBAC still runs for the service accounts the cluster creates).
        self.admin_cert, self.admin_key = self._issue("coco-admin", "system:masters")
        sa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.sa_key = self._write("sa.key", _pem_key(sa))
        self.sa_pub = self._write(
            "sa.pub",
            sa.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            ),
        )

    def _write(self, name: str, data: bytes) -> Path:
        path = self.dir / name
        path.write_bytes(data)
        path.chmod(0o600)
        return path

    def _issue(
        self,
        cn: str,
        org: str | None,
        server: bool = False,
        dns: list[str] | None = None,
        ips: list[str] | None = None,
    ) -> tuple[Path, Path]:
        key = ec.generate_private_key(ec.SECP256R1())
        usage = x509.ExtendedKeyUsageOID.SERVER_AUTH if server else None
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(cn, org))
            .issuer_name(self.ca_cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(self._not_before)
            .not_valid_after(self._not_after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.ExtendedKeyUsage([usage or x509.ExtendedKeyUsageOID.CLIENT_AUTH]),
                critical=False,
            )
        )
        if dns or ips:
            names: list[x509.GeneralName] = [x509.DNSName(d) for d in dns or []]
            names += [x509.IPAddress(ipaddress.ip_address(i)) for i in ips or []]
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
        cert = builder.sign(self.ca_key, hashes.SHA256())
        return (
            self._write(f"{cn}.crt", cert.public_bytes(serialization.Encoding.PEM)),
            self._write(f"{cn}.key", _pem_key(key)),
        )


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --------------------------------------------------------------------------- the cluster


class ClusterError(RuntimeError):
    pass


@dataclass
class Process:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    def tail(self, lines: int = 40) -> str:
        try:
            text = self.log.read_text(errors="replace").splitlines()
        except OSError:
            return "(no log)"
        return "\n".join(text[-lines:])


class KubeCluster:
    """One running control plane; use `start_cluster` (a context manager) to get one."""

    def __init__(
        self, bin_dir: Path, workdir: Path, node_capacity: dict[str, str] | None = None
    ) -> None:
        self.bin = bin_dir
        self.node_capacity = node_capacity
        self.dir = workdir
        self.dir.mkdir(parents=True, exist_ok=True)
        self.processes: list[Process] = []
        self.pki = Pki(self.dir / "pki")
        self.api_port = free_port()
        self.server = f"https://127.0.0.1:{self.api_port}"
        self.kubeconfig = self.dir / "kubeconfig.yaml"
        self.kubeconfig.write_text(self._kubeconfig_text())
        self.kubeconfig.chmod(0o600)
        self._ssl = ssl.create_default_context(cafile=str(self.pki.ca))
        self._ssl.load_cert_chain(str(self.pki.admin_cert), str(self.pki.admin_key))

    # ---------------------------------------------------------------- lifecycle

    def start(self) -> None:
        etcd_port, peer_port = free_port(), free_port()
        etcd_url = f"http://127.0.0.1:{etcd_port}"
        self._spawn(
            "etcd",
            [
                "--name=node0",
                f"--data-dir={self.dir / 'etcd'}",
                f"--listen-client-urls={etcd_url}",
                f"--advertise-client-urls={etcd_url}",
                f"--listen-peer-urls=http://127.0.0.1:{peer_port}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{peer_port}",
                f"--initial-cluster=node0=http://127.0.0.1:{peer_port}",
                "--unsafe-no-fsync=true",  # a throwaway test store: speed over durability
                "--log-level=warn",
            ],
        )
        self._wait("etcd", lambda: self._plain_get(f"{etcd_url}/health", '"health":"true"'))

        pki = self.pki
        self._spawn(
            "kube-apiserver",
            [
                f"--etcd-servers={etcd_url}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--secure-port={self.api_port}",
                f"--cert-dir={self.dir / 'apiserver-certs'}",
                f"--tls-cert-file={pki.server_cert}",
                f"--tls-private-key-file={pki.server_key}",
                f"--client-ca-file={pki.ca}",
                f"--service-account-key-file={pki.sa_pub}",
                f"--service-account-signing-key-file={pki.sa_key}",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                "--authorization-mode=RBAC",
                # As on kubeadm and managed clusters: kata-deploy's DaemonSet is privileged.
                "--allow-privileged=true",
                # The `kubernetes` Service's endpoints may not be a loopback address (upstream
                # validation), and nothing here routes to them anyway.
                "--endpoint-reconciler-type=none",
                "--enable-priority-and-fairness=false",
                "--profiling=false",
                "--v=1",
            ],
        )
        self._wait("kube-apiserver", lambda: self._api_ok("/readyz"))

        common = [
            f"--kubeconfig={self.kubeconfig}",
            f"--authentication-kubeconfig={self.kubeconfig}",
            f"--authorization-kubeconfig={self.kubeconfig}",
            "--leader-elect=false",
            "--bind-address=127.0.0.1",
            "--profiling=false",
        ]
        cm_port, sched_port = free_port(), free_port()
        self._spawn(
            "kube-controller-manager",
            [
                *common,
                f"--secure-port={cm_port}",
                f"--root-ca-file={pki.ca}",
                f"--service-account-private-key-file={pki.sa_key}",
                "--use-service-account-credentials=false",
                "--v=1",
            ],
        )
        self._spawn("kube-scheduler", [*common, f"--secure-port={sched_port}", "--v=1"])
        for name, port in (("kube-controller-manager", cm_port), ("kube-scheduler", sched_port)):
            self._wait(name, lambda p=port: self._plain_get(f"https://127.0.0.1:{p}/healthz", "ok"))

        kwok_port = free_port()
        self._spawn(
            "kwok",
            [
                f"--kubeconfig={self.kubeconfig}",
                "--manage-all-nodes=true",
                "--node-ip=127.0.0.1",
                f"--node-port={kwok_port}",
                f"--server-address=127.0.0.1:{kwok_port}",
                "--node-lease-duration-seconds=40",
                f"--cidr={POD_CIDR}",
            ],
            # kwok loads ~/.kwok/kwok.yaml when it exists: an empty home keeps upstream's
            # default stages (no Stage objects in any config) whatever the user has there.
            env={"HOME": str(self.dir / "kwok-home")},
        )
        for node in FLEET:
            self.create(node_manifest(node, self.node_capacity))
        self._wait("kwok", self._nodes_ready)
        # The controller-manager's service-account controller: pods need `default` to exist.
        self._wait(
            "kube-controller-manager",
            lambda: self._api_ok("/api/v1/namespaces/default/serviceaccounts/default"),
        )

    def stop(self) -> None:
        for proc in reversed(self.processes):
            if proc.popen.poll() is None:
                with suppress(ProcessLookupError):
                    os.killpg(proc.popen.pid, signal.SIGTERM)
        deadline = time.monotonic() + 15
        for proc in reversed(self.processes):
            try:
                proc.popen.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with suppress(ProcessLookupError):
                    os.killpg(proc.popen.pid, signal.SIGKILL)
                proc.popen.wait(timeout=10)
        self.processes.clear()

    def logs(self, lines: int = 40) -> str:
        return "\n".join(f"--- {p.name}\n{p.tail(lines)}" for p in self.processes)

    # ---------------------------------------------------------------- the API

    def request(
        self, method: str, path: str, body: Any = None, content_type: str = "application/json"
    ) -> Any:
        """One API call as the admin; returns the decoded JSON (None for 404 on GET)."""
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(f"{self.server}{path}", data=data, method=method)
        req.add_header("Accept", "application/json")
        if data is not None:
            req.add_header("Content-Type", content_type)
        try:
            with urllib.request.urlopen(req, context=self._ssl, timeout=30) as resp:
                return json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as err:
            if err.code == 404 and method == "GET":
                return None
            raise ClusterError(
                f"{method} {path}: {err.code} {err.read().decode(errors='replace')}"
            ) from err

    def get(self, path: str) -> Any:
        return self.request("GET", path)

    def create(self, obj: dict[str, Any]) -> Any:
        return self.request("POST", collection_path(obj), obj)

    def merge_patch(self, path: str, patch: dict[str, Any]) -> Any:
        return self.request("PATCH", path, patch, "application/merge-patch+json")

    def items(self, path: str) -> list[dict[str, Any]]:
        listing = self.get(path)
        return list(listing["items"]) if listing else []

    def pods(self, namespace: str | None = None) -> list[dict[str, Any]]:
        if namespace:
            return self.items(f"/api/v1/namespaces/{namespace}/pods")
        return self.items("/api/v1/pods")

    @contextmanager
    def watch_orphans(self, interval: float = 0.2) -> Iterator[list[str]]:
        """Poll, until the block ends, for a pod whose RuntimeClass no longer exists (or is
        being deleted): the state a destroy in the wrong order leaves. Yields the findings."""
        found: list[str] = []
        stop = threading.Event()

        def poll() -> None:
            while not stop.is_set():
                with suppress(Exception):
                    classes = {
                        rc["metadata"]["name"]
                        for rc in self.items("/apis/node.k8s.io/v1/runtimeclasses")
                        if not rc["metadata"].get("deletionTimestamp")
                    }
                    for pod in self.pods():
                        rc = pod["spec"].get("runtimeClassName")
                        if rc and rc not in classes:
                            found.append(f"{pod['metadata']['name']} ({rc})")
                stop.wait(interval)

        thread = threading.Thread(target=poll, daemon=True)
        thread.start()
        try:
            yield found
        finally:
            stop.set()
            thread.join(timeout=10)

    def wait_for(self, what: str, check: Callable[[], bool], timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if check():
                return
            time.sleep(0.5)
        raise ClusterError(f"timed out after {timeout:.0f} s waiting for {what}\n{self.logs(15)}")

    # ---------------------------------------------------------------- internals

    def _spawn(self, name: str, args: list[str], env: dict[str, str] | None = None) -> None:
        log = self.dir / f"{name}.log"
        binary = self.bin / name
        if not os.access(binary, os.X_OK):
            raise ClusterError(f"{binary} is missing: run scripts/judges.sh kube")
        proc_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(self.dir)}
        proc_env.update(env or {})
        Path(proc_env["HOME"]).mkdir(parents=True, exist_ok=True)
        with log.open("wb") as out:
            popen = subprocess.Popen(
                [str(binary), *args],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.dir,
                env=proc_env,
                start_new_session=True,  # its own process group: stop() kills it and its children
            )
        self.processes.append(Process(name, popen, log))

    def _wait(self, name: str, check: Callable[[], bool], timeout: float = START_TIMEOUT) -> None:
        proc = next(p for p in self.processes if p.name == name)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.popen.poll() is not None:
                raise ClusterError(
                    f"{name} exited with status {proc.popen.returncode} while starting; "
                    f"log tail ({proc.log}):\n{proc.tail()}"
                )
            with suppress(Exception):
                if check():
                    return
            time.sleep(0.3)
        raise ClusterError(
            f"{name} not healthy after {timeout:.0f} s; log tail ({proc.log}):\n{proc.tail()}"
        )

    def _plain_get(self, url: str, expect: str) -> bool:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE  # the components' self-signed health endpoints
        with urllib.request.urlopen(url, context=ctx, timeout=5) as resp:
            return expect in resp.read().decode()

    def _api_ok(self, path: str) -> bool:
        req = urllib.request.Request(f"{self.server}{path}")
        with urllib.request.urlopen(req, context=self._ssl, timeout=5) as resp:
            return bool(resp.status == 200)

    def _nodes_ready(self) -> bool:
        nodes = self.items("/api/v1/nodes")
        ready = {
            n["metadata"]["name"]
            for n in nodes
            if any(
                c["type"] == "Ready" and c["status"] == "True"
                for c in n.get("status", {}).get("conditions", [])
            )
        }
        return ready >= {n.name for n in FLEET}

    def _kubeconfig_text(self) -> str:
        def b64(path: Path) -> str:
            return base64.b64encode(path.read_bytes()).decode()

        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "coco-test",
                    "cluster": {
                        "server": self.server,
                        "certificate-authority-data": b64(self.pki.ca),
                    },
                }
            ],
            "users": [
                {
                    "name": "coco-admin",
                    "user": {
                        "client-certificate-data": b64(self.pki.admin_cert),
                        "client-key-data": b64(self.pki.admin_key),
                    },
                }
            ],
            "contexts": [
                {"name": "coco-test", "context": {"cluster": "coco-test", "user": "coco-admin"}}
            ],
            "current-context": "coco-test",
        }
        return yaml.safe_dump(config, sort_keys=False)


_CORE = {"Node", "Namespace", "Pod", "ConfigMap", "Secret", "Service", "ServiceAccount"}
_PLURAL = {"RuntimeClass": "runtimeclasses"}


def collection_path(obj: dict[str, Any]) -> str:
    """The REST collection an object is created in (the kinds the tests create)."""
    kind = obj["kind"]
    plural = _PLURAL.get(kind, kind.lower() + "s")
    api = obj["apiVersion"]
    base = "/api/v1" if api == "v1" else f"/apis/{api}"
    ns = obj["metadata"].get("namespace")
    if ns and kind not in {"Node", "Namespace", "RuntimeClass"}:
        return f"{base}/namespaces/{ns}/{plural}"
    return f"{base}/{plural}"


@contextmanager
def start_cluster(
    bin_dir: Path, workdir: Path, node_capacity: dict[str, str] | None = None
) -> Iterator[KubeCluster]:
    """A running control plane with the fake fleet, stopped (every process killed) on exit;
    `node_capacity` raises what each fake node offers (NODE_CAPACITY)."""
    cluster = KubeCluster(bin_dir, workdir, node_capacity)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
