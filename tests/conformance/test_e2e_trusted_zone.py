"""The whole chain on real parts: the Trustee in a trusted zone (or external), the workloads on
an untrusted cluster, the guest fetching its secret from where its init-data says.

(b) trusted zone, one stack: two control planes from the kube judge (trusted, confidential);
`baremetal-tdx` (the production trusted-zone stack, two Kubernetes providers) goes up through
the real engine; the KBS's ConfigMaps, Secrets and Deployment are read back from the trusted
API server and started by the kbs harness (KbsPod, as the kubelet would lay the pod out) on
exactly the host and port the live pod's init-data names; the guest side (the cdh judge's
attestation agent and CDH, sample TEE) starts with the init-data read back from the live pod
on the confidential API server.

(c) external Trustee: a real KBS coco did not deploy (the kbs harness's dev KBS with its admin
API behind v0.21 admin authentication, test_kbs_admin.ExternalKbsPod); the external example
stack goes up through the real engine onto the confidential control plane and sets the
resource policy, reference values and resources through that admin API; then the same guest
side.

Each asserts: the secret is released to its reader; a changed init-data (the host loosening
the agent policy in the pod annotation) is refused; another workload's secret is refused;
and a KBS answering at the same name and port with another certificate (a redirected name)
is refused by the guest, while that impostor would have served the secret (so the
certificate pinned in init-data is what stopped it).

What is adapted to run here, and why:
- the hardware: no TDX here, so the stacks run the sample TEE (`tee: none`, runtime class
  kata-qemu-coco-dev, waived in production with its reason, the dev stack's sample reference
  values); everything else is the production stack's;
- DNS: the KBS's name maps to 127.0.0.1 in a private mount namespace (local_dns.py) for the
  guest processes (and, for (c), for `pulumi`, whose admin client reaches the KBS by name);
- the KBS certificate also covers `localhost` for the harness's own health probe (as in
  test_kbs.py); the guest checks it against the real name;
- the NodePort is re-pinned per stack (kube_stack.py) and the URL moved to it, so the port
  the KBS listens on locally is the node port the live Service exposes.
"""

from __future__ import annotations

import base64
import copy
import dataclasses
import datetime
import gzip
import subprocess
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import tomli_w
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from judges import judge_dir
from kbs_harness import INITDATA_ANNOTATION, KbsPod, Rendered, free_port, render, stack_config
from kube_cluster import KubeCluster, start_cluster
from kube_stack import KubeProject, preinstall_runtime_classes
from local_dns import hosts_wrapper
from test_guest_cdh import Guest, cdh_judge_dir
from test_kbs import dev_config
from test_kbs_admin import AUDIENCE, ISSUER, ROLE, ExternalKbsPod, _key_pem, props
from test_kube_e2e import ready, workload_pods

from components import trustee as kbs
from components.kbs_admin_resources import KbsResourceProvider, ResourcePolicyProvider

pytestmark = [pytest.mark.conformance, pytest.mark.e2e]

ROOT = Path(__file__).resolve().parents[2]
EXTERNAL_EXAMPLE = ROOT / "examples" / "external_trustee" / "Pulumi.tdx-shared-kbs.yaml"
SAMPLE_CLASS = "kata-qemu-coco-dev"
READER = "payments-api"
OTHER = "ledger"
OTHER_IMAGE = "registry.example.com/payments/ledger@sha256:" + "6c" * 32
EXTERNAL_HOST = "kbs.shared.example.com"
WAIVER = {
    "check": "coco-dev-runtime",
    "reason": "no TDX hardware in CI: the cdh judge's sample TEE stands in for the TD",
}
LOOSENED = "\n# the host's edit: exec allowed\ndefault ExecProcessRequest := true\n"


# --------------------------------------------------------------------------- stacks


def on_sample_tee(config: dict[str, Any], other_path: str, other_key: str) -> dict[str, Any]:
    """A production stack on the sample TEE, with a second workload (`ledger`, another image,
    so another init-data) reading a secret of its own at `other_path`."""
    config = copy.deepcopy(config)
    config["coco:cluster"]["tee"] = "none"
    config["coco:waivers"] = [*config.get("coco:waivers", []), WAIVER]
    trustee = config["coco:trustee"]
    trustee["referenceValues"] = copy.deepcopy(
        stack_config("dev")["coco:trustee"]["referenceValues"]
    )
    (reader,) = config["coco:workloads"]
    reader["runtimeClass"] = SAMPLE_CLASS
    other = copy.deepcopy(reader)
    other["name"] = OTHER
    other["containers"][0]["image"] = OTHER_IMAGE
    config["coco:workloads"] = [reader, other]
    trustee["resources"].append({"path": other_path, "valueFrom": other_key, "readers": [OTHER]})
    return config


