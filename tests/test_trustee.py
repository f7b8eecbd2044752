"""Trustee: the KBS config file, and the objects the components register (under mocks)."""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Callable
from datetime import datetime
from typing import Any

import pulumi
import pytest
from mocks import Recorded, RecordingMocks, resolve

from components import labels
from components.settings import TrusteeSettings
from components.trustee import (
    CONFIG_HASH_ANNOTATION,
    KBS_PORT,
    RESOURCE_POLICY_FILE,
    STORAGE_DIR,
    Trustee,
    TrusteeTls,
    certificate_names,
    config_hash,
    reference_value_files,
    render_kbs_config,
    render_resource_policy_for,
    repository_file_name,
    resource_secret_name,
)
from components.verifier_settings import VerifierSettings
from policies.resource import ResourceGrant

TDX_DIGEST = "ab" * 48
SNP_DIGEST = "cd" * 32

SETTINGS = TrusteeSettings.model_validate(
    {
        "resources": [
            {"path": "default/key/1", "valueFrom": "appKey", "readers": ["app"]},
            {"path": "default/image_key/Web", "valueFrom": "webKey", "readers": ["web"]},
        ],
        "referenceValues": {"mr_td": ["aa" * 48], "rtmr_1": ["bb" * 48, "cc" * 48]},
    }
)

GRANTS = [
    ResourceGrant(path="default/key/1", initdata_digests=[TDX_DIGEST], platforms=["tdx"]),
    ResourceGrant(path="default/image_key/Web", initdata_digests=[SNP_DIGEST], platforms=["snp"]),
]


def values_for(paths: list[str]) -> dict[str, pulumi.Output[str]]:
    return {p: pulumi.Output.secret(f"value of {p}") for p in paths}


def build_trustee(
    settings: TrusteeSettings = SETTINGS,
    grants: list[ResourceGrant] = GRANTS,
    delivery: str = "create",
    platforms: tuple[str, ...] = ("snp", "tdx"),
) -> Callable[[], dict[str, Any]]:
    def build() -> dict[str, Any]:
        kbs_tls = TrusteeTls("kbs", settings)
        values = values_for([r.path for r in settings.resources]) if delivery == "create" else {}
        trustee = Trustee(
            "trustee",
            settings,
            "production",
            tls=kbs_tls,
            grants=pulumi.Output.from_input(grants),
            resource_values=values,
            secrets_delivery=delivery,  # type: ignore[arg-type]
            tee_platforms=list(platforms),
        )
        return {
            "policy": trustee.resource_policy,
            "hash": trustee.config_hash,
            "cert": kbs_tls.certificate_pem,
            "key": kbs_tls.private_key_pem,
            "signer_key": trustee.token_signer_private_key_pem,
            "url": trustee.url,
        }

    return build


def k8s_objects(mocks: RecordingMocks, kind: str) -> list[Recorded]:
    return [r for r in mocks.kubernetes() if r.kind == kind]


def deployment(mocks: RecordingMocks) -> dict[str, Any]:
    (dep,) = k8s_objects(mocks, "Deployment")
    return dep.inputs


def container(mocks: RecordingMocks) -> dict[str, Any]:
    (c,) = deployment(mocks)["spec"]["template"]["spec"]["containers"]
    result: dict[str, Any] = c
    return result


# --------------------------------------------------------------------------- KBS config file


def test_kbs_config_parses_with_the_v021_keys() -> None:
    cfg = tomllib.loads(render_kbs_config(SETTINGS))
    assert cfg["http_server"] == {
        "sockets": [f"0.0.0.0:{KBS_PORT}"],
        "insecure_http": False,
        "private_key": "/etc/kbs-tls/tls.key",
        "certificate": "/etc/kbs-tls/tls.crt",
    }
    assert cfg["attestation_token"] == {
        "trusted_certs_paths": ["/etc/kbs-token-signer/tls.crt"],
        "insecure_header_jwk": False,
    }
    service = cfg["attestation_service"]
    assert service["type"] == "coco_as_builtin"
    assert service["attestation_token_broker"]["duration_min"] == 5
    assert service["attestation_token_broker"]["signer"] == {
        "key_path": "/etc/kbs-token-signer/tls.key",
        "cert_path": "/etc/kbs-token-signer/tls.crt",
    }
    assert service["rvps_config"] == {"type": "BuiltIn"}
    assert cfg["admin"] == {"authorization_mode": "DenyAll"}
    assert cfg["storage_backend"] == {
        "storage_type": "LocalFs",
        "backends": {"local_fs": {"dir_path": STORAGE_DIR}},
    }
    assert cfg["plugins"] == [{"name": "resource", "storage_backend_type": "kvstorage"}]


