"""The Helm tier: real Helm renders the upstream charts with exactly the values the program passes.

For every stack file, the real program runs under mocks (tests/test_stacks.py `run_stack`), and
each Helm release it registers is rendered with `helm template` from the upstream chart at the
pinned version (built into the judges cache by scripts/judges/helm/build.sh, from the archives
in ../shared/upstream). The assertions are on what upstream's templates make of coco's values:
the kata-deploy DaemonSet's environment, the adaptor's ConfigMap (run through upstream's own
`entrypoint.sh`), service-account annotations, the GPU Operator's ClusterPolicy, the
RuntimeClasses and NodeFeatureRules that end up on the cluster, and collisions with the
objects the program creates itself.

Not rendered: cert-manager (no chart archive is pinned; the jetstack chart is installed as is,
with only `crds.enabled`).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import pulumi_kubernetes as k8s
import pytest
import yaml
from judges import judge_dir
from test_stacks import STACK_NAMES, Run, run_stack

from components import releases, tee
from components.cluster import kata_deploy_values
from components.settings import BareMetalCluster, parse, strip_namespace

pytestmark = pytest.mark.conformance

RELEASE = "kubernetes:helm.sh/v3:Release"
NOT_RENDERED = {"cert-manager": "no pinned chart archive (jetstack chart installed as is)"}
KUBE_VERSION = "1.34.0"
HELM_TIMEOUT = 120

CLUSTER_SCOPED = {
    "Namespace",
    "ClusterRole",
    "ClusterRoleBinding",
    "CustomResourceDefinition",
    "RuntimeClass",
    "MutatingWebhookConfiguration",
    "ValidatingWebhookConfiguration",
    "PriorityClass",
    "NodeFeatureRule",
    "ClusterPolicy",
    "Node",
    "NodePatch",
    "ClusterIssuer",
}

HELM_ARCH_ENV = {"x86_64": "X86_64", "s390x": "S390X"}
"""kata-deploy's env suffix per architecture (`_helpers.tpl` `kata-deploy.commonEnv`)."""

# Identity webhooks the clouds run on managed clusters: they add these variables to a pod whose
# ServiceAccount carries the annotation (amazon-eks-pod-identity-webhook: `AWS_ROLE_ARN` from
# `eks.amazonaws.com/role-arn`, `AWS_WEB_IDENTITY_TOKEN_FILE`; azure-workload-identity webhook,
# for pods labelled `azure.workload.identity/use: "true"`: `AZURE_CLIENT_ID` from
# `azure.workload.identity/client-id`, `AZURE_TENANT_ID`, `AZURE_FEDERATED_TOKEN_FILE`,
# `AZURE_AUTHORITY_HOST`).
EKS_ROLE_ANNOTATION = "eks.amazonaws.com/role-arn"
AZURE_CLIENT_ANNOTATION = "azure.workload.identity/client-id"
AZURE_USE_LABEL = "azure.workload.identity/use"


# --------------------------------------------------------------------------- helm


@pytest.fixture(scope="module")
def helm_home() -> Path:
    return judge_dir("helm")


@dataclass
class Install:
    """One Helm release the program registers, as the engine would see it."""

    resource: str
    chart: str
    version: str
    name: str
    namespace: str
    values: dict[str, Any]
    path: Path | None = None
    """A local chart folder (render mode's `helm.v3.Chart`), rendered instead of the judge's."""

    @property
    def chart_name(self) -> str:
        return self.chart.rstrip("/").rsplit("/", 1)[-1]


ROOT = Path(__file__).resolve().parents[2]


def template_install(opts: dict[str, Any]) -> Install:
    """A rendered `helm.v3.Chart` (the options of its `kubernetes:helm:template` invoke) as an
    Install: a local chart's name and version are what its Chart.yaml says, which is what
    the provider's `helm template` renders."""
    name = opts["release_name"]
    if "path" in opts:
        path = ROOT / opts["path"]
        meta = yaml.safe_load((path / "Chart.yaml").read_text())
        chart, version = str(meta["name"]), str(meta["version"])
    else:
        path, chart, version = None, opts["chart"], opts["version"]
    return Install(
        resource=f"{name}-chart",
        chart=chart,
        version=version,
        name=name,
        namespace=opts["namespace"],
        values=opts.get("values") or {},
        path=path,
    )