def set_secret(project: KubeProject, key: str, value: str) -> None:
    """`pulumi config set --secret` for a value that may start with `-` (a PEM)."""
    project.pulumi("config", "set-all", "--secret", f"{key}={value}")


# --------------------------------------------------------------------------- read back


def decoded_initdata(annotation: str) -> str:
    return gzip.decompress(base64.b64decode(annotation)).decode()


def live_initdata(cluster: KubeCluster, namespace: str, workload: str) -> str:
    """The init-data of `workload`'s running pods, from their annotation (all the same)."""
    pods = workload_pods(cluster, workload, namespace)
    assert pods and all(ready(p) for p in pods), [p.get("status") for p in pods]
    texts = {decoded_initdata(p["metadata"]["annotations"][INITDATA_ANNOTATION]) for p in pods}
    assert len(texts) == 1, f"{workload}'s pods carry different init-data"
    return texts.pop()


def live_kbs(cluster: KubeCluster, namespace: str, values: dict[str, str]) -> Rendered:
    """The KBS as the trusted API server holds it: what the kubelet would mount and run."""

    def data(kind: str) -> dict[str, dict[str, str]]:
        return {
            o["metadata"]["name"]: dict(o.get("data") or {})
            for o in cluster.items(f"/api/v1/namespaces/{namespace}/{kind}")
        }

    secrets = {
        name: {k: base64.b64decode(v).decode() for k, v in d.items()}
        for name, d in data("secrets").items()
    }
    deployment = cluster.get(
        f"/apis/apps/v1/namespaces/{namespace}/deployments/{kbs.DEPLOYMENT_NAME}"
    )
    assert deployment is not None, f"no KBS Deployment in {namespace}"
    template = deployment["spec"]["template"]
    return Rendered(
        config_maps=data("configmaps"),
        secrets=secrets,
        pod_spec=template["spec"],
        template_annotations=dict(template["metadata"].get("annotations") or {}),
        initdata={},
        resource_values=values,
        certificate_pem=secrets[kbs.TLS_SECRET_NAME]["tls.crt"],
    )


def kbs_url_of(initdata: str) -> str:
    """The KBS URL the guest's AA and CDH are configured with (the same in both files)."""
    data = tomllib.loads(initdata)["data"]
    cdh_url: str = tomllib.loads(data["cdh.toml"])["kbc"]["url"]
    aa_url = tomllib.loads(data["aa.toml"])["token_configs"]["kbs"]["url"]
    assert aa_url == cdh_url, (aa_url, cdh_url)
    return cdh_url


def loosened(initdata: str) -> str:
    """The init-data with the agent policy loosened, as a host editing the pod would."""
    doc = tomllib.loads(initdata)
    doc["data"]["policy.rego"] += LOOSENED
    changed = tomli_w.dumps(doc)
    assert changed != initdata
    return changed


# --------------------------------------------------------------------------- an impostor


def _same_kind_of_key(
    old: Any,
) -> ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey:
    if isinstance(old, ec.EllipticCurvePrivateKey):
        return ec.generate_private_key(old.curve)
    if isinstance(old, rsa.RSAPrivateKey):
        return rsa.generate_private_key(65537, old.key_size)
    raise AssertionError(f"unexpected KBS key type {type(old).__name__}")


def impostor(real: Rendered) -> Rendered:
    """The same KBS under another key pair, its certificate carrying the same subject, names
    and extensions: what answers when the network or DNS redirects the KBS's name."""
    tls = real.secrets[kbs.TLS_SECRET_NAME]
    cert = x509.load_pem_x509_certificate(tls["tls.crt"].encode())
    old_key = serialization.load_pem_private_key(tls["tls.key"].encode(), None)
    key = _same_kind_of_key(old_key)
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(cert.subject)
        .issuer_name(cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
    )
    for ext in cert.extensions:
        value: Any = ext.value
        if isinstance(value, x509.SubjectKeyIdentifier):
            value = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
        elif isinstance(value, x509.AuthorityKeyIdentifier):
            value = x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key())
        builder = builder.add_extension(value, ext.critical)
    forged = builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM).decode()
    fmt = (
        serialization.PrivateFormat.PKCS8
        if "BEGIN PRIVATE KEY" in tls["tls.key"]
        else serialization.PrivateFormat.TraditionalOpenSSL
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, fmt, serialization.NoEncryption()
    ).decode()
    assert forged != tls["tls.crt"]
    secrets = copy.deepcopy(real.secrets)
    secrets[kbs.TLS_SECRET_NAME].update({"tls.crt": forged, "tls.key": key_pem})
    return dataclasses.replace(
        real,
        secrets=secrets,
        config_maps=copy.deepcopy(real.config_maps),
        certificate_pem=forged,
    )


# --------------------------------------------------------------------------- the guest side