def test_kbs_config_has_no_pre_v021_keys() -> None:
    text = render_kbs_config(SETTINGS)
    for legacy in ("insecure_key", "auth_public_key", "insecure_api", "policy_engine", "work_dir"):
        assert legacy not in text
    cfg = tomllib.loads(text)
    assert "type" not in cfg["admin"]
    assert "dir_path" not in cfg["plugins"][0]


def test_kbs_config_is_deterministic_and_needs_a_built_in_as_image() -> None:
    assert render_kbs_config(SETTINGS) == render_kbs_config(SETTINGS.model_copy())
    pinned = SETTINGS.model_copy(update={"image": "registry.example/kbs@sha256:" + "0" * 64})
    assert render_kbs_config(pinned) == render_kbs_config(SETTINGS)
    with pytest.raises(ValueError, match="built-in-as"):
        render_kbs_config(SETTINGS.model_copy(update={"image": "ghcr.io/x/kbs:v0.21.0"}))


# --------------------------------------------------------------------------- naming helpers


def test_repository_file_is_the_local_fs_key_encoding() -> None:
    assert repository_file_name("default/key/1") == "default\\x2Fkey\\x2F1"


def test_resource_secret_names_are_valid_stable_and_distinct() -> None:
    names = [resource_secret_name(p) for p in ("default/key/1", "default/Key/1", "a_b/c/d")]
    assert names[0] == resource_secret_name("default/key/1")
    assert len(set(names)) == 3
    assert resource_secret_name("a_b/c/d") != resource_secret_name("a-b/c/d")
    long = resource_secret_name("r" * 60 + "/t/x")
    for name in [*names, long]:
        assert len(name) <= 63
        assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", name)


def test_reference_value_files_one_record_per_name() -> None:
    files = reference_value_files({"rtmr_1": ["cc", "bb", "bb"], "mr_td": ["aa"]})
    assert sorted(files) == ["mr_td", "rtmr_1"]
    assert '"name":"rtmr_1"' in files["rtmr_1"]
    assert '"value":["bb","cc"]' in files["rtmr_1"]
    assert '"version":"0.1.0"' in files["mr_td"]


def test_reference_value_record_is_what_rvps_deserializes() -> None:
    # trustee rvps/src/reference_value.rs: exactly {version, name, expiration, value}, the
    # expiration parsed with chrono's "%Y-%m-%dT%H:%M:%SZ" (same directives in strptime).
    record = json.loads(reference_value_files({"mr_td": ["aa"]})["mr_td"])
    assert set(record) == {"version", "name", "expiration", "value"}
    assert record["name"] == "mr_td"
    expiration = datetime.strptime(record["expiration"], "%Y-%m-%dT%H:%M:%SZ")
    assert expiration > datetime(2026, 1, 1)


def test_certificate_names_cover_the_service_and_the_url() -> None:
    dns, ips = certificate_names(SETTINGS)
    assert "kbs.trustee.svc" in dns and "kbs.trustee.svc.cluster.local" in dns
    assert ips == []
    external = SETTINGS.model_copy(
        update={
            "url": "https://kbs.example.com",
            "tls": SETTINGS.tls.model_copy(update={"dns_names": ["alt.example.com"]}),
        }
    )
    dns, _ = certificate_names(external)
    assert {"kbs.example.com", "alt.example.com", "kbs.trustee"} <= set(dns)
    _, ips = certificate_names(SETTINGS.model_copy(update={"url": "https://10.0.0.7:30443"}))
    assert ips == ["10.0.0.7"]


def test_config_hash_is_order_independent_and_unambiguous() -> None:
    assert config_hash({"a": "1", "b": "2"}) == config_hash({"b": "2", "a": "1"})
    assert config_hash({"a": "12"}) != config_hash({"a1": "2"})


# --------------------------------------------------------------------------- TrusteeTls