def chart_dir(home: Path, chart_name: str, version: str) -> Path:
    path = home / "charts" / f"{chart_name}-{version}"
    assert path.is_dir(), f"no upstream chart {chart_name} {version} in the helm judge ({path})"
    return path


def helm_template(
    home: Path,
    chart: Path,
    release: str,
    namespace: str,
    values: dict[str, Any],
    tmp: Path,
    api_versions: tuple[str, ...] = (),
) -> list[dict[str, Any]]:
    """`helm template` of `chart` with `values` (JSON is YAML), CRDs included."""
    tmp.mkdir(parents=True, exist_ok=True)
    values_file = tmp / f"{release}-values.json"
    values_file.write_text(json.dumps(values, sort_keys=True))
    argv = [
        str(home / "bin" / "helm"),
        "template",
        release,
        str(chart),
        "--namespace",
        namespace,
        "--values",
        str(values_file),
        "--include-crds",
        "--kube-version",
        KUBE_VERSION,
    ]
    for api in api_versions:
        argv += ["--api-versions", api]
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp),
        "HELM_CACHE_HOME": str(tmp / "cache"),
        "HELM_CONFIG_HOME": str(tmp / "config"),
        "HELM_DATA_HOME": str(tmp / "data"),
    }
    proc = subprocess.run(
        argv, capture_output=True, text=True, env=env, timeout=HELM_TIMEOUT, check=False
    )
    assert proc.returncode == 0, f"helm template {chart.name} failed:\n{proc.stderr}"
    return [doc for doc in yaml.safe_load_all(proc.stdout) if doc]


@dataclass
class StackRender:
    """A stack run under mocks, and every chart it installs rendered by real Helm."""

    stack: str
    run: Run
    installs: list[Install]
    rendered: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    """Release resource name -> rendered objects."""
    release_depends_on: dict[str, list[str]] = field(default_factory=dict)
    """Release resource name -> names of the resources it depends on."""

    def install(self, chart_name: str) -> Install:
        found = [i for i in self.installs if i.chart_name == chart_name]
        assert len(found) == 1, f"{self.stack}: {len(found)} releases of chart {chart_name}"
        return found[0]

    def objects(self, chart_name: str | None = None) -> Iterator[dict[str, Any]]:
        for install in self.installs:
            if chart_name is None or install.chart_name == chart_name:
                yield from self.rendered.get(install.resource, [])

    def find(self, kind: str, name: str, chart_name: str | None = None) -> dict[str, Any]:
        found = [
            o
            for o in self.objects(chart_name)
            if o.get("kind") == kind and o["metadata"]["name"] == name
        ]
        assert len(found) == 1, f"{self.stack}: {len(found)} rendered {kind} {name}"
        return found[0]


def _run_recording_dependencies(stack: str) -> tuple[Run, dict[str, list[str]]]:
    """`run_stack`, also recording each Helm release's `depends_on` (mocks do not see them)."""
    seen: dict[str, list[str]] = {}
    original = k8s.helm.v3.Release.__init__

    def record(self: Any, resource_name: str, *args: Any, **kwargs: Any) -> None:
        opts = kwargs.get("opts")
        deps = (opts.depends_on if opts is not None else None) or []
        if not isinstance(deps, list):
            deps = [deps]
        seen[resource_name] = [getattr(d, "_name", "") for d in deps]
        original(self, resource_name, *args, **kwargs)

    k8s.helm.v3.Release.__init__ = record  # type: ignore[method-assign]
    try:
        return run_stack(stack), seen
    finally:
        k8s.helm.v3.Release.__init__ = original  # type: ignore[method-assign]


