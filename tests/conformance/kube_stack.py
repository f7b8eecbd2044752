"""A throwaway copy of the coco project aimed at a local control plane (kube_cluster.py).

The bare-metal stack files target clusters we do not have; `write_stack` retargets one at the
test cluster's kubeconfig, with what cannot exist here switched off and said so:

- `install.method: preinstalled` (except where a test installs the pinned kata-deploy chart
  from the helm judge's local copy): the charts live in OCI/Helm registries this machine
  cannot reach, so the installer's RuntimeClasses are created first by
  `preinstall_runtime_classes` (with the selectors `chart` mode writes, from the program's own
  `runtime_class_manifest`), and the program reads them as it does on a preinstalled cluster;
- a `LoadBalancer` KBS Service becomes `NodePort`: no load-balancer controller runs here, and
  the provider's await logic (kept on) would wait for an address that never comes; every
  NodePort is re-pinned to a port derived from the stack name (stacks share the cluster) and
  the KBS URL moved to it (components/reachability.py);
- a trusted zone's `trusteeCluster` is the same test cluster.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tarfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml
from kube_cluster import KubeCluster

from components import releases
from components.cluster import runtime_class_manifest
from components.settings import BareMetalCluster

ROOT = Path(__file__).resolve().parents[2]
PROJECT_FILES = ("__main__.py", "components", "policies")
PULUMI_TIMEOUT = 600


class PulumiError(RuntimeError):
    def __init__(self, cmd: list[str], proc: subprocess.CompletedProcess[str]) -> None:
        super().__init__(f"{' '.join(cmd)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
        self.proc = proc


class KubeProject:
    """A copy of the program with its own file backend and one stack aimed at `cluster`."""

    def __init__(self, tmp: Path, stack: str, cluster: KubeCluster) -> None:
        self.dir = tmp / "project"
        self.stack = stack
        self.cluster = cluster
        self.dir.mkdir(parents=True)
        for name in PROJECT_FILES:
            src = ROOT / name
            if src.is_dir():
                shutil.copytree(src, self.dir / name, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                shutil.copy(src, self.dir / name)
        (self.dir / "stacks").mkdir()
        project = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())
        project["runtime"]["options"]["virtualenv"] = str(ROOT / ".venv")
        (self.dir / "Pulumi.yaml").write_text(yaml.safe_dump(project, sort_keys=False))
        backend = tmp / "state"
        backend.mkdir()
        if shutil.which("pulumi") is None:
            raise RuntimeError(
                "the pulumi CLI is not on PATH: run scripts/setup.sh and source scripts/env.sh"
            )
        self.env = dict(os.environ)
        self.env.pop("PULUMI_CONFIG_PASSPHRASE_FILE", None)
        self.env.update(
            PULUMI_BACKEND_URL=f"file://{backend}",
            # A private passphrase: the program refuses the public dev one for the production and
            # staging stacks these tests run (components/secrets_provider.py).
            PULUMI_CONFIG_PASSPHRASE=f"e2e-kube-{stack}-{os.getpid()}",
            PULUMI_SKIP_UPDATE_CHECK="true",
            PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION="true",
            KUBECONFIG=str(cluster.kubeconfig),
        )
        self.config: dict[str, Any] = {}
        self.wrapper: list[str] = []
        """An argv prefix every `pulumi` command runs under (local_dns.py: a KBS's name
        mapped to 127.0.0.1 for the admin client an external-Trustee stack runs)."""

    def pulumi(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        cmd = ["pulumi", *args, "--stack", self.stack, "--non-interactive"]
        proc = subprocess.run(
            [*self.wrapper, *cmd],
            cwd=self.dir,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=PULUMI_TIMEOUT,
            check=False,
        )
        if check and proc.returncode != 0:
            raise PulumiError(cmd, proc)
        return proc

    def write_stack(
        self, source: str | dict[str, Any], chart: Path | None = None
    ) -> dict[str, Any]:
        """The repo's stack file `source` (or a config dict), aimed at the test cluster;
        CoCo `preinstalled`, or installed by `chart` (a local kata-deploy chart folder)."""
        if isinstance(source, str):
            doc = yaml.safe_load((ROOT / "stacks" / f"Pulumi.{source}.yaml").read_text())
            config: dict[str, Any] = doc["config"]
        else:
            config = source
        config["coco:kubernetes"] = {
            "kubeconfig": str(self.cluster.kubeconfig),
            "context": "coco-test",
        }
        cluster = config["coco:cluster"]
        install = cluster.setdefault("install", {})
        if chart is None:
            install["method"] = "preinstalled"
        else:
            install.update(method="chart", chart=str(chart))
        if "gpu" in cluster:
            cluster["gpu"].setdefault("operator", {})["install"] = False
        # A throwaway cluster: production's default `protect` would make destroy refuse.
        config["coco:protect"] = False
        topology = config.get("coco:topology") or {}
        if topology.get("trusteeCluster"):  # the trusted zone: the same test cluster here
            topology["trusteeCluster"] = dict(config["coco:kubernetes"])
        trustee = config.setdefault("coco:trustee", {})
        if trustee.get("serviceType") in ("LoadBalancer", "NodePort"):
            # A node port of its own per stack (stacks share the test cluster), and the URL
            # init-data carries moved to it, as the reachability check requires.
            node_port = 30000 + int(hashlib.sha256(self.stack.encode()).hexdigest(), 16) % 2768
            trustee["serviceType"] = "NodePort"
            trustee["nodePort"] = node_port
            if trustee.get("url"):
                parts = urlsplit(trustee["url"])
                trustee["url"] = f"https://{parts.hostname}:{node_port}"
        self.save(config)
        return config

    def save(self, config: dict[str, Any]) -> None:
        self.config = config
        path = self.dir / "stacks" / f"Pulumi.{self.stack}.yaml"
        existing = yaml.safe_load(path.read_text()) if path.exists() else None
        doc = dict(existing or {})
        doc["config"] = {**(doc.get("config") or {}), **config}
        path.write_text(yaml.safe_dump(doc, sort_keys=False))

    def init(self, secrets: dict[str, str] | None = None) -> dict[str, str]:
        """`stack init` and the KBS secrets the stack reads (returns them)."""
        self.pulumi("stack", "init")
        values = dict(secrets or {})
        for r in self.config.get("coco:trustee", {}).get("resources", []):
            key = r["valueFrom"]
            values.setdefault(key, f"e2e-{self.stack}-{key}-7f3a")
        for key, value in values.items():
            self.pulumi("config", "set", "--secret", key, value)
        return values


def cluster_settings(config: dict[str, Any]) -> BareMetalCluster:
    return BareMetalCluster.model_validate(config["coco:cluster"])


def preinstall_runtime_classes(
    cluster: KubeCluster, config: dict[str, Any], runtime_classes: list[str]
) -> None:
    """Create the RuntimeClasses an installer would have: the manifests `chart` mode applies
    (with Node Feature Discovery's labels as the selectors), owned by no Pulumi stack."""
    settings = cluster_settings(config).model_copy(update={"use_nfd": True})
    for rc in sorted(set(runtime_classes)):
        manifest = runtime_class_manifest(settings, rc, "preinstalled")
        manifest["metadata"]["labels"] = {"app.kubernetes.io/managed-by": "kata-deploy"}
        cluster.create(manifest)


def install_nfd_crds(cluster: KubeCluster, chart: Path) -> list[str]:
    """Node Feature Discovery's CRDs, as a cluster running NFD has them, from the NFD chart
    kata-deploy's chart depends on (the program refuses `useNfd` on a cluster without the
    NodeFeatureRule CRD, and the chart creates NodeFeatureRules). Returns the CRD names."""
    (tgz,) = sorted((chart / "charts").glob("node-feature-discovery-*.tgz"))
    with tarfile.open(tgz) as tar:
        member = tar.extractfile("node-feature-discovery/crds/nfd-api-crds.yaml")
        if member is None:
            raise FileNotFoundError(f"no crds/nfd-api-crds.yaml in {tgz}")
        docs = [d for d in yaml.safe_load_all(member.read()) if d]
    names = []
    for crd in docs:
        name = crd["metadata"]["name"]
        path = f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}"
        if cluster.get(path) is None:
            cluster.create(crd)
        names.append(name)
    deadline = time.monotonic() + 60
    for name in names:
        path = f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}"
        while not any(
            c["type"] == "Established" and c["status"] == "True"
            # A just-created CRD's status can hold `conditions: null` for a moment.
            for c in ((cluster.get(path) or {}).get("status") or {}).get("conditions") or []
        ):
            if time.monotonic() > deadline:
                raise TimeoutError(f"CRD {name} not Established within 60 s")
            time.sleep(0.2)
    return names


def kata_deploy_chart(helm_home: Path, version: str = releases.KATA_DEPLOY.version) -> Path:
    """The pinned kata-deploy chart (components/releases.py; another release set's with
    `version`) as the helm judge lays it out, with its dependencies resolved locally: the
    chart `install.method: chart` installs."""
    chart = helm_home / "charts" / f"kata-deploy-{version}"
    if not (chart / "Chart.yaml").is_file():
        raise FileNotFoundError(f"{chart} is not laid out: run scripts/judges.sh helm")
    return chart
