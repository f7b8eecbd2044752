"""The real Trustee KBS (v0.21.0) judges coco's admin-API providers (external Trustee).

The KBS is the dev stack's, laid out and started by the kbs harness, with one change that
makes it an "external" Trustee run by someone else: its `[admin]` section is switched from
`DenyAll` to `AuthenticatedAuthorization` with `bearer_jwt` trusting a freshly generated admin
public key (`issuer`, `audience`) and a `regex_acl` granting one role the admin endpoints
(trustee `kbs/docs/admin.md`). coco's providers (components/kbs_admin_resources.py) then
create, update, delete and read each kind through the admin API, and the KBS shows it
enforces what they set: the sample-attester `kbs-client` gets a resource only when the
resource policy set through the API allows it, gets the value set through the API, loses it
when it is deleted; the RVPS answers the reference value set; an attestation policy set
through the API changes the token; a wrong admin key, a wrong role and a wrong certificate
are refused.
"""

from __future__ import annotations

import base64
import copy
import gzip
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from builders import localhost_certificate, run_external
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from judges import judge_dir
from kbs_harness import SECRET, KbsPod, Rendered, dev_config, refused, render, secret_of
from mocks import DYNAMIC

from components import trustee as kbs
from components.kbs_admin import (
    DENY_ALL_RESOURCE_POLICY,
    AdminIdentity,
    KbsAdmin,
    KbsAdminError,
    KbsUnreachable,
    admin_public_key_pem,
)
from components.kbs_admin_resources import (
    AttestationPolicyProvider,
    KbsResourceProvider,
    ReferenceValueProvider,
    ResourcePolicyProvider,
)

pytestmark = pytest.mark.conformance

ROLE = "coco-admin"
ISSUER = "coco-test"
AUDIENCE = "kbs-admin"
NEW_SECRET = "default/key/admin-set"
CLOSED = 'authorization_mode = "DenyAll"'
INITDATA = "io.katacontainers.config.hypervisor.cc_init_data"
ENDPOINTS = "^/kbs/v0/(resource-policy|attestation-policy|reference-value(/.*)?|resource/.+)$"


def _key_pem() -> str:
    text: str = (
        ec.generate_private_key(ec.SECP256R1())
        .private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        .decode()
    )
    return text


class ExternalKbsPod(KbsPod):
    """The dev KBS with the admin API behind v0.21 admin authentication."""

    admin_key_pem: str

    def start(self) -> None:
        self.layout()
        # coco's own layout makes the KBS storage read-only (policies and values are
        # Pulumi-owned files); a KBS managed through its admin API writes them: the storage
        # becomes the pod user's, writable.
        storage = self.path(kbs.STORAGE_DIR)
        for path in [storage, *storage.rglob("*")]:
            if self.as_pod_user:
                os.chown(path, self.uid, self.gid)
            os.chmod(path, 0o700 if path.is_dir() else 0o600)
        public = self.root / "admin-public.pem"
        public.write_text(admin_public_key_pem(self.admin_key_pem))
        os.chmod(public, 0o644)
        config_file = self.path(self.container["command"][-1])
        text = config_file.read_text()
        assert CLOSED in text
        opened = "\n".join(
            [
                'authorization_mode = "AuthenticatedAuthorization"',
                "",
                "[admin.authentication.bearer_jwt]",
                f'identity_providers = [{{ issuer = "{ISSUER}", audience = "{AUDIENCE}", '
                f'public_key_uri = "file://{public}" }}]',
                "",
                "[admin.authorization.regex_acl]",
                f'acls = [{{ role = "{ROLE}", allowed_endpoints = "{ENDPOINTS}" }}]',
            ]
        )
        os.chmod(config_file, 0o644)
        config_file.write_text(text.replace(CLOSED, opened))
        self.launch()


@pytest.fixture(scope="module")
def judge() -> Path:
    return judge_dir("kbs")


@pytest.fixture(scope="module")
def dev() -> Rendered:
    return render("dev", dev_config())


@pytest.fixture
def pod(judge: Path, dev: Rendered) -> Iterator[ExternalKbsPod]:
    p = ExternalKbsPod(dev, judge)
    p.admin_key_pem = _key_pem()
    try:
        p.start()
        yield p
    finally:
        p.stop()