def render_stack(home: Path, stack: str, tmp: Path) -> StackRender:
    run, depends = _run_recording_dependencies(stack)
    installs = []
    for r in run.mocks.of_type("helm.sh/v3:Release"):
        i = r.inputs
        installs.append(
            Install(
                resource=r.name,
                chart=i["chart"],
                version=i["version"],
                name=i["name"],
                namespace=i["namespace"],
                values=i.get("values") or {},
            )
        )
    # Render mode: kata-deploy as a client-side `helm.v3.Chart` (the dev stack).
    installs += [template_install(opts) for opts in run.mocks.helm_templates]
    out = StackRender(stack, run, installs, release_depends_on=depends)
    for install in installs:
        if install.chart_name in NOT_RENDERED:
            continue
        out.rendered[install.resource] = helm_template(
            home,
            install.path or chart_dir(home, install.chart_name, install.version),
            install.name,
            install.namespace,
            install.values,
            tmp / stack,
        )
    return out


@pytest.fixture(scope="module")
def renders(helm_home: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, StackRender]:
    tmp = tmp_path_factory.mktemp("helm")
    return {stack: render_stack(helm_home, stack, tmp) for stack in STACK_NAMES}


def bare_metal_chart_stacks() -> list[str]:
    out = []
    for stack in STACK_NAMES:
        cluster = run_settings(stack)
        if cluster.get("kind") == "baremetal" and cluster.get("install", {}).get(
            "method", "chart"
        ) == ("chart"):
            out.append(stack)
    return out


def peerpods_stacks() -> list[str]:
    return [s for s in STACK_NAMES if run_settings(s).get("kind") == "peerpods"]


def run_settings(stack: str) -> dict[str, Any]:
    root = Path(__file__).resolve().parents[2]
    doc = yaml.safe_load((root / "stacks" / f"Pulumi.{stack}.yaml").read_text())
    cluster: dict[str, Any] = doc["config"]["coco:cluster"]
    return cluster


BARE_METAL = bare_metal_chart_stacks()
PEERPODS = peerpods_stacks()


def env_of(container: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e.get("value", "") for e in container.get("env", []) if "value" in e}


def quantity(value: str) -> Decimal:
    """A Kubernetes quantity as a number (enough for cpu and Mi/Gi memory here)."""
    units = {"m": Decimal("0.001"), "Mi": Decimal(2**20), "Gi": Decimal(2**30), "": Decimal(1)}
    m = re.fullmatch(r"([0-9.]+)(m|Mi|Gi|)", str(value))
    assert m, f"unexpected quantity {value!r}"
    return Decimal(m.group(1)) * units[m.group(2)]


# --------------------------------------------------------------------------- every release


@pytest.mark.parametrize("stack", STACK_NAMES)
def test_every_release_renders_from_the_pinned_chart(
    renders: dict[str, StackRender], stack: str
) -> None:
    r = renders[stack]
    for install in r.installs:
        if install.chart_name in NOT_RENDERED:
            continue
        assert r.rendered[install.resource], f"{install.resource}: rendered nothing"


def test_release_set_is_what_the_stacks_install(renders: dict[str, StackRender]) -> None:
    """One release set: every stack installs the versions components/releases.py pins."""
    pins = {
        pin.chart: pin.version
        for pin in (
            releases.KATA_DEPLOY,
            releases.PEERPODS,
            releases.GPU_OPERATOR,
            releases.CERT_MANAGER,
        )
    }
    # A local chart folder (the dev stack's) is pinned by the name and version it holds.
    local = {ref.rsplit("/", 1)[-1]: version for ref, version in pins.items()}
    for r in renders.values():
        for install in r.installs:
            want = pins[install.chart] if install.path is None else local[install.chart_name]
            assert install.version == want, (r.stack, install.chart)


# --------------------------------------------------------------------------- kata-deploy