def test_self_signed_tls(mocks: RecordingMocks) -> None:
    values, secret = resolve(
        lambda: {
            "cert": (t := TrusteeTls("kbs", SETTINGS)).certificate_pem,
            "key": t.private_key_pem,
            "url": t.url,
        }
    )
    assert values["url"] == "https://kbs.trustee.svc.cluster.local:8080"
    assert values["cert"].startswith("-----BEGIN CERTIFICATE-----")
    assert secret == {"cert": False, "key": True, "url": False}
    cert = mocks.named("kbs-cert").inputs
    assert cert["key_algorithm"] == "ecdsa-p256"
    assert cert["is_ca"] is False  # rustls refuses a CA certificate as the server's own
    assert cert["validity_hours"] == 8760
    assert "kbs.trustee.svc" in cert["dns_names"]


def certificate_for(*names: str) -> str:
    """A real self-signed P-256 certificate whose subjectAltName lists `names`."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.derive_private_key(7, ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])])
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(datetime(2026, 1, 1))
        .not_valid_after(datetime(2027, 1, 1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), False)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def provided_tls(pem: str) -> TrusteeSettings:
    pulumi.runtime.set_all_config(
        {"coco:kbsCert": pem, "coco:kbsKey": "KEY"}, secret_keys=["coco:kbsCert", "coco:kbsKey"]
    )
    return SETTINGS.model_copy(
        update={
            "tls": SETTINGS.tls.model_copy(
                update={
                    "mode": "provided",
                    "certificate_from": "kbsCert",
                    "private_key_from": "kbsKey",
                }
            )
        }
    )


def test_provided_certificate_must_cover_the_url_host(mocks: RecordingMocks) -> None:
    """The guest verifies the KBS certificate against the host init-data names: a provided
    certificate for another name is refused, naming the key (components/reachability.py)."""
    provided = provided_tls(certificate_for("kbs.elsewhere.example.com"))
    with pytest.raises(Exception, match=r"coco:trustee\.tls\.certificateFrom.*kbs\.trustee\.svc"):
        resolve(lambda: {"cert": TrusteeTls("kbs", provided).certificate_pem})
    wildcard = provided_tls(certificate_for("*.trustee.svc.cluster.local"))
    values, _ = resolve(lambda: {"cert": TrusteeTls("kbs", wildcard).certificate_pem})
    assert "BEGIN CERTIFICATE" in values["cert"]


def test_provided_tls_reads_secret_config(mocks: RecordingMocks) -> None:
    pem = certificate_for("kbs.trustee.svc.cluster.local")
    provided = provided_tls(pem)
    values, secret = resolve(
        lambda: {
            "cert": (t := TrusteeTls("kbs", provided)).certificate_pem,
            "key": t.private_key_pem,
        }
    )
    assert values == {"cert": pem, "key": "KEY"}
    assert secret == {"cert": False, "key": True}
    assert not mocks.of_type("dynamic:Resource")  # provided: no key is generated


# --------------------------------------------------------------------------- Trustee objects


def test_create_mode_objects(mocks: RecordingMocks) -> None:
    values, secret = resolve(build_trustee())
    kinds = sorted(r.kind for r in mocks.kubernetes())
    assert kinds == sorted(
        ["Namespace", "Deployment", "Service", "NetworkPolicy"]  # components/pod_guards.py
        + ["ConfigMap"] * 3  # config, resource policy, reference values (no custom AS policy)
        + ["Secret"] * 4  # tls, token signer, two resources
    )
    names = {r.metadata["name"] for r in mocks.kubernetes()}
    assert {
        "trustee",
        "kbs",
        "kbs-config",
        "kbs-resource-policy",
        "kbs-reference-values",
        "kbs-tls",
        "kbs-token-signer",
        resource_secret_name("default/key/1"),
        resource_secret_name("default/image_key/Web"),
    } == names
    assert secret["key"] and secret["signer_key"] and not secret["cert"]
    assert values["url"] == "https://kbs.trustee.svc.cluster.local:8080"
    # trustee v0.21.0 attestation-service/src/ear_token/broker.rs: P-256 signers only.
    signer = mocks.named("trustee-token-signer-cert").inputs
    assert signer["key_algorithm"] == "ecdsa-p256"


def test_every_object_is_labelled_and_named(mocks: RecordingMocks) -> None:
    resolve(build_trustee())
    for r in mocks.kubernetes():
        meta = r.metadata
        assert meta.get("name"), r.name
        assert meta["labels"][labels.MANAGED_BY] == "coco"
        assert meta["labels"][labels.ENVIRONMENT] == "production"
        assert meta["labels"][labels.ROLE]
        if r.kind != "Namespace":
            assert meta["namespace"] == "trustee"
    roles = {r.metadata["name"]: r.metadata["labels"][labels.ROLE] for r in mocks.kubernetes()}
    assert roles["kbs-resource-policy"] == labels.ROLE_RESOURCE_POLICY
    assert roles["kbs-reference-values"] == labels.ROLE_REFERENCE_VALUES
    assert roles["kbs-config"] == labels.ROLE_KBS_CONFIG
    assert roles[resource_secret_name("default/key/1")] == labels.ROLE_KBS_RESOURCE
    pod_labels = deployment(mocks)["spec"]["template"]["metadata"]["labels"]
    assert pod_labels[labels.ROLE] == labels.ROLE_KBS


def test_resource_policy_config_map_holds_the_grants(mocks: RecordingMocks) -> None:
    values, _ = resolve(build_trustee())
    (policy_map,) = [
        r for r in k8s_objects(mocks, "ConfigMap") if r.metadata["name"] == "kbs-resource-policy"
    ]
    text = policy_map.inputs["data"]["policy.rego"]
    assert text == values["policy"]
    assert "package policy" in text
    assert TDX_DIGEST in text and SNP_DIGEST in text
    assert '"default", "image_key", "Web"' in text or "default/image_key/Web" in text


def test_secrets_are_pulumi_secrets(mocks: RecordingMocks) -> None:
    resolve(build_trustee())
    secrets = k8s_objects(mocks, "Secret")
    assert len(secrets) == 4
    for s in secrets:
        assert "stringData" in s.secret_paths, s.metadata["name"]
    by_name = {s.metadata["name"]: s for s in secrets}
    resource = by_name[resource_secret_name("default/key/1")]
    assert resource.inputs["stringData"] == {"value": "value of default/key/1"}
    assert resource.metadata["annotations"] == {
        f"{labels.DOMAIN}/kbs-resource-path": "default/key/1"
    }
    assert by_name["kbs-tls"].inputs["type"] == "kubernetes.io/tls"
    assert set(by_name["kbs-tls"].inputs["stringData"]) == {"tls.crt", "tls.key"}


def test_reference_mode_creates_no_secrets(mocks: RecordingMocks) -> None:
    resolve(build_trustee(delivery="reference"))
    assert k8s_objects(mocks, "Secret") == []
    volumes = {v["name"]: v for v in deployment(mocks)["spec"]["template"]["spec"]["volumes"]}
    assert volumes["tls"]["secret"]["secretName"] == "kbs-tls"
    assert volumes["token-signer"]["secret"]["secretName"] == "kbs-token-signer"
    sources = volumes["repository"]["projected"]["sources"]
    assert {s["secret"]["name"] for s in sources} == {
        resource_secret_name("default/key/1"),
        resource_secret_name("default/image_key/Web"),
    }


def test_reference_mode_rejects_values_and_create_mode_needs_them(mocks: RecordingMocks) -> None:
    kbs_tls = TrusteeTls("kbs", SETTINGS)
    with pytest.raises(ValueError, match="no value for KBS resources"):
        Trustee("t", SETTINGS, "dev", kbs_tls, GRANTS, {}, "create", ["tdx"])
    with pytest.raises(ValueError, match="takes no resource values"):
        Trustee(
            "t",
            SETTINGS,
            "dev",
            kbs_tls,
            GRANTS,
            values_for(["default/key/1", "default/image_key/Web"]),
            "reference",
            ["tdx"],
        )


def test_deployment_runs_the_kbs_as_upstream(mocks: RecordingMocks) -> None:
    resolve(build_trustee())
    c = container(mocks)
    assert c["image"] == SETTINGS.image
    assert c["command"] == ["/usr/local/bin/kbs", "--config-file", "/etc/kbs/kbs-config.toml"]
    assert c["ports"] == [{"name": "https", "containerPort": 8080, "protocol": "TCP"}]
    # trustee v0.21.0 kbs/src/api_server.rs serves GET /healthz on the KBS port.
    health = {"path": "/healthz", "port": 8080, "scheme": "HTTPS"}
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert c[probe]["httpGet"] == health, probe
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    assert c["securityContext"]["allowPrivilegeEscalation"] is False
    pod = deployment(mocks)["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["automountServiceAccountToken"] is False


def pod_spec(mocks: RecordingMocks) -> dict[str, Any]:
    spec: dict[str, Any] = deployment(mocks)["spec"]["template"]["spec"]
    return spec


def seed_items(mocks: RecordingMocks) -> dict[str, tuple[str, str]]:
    """Storage-relative path -> (ConfigMap, key) of the layout init container's seed volume."""
    volumes = {v["name"]: v for v in pod_spec(mocks)["volumes"]}
    return {
        item["path"]: (src["configMap"]["name"], item["key"])
        for src in volumes["storage-seed"]["projected"]["sources"]
        for item in src["configMap"]["items"]
    }