def props(pod: ExternalKbsPod, key_pem: str | None = None, **extra: Any) -> dict[str, Any]:
    return {
        "kbs": {"url": pod.url, "certificate_pem": pod.rendered.certificate_pem},
        "admin": {
            "private_key_pem": key_pem or pod.admin_key_pem,
            "role": extra.pop("role", ROLE),
            "issuer": ISSUER,
            "audience": AUDIENCE,
        },
        **extra,
    }


def rendered_policy(dev: Rendered) -> str:
    return dev.config_maps[kbs.RESOURCE_POLICY_MAP_NAME][kbs.RESOURCE_POLICY_KEY]


def test_resource_policy_set_through_the_api_is_enforced(pod: ExternalKbsPod) -> None:
    hello = pod.rendered.initdata["hello"]
    assert secret_of(pod.get_resource(SECRET, hello)) == pod.rendered.resource_values[SECRET]
    p = ResourcePolicyProvider()
    p.delete("resource-policy", props(pod, policy=""))  # deny-all
    assert refused(pod.get_resource(SECRET, hello)), pod.log_text()
    created = p.create(props(pod, policy=rendered_policy(pod.rendered)))
    assert secret_of(pod.get_resource(SECRET, hello)) == pod.rendered.resource_values[SECRET]
    assert p.read(created.id, created.outs).id == "resource-policy"
    p.update(created.id, created.outs, props(pod, policy=DENY_ALL_RESOURCE_POLICY))
    assert refused(pod.get_resource(SECRET, hello))


def test_resources_set_updated_deleted_through_the_api(pod: ExternalKbsPod) -> None:
    hello = pod.rendered.initdata["hello"]
    allow_all = "package policy\n\ndefault allow = true\n"
    ResourcePolicyProvider().create(props(pod, policy=allow_all))
    p = KbsResourceProvider()
    created = p.create(props(pod, path=NEW_SECRET, value="first value"))
    assert secret_of(pod.get_resource(NEW_SECRET, hello)) == "first value"
    p.update(created.id, created.outs, props(pod, path=NEW_SECRET, value="second value"))
    assert secret_of(pod.get_resource(NEW_SECRET, hello)) == "second value"
    p.delete(created.id, props(pod, path=NEW_SECRET, value="second value"))
    gone = pod.get_resource(NEW_SECRET, hello)
    assert gone.returncode != 0 and not refused(gone), gone.stderr


def test_reference_values_round_trip_through_the_api(pod: ExternalKbsPod) -> None:
    p = ReferenceValueProvider()
    created = p.create(props(pod, name="coco_admin_probe", value=["aa", "bb"]))
    assert p.read(created.id, created.outs).outs["value"] == ["aa", "bb"]
    p.update(created.id, created.outs, props(pod, name="coco_admin_probe", value=["cc"]))
    assert p.read(created.id, created.outs).outs["value"] == ["cc"]
    p.delete(created.id, props(pod, name="coco_admin_probe", value=["cc"]))
    assert not p.read(created.id, created.outs).id
    assert not p.read("never-set", props(pod, name="never-set", value=["x"])).id


def test_attestation_policy_set_through_the_api_changes_the_token(pod: ExternalKbsPod) -> None:
    hello = pod.rendered.initdata["hello"]
    assert pod.attest(hello)["submods"]["cpu0"]["ear.status"] == "affirming"
    # A complete EAR policy that recognises nothing: executables stays 33 (not affirming).
    distrust = "\n".join(
        [
            "package policy",
            "",
            "import rego.v1",
            "",
            "default executables := 33",
            "default hardware := 97",
            "default configuration := 36",
            "",
            "trust_claims := {",
            '\t"executables": executables,',
            '\t"hardware": hardware,',
            '\t"configuration": configuration,',
            '\t"file-system": 0,',
            '\t"instance-identity": 0,',
            '\t"runtime-opaque": 0,',
            '\t"storage-opaque": 0,',
            '\t"sourced-data": 0,',
            "}",
            "",
        ]
    )
    p = AttestationPolicyProvider()
    created = p.create(props(pod, policy_id="default_cpu", policy=distrust))
    assert created.id == "default_cpu"
    status = pod.attest(hello)["submods"]["cpu0"]["ear.status"]
    assert status != "affirming", pod.log_text()