def _wanted_shims(r: StackRender) -> list[str]:
    """The shims the stack's runtime classes need, by kata's naming (`kata-<shim>`)."""
    classes = [rc.inputs["metadata"]["name"] for rc in r.run.mocks.of_type("v1:RuntimeClass")]
    assert classes, f"{r.stack}: the program creates no RuntimeClass"
    return sorted(c.removeprefix("kata-") for c in classes)


@pytest.mark.parametrize("stack", BARE_METAL)
def test_kata_deploy_installs_exactly_the_needed_shims(
    renders: dict[str, StackRender], stack: str
) -> None:
    r = renders[stack]
    settings = r.run.settings.cluster
    arch = HELM_ARCH_ENV[settings.arch]  # type: ignore[union-attr]
    ds = r.find("DaemonSet", "kata-deploy", "kata-deploy")
    (container,) = [
        c for c in ds["spec"]["template"]["spec"]["containers"] if c["name"] == "kube-kata"
    ]
    env = env_of(container)
    shims = _wanted_shims(r)
    assert env[f"SHIMS_{arch}"] == " ".join(shims)
    assert [k for k in env if k.startswith("SHIMS_")] == [f"SHIMS_{arch}"]
    default = tee.lookup(tee.default_class(settings.hardware)).kata_deploy_shim  # type: ignore[union-attr]
    assert env[f"DEFAULT_SHIM_{arch}"] == (default if default in shims else shims[0])
    # Guest pull through nydus for every shim (images are pulled inside the TEE).
    assert env["EXPERIMENTAL_SETUP_SNAPSHOTTER"] == "nydus"
    assert env[f"SNAPSHOTTER_HANDLER_MAPPING_{arch}"] == ",".join(f"{s}:nydus" for s in shims)
    assert env[f"PULL_TYPE_MAPPING_{arch}"] == ",".join(f"{s}:guest-pull" for s in shims)
    assert f"EXPERIMENTAL_FORCE_GUEST_PULL_{arch}" not in env
    assert f"ALLOWED_HYPERVISOR_ANNOTATIONS_{arch}" not in env


KATA_DEPLOY_DIGEST = "quay.io/kata-containers/kata-deploy@sha256:" + "5e" * 32


@pytest.mark.parametrize("image", [None, KATA_DEPLOY_DIGEST])
def test_kata_deploy_image_is_the_pinned_override_or_the_charts_tag(
    helm_home: Path, tmp_path: Path, image: str | None
) -> None:
    """`coco:cluster.install.image` reaches the DaemonSet exactly as given (kata-deploy
    4.1.0 `_helpers.tpl` `kata-deploy.image` uses a reference containing `@` as is); without
    it, the chart's default is the mutable tag `:<appVersion>`: no pinned source publishes a
    digest for it."""
    config = {
        k: v
        for k, v in yaml.safe_load((ROOT / "stacks" / "Pulumi.dev.yaml").read_text())[
            "config"
        ].items()
        if not (isinstance(v, dict) and "secure" in v)
    }
    if image is not None:
        config["coco:cluster"]["install"]["image"] = image
    cluster = parse(strip_namespace(config)).cluster
    assert isinstance(cluster, BareMetalCluster)
    values = kata_deploy_values(cluster, ["kata-qemu-coco-dev"])
    objects = helm_template(
        helm_home,
        chart_dir(helm_home, "kata-deploy", releases.KATA_DEPLOY.version),
        "kata-deploy",
        "kata-system",
        values,
        tmp_path,
    )
    (ds,) = [
        o for o in objects if o["kind"] == "DaemonSet" and o["metadata"]["name"] == "kata-deploy"
    ]
    images = [c["image"] for c in ds["spec"]["template"]["spec"]["containers"]]
    want = image or f"quay.io/kata-containers/kata-deploy:{releases.KATA_DEPLOY.app_version}"
    assert images == [want]