def test_files_land_where_the_kbs_reads_them(mocks: RecordingMocks) -> None:
    resolve(build_trustee())
    mounts = {m["mountPath"]: m for m in container(mocks)["volumeMounts"]}
    assert seed_items(mocks) == {
        "kbs/resource-policy.rego": ("kbs-resource-policy", "policy.rego"),
        "reference_value/mr_td": ("kbs-reference-values", "mr_td"),
        "reference_value/rtmr_1": ("kbs-reference-values", "rtmr_1"),
    }
    assert f"{STORAGE_DIR}/kbs/resource-policy.rego" == RESOURCE_POLICY_FILE
    assert mounts[f"{STORAGE_DIR}/repository"]["name"] == "repository"
    assert mounts["/opt/confidential-containers"]["name"] == "state"
    volumes = {v["name"]: v for v in pod_spec(mocks)["volumes"]}
    items = {
        s["secret"]["name"]: s["secret"]["items"]
        for s in volumes["repository"]["projected"]["sources"]
    }
    assert items[resource_secret_name("default/key/1")] == [
        {"key": "value", "path": "default\\x2Fkey\\x2F1"}
    ]
    (rv_map,) = [
        r for r in k8s_objects(mocks, "ConfigMap") if r.metadata["name"] == "kbs-reference-values"
    ]
    assert set(rv_map.inputs["data"]) == {"reference-values.json", "mr_td", "rtmr_1"}
    assert "attestation-policy" not in volumes