def test_a_wrong_key_role_or_certificate_is_refused(pod: ExternalKbsPod) -> None:
    hello = pod.rendered.initdata["hello"]
    with pytest.raises(KbsAdminError) as wrong_key:
        ResourcePolicyProvider().delete("resource-policy", props(pod, _key_pem(), policy=""))
    assert wrong_key.value.status in (401, 403), wrong_key.value
    with pytest.raises(KbsAdminError):
        ResourcePolicyProvider().delete("resource-policy", props(pod, role="other", policy=""))
    # Neither changed anything: the reader still gets its secret.
    assert secret_of(pod.get_resource(SECRET, hello)) == pod.rendered.resource_values[SECRET]
    wrong, _ = localhost_certificate()
    admin = KbsAdmin(pod.url, wrong, AdminIdentity(pod.admin_key_pem, ROLE, ISSUER, AUDIENCE))
    with pytest.raises(KbsUnreachable, match="CERTIFICATE_VERIFY_FAILED"):
        admin.set_resource_policy(DENY_ALL_RESOURCE_POLICY)


def test_external_stack_end_to_end_through_the_admin_api(pod: ExternalKbsPod) -> None:
    """The dev stack as an external-Trustee stack pointed at this KBS, run by the program
    under mocks: what it registers on the admin API (resources, reference values, the resource
    policy bound to its workloads' digests) is applied by the providers in its dependency
    order, and the guest side (sample attester) with the init-data the program rendered gets
    its secret; another workload's init-data and a changed init-data are refused."""
    config = copy.deepcopy(dev_config())
    trustee = config["coco:trustee"]
    trustee.pop("url")
    trustee.pop("tls", None)
    config["coco:topology"] = {
        "kind": "external",
        "external": {
            "url": pod.url,
            "certificatePem": pod.rendered.certificate_pem,
            "adminKeyFrom": "kbsAdminKey",
            "adminRole": ROLE,
            "adminIssuer": ISSUER,
            "adminAudience": AUDIENCE,
        },
    }
    config = {k: v for k, v in config.items() if not (isinstance(v, dict) and "secure" in v)}
    mocks, _outputs, secrets = run_external(config, "dev-external", pod.admin_key_pem)
    assert not [r for r in mocks.kubernetes() if r.metadata.get("namespace") == "trustee"]
    initdata = {
        r.name: gzip.decompress(
            base64.b64decode(r.inputs["spec"]["template"]["metadata"]["annotations"][INITDATA])
        ).decode()
        for r in mocks.kubernetes()
        if r.kind == "Deployment"
    }
    assert pod.url in initdata["hello"]

    # Apply what the program registered, in its order (resources, reference values, then the
    # resource policy), as the engine would.
    def kind(inputs: dict[str, Any]) -> int:
        """0 resource, 1 reference value, 2 attestation policy, 3 resource policy."""
        for i, key in enumerate(("path", "name", "policy_id")):
            if key in inputs:
                return i
        return 3

    providers = [
        KbsResourceProvider(),
        ReferenceValueProvider(),
        AttestationPolicyProvider(),
        ResourcePolicyProvider(),
    ]
    registered = [r for r in mocks.resources if r.type == DYNAMIC and "admin" in r.raw_inputs]
    applied = 0
    for r in sorted(registered, key=lambda r: kind(r.inputs)):
        assert r.inputs["admin"]["private_key_pem"] == pod.admin_key_pem
        providers[kind(r.inputs)].create(r.inputs)
        applied += 1
    assert applied >= 3, applied
    value = secrets[f"coco:{config['coco:trustee']['resources'][0]['valueFrom']}"]
    assert secret_of(pod.get_resource(SECRET, initdata["hello"])) == value
    assert refused(pod.get_resource(SECRET, initdata["other"]))
    changed = initdata["hello"].replace(pod.url, pod.url + "/")
    assert changed != initdata["hello"]
    assert refused(pod.get_resource(SECRET, changed))