@pytest.mark.parametrize("stack", BARE_METAL)
def test_kata_deploy_leaves_runtime_classes_to_pulumi(
    renders: dict[str, StackRender], helm_home: Path, stack: str
) -> None:
    """No chart renders a RuntimeClass, and kata-deploy 4.1.0's binary has no code touching
    one (its TEE key accounting moved into the chart's disabled RuntimeClass template), so
    nothing but Pulumi writes coco's RuntimeClasses: a refresh shows no drift."""
    r = renders[stack]
    assert [o for o in r.objects() if o["kind"] == "RuntimeClass"] == []
    version = r.install("kata-deploy").version
    binary = helm_home / "src" / f"kata-deploy-{version}" / "src"
    # Up to 4.0 the binary patched `kata*tdx*`/`kata*snp*` RuntimeClasses at run time
    # (`binary/src/k8s/runtimeclasses.rs`); only a binary whose source is pinned can be shown
    # not to.
    assert binary.is_dir(), f"kata-deploy {version}: its binary's source is not pinned"
    # The Kubernetes objects the binary reads or writes: every kube-rs `Api<Kind>` it makes.
    kinds = {
        kind
        for p in binary.rglob("*.rs")
        for kind in re.findall(r"\bApi(?:::)?<(\w+)>", p.read_text(errors="replace"))
    }
    assert kinds, "no kube-rs Api<...> found: has the binary's client changed?"
    assert "RuntimeClass" not in kinds and "NodeFeatureRule" not in kinds, kinds


@pytest.mark.parametrize("stack", BARE_METAL)
def test_runtime_classes_equal_what_kata_deploy_would_create(
    renders: dict[str, StackRender], helm_home: Path, tmp_path: Path, stack: str
) -> None:
    """Same shims, same NFD rule setting, kata-deploy's own RuntimeClasses on: the pod
    overhead (TEE key included) of each class equals coco's."""
    r = renders[stack]
    install = r.install("kata-deploy")
    values = {**install.values, "runtimeClasses": {"enabled": True, "createDefault": False}}
    theirs = {
        o["metadata"]["name"]: o
        for o in helm_template(
            helm_home,
            chart_dir(helm_home, "kata-deploy", install.version),
            install.name,
            install.namespace,
            values,
            tmp_path,
        )
        if o["kind"] == "RuntimeClass"
    }
    ours = {rc.inputs["metadata"]["name"]: rc.inputs for rc in r.run.mocks.of_type("RuntimeClass")}
    assert sorted(theirs) == sorted(ours)
    for name, rc in ours.items():
        assert rc["handler"] == theirs[name]["handler"]
        mine = {k: quantity(v) for k, v in rc["overhead"]["podFixed"].items()}
        upstream = {k: quantity(v) for k, v in theirs[name]["overhead"]["podFixed"].items()}
        assert mine == upstream, name