@contextmanager
def guest(bin_dir: Path, initdata: str, wrapper: list[str]) -> Iterator[Guest]:
    """One pod VM's AA and CDH on `initdata`, byte for byte (its own KBS URL, unchanged)."""
    url = kbs_url_of(initdata)
    g = Guest(bin_dir, initdata, url, url, wrapper=wrapper)
    try:
        yield g
    finally:
        g.stop()


def released(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 0, done.stderr[-4000:]
    return base64.b64decode(done.stdout.strip().splitlines()[-1]).decode()


def denials(pod: KbsPod) -> int:
    """How many requests the KBS's resource policy has denied so far (its log)."""
    return pod.log_text().count("PolicyDeny")


def refused(pod: KbsPod, g: Guest, path: str) -> None:
    """The guest asks for `path` and the KBS's policy says no (not another failure)."""
    before = denials(pod)
    done = g.resource(path)
    assert done.returncode != 0, f"{path} was released"
    assert denials(pod) > before, (done.stderr[-3000:], pod.log_text()[-3000:])


@dataclasses.dataclass
class Chain:
    """What the guest-side checks need: the running KBS, the live init-data, the secrets."""

    pod: KbsPod
    bin_dir: Path
    wrapper: list[str]
    initdata: dict[str, str]
    own: str
    """READER's secret path."""
    other: str
    """OTHER's secret path."""
    values: dict[str, str]
    """Secret path -> value."""


def check_guest_side(chain: Chain) -> None:
    """Released to its reader; refused to a changed init-data and for another workload's
    secret; the other workload gets its own (the policy is per reader, not closed)."""
    pod = chain.pod
    with guest(chain.bin_dir, chain.initdata[READER], chain.wrapper) as reader:
        assert released(reader.resource(chain.own)) == chain.values[chain.own]
        refused(pod, reader, chain.other)
    with guest(chain.bin_dir, chain.initdata[OTHER], chain.wrapper) as other:
        assert released(other.resource(chain.other)) == chain.values[chain.other]
        refused(pod, other, chain.own)
    with guest(chain.bin_dir, loosened(chain.initdata[READER]), chain.wrapper) as changed:
        refused(pod, changed, chain.own)


def check_wrong_certificate(chain: Chain, fake: KbsPod) -> None:
    """`fake` answers at the init-data's name and port with another certificate: it would
    serve the secret to the reader's init-data (Trustee's own client, trusting it), and the
    guest, which trusts only the certificate its init-data pins, refuses it."""
    served = fake.get_resource(chain.own, chain.initdata[READER])
    assert served.returncode == 0, (served.stderr, fake.log_text())
    assert base64.b64decode(served.stdout.strip()).decode() == chain.values[chain.own]
    with guest(chain.bin_dir, chain.initdata[READER], chain.wrapper) as reader:
        done = reader.resource(chain.own)
        # The AA fetches the token: its TLS check is where the impostor is refused.
        aa_log = reader.log.read_text(errors="replace")
    assert done.returncode != 0, "the guest took a secret from a KBS it does not pin"
    assert chain.values[chain.own] not in done.stdout
    # rustls (the guest's TLS) against the pinned certificate, at the init-data's own URL.
    assert "failed to verify TLS certificate" in aa_log, (done.stderr[-2000:], aa_log[-3000:])
    assert f"{kbs_url_of(chain.initdata[READER])}/kbs/v0/auth" in aa_log, aa_log[-3000:]


@contextmanager
def running(pod: KbsPod, port: int) -> Iterator[KbsPod]:
    pod.port = port
    try:
        pod.start()
        yield pod
    finally:
        pod.stop()


# --------------------------------------------------------------------------- (b)


def trusted_zone_config() -> dict[str, Any]:
    config = on_sample_tee(stack_config("baremetal-tdx"), "default/db/ledger", "ledgerDbPassword")
    tls = config["coco:trustee"].setdefault("tls", {})
    tls["dnsNames"] = sorted({*tls.get("dnsNames", []), "localhost"})
    return config


def test_trusted_zone_one_stack_end_to_end(tmp_path: Path) -> None:
    kube_bin = judge_dir("kube") / "bin"
    kbs_judge = judge_dir("kbs")
    guest_bin = cdh_judge_dir() / "bin"
    with (
        start_cluster(kube_bin, tmp_path / "trusted") as trusted,
        start_cluster(kube_bin, tmp_path / "confidential") as confidential,
    ):
        project = KubeProject(tmp_path / "zone", "trusted-zone", confidential)
        config = project.write_stack(trusted_zone_config())
        # The second provider: the Trustee goes to the trusted control plane.
        config["coco:topology"]["trusteeCluster"] = {
            "kubeconfig": str(trusted.kubeconfig),
            "context": "coco-test",
        }
        project.save(config)
        preinstall_runtime_classes(confidential, config, [SAMPLE_CLASS])
        values = project.init()
        project.pulumi("up", "--yes", "--skip-preview")

        trustee = config["coco:trustee"]
        ns = trustee["namespace"]
        # Each cluster holds its side only.
        assert confidential.get(f"/api/v1/namespaces/{ns}") is None
        assert trusted.get("/api/v1/namespaces/payments") is None
        service = trusted.get(f"/api/v1/namespaces/{ns}/services/{kbs.SERVICE_NAME}")
        (node_port,) = [p["nodePort"] for p in service["spec"]["ports"]]

        initdata = {w: live_initdata(confidential, "payments", w) for w in (READER, OTHER)}
        url = kbs_url_of(initdata[READER])
        assert url == kbs_url_of(initdata[OTHER]) == trustee["url"]
        parts = urlsplit(url)
        assert parts.hostname and parts.port == node_port == trustee["nodePort"]

        paths = {r["path"]: values[r["valueFrom"]] for r in trustee["resources"]}
        live = live_kbs(trusted, ns, paths)
        wrapper = hosts_wrapper(tmp_path, [parts.hostname])
        with running(KbsPod(live, kbs_judge), node_port) as pod:
            chain = Chain(
                pod=pod,
                bin_dir=guest_bin,
                wrapper=wrapper,
                initdata=initdata,
                own="default/db/password",
                other="default/db/ledger",
                values=paths,
            )
            check_guest_side(chain)
        with running(KbsPod(impostor(live), kbs_judge), node_port) as fake:
            check_wrong_certificate(chain, fake)


# --------------------------------------------------------------------------- (c)


def external_config(pod: ExternalKbsPod, url: str) -> dict[str, Any]:
    example: dict[str, Any] = yaml.safe_load(EXTERNAL_EXAMPLE.read_text())["config"]
    config = on_sample_tee(example, "payments/key/ledger", "ledgerKey")
    config["coco:topology"]["external"].update(
        url=url,
        certificatePem=pod.rendered.certificate_pem,
        adminRole=ROLE,
        adminIssuer=ISSUER,
        adminAudience=AUDIENCE,
    )
    return config


def external_kbs_config() -> dict[str, Any]:
    """The harness's dev KBS (the external Trustee), its certificate for the name guests use."""
    config = dev_config()
    tls = config["coco:trustee"]["tls"]
    tls["dnsNames"] = sorted({*tls["dnsNames"], EXTERNAL_HOST})
    return config


def test_external_trustee_end_to_end_through_the_admin_api(tmp_path: Path) -> None:
    kube_bin = judge_dir("kube") / "bin"
    kbs_judge = judge_dir("kbs")
    guest_bin = cdh_judge_dir() / "bin"
    rendered = render("dev", external_kbs_config())
    port = free_port()
    url = f"https://{EXTERNAL_HOST}:{port}"
    wrapper = hosts_wrapper(tmp_path, [EXTERNAL_HOST])
    external = ExternalKbsPod(rendered, kbs_judge)
    external.admin_key_pem = _key_pem()
    with (
        start_cluster(kube_bin, tmp_path / "confidential") as confidential,
        running(external, port) as pod,
    ):
        project = KubeProject(tmp_path / "ext", "external", confidential)
        project.wrapper = wrapper  # coco's admin client reaches the KBS by its name
        config = project.write_stack(external_config(external, url))
        preinstall_runtime_classes(confidential, config, [SAMPLE_CLASS])
        values = project.init()
        set_secret(project, "kbsAdminKey", external.admin_key_pem)
        project.pulumi("up", "--yes", "--skip-preview")

        # No Trustee object on the confidential cluster: the KBS is someone else's.
        assert confidential.get("/api/v1/namespaces/trustee") is None
        initdata = {w: live_initdata(confidential, "payments", w) for w in (READER, OTHER)}
        assert kbs_url_of(initdata[READER]) == kbs_url_of(initdata[OTHER]) == url

        paths = {r["path"]: values[r["valueFrom"]] for r in config["coco:trustee"]["resources"]}
        chain = Chain(
            pod=pod,
            bin_dir=guest_bin,
            wrapper=wrapper,
            initdata=initdata,
            own="payments/key/tls",
            other="payments/key/ledger",
            values=paths,
        )
        check_guest_side(chain)

    # The impostor: the same KBS under another certificate, given the reader's secret and an
    # open policy through its own admin API (trusting its own certificate).
    fake = ExternalKbsPod(impostor(rendered), kbs_judge)
    fake.admin_key_pem = external.admin_key_pem
    with running(fake, port):
        ResourcePolicyProvider().create(
            props(fake, policy="package policy\n\ndefault allow = true\n")
        )
        KbsResourceProvider().create(props(fake, path=chain.own, value=chain.values[chain.own]))
        check_wrong_certificate(chain, fake)