def test_nothing_but_the_repository_is_mounted_inside_the_storage_tree(
    mocks: RecordingMocks,
) -> None:
    """A mount inside the tree makes the runtime create its parents as root, and the KBS
    (uid 65532) could not write its storage: the layout container copies the files instead."""
    resolve(build_trustee())
    spec = pod_spec(mocks)
    inside = [
        m["mountPath"]
        for m in container(mocks)["volumeMounts"]
        if m["mountPath"].startswith(f"{STORAGE_DIR}/") or m["mountPath"] == STORAGE_DIR
    ]
    assert inside == [f"{STORAGE_DIR}/repository"]
    assert not any("subPath" in m for m in container(mocks)["volumeMounts"])
    (layout,) = spec["initContainers"]
    assert layout["image"] == SETTINGS.image
    assert layout["securityContext"]["runAsNonRoot"] is True
    script = layout["command"][2]
    assert script.splitlines()[:3] == ["set -eu", "umask 077", f"mkdir -p {STORAGE_DIR}"]
    # The repository mount point is created by uid 65532 before the runtime mounts it.
    assert script.splitlines()[-1] == f"mkdir -p {STORAGE_DIR}/repository"
    assert spec["securityContext"]["runAsUser"] == 65532


def test_custom_attestation_policy_is_mounted_as_default_cpu(mocks: RecordingMocks) -> None:
    custom = SETTINGS.model_copy(
        update={"attestation_policy": "package policy\n\ndefault allow := false\n"}
    )
    resolve(build_trustee(settings=custom))
    (as_map,) = [
        r
        for r in k8s_objects(mocks, "ConfigMap")
        if r.metadata["labels"][labels.ROLE] == labels.ROLE_ATTESTATION_POLICY
    ]
    assert as_map.inputs["data"] == {"default_cpu.rego": custom.attestation_policy}
    assert seed_items(mocks)["attestation_service_policy/default_cpu.rego"] == (
        "kbs-attestation-policy",
        "default_cpu.rego",
    )
    script = pod_spec(mocks)["initContainers"][0]["command"][2]
    assert "cp -RL /etc/kbs-storage-seed/attestation_service_policy " in script


