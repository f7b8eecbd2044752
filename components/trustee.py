"""Trustee: the Key Broker Service with its built-in Attestation Service and RVPS.

The KBS is the one component that decides which workload gets which secret, so everything it
trusts is declared here, as Kubernetes objects Pulumi owns, and nothing can be changed behind
Pulumi's back: the admin API is switched off (`DenyAll`), and the resource policy, attestation
policy, reference values and secret resources are files the KBS reads from its storage
directory, provisioned from ConfigMaps and Secrets.

Two components, because of a dependency cycle between the KBS and the workloads: a workload's
init-data embeds the KBS URL and certificate, while the KBS resource policy embeds the
workloads' init-data digests. `TrusteeTls` (URL, certificate, key) is built first and feeds
the workloads; `Trustee` is built last and receives their digests as outputs.

Upstream formats, as checked against the pinned image
`ghcr.io/confidential-containers/key-broker-service:built-in-as-v0.21.0` (trustee v0.21):

- KBS config file (TOML, `--config-file`): trustee `kbs/docs/config.md`: `[http_server]`
  (`sockets`, `insecure_http`, `private_key`, `certificate`), `[attestation_token]`
  (`trusted_certs_paths`, `insecure_header_jwk`, which v0.21 renamed from `insecure_key`),
  `[attestation_service]` `type = "coco_as_builtin"` with `[...attestation_token_broker]`
  (`duration_min`, `[...signer]` `key_path`/`cert_path`: an EC P-256 key, whatever the doc
  says, see `attestation-service/src/ear_token/broker.rs`) and `[...rvps_config]`
  `type = "BuiltIn"`, `[admin] authorization_mode` (`InsecureAllowAll` | `DenyAll` |
  `AuthenticatedAuthorization`; v0.21 replaced the Ed25519 `[admin] type = "Simple"`
  personas), `[storage_backend]` `storage_type = "LocalFs"` with
  `[storage_backend.backends.local_fs] dir_path`, and `[[plugins]] name = "resource"`
  `storage_backend_type = "kvstorage"` (v0.21 dropped the per-plugin `type = "LocalFs"`
  `dir_path` and `[policy_engine] policy_path`). The same v0.21 keys appear in trustee's
  IBM SE guide and in trustee-operator's v1.1 -> v1.2 migration (`authorization_mode`,
  `insecure_header_jwk`, `storage_backend_type = "kvstorage"`).
- Storage layout: `kbs/docs/config.md` "Storage Namespaces in KBS" (`kbs`, `repository`,
  `kbs_protocol_session`, `attestation_service_policy`, `reference_value`) and
  `deps/key-value-storage` (`local_fs/mod.rs`: namespace `n` lives in `<dir_path>/n/`, one
  file per key, `/` in a key written as the four characters `\\x2F`; `get` reads the file on
  every call). The KBS resource policy is key `resource-policy` and AS policies are keyed by
  id, both with the `.rego` suffix of `deps/policy-engine` (`Regorus::policy_suffix`), and
  `evaluate_rego` reads the policy from storage on every evaluation. A resource `repo/type/tag`
  is key `repo/type/tag` of the `repository` namespace (`resource/kv_storage.rs`), so its file
  is `<dir_path>/repository/repo\\x2Ftype\\x2Ftag`; trustee-operator's `secret-converter`
  writes the same names. Reference values: RVPS stores each one in namespace `reference_value`
  (`rvps/src/lib.rs` `REFERENCE_VALUE_STORAGE_NAMESPACE`) under its name, the value being
  the JSON of `ReferenceValue {version, name, expiration, value}` (`verify_and_extract`
  sets `v.name()` to `v.to_bytes()`; `query_reference_value` reads it back by name and does
  not check `expiration`: an expired value is still used), so its file is
  `<dir_path>/reference_value/<name>`.
- Deployment: trustee `kbs/config/kubernetes/base/deployment.yaml` (command
  `/usr/local/bin/kbs --config-file <file>`, container port 8080); `GET /healthz` and an
  unauthenticated `GET /metrics` on the same port (`kbs/src/api_server.rs`).

Why files and not the admin API: with `DenyAll` no one, including a compromised CI token, can
rewrite a policy at runtime; what the KBS enforces is exactly what `pulumi preview` showed.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import re
from collections.abc import Mapping, Sequence
from typing import Any, Literal, Protocol
from urllib.parse import urlparse

import pulumi
import pulumi_kubernetes as k8s

from components import labels, tokens
from components.hardening import harden_pod_spec
from components.pod_guards import kbs_guards
from components.reachability import certificate_covers
from components.settings import TrusteeSettings, full_key
from components.tls import KeyAlgorithm, SelfSignedTls
from components.verifier_settings import verifier_config_lines
from policies.attestation import (
    ATTESTATION_POLICY_ID,
    ReferenceValueData,
    attestation_policy,
    reference_values_json,
)
from policies.resource import ResourceGrant, public_resource_key, render_resource_policy

# --------------------------------------------------------------------------- fixed layout

KBS_PORT = 8080
"""Container port (trustee `kbs/config/kubernetes/base/deployment.yaml`)."""

KBS_BINARY = "/usr/local/bin/kbs"
SERVICE_NAME = "kbs"
DEPLOYMENT_NAME = "kbs"
CONFIG_MAP_NAME = "kbs-config"
CONFIG_FILE = "kbs-config.toml"
RESOURCE_POLICY_MAP_NAME = "kbs-resource-policy"
RESOURCE_POLICY_KEY = "policy.rego"
ATTESTATION_POLICY_MAP_NAME = "kbs-attestation-policy"
REFERENCE_VALUES_MAP_NAME = "kbs-reference-values"
REFERENCE_VALUES_KEY = "reference-values.json"
TLS_SECRET_NAME = "kbs-tls"
TOKEN_SIGNER_SECRET_NAME = "kbs-token-signer"
RESOURCE_SECRET_KEY = "value"
PUBLIC_RESOURCES_MAP_NAME = "kbs-public-resources"
"""The key holding the bytes of a KBS resource in its Secret."""

CONFIG_DIR = "/etc/kbs"
TLS_DIR = "/etc/kbs-tls"
TOKEN_SIGNER_DIR = "/etc/kbs-token-signer"
STATE_DIR = "/opt/confidential-containers"
STORAGE_DIR = f"{STATE_DIR}/storage"

# Storage namespaces (kbs/docs/config.md "Storage Namespaces in KBS").
KBS_NAMESPACE_DIR = f"{STORAGE_DIR}/kbs"
REPOSITORY_DIR = f"{STORAGE_DIR}/repository"
AS_POLICY_DIR = f"{STORAGE_DIR}/attestation_service_policy"
REFERENCE_VALUE_DIR = f"{STORAGE_DIR}/reference_value"
RESOURCE_POLICY_FILE = f"{KBS_NAMESPACE_DIR}/resource-policy.rego"

TOKEN_SIGNER_KEY_ALGORITHM: KeyAlgorithm = "ecdsa-p256"
"""The only attestation-token signer the v0.21 AS accepts (ear_token/broker.rs)."""

TOKEN_DURATION_MIN = 5
"""Attestation token lifetime (upstream default)."""

CONFIG_HASH_ANNOTATION = f"{labels.DOMAIN}/config-hash"
RESOURCE_PATH_ANNOTATION = f"{labels.DOMAIN}/kbs-resource-path"

RUN_AS = 65532
"""Unprivileged uid/gid; the KBS needs no privilege, only its writable storage directory."""

_SYSTEM_NAMESPACES = frozenset({"default", "kube-system", "kube-public", "kube-node-lease"})

SecretsDelivery = Literal["create", "reference"]


# --------------------------------------------------------------------------- pure helpers


def _toml(value: str) -> str:
    """A TOML basic string (JSON string syntax is valid TOML for these ASCII paths)."""
    return json.dumps(value, ensure_ascii=True)


def render_kbs_config(settings: TrusteeSettings) -> str:
    """The KBS config file for the pinned release. Pure and deterministic.

    HTTPS only; tokens from the built-in AS are signed by a dedicated EC P-256 key whose
    certificate the KBS trusts (`insecure_header_jwk = false`), so a token someone signed with
    their own key in the JWT header is refused even when sent as a bearer token; the admin API
    is off. `settings` is validated for the one thing the file depends on: the image must be a
    KBS with the AS built in.
    """
    if "built-in-as" not in settings.image and "@sha256:" not in settings.image:
        raise ValueError(
            f"trustee image {settings.image!r} is not a `built-in-as` KBS build: this config "
            "runs the attestation service inside the KBS (`coco_as_builtin`)"
        )
    lines = [
        "# KBS configuration generated by coco (components/trustee.py); regenerate, do not edit.",
        "# Format: trustee v0.21 kbs/docs/config.md.",
        "",
        "[http_server]",
        f"sockets = [{_toml(f'0.0.0.0:{KBS_PORT}')}]",
        "insecure_http = false",
        f"private_key = {_toml(f'{TLS_DIR}/tls.key')}",
        f"certificate = {_toml(f'{TLS_DIR}/tls.crt')}",
        "",
        "[attestation_token]",
        f"trusted_certs_paths = [{_toml(f'{TOKEN_SIGNER_DIR}/tls.crt')}]",
        "insecure_header_jwk = false",
        "",
        "[attestation_service]",
        'type = "coco_as_builtin"',
        "",
        "[attestation_service.attestation_token_broker]",
        f"duration_min = {TOKEN_DURATION_MIN}",
        "",
        "[attestation_service.attestation_token_broker.signer]",
        f"key_path = {_toml(f'{TOKEN_SIGNER_DIR}/tls.key')}",
        f"cert_path = {_toml(f'{TOKEN_SIGNER_DIR}/tls.crt')}",
        "",
        "[attestation_service.rvps_config]",
        'type = "BuiltIn"',
        "",
        *verifier_config_lines(settings.verifiers),
        "# Policies, reference values and resources are files Pulumi provisions; nobody can",
        "# change them through the API.",
        "[admin]",
        'authorization_mode = "DenyAll"',
        "",
        "[storage_backend]",
        'storage_type = "LocalFs"',
        "",
        "[storage_backend.backends.local_fs]",
        f"dir_path = {_toml(STORAGE_DIR)}",
        "",
        "[[plugins]]",
        'name = "resource"',
        'storage_backend_type = "kvstorage"',
        "",
    ]
    return "\n".join(lines)


def repository_file_name(path: str) -> str:
    """The file LocalFs reads for resource `repo/type/tag` (`/` stored as `\\x2F`)."""
    return path.replace("/", "\\x2F")


def resource_secret_name(path: str) -> str:
    """Deterministic Secret name for a KBS resource path.

    Readable (`kbs-resource-default-key-1-...`) for people wiring Secrets by hand in reference
    mode, and suffixed with a hash of the exact path so `a_b` and `a-b`, or `Key` and `key`,
    never share a Secret.
    """
    slug = re.sub(r"[^a-z0-9]+", "-", path.lower()).strip("-")
    digest = hashlib.sha256(path.encode()).hexdigest()[:8]
    return f"kbs-resource-{slug}"[:53].rstrip("-") + f"-{digest}"


def reference_value_files(values: Mapping[str, ReferenceValueData]) -> dict[str, str]:
    """One RVPS record per reference value name, keyed by the name (the storage key).

    Each record is one entry of `policies.attestation.reference_values_json` (trustee
    `rvps/src/reference_value.rs` `ReferenceValue {version, name, expiration, value}`) as
    canonical JSON; the file name is the reference value name, the key RVPS stores it under.
    """
    entries = json.loads(reference_values_json(values))
    files: dict[str, str] = {}
    for entry in entries:
        name = entry["name"]
        if name.startswith(".") or name == REFERENCE_VALUES_KEY:
            raise ValueError(f"reference value name {name!r} cannot be a storage key")
        files[name] = json.dumps(entry, sort_keys=True, separators=(",", ":")) + "\n"
    return files


def config_hash(texts: Mapping[str, str]) -> str:
    """sha256 over named texts, order-independent and unambiguous (length-prefixed)."""
    h = hashlib.sha256()
    for name in sorted(texts):
        for part in (name, texts[name]):
            data = part.encode()
            h.update(len(data).to_bytes(8, "big"))
            h.update(data)
    return h.hexdigest()


def service_dns_names(namespace: str) -> list[str]:
    """Every name a pod can use for the KBS Service."""
    return [
        SERVICE_NAME,
        f"{SERVICE_NAME}.{namespace}",
        f"{SERVICE_NAME}.{namespace}.svc",
        f"{SERVICE_NAME}.{namespace}.svc.cluster.local",
    ]


def certificate_names(settings: TrusteeSettings) -> tuple[list[str], list[str]]:
    """(DNS names, IP addresses) the KBS certificate must cover, sorted and unique."""
    dns = set(service_dns_names(settings.namespace)) | set(settings.tls.dns_names)
    ips: set[str] = set()
    host = urlparse(settings.service_url()).hostname
    if host:
        try:
            ips.add(str(ipaddress.ip_address(host)))
        except ValueError:
            dns.add(host)
    return sorted(dns), sorted(ips)


def render_resource_policy_for(
    settings: TrusteeSettings, grants: list[ResourceGrant], generated: Sequence[str] = ()
) -> str:
    """The resource policy for `grants`, checked against the resources the stack declares.

    A grant for a path the stack does not serve, or an unbound grant (no init-data digests)
    for a resource that did not opt into `allowUnbound`, is an error rather than a policy.
    `generated` are the public resources the program makes (image policies, verification
    keys): always bound to their readers.
    """
    declared = {r.path: r for r in settings.resources}
    unbound = False
    for grant in grants:
        resource = declared.get(grant.path)
        if grant.path in generated:
            if not grant.initdata_digests:
                raise ValueError(f"generated resource {grant.path!r} has no reader digests")
            continue
        if resource is None:
            raise ValueError(
                f"resource policy grant for {grant.path!r}, which is not in trustee.resources"
            )
        if not grant.initdata_digests:
            if not resource.allow_unbound:
                raise ValueError(
                    f"resource {grant.path!r} has no reader digests and is not allowUnbound"
                )
            unbound = True
    return render_resource_policy(list(grants), allow_unbound=unbound)


def _secret(value: pulumi.Output[str]) -> pulumi.Output[str]:
    """Mark a value secret (again), so no code path can hand it to the engine in plain text."""
    return pulumi.Output.secret(value)


def _config_secret(ref: str) -> pulumi.Output[str]:
    namespace, key = full_key(ref).split(":", 1)
    return pulumi.Config(namespace).require_secret(key)


# --------------------------------------------------------------------------- TLS


class KbsIdentity(Protocol):
    """What the Trustee serves HTTPS with: a `TrusteeTls`, or (in the component package,
    components/package/) the certificate and key another component issued, passed in."""

    url: str
    certificate_pem: pulumi.Output[str]
    private_key_pem: pulumi.Output[str]


class TrusteeTls(pulumi.ComponentResource):
    """The KBS HTTPS identity: URL, certificate (public) and private key (secret).

    Built before the workloads, whose init-data pins this certificate, and before the Trustee,
    which serves it. Self-signed mode makes an ECDSA P-256 key (OpenSSL on the KBS side and
    both rustls and OpenSSL builds of the guest's KBS client accept it) and a leaf certificate
    that is *not* a CA, because the guest trusts it directly as its only root and webpki
    refuses a CA certificate used as the server's own. Provided mode reads both PEMs from the
    stack's secret config keys.
    """

    url: str
    certificate_pem: pulumi.Output[str]
    """The certificate guests pin (public: it is in every workload's init-data)."""
    private_key_pem: pulumi.Output[str]
    """The HTTPS private key (a Pulumi secret)."""
    dns_names: list[str]
    ip_addresses: list[str]

    def __init__(
        self,
        name: str,
        settings: TrusteeSettings,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__(tokens.token("TrusteeTls"), name, None, tokens.options("TrusteeTls", opts))
        self.url = settings.service_url()
        self.dns_names, self.ip_addresses = certificate_names(settings)
        child = pulumi.ResourceOptions(parent=self)
        cfg = settings.tls
        if cfg.mode == "provided":
            if not (cfg.certificate_from and cfg.private_key_from):  # settings validate this
                raise ValueError("tls.mode 'provided' needs certificateFrom and privateKeyFrom")
            host = urlparse(self.url).hostname or ""
            source = full_key(cfg.certificate_from)

            def covers(pem: str) -> str:
                # The guest's TLS client verifies the KBS certificate against the URL's host.
                if not certificate_covers(pem, host):
                    raise ValueError(
                        f"coco:trustee.tls.certificateFrom: the certificate in {source} does not "
                        f"cover {host!r}, the host of coco:trustee.url that init-data sends "
                        "guests to: issue it with that name in its subjectAltName"
                    )
                return pem

            self.certificate_pem = pulumi.Output.unsecret(
                _config_secret(cfg.certificate_from)
            ).apply(covers)
            self.private_key_pem = pulumi.Output.secret(_config_secret(cfg.private_key_from))
        else:
            host = urlparse(self.url).hostname or self.dns_names[-1]
            cert = SelfSignedTls(
                f"{name}-cert",
                common_name=host,
                organization="coco",
                dns_names=self.dns_names,
                ip_addresses=self.ip_addresses,
                validity_hours=cfg.validity_hours,
                key_algorithm="ecdsa-p256",
                early_renewal_hours=cfg.renewal_hours,
                opts=child,
            )
            self.certificate_pem = cert.cert_pem
            self.private_key_pem = pulumi.Output.secret(cert.private_key_pem)
        self.register_outputs(
            {
                "url": self.url,
                "certificatePem": self.certificate_pem,
                "privateKeyPem": self.private_key_pem,
            }
        )


# --------------------------------------------------------------------------- Trustee


class Trustee(pulumi.ComponentResource):
    """KBS + built-in AS + RVPS in their own namespace, configured entirely from objects.

    Object names are fixed (no auto-naming suffixes), so the same config renders the same
    manifests byte for byte. A changed policy, reference value or certificate changes the
    pod template's `config-hash` annotation and rolls the Deployment (an update, never a
    replacement); a changed secret *value* is not hashed (that would leak it into a public
    annotation): the kubelet refreshes the projected Secret volume in place and LocalFs reads
    the file on every request, so the KBS serves the new value without a restart.
    """

    url: str
    certificate_pem: pulumi.Output[str]
    resource_policy: pulumi.Output[str]
    namespace: str
    config_hash: pulumi.Output[str]
    kbs_config: str
    token_signer_certificate_pem: pulumi.Output[str]
    token_signer_private_key_pem: pulumi.Output[str]
    """The attestation-token signing key (secret); in 'reference' mode the user puts it,
    with its certificate, into the `kbs-token-signer` Secret."""
    required_secrets: dict[str, list[str]]
    """Secret name -> keys the Deployment mounts; in 'reference' mode the user creates them."""

    def __init__(
        self,
        name: str,
        settings: TrusteeSettings,
        environment: str,
        tls: KbsIdentity,
        grants: pulumi.Input[list[ResourceGrant]],
        resource_values: Mapping[str, pulumi.Output[str]],
        secrets_delivery: SecretsDelivery,
        tee_platforms: Sequence[str],
        opts: pulumi.ResourceOptions | None = None,
        public_resources: Mapping[str, pulumi.Input[str]] | None = None,
    ) -> None:
        """`public_resources`: resources the program generates whose values are public
        (image policies, signature and sealed-secret verification keys), by path; served
        from a ConfigMap in the same repository volume, released by the same policy."""
        super().__init__(tokens.token("Trustee"), name, None, tokens.options("Trustee", opts))
        public = dict(sorted((public_resources or {}).items()))
        clash = sorted(set(public) & {r.path for r in settings.resources})
        if clash:
            raise ValueError(f"generated KBS resources {clash} are also in trustee.resources")
        ns = settings.namespace
        paths = [r.path for r in settings.resources]
        if secrets_delivery == "create":
            missing = sorted(set(paths) - set(resource_values))
            if missing:
                raise ValueError(f"no value for KBS resources {missing} in 'create' mode")
        unknown = sorted(set(resource_values) - set(paths))
        if unknown:
            raise ValueError(f"values given for undeclared KBS resources {unknown}")
        if secrets_delivery == "reference" and resource_values:
            raise ValueError("'reference' mode takes no resource values: the Secrets exist")

        self.url = tls.url
        self.certificate_pem = tls.certificate_pem
        self.namespace = ns
        self.kbs_config = render_kbs_config(settings)

        def meta(object_name: str, role: str, **extra: Any) -> dict[str, Any]:
            out: dict[str, Any] = {
                "name": object_name,
                "namespace": ns,
                "labels": labels.common(environment, role),
            }
            out.update(extra)
            return out

        child = pulumi.ResourceOptions(parent=self)
        objects: list[pulumi.Resource] = []
        if ns not in _SYSTEM_NAMESPACES:
            namespace = k8s.core.v1.Namespace(
                f"{name}-namespace",
                metadata={
                    "name": ns,
                    "labels": {
                        **labels.common(environment, labels.ROLE_KBS),
                        # The KBS pod meets the restricted profile; keep others out of it.
                        "pod-security.kubernetes.io/enforce": "restricted",
                    },
                },
                # The component's own dependencies (the cluster being ready) hold its first
                # object back too: a component's depends_on alone does not delay its children.
                opts=pulumi.ResourceOptions(
                    parent=self, depends_on=opts.depends_on if opts else None
                ),
            )
            child = pulumi.ResourceOptions(parent=self, depends_on=[namespace])

        # ---- configuration (public)
        objects.append(
            k8s.core.v1.ConfigMap(
                f"{name}-config",
                metadata=meta(CONFIG_MAP_NAME, labels.ROLE_KBS_CONFIG),
                data={CONFIG_FILE: self.kbs_config},
                opts=child,
            )
        )
        self.resource_policy = pulumi.Output.from_input(grants).apply(
            lambda gs: render_resource_policy_for(settings, list(gs), sorted(public))
        )
        objects.append(
            k8s.core.v1.ConfigMap(
                f"{name}-resource-policy",
                metadata=meta(RESOURCE_POLICY_MAP_NAME, labels.ROLE_RESOURCE_POLICY),
                data={RESOURCE_POLICY_KEY: self.resource_policy},
                opts=child,
            )
        )
        as_policy: str | None = None
        for platform in sorted(set(tee_platforms)) or ["sample"]:
            as_policy = attestation_policy(settings.attestation_policy, platform)
        as_policy_file = f"{ATTESTATION_POLICY_ID}.rego"
        if as_policy is not None:
            objects.append(
                k8s.core.v1.ConfigMap(
                    f"{name}-attestation-policy",
                    metadata=meta(ATTESTATION_POLICY_MAP_NAME, labels.ROLE_ATTESTATION_POLICY),
                    data={as_policy_file: as_policy},
                    opts=child,
                )
            )
        rv_files = reference_value_files(settings.reference_values)
        rv_json = reference_values_json(settings.reference_values)
        objects.append(
            k8s.core.v1.ConfigMap(
                f"{name}-reference-values",
                metadata=meta(REFERENCE_VALUES_MAP_NAME, labels.ROLE_REFERENCE_VALUES),
                data={REFERENCE_VALUES_KEY: rv_json, **rv_files},
                opts=child,
            )
        )

        # ---- key material
        # The AS signs attestation tokens with an EC P-256 key: trustee v0.21.0
        # attestation-service/src/ear_token/broker.rs loads the signer with
        # `EcKey::private_key_from_pem` and refuses any other curve ("Only P-256 attestation
        # token signing keys are supported"; kbs/docs/config.md saying RSA is stale). The KBS
        # trusts exactly this certificate.
        signer_cert = SelfSignedTls(
            f"{name}-token-signer-cert",
            common_name=f"{SERVICE_NAME}.{ns} attestation token signer",
            validity_hours=settings.tls.validity_hours,
            key_algorithm=TOKEN_SIGNER_KEY_ALGORITHM,
            is_ca=True,
            early_renewal_hours=settings.tls.renewal_hours,
            opts=child,
        )
        self.token_signer_certificate_pem = signer_cert.cert_pem
        self.token_signer_private_key_pem = pulumi.Output.secret(signer_cert.private_key_pem)

        resource_secrets = {p: resource_secret_name(p) for p in sorted(paths)}
        public_keys = {p: public_resource_key(p) for p in public}
        if public:
            objects.append(
                k8s.core.v1.ConfigMap(
                    f"{name}-public-resources",
                    metadata=meta(PUBLIC_RESOURCES_MAP_NAME, labels.ROLE_KBS_RESOURCE),
                    data={public_keys[p]: v for p, v in public.items()},
                    opts=child,
                )
            )
        self.required_secrets = {
            TLS_SECRET_NAME: ["tls.crt", "tls.key"],
            TOKEN_SIGNER_SECRET_NAME: ["tls.crt", "tls.key"],
            **{s: [RESOURCE_SECRET_KEY] for s in resource_secrets.values()},
        }
        if secrets_delivery == "create":
            objects.append(
                k8s.core.v1.Secret(
                    f"{name}-tls",
                    metadata=meta(TLS_SECRET_NAME, labels.ROLE_KBS_TLS),
                    type="kubernetes.io/tls",
                    string_data={
                        "tls.crt": tls.certificate_pem,
                        "tls.key": _secret(tls.private_key_pem),
                    },
                    opts=child,
                )
            )
            objects.append(
                k8s.core.v1.Secret(
                    f"{name}-token-signer",
                    metadata=meta(TOKEN_SIGNER_SECRET_NAME, labels.ROLE_KBS_TLS),
                    type="kubernetes.io/tls",
                    string_data={
                        "tls.crt": self.token_signer_certificate_pem,
                        "tls.key": self.token_signer_private_key_pem,
                    },
                    opts=child,
                )
            )
            for path, secret_name in resource_secrets.items():
                objects.append(
                    k8s.core.v1.Secret(
                        f"{name}-resource-{secret_name.removeprefix('kbs-resource-')}",
                        metadata=meta(
                            secret_name,
                            labels.ROLE_KBS_RESOURCE,
                            annotations={RESOURCE_PATH_ANNOTATION: path},
                        ),
                        type="Opaque",
                        string_data={RESOURCE_SECRET_KEY: _secret(resource_values[path])},
                        opts=child,
                    )
                )

        # ---- the KBS
        public_texts: dict[str, pulumi.Input[str]] = {
            CONFIG_FILE: self.kbs_config,
            "resource-policy": self.resource_policy,
            REFERENCE_VALUES_KEY: rv_json,
            "tls.crt": pulumi.Output.unsecret(tls.certificate_pem),
            "token-signer.crt": signer_cert.cert_pem,
            "resources": "\n".join(f"{p} {s}" for p, s in resource_secrets.items()),
        }
        if as_policy is not None:
            public_texts[as_policy_file] = as_policy
        names = sorted(public_texts)
        self.config_hash = pulumi.Output.all(*[public_texts[n] for n in names]).apply(
            lambda texts: config_hash(dict(zip(names, texts, strict=True)))
        )

        pod_spec = kbs_pod_spec(
            settings,
            as_policy_file=as_policy_file if as_policy is not None else None,
            reference_values=sorted(rv_files),
            resource_secrets=resource_secrets,
            public_resources=public_keys,
        )
        pod_spec = harden_pod_spec(pod_spec, settings.hardening)
        selector = {"app.kubernetes.io/name": "kbs", labels.ROLE: labels.ROLE_KBS}
        deployment = k8s.apps.v1.Deployment(
            f"{name}-kbs",
            metadata=meta(DEPLOYMENT_NAME, labels.ROLE_KBS),
            spec={
                "replicas": settings.replicas,
                "selector": {"matchLabels": selector},
                "strategy": {
                    "type": "RollingUpdate",
                    "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1},
                },
                "template": {
                    "metadata": {
                        "labels": {**labels.common(environment, labels.ROLE_KBS), **selector},
                        "annotations": self.config_hash.apply(
                            lambda h: {CONFIG_HASH_ANNOTATION: h}
                        ),
                    },
                    "spec": pod_spec,
                },
            },
            opts=pulumi.ResourceOptions.merge(child, pulumi.ResourceOptions(depends_on=objects)),
        )
        self.guards = kbs_guards(
            name, settings, meta(SERVICE_NAME, labels.ROLE_KBS), selector, child
        )
        service = k8s.core.v1.Service(
            f"{name}-service",
            metadata=meta(SERVICE_NAME, labels.ROLE_KBS),
            spec={
                "type": settings.service_type,
                "selector": selector,
                # RCAR keeps the auth -> attest -> resource session in the pod that answered
                # `auth`; with several replicas a guest must keep talking to that pod.
                "sessionAffinity": "ClientIP",
                "ports": [
                    {
                        "name": "https",
                        "protocol": "TCP",
                        "port": settings.port,
                        "targetPort": KBS_PORT,
                        # Pinned: init-data measures this port (components/reachability.py).
                        **({"nodePort": settings.node_port} if settings.node_port else {}),
                    }
                ],
            },
            opts=child,
        )
        if settings.ingress is not None:
            # TLS passes through to the KBS (the guest pins its certificate); reachability
            # (components/reachability.py) checked the URL is https://<this host>.
            host = urlparse(settings.service_url()).hostname
            k8s.networking.v1.Ingress(
                f"{name}-ingress",
                metadata=meta(
                    SERVICE_NAME,
                    labels.ROLE_KBS,
                    annotations=dict(sorted(settings.ingress.annotations.items())),
                ),
                spec={
                    **(
                        {"ingressClassName": settings.ingress.class_name}
                        if settings.ingress.class_name
                        else {}
                    ),
                    "rules": [
                        {
                            "host": host,
                            "http": {
                                "paths": [
                                    {
                                        "path": "/",
                                        "pathType": "Prefix",
                                        "backend": {
                                            "service": {
                                                "name": SERVICE_NAME,
                                                "port": {"number": settings.port},
                                            }
                                        },
                                    }
                                ]
                            },
                        }
                    ],
                },
                opts=pulumi.ResourceOptions.merge(
                    child, pulumi.ResourceOptions(depends_on=[service])
                ),
            )
        self.deployment = deployment
        self.service = service
        self.register_outputs(
            {
                "url": self.url,
                "certificatePem": self.certificate_pem,
                "namespace": ns,
                "resourcePolicy": self.resource_policy,
                "configHash": self.config_hash,
                "requiredSecrets": self.required_secrets,
            }
        )


SEED_DIR = "/etc/kbs-storage-seed"
"""Where the layout init container reads the policies and reference values (one projected
volume of their ConfigMaps, already in the storage tree's shape) before copying them."""

LAYOUT_CONTAINER = "storage-layout"


def _storage_seed(
    as_policy_file: str | None, reference_values: Sequence[str]
) -> tuple[dict[str, Any], list[str]]:
    """The projected ConfigMap volume holding the storage files, and its top-level folders.

    Paths inside the volume are the paths under the storage directory (`kbs/resource-policy.rego`,
    `attestation_service_policy/default_cpu.rego`, `reference_value/<name>`), so laying the
    tree out is one recursive copy per folder.
    """
    sources: list[dict[str, Any]] = [
        {
            "configMap": {
                "name": RESOURCE_POLICY_MAP_NAME,
                "items": [{"key": RESOURCE_POLICY_KEY, "path": _relative(RESOURCE_POLICY_FILE)}],
            }
        }
    ]
    folders = [_relative(KBS_NAMESPACE_DIR)]
    if as_policy_file is not None:
        sources.append(
            {
                "configMap": {
                    "name": ATTESTATION_POLICY_MAP_NAME,
                    "items": [
                        {
                            "key": as_policy_file,
                            "path": f"{_relative(AS_POLICY_DIR)}/{as_policy_file}",
                        }
                    ],
                }
            }
        )
        folders.append(_relative(AS_POLICY_DIR))
    if reference_values:
        sources.append(
            {
                "configMap": {
                    "name": REFERENCE_VALUES_MAP_NAME,
                    "items": [
                        {"key": rv, "path": f"{_relative(REFERENCE_VALUE_DIR)}/{rv}"}
                        for rv in sorted(reference_values)
                    ],
                }
            }
        )
        folders.append(_relative(REFERENCE_VALUE_DIR))
    return {
        "name": "storage-seed",
        "projected": {"defaultMode": 0o444, "sources": sources},
    }, folders


def _relative(path: str) -> str:
    """`path` relative to the storage directory."""
    return path.removeprefix(f"{STORAGE_DIR}/")


def layout_script(folders: Sequence[str], repository: bool) -> str:
    """The init container's shell script: the storage tree, owned by the KBS's own user.

    Why: the KBS writes into its storage directory at start (`kbs_protocol_session/` in
    trustee `kbs/src/attestation/backend.rs`, `default_gpu` and any missing policy under
    `attestation_service_policy/`, every namespace folder via `deps/key-value-storage/src/
    local_fs/mod.rs` `create_dir_all`). Files mounted into that tree with subPath make the
    runtime create their parent folders as root 0755, and the KBS, running as uid 65532,
    then dies with EACCES. So nothing is mounted inside the tree except the resource
    repository, whose mount point this script creates (as 65532) before the runtime needs
    it; everything else is copied here, with umask 077 (folders 0700, files at most 0600).
    It runs in the KBS image itself, whose final stage is ubuntu:24.04 (trustee
    `kbs/docker/Dockerfile`), so `/bin/sh`, `mkdir` and `cp` are there and nothing else is pulled.
    """
    lines = ["set -eu", "umask 077", f"mkdir -p {STORAGE_DIR}"]
    for folder in folders:
        lines.append(f"cp -RL {SEED_DIR}/{folder} {STORAGE_DIR}/")
    if repository:
        lines.append(f"mkdir -p {REPOSITORY_DIR}")
    return "\n".join(lines) + "\n"


_RESTRICTED = {
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "runAsNonRoot": True,
    "capabilities": {"drop": ["ALL"]},
}


def kbs_pod_spec(
    settings: TrusteeSettings,
    *,
    as_policy_file: str | None,
    reference_values: Sequence[str],
    resource_secrets: Mapping[str, str],
    public_resources: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The KBS pod: read-only root, unprivileged, every input where the KBS reads it.

    The storage directory is an emptyDir that an init container (`layout_script`) fills with
    the resource policy, attestation policy and reference values, so the KBS, as uid 65532,
    owns the whole tree it writes into. A change to those files changes the pod template's
    config hash and rolls the pod (the copy is made once per pod). The resource repository is
    the one mount inside the tree: a projected volume of all resource Secrets, refreshed in
    place by the kubelet and read by LocalFs on every request, so a changed secret value is
    served without a restart.
    """
    seed, folders = _storage_seed(as_policy_file, reference_values)
    mounts: list[dict[str, Any]] = [
        {"name": "config", "mountPath": CONFIG_DIR, "readOnly": True},
        {"name": "tls", "mountPath": TLS_DIR, "readOnly": True},
        {"name": "token-signer", "mountPath": TOKEN_SIGNER_DIR, "readOnly": True},
        {"name": "state", "mountPath": STATE_DIR},
        {"name": "tmp", "mountPath": "/tmp"},
    ]
    secret_mode = 0o440
    volumes: list[dict[str, Any]] = [
        {"name": "config", "configMap": {"name": CONFIG_MAP_NAME}},
        {"name": "tls", "secret": {"secretName": TLS_SECRET_NAME, "defaultMode": secret_mode}},
        {
            "name": "token-signer",
            "secret": {"secretName": TOKEN_SIGNER_SECRET_NAME, "defaultMode": secret_mode},
        },
        {"name": "state", "emptyDir": {}},
        {"name": "tmp", "emptyDir": {}},
        seed,
    ]
    public_resources = public_resources or {}
    if resource_secrets or public_resources:
        public_sources: list[dict[str, Any]] = []
        if public_resources:
            public_sources.append(
                {
                    "configMap": {
                        "name": PUBLIC_RESOURCES_MAP_NAME,
                        "items": [
                            {"key": key, "path": repository_file_name(path)}
                            for path, key in sorted(public_resources.items())
                        ],
                    }
                }
            )
        mounts.append({"name": "repository", "mountPath": REPOSITORY_DIR, "readOnly": True})
        volumes.append(
            {
                "name": "repository",
                "projected": {
                    "defaultMode": secret_mode,
                    "sources": [
                        {
                            "secret": {
                                "name": secret_name,
                                "items": [
                                    {
                                        "key": RESOURCE_SECRET_KEY,
                                        "path": repository_file_name(path),
                                    }
                                ],
                            }
                        }
                        for path, secret_name in sorted(resource_secrets.items())
                    ]
                    + public_sources,
                },
            }
        )
    # trustee v0.21.0 kbs/src/api_server.rs: `GET /healthz` answers 200 on the KBS port (HTTPS).
    health = {"path": "/healthz", "port": KBS_PORT, "scheme": "HTTPS"}
    layout: dict[str, Any] = {
        "name": LAYOUT_CONTAINER,
        "image": settings.image,
        "imagePullPolicy": "IfNotPresent",
        "command": [
            "/bin/sh",
            "-c",
            layout_script(folders, bool(resource_secrets or public_resources)),
        ],
        "resources": {
            "requests": {"cpu": "10m", "memory": "16Mi"},
            "limits": {"memory": "64Mi"},
        },
        "securityContext": dict(_RESTRICTED),
        "volumeMounts": [
            {"name": "state", "mountPath": STATE_DIR},
            {"name": "storage-seed", "mountPath": SEED_DIR, "readOnly": True},
        ],
    }
    container: dict[str, Any] = {
        "name": "kbs",
        "image": settings.image,
        "imagePullPolicy": "IfNotPresent",
        "command": [KBS_BINARY, "--config-file", f"{CONFIG_DIR}/{CONFIG_FILE}"],
        "env": [{"name": "HOME", "value": "/tmp"}],
        "ports": [{"name": "https", "containerPort": KBS_PORT, "protocol": "TCP"}],
        "startupProbe": {"httpGet": health, "periodSeconds": 2, "failureThreshold": 60},
        "readinessProbe": {"httpGet": health, "periodSeconds": 10},
        "livenessProbe": {"httpGet": health, "periodSeconds": 20, "failureThreshold": 3},
        "resources": {
            "requests": {"cpu": "250m", "memory": "256Mi"},
            "limits": {"memory": "1Gi"},
        },
        "securityContext": dict(_RESTRICTED),
        "volumeMounts": mounts,
    }
    return {
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": RUN_AS,
            "runAsGroup": RUN_AS,
            "fsGroup": RUN_AS,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "initContainers": [layout],
        "containers": [container],
        "volumes": volumes,
    }