@pytest.mark.parametrize("stack", BARE_METAL)
def test_tee_labels_the_runtime_classes_select_on_are_provided(
    renders: dict[str, StackRender], stack: str
) -> None:
    """Every NFD label a RuntimeClass selects on comes from a rendered NodeFeatureRule (or is
    one of NFD's own `feature.node.kubernetes.io/` labels), and the CRD that rule needs is
    installed before it: by the GPU Operator's release, which kata-deploy's depends on, or,
    without one, read from the cluster at preview."""
    r = renders[stack]
    cluster = r.run.settings.cluster
    if not cluster.use_nfd:  # type: ignore[union-attr]
        return
    rule_labels: dict[str, str] = {}
    for o in r.objects():
        if o["kind"] == "NodeFeatureRule":
            for rule in o["spec"]["rules"]:
                rule_labels.update(rule.get("labels", {}))
    for rc in r.run.mocks.of_type("RuntimeClass"):
        for key, value in rc.inputs["scheduling"]["nodeSelector"].items():
            if key in (tee.KATA_RUNTIME_NODE_LABEL, "nvidia.com/cc.ready.state"):
                continue  # set by kata-deploy's installer / the GPU Operator's CC manager
            if key.startswith("feature.node.kubernetes.io/"):
                continue  # NFD's built-in labels
            assert rule_labels.get(key) == value, f"nothing labels nodes {key}={value}"
        for resource in rc.inputs["overhead"]["podFixed"]:
            if resource in ("cpu", "memory"):
                continue
            advertised = {
                res
                for o in r.objects()
                if o["kind"] == "NodeFeatureRule"
                for rule in o["spec"]["rules"]
                for res in rule.get("extendedResources", {})
            }
            assert resource in advertised, f"nothing advertises {resource}"
    crd = "nodefeaturerules.nfd.k8s-sigs.io"
    kata = r.install("kata-deploy")
    if not any(o["kind"] == "NodeFeatureRule" for o in r.rendered[kata.resource]):
        return  # no rule of kata-deploy's (SE: NFD's built-in label), so no CRD to order
    gpu = [i for i in r.installs if i.chart_name == "gpu-operator"]
    if gpu:
        assert any(
            o["kind"] == "CustomResourceDefinition" and o["metadata"]["name"] == crd
            for o in r.rendered[gpu[0].resource]
        )
        assert gpu[0].resource in r.release_depends_on[kata.resource]
    else:
        reads = [
            x for x in r.run.mocks.of_type("CustomResourceDefinition") if x.name.endswith("nfd")
        ]
        assert len(reads) == 1, "the NFD CRD is read at preview"


# --------------------------------------------------------------------------- GPU Operator


@pytest.mark.parametrize("stack", [s for s in BARE_METAL if run_settings(s).get("gpu") is not None])
def test_gpu_operator_confidential_computing_settings(
    renders: dict[str, StackRender], stack: str
) -> None:
    """NVIDIA's CoCo guide: sandbox workloads in Kata mode with VFIO passthrough, the CC
    manager on, NFD with NVIDIA's rules; no container-GPU operands default on CC nodes."""
    r = renders[stack]
    policy = r.find("ClusterPolicy", "cluster-policy", "gpu-operator")["spec"]
    assert policy["sandboxWorkloads"]["enabled"] is True
    assert policy["sandboxWorkloads"]["mode"] == "kata"
    assert policy["sandboxWorkloads"]["defaultWorkload"] == "vm-passthrough"
    assert policy["ccManager"]["enabled"] is True
    assert policy["ccManager"]["defaultMode"] == "on"
    assert policy["vfioManager"]["enabled"] is True
    assert policy["kataSandboxDevicePlugin"]["enabled"] is True
    # Kata comes from kata-deploy, not from the operator's Kata manager.
    assert policy["kataManager"]["enabled"] is False
    # The operator's NFD is deployed (worker DaemonSet) with NVIDIA's NodeFeatureRules.
    kinds = {(o["kind"], o["metadata"]["name"]) for o in r.objects("gpu-operator")}
    assert any(k == "DaemonSet" and "node-feature-discovery-worker" in n for k, n in kinds)
    assert any(k == "NodeFeatureRule" for k, _ in kinds)
    # The operator creates no RuntimeClass of its own (coco's are the only ones).
    assert not any(k == "RuntimeClass" for k, _ in kinds)


# --------------------------------------------------------------------------- peer pods


@pytest.mark.parametrize("stack", PEERPODS)
def test_peer_pods_install_only_the_remote_shim(
    renders: dict[str, StackRender], stack: str
) -> None:
    r = renders[stack]
    classes = sorted(
        o["metadata"]["name"] for o in r.objects("peerpods") if o["kind"] == "RuntimeClass"
    )
    assert classes == ["kata-remote"]
    ds = r.find("DaemonSet", "kata-deploy", "peerpods")
    (container,) = [
        c for c in ds["spec"]["template"]["spec"]["containers"] if c["name"] == "kube-kata"
    ]
    env = env_of(container)
    assert env["SHIMS_X86_64"] == "remote"
    assert env["DEFAULT_SHIM_X86_64"] == "remote"