def test_local_nvidia_mode_lays_out_cocos_gpu_policy_as_default_gpu(
    mocks: RecordingMocks,
) -> None:
    """The AS judges GPU claims with `default_gpu` and keeps a file already in its policy store
    (policies/gpu_attestation.py), so the local mode's policy is seeded like a custom one."""
    from policies.gpu_attestation import LOCAL_GPU_POLICY

    settings = SETTINGS.model_copy(
        update={
            "attestation_policy": "package policy\n\ndefault allow := false\n",
            "verifiers": VerifierSettings.model_validate({"nvidia": {"mode": "local"}}),
        }
    )
    resolve(build_trustee(settings=settings))
    (as_map,) = [
        r
        for r in k8s_objects(mocks, "ConfigMap")
        if r.metadata["labels"][labels.ROLE] == labels.ROLE_ATTESTATION_POLICY
    ]
    assert as_map.inputs["data"] == {
        "default_cpu.rego": settings.attestation_policy,
        "default_gpu.rego": LOCAL_GPU_POLICY,
    }
    items = seed_items(mocks)
    assert items["attestation_service_policy/default_gpu.rego"] == (
        "kbs-attestation-policy",
        "default_gpu.rego",
    )
    assert "attestation_service_policy/default_cpu.rego" in items


def test_remote_nvidia_mode_keeps_the_built_in_gpu_policy(mocks: RecordingMocks) -> None:
    settings = SETTINGS.model_copy(
        update={"verifiers": VerifierSettings.model_validate({"nvidia": {"mode": "remote"}})}
    )
    resolve(build_trustee(settings=settings))
    assert not [
        r
        for r in k8s_objects(mocks, "ConfigMap")
        if r.metadata["labels"][labels.ROLE] == labels.ROLE_ATTESTATION_POLICY
    ]
    assert not any(p.startswith("attestation_service_policy/") for p in seed_items(mocks))


def test_offline_vcek_store_is_mounted_where_the_snp_verifier_reads_it(
    mocks: RecordingMocks,
) -> None:
    from test_appraisal import fake_vcek

    from components.verifier_settings import VCEK_STORE_DIR, VCEK_STORE_MAP_NAME

    chip = bytes(range(64)).hex()
    pem = fake_vcek(bytes.fromhex(chip))
    settings = SETTINGS.model_copy(
        update={
            "verifiers": VerifierSettings.model_validate(
                {"snp": {"offlineStore": {"vceks": {chip: pem}}}}
            )
        }
    )
    resolve(build_trustee(settings=settings))
    (store,) = [
        r for r in k8s_objects(mocks, "ConfigMap") if r.metadata["name"] == VCEK_STORE_MAP_NAME
    ]
    assert store.inputs["data"] == {chip: pem}
    volumes = {v["name"]: v for v in pod_spec(mocks)["volumes"]}
    assert volumes["vcek-store"]["configMap"] == {
        "name": VCEK_STORE_MAP_NAME,
        "items": [{"key": chip, "path": f"vcek/{chip}/vcek.der"}],
    }
    mounts = {m["name"]: m for m in container(mocks)["volumeMounts"]}
    assert mounts["vcek-store"] == {
        "name": "vcek-store",
        "mountPath": VCEK_STORE_DIR,
        "readOnly": True,
    }
    config = tomllib.loads(render_kbs_config(settings))
    (source,) = config["attestation_service"]["verifier_config"]["snp_verifier"]["vcek_sources"]
    assert source == {"type": "OfflineStore", "path": VCEK_STORE_DIR}


def test_service_maps_the_settings_port_to_the_kbs(mocks: RecordingMocks) -> None:
    settings = SETTINGS.model_copy(update={"port": 443, "service_type": "NodePort"})
    resolve(build_trustee(settings=settings))
    (svc,) = k8s_objects(mocks, "Service")
    spec = svc.inputs["spec"]
    assert spec["type"] == "NodePort"
    assert spec["ports"] == [{"name": "https", "protocol": "TCP", "port": 443, "targetPort": 8080}]
    assert spec["selector"] == deployment(mocks)["spec"]["selector"]["matchLabels"]
    assert spec["sessionAffinity"] == "ClientIP"