def _adaptor_environment(r: StackRender) -> dict[str, str]:
    """The environment the adaptor container starts with: its env, its envFrom ConfigMap and
    Secret (the Secret is the program's own), and what the cloud's identity webhook injects."""
    ns = r.install("peerpods").namespace
    ds = r.find("DaemonSet", "cloud-api-adaptor-daemonset", "peerpods")
    pod = ds["spec"]["template"]
    (container,) = pod["spec"]["containers"]
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            cm = r.find("ConfigMap", source["configMapRef"]["name"], "peerpods")
            assert cm["metadata"]["namespace"] == ns
            env.update(cm["data"])
        if "secretRef" in source:
            name = source["secretRef"]["name"]
            (secret,) = [
                s for s in r.run.mocks.of_type("core/v1:Secret") if s.metadata.get("name") == name
            ]
            env.update(secret.inputs["stringData"])
    env.update(env_of(container))
    sa = r.find("ServiceAccount", pod["spec"]["serviceAccountName"], "peerpods")
    annotations = sa["metadata"].get("annotations") or {}
    if EKS_ROLE_ANNOTATION in annotations:
        env["AWS_ROLE_ARN"] = annotations[EKS_ROLE_ANNOTATION]
        env["AWS_WEB_IDENTITY_TOKEN_FILE"] = (
            "/var/run/secrets/eks.amazonaws.com/serviceaccount/token"
        )
    labels = pod["metadata"].get("labels") or {}
    if labels.get(AZURE_USE_LABEL) == "true" and AZURE_CLIENT_ANNOTATION in annotations:
        env["AZURE_CLIENT_ID"] = annotations[AZURE_CLIENT_ANNOTATION]
        env["AZURE_TENANT_ID"] = "00000000-0000-0000-0000-00000000c0c0"  # the cluster's
        env["AZURE_FEDERATED_TOKEN_FILE"] = "/var/run/secrets/azure/tokens/azure-identity-token"
        env["AZURE_AUTHORITY_HOST"] = "https://login.microsoftonline.com/"
    return env


def run_entrypoint(
    script: Path, env: dict[str, str], tmp: Path
) -> subprocess.CompletedProcess[str]:
    """Upstream's entrypoint.sh with `env`; `cloud-api-adaptor` is a stub that reports its argv."""
    bin_dir = tmp / "bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    stub = bin_dir / "cloud-api-adaptor"
    stub.write_text('#!/bin/sh\necho "STARTED $*"\n')
    stub.chmod(0o755)
    return subprocess.run(
        ["bash", str(script)],
        env={**env, "PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": str(tmp)},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        cwd=tmp,
    )


@pytest.mark.parametrize("stack", PEERPODS)
def test_adaptor_entrypoint_accepts_the_environment(
    renders: dict[str, StackRender], helm_home: Path, tmp_path: Path, stack: str
) -> None:
    """Upstream's own start-up check (`entrypoint.sh` at the chart's appVersion) passes with
    exactly what the pod gets: peer-pods-cm, peer-pods-secret and the identity webhook."""
    r = renders[stack]
    env = _adaptor_environment(r)
    provider = env["CLOUD_PROVIDER"]
    assert provider == r.install("peerpods").values["provider"]
    install = r.install("peerpods")
    chart = yaml.safe_load(
        (chart_dir(helm_home, "peerpods", install.version) / "Chart.yaml").read_text()
    )
    script = helm_home / "src" / f"cloud-api-adaptor-{chart['appVersion']}" / "entrypoint.sh"
    proc = run_entrypoint(script, env, tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"STARTED {provider}" in proc.stdout


def test_irsa_adaptor_does_not_start_on_chart_0_3_0(
    renders: dict[str, StackRender], helm_home: Path, tmp_path: Path
) -> None:
    """Why the pin moved: the same IRSA values on peerpods 0.3.0 (cloud-api-adaptor v0.21.0)
    give an adaptor whose entrypoint exits for want of static keys."""
    (stack,) = [s for s in PEERPODS if run_settings(s)["cloud"]["provider"] == "aws"]
    r = renders[stack]
    install = r.install("peerpods")
    old = StackRender(stack, r.run, [install])
    old.rendered[install.resource] = helm_template(
        helm_home,
        chart_dir(helm_home, "peerpods", "0.3.0"),
        install.name,
        install.namespace,
        install.values,
        tmp_path,
    )
    env = _adaptor_environment(old)
    assert "AWS_ROLE_ARN" in env and "AWS_SECRET_ACCESS_KEY" not in env
    proc = run_entrypoint(
        helm_home / "src" / "cloud-api-adaptor-v0.21.0" / "entrypoint.sh", env, tmp_path
    )
    assert proc.returncode != 0
    assert "AWS_SECRET_ACCESS_KEY is NOT set" in proc.stdout


@pytest.mark.parametrize("stack", PEERPODS)
def test_cloud_identity_reaches_both_service_accounts(
    renders: dict[str, StackRender], stack: str
) -> None:
    r = renders[stack]
    provider = r.install("peerpods").values["provider"]
    adaptor = r.find("ServiceAccount", "cloud-api-adaptor", "peerpods")["metadata"]
    if provider == "gcp":
        # peerpod-ctrl has no GCP provider (v0.22.0 src/peerpod-ctrl/controllers/): not
        # deployed; the adaptor uses the static key in peer-pods-secret, no federation.
        assert not [o for o in r.objects("peerpods") if "peerpodctrl" in o["metadata"]["name"]]
        assert not (adaptor.get("annotations") or {})
        return
    ctrl = r.find("ServiceAccount", "peerpodctrl-controller-manager", "peerpods")["metadata"]
    roles = {
        x.name: x.inputs
        for x in r.run.mocks.of_type("aws:iam/role:Role")
        if x.name.endswith("-irsa")
    }
    if provider == "aws" and run_settings(stack)["cloud"].get("credentials", "irsa") == "irsa":
        adaptor_role = next(n for n in roles if n.endswith("adaptor-irsa"))
        ctrl_role = next(n for n in roles if n.endswith("controller-irsa"))
        assert adaptor["annotations"][EKS_ROLE_ANNOTATION].endswith(f"role/{adaptor_role}")
        assert ctrl["annotations"][EKS_ROLE_ANNOTATION].endswith(f"role/{ctrl_role}")
    elif provider == "azure":
        for meta in (adaptor, ctrl):
            assert meta["annotations"][AZURE_CLIENT_ANNOTATION].startswith("client-")
        ctrl_pods = [
            o
            for o in r.objects("peerpods")
            if o["kind"] == "Deployment" and "peerpodctrl" in o["metadata"]["name"]
        ]
        assert ctrl_pods
        for d in ctrl_pods:
            assert d["spec"]["template"]["metadata"]["labels"][AZURE_USE_LABEL] == "true"


# --------------------------------------------------------------------------- collisions


def _key(kind: str, name: str, namespace: str | None) -> tuple[str, str, str]:
    return (kind, name, "" if kind in CLUSTER_SCOPED else (namespace or ""))


@pytest.mark.parametrize("stack", STACK_NAMES)
def test_no_chart_object_collides_with_the_programs(
    renders: dict[str, StackRender], stack: str
) -> None:
    r = renders[stack]
    mine: dict[tuple[str, str, str], str] = {}
    for res in r.run.mocks.kubernetes():
        if res.type == RELEASE or res.type.endswith("Patch"):
            continue
        name = res.metadata.get("name")
        if not name:
            continue
        mine[_key(res.kind, name, res.metadata.get("namespace"))] = res.name
    for install in r.installs:
        for o in r.rendered.get(install.resource, []):
            meta = o["metadata"]
            key = _key(o["kind"], meta["name"], meta.get("namespace") or install.namespace)
            assert key not in mine, f"{install.chart_name} renders {key}, also {mine[key]}"