def test_config_hash_annotation(mocks: RecordingMocks) -> None:
    values, _ = resolve(build_trustee())
    annotations = deployment(mocks)["spec"]["template"]["metadata"]["annotations"]
    assert annotations == {CONFIG_HASH_ANNOTATION: values["hash"]}
    assert re.fullmatch(r"[0-9a-f]{64}", values["hash"])


def _hash_for(**kw: Any) -> str:
    recording = RecordingMocks()
    pulumi.runtime.set_mocks(recording, project="coco", stack="test", preview=False)
    values, _ = resolve(build_trustee(**kw))
    result: str = values["hash"]
    return result


def test_policy_change_rolls_the_kbs_but_secret_values_do_not_leak(mocks: RecordingMocks) -> None:
    base = _hash_for()
    assert _hash_for() == base
    other = [GRANTS[0], GRANTS[1].model_copy(update={"initdata_digests": ["ef" * 32]})]
    assert _hash_for(grants=other) != base
    # Secret values are not part of the hash (it is a public annotation).
    assert _hash_for(delivery="reference") == base


def test_manifests_are_deterministic(mocks: RecordingMocks) -> None:
    def snapshot() -> list[tuple[str, str, Any]]:
        recording = RecordingMocks()
        pulumi.runtime.set_mocks(recording, project="coco", stack="test", preview=False)
        resolve(build_trustee())
        return sorted((r.type, r.name, repr(r.raw_inputs)) for r in recording.kubernetes())

    assert snapshot() == snapshot()


def test_resource_policy_checks_grants_against_declared_resources() -> None:
    unbound = [GRANTS[0].model_copy(update={"initdata_digests": []}), GRANTS[1]]
    with pytest.raises(ValueError, match="not allowUnbound"):
        render_resource_policy_for(SETTINGS, unbound)
    allowed = SETTINGS.model_copy(
        update={
            "resources": [
                SETTINGS.resources[0].model_copy(update={"readers": [], "allow_unbound": True}),
                SETTINGS.resources[1],
            ]
        }
    )
    assert "UNBOUND" in render_resource_policy_for(allowed, unbound)
    stray = ResourceGrant(path="other/key/1", initdata_digests=[TDX_DIGEST], platforms=["tdx"])
    with pytest.raises(ValueError, match=r"not in trustee\.resources"):
        render_resource_policy_for(SETTINGS, [stray])


def test_system_namespace_is_not_created(mocks: RecordingMocks) -> None:
    resolve(build_trustee(settings=SETTINGS.model_copy(update={"namespace": "default"})))
    assert k8s_objects(mocks, "Namespace") == []


def test_the_kbs_is_guarded(mocks: RecordingMocks) -> None:
    """docs/hardening.md: the KBS's NetworkPolicy admits its HTTPS port only, lets it reach
    DNS and HTTPS; with several replicas a PodDisruptionBudget keeps one up in a drain."""
    resolve(build_trustee())
    (policy,) = mocks.of_type("networking.k8s.io/v1:NetworkPolicy")
    (deployment,) = mocks.of_type("apps/v1:Deployment")
    spec = policy.inputs["spec"]
    labels = deployment.inputs["spec"]["template"]["metadata"]["labels"]
    assert spec["podSelector"]["matchLabels"].items() <= labels.items()
    assert spec["ingress"] == [{"ports": [{"port": 8080, "protocol": "TCP"}]}]
    assert {"port": 443, "protocol": "TCP"} in spec["egress"][0]["ports"]
    assert not mocks.of_type("policy/v1:PodDisruptionBudget")


def test_kbs_replicas_get_a_budget_and_verifier_ports_egress(mocks: RecordingMocks) -> None:
    settings = TrusteeSettings.model_validate(
        {
            **SETTINGS.model_dump(by_alias=True, exclude_unset=True),
            "replicas": 2,
            "verifiers": {"snp": {"kdsUrl": "http://vcek-cache.site:8081"}},
        }
    )
    resolve(build_trustee(settings))
    (budget,) = mocks.of_type("policy/v1:PodDisruptionBudget")
    assert budget.inputs["spec"]["maxUnavailable"] == 1
    (policy,) = mocks.of_type("networking.k8s.io/v1:NetworkPolicy")
    assert {"port": 8081, "protocol": "TCP"} in policy.inputs["spec"]["egress"][0]["ports"]
