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

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlparse

import pulumi
import pulumi_kubernetes as k8s

from components import labels, tokens
from components.hardening import harden_pod_spec
from components.kbs_render import (
    AS_POLICY_DIR,
    ATTESTATION_POLICY_MAP_NAME,
    CONFIG_DIR,
    CONFIG_FILE,
    CONFIG_HASH_ANNOTATION,
    CONFIG_MAP_NAME,
    DEPLOYMENT_NAME,
    KBS_BINARY,
    KBS_NAMESPACE_DIR,
    KBS_PORT,
    PUBLIC_RESOURCES_MAP_NAME,
    REFERENCE_VALUE_DIR,
    REFERENCE_VALUES_KEY,
    REFERENCE_VALUES_MAP_NAME,
    REPOSITORY_DIR,
    RESOURCE_PATH_ANNOTATION,
    RESOURCE_POLICY_FILE,
    RESOURCE_POLICY_KEY,
    RESOURCE_POLICY_MAP_NAME,
    RESOURCE_SECRET_KEY,
    RUN_AS,
    STATE_DIR,
    STORAGE_DIR,
    TLS_DIR,
    TLS_SECRET_NAME,
    TOKEN_SIGNER_DIR,
    TOKEN_SIGNER_SECRET_NAME,
    SecretsDelivery,
    certificate_names,
    config_hash,
    reference_value_files,
    render_kbs_config,
    render_resource_policy_for,
    repository_file_name,
    resource_secret_name,
)
from components.kbs_render import TOKEN_DURATION_MIN as TOKEN_DURATION_MIN
from components.pod_guards import kbs_guards
from components.reachability import SERVICE_NAME, KbsIngress, certificate_covers
from components.reachability import service_dns_names as service_dns_names
from components.stack_settings import TrusteeSettings
from components.tls import KeyAlgorithm, SelfSignedTls
from components.verifier_settings import VCEK_STORE_DIR, VCEK_STORE_MAP_NAME, vcek_store_files
from components.vocabulary import full_key, secret_config
from policies.attestation import (
    ATTESTATION_POLICY_ID,
    attestation_policy,
    reference_values_json,
)
from policies.gpu_attestation import GPU_POLICY_ID, gpu_attestation_policy
from policies.resource import ResourceGrant, public_resource_key

TOKEN_SIGNER_KEY_ALGORITHM: KeyAlgorithm = "ecdsa-p256"
"""The only attestation-token signer the v0.21 AS accepts (ear_token/broker.rs)."""

_SYSTEM_NAMESPACES = frozenset({"default", "kube-system", "kube-public", "kube-node-lease"})


def _secret(value: pulumi.Output[str]) -> pulumi.Output[str]:
    """Mark a value secret (again), so no code path can hand it to the engine in plain text."""
    return pulumi.Output.secret(value)


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
                secret_config(cfg.certificate_from)
            ).apply(covers)
            self.private_key_pem = pulumi.Output.secret(secret_config(cfg.private_key_from))
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
        check_trustee_inputs(settings, public, resource_values, secrets_delivery)
        self.url = tls.url
        self.certificate_pem = tls.certificate_pem
        self.namespace = settings.namespace
        self.kbs_config = render_kbs_config(settings)
        self._environment = environment

        child = self._namespace(name, opts)
        # configuration (public), then key material, then the KBS that reads them all
        files = self._policy_files(name, settings, grants, sorted(public), tee_platforms, child)
        # Not a Kubernetes object: nothing in the namespace has to exist first, and waiting
        # for it would put the key (and the KBS after it) behind every object registered
        # meanwhile in the engine's queue (docs/benchmarks.md, real apply).
        signer = self._token_signer(name, settings, pulumi.ResourceOptions(parent=self))
        paths = sorted(r.path for r in settings.resources)
        resource_secrets = {p: resource_secret_name(p) for p in paths}
        public_keys = {p: public_resource_key(p) for p in public}
        secrets = self._secret_objects(
            name,
            tls,
            public,
            public_keys,
            resource_secrets,
            resource_values,
            secrets_delivery,
            child,
        )
        objects = files.objects + secrets
        self.config_hash = self._config_hash(tls, signer, files, resource_secrets)
        pod_spec = kbs_pod_spec(
            settings,
            as_policy_files=sorted(files.as_policies),
            reference_values=sorted(files.reference_value_files),
            resource_secrets=resource_secrets,
            public_resources=public_keys,
        )
        pod_spec = harden_pod_spec(pod_spec, settings.hardening)
        deps = pulumi.ResourceOptions.merge(child, pulumi.ResourceOptions(depends_on=objects))
        self.deployment = self._deployment(name, settings, pod_spec, deps)
        self.guards = kbs_guards(
            name, settings, self._meta(SERVICE_NAME, labels.ROLE_KBS), _SELECTOR, child
        )
        self.service = self._service(name, settings, child)
        if settings.ingress is not None:
            self._ingress(name, settings, settings.ingress, child)
        self.register_outputs(
            {
                "url": self.url,
                "certificatePem": self.certificate_pem,
                "namespace": self.namespace,
                "resourcePolicy": self.resource_policy,
                "configHash": self.config_hash,
                "requiredSecrets": self.required_secrets,
            }
        )

    def _meta(self, object_name: str, role: str, **extra: Any) -> dict[str, Any]:
        """Metadata of one of the Trustee's objects: fixed name, its namespace, coco's labels."""
        out: dict[str, Any] = {
            "name": object_name,
            "namespace": self.namespace,
            "labels": labels.common(self._environment, role),
        }
        out.update(extra)
        return out

    def _namespace(self, name: str, opts: pulumi.ResourceOptions | None) -> pulumi.ResourceOptions:
        """The Trustee's own namespace (unless it is a system one), and the options of every
        object in it."""
        ns = self.namespace
        if ns in _SYSTEM_NAMESPACES:
            return pulumi.ResourceOptions(parent=self)
        namespace = k8s.core.v1.Namespace(
            f"{name}-namespace",
            metadata={
                "name": ns,
                "labels": {
                    **labels.common(self._environment, labels.ROLE_KBS),
                    # The KBS pod meets the restricted profile; keep others out of it.
                    "pod-security.kubernetes.io/enforce": "restricted",
                },
            },
            # The component's own dependencies (the cluster being ready) hold its first
            # object back too: a component's depends_on alone does not delay its children.
            opts=pulumi.ResourceOptions(parent=self, depends_on=opts.depends_on if opts else None),
        )
        return pulumi.ResourceOptions(parent=self, depends_on=[namespace])

    def _policy_files(
        self,
        name: str,
        settings: TrusteeSettings,
        grants: pulumi.Input[list[ResourceGrant]],
        public_paths: list[str],
        tee_platforms: Sequence[str],
        child: pulumi.ResourceOptions,
    ) -> _PolicyFiles:
        """The public configuration: KBS config, resource policy, attestation policy and
        reference values, one ConfigMap each."""
        objects: list[pulumi.Resource] = [
            k8s.core.v1.ConfigMap(
                f"{name}-config",
                metadata=self._meta(CONFIG_MAP_NAME, labels.ROLE_KBS_CONFIG),
                data={CONFIG_FILE: self.kbs_config},
                opts=child,
            )
        ]
        self.resource_policy = pulumi.Output.from_input(grants).apply(
            lambda gs: render_resource_policy_for(settings, list(gs), public_paths)
        )
        objects.append(
            k8s.core.v1.ConfigMap(
                f"{name}-resource-policy",
                metadata=self._meta(RESOURCE_POLICY_MAP_NAME, labels.ROLE_RESOURCE_POLICY),
                data={RESOURCE_POLICY_KEY: self.resource_policy},
                opts=child,
            )
        )
        as_policy: str | None = None
        for platform in sorted(set(tee_platforms)) or ["sample"]:
            as_policy = attestation_policy(settings.attestation_policy, platform)
        # AS policies laid out as files: the stack's custom CPU policy, and coco's GPU policy
        # when the local NVIDIA verifier judges GPUs (policies/gpu_attestation.py).
        as_policies: dict[str, str] = {}
        if as_policy is not None:
            as_policies[f"{ATTESTATION_POLICY_ID}.rego"] = as_policy
        nvidia = settings.verifiers.nvidia
        gpu_policy = gpu_attestation_policy(nvidia.mode if nvidia is not None else None)
        if gpu_policy is not None:
            as_policies[f"{GPU_POLICY_ID}.rego"] = gpu_policy
        if as_policies:
            objects.append(
                k8s.core.v1.ConfigMap(
                    f"{name}-attestation-policy",
                    metadata=self._meta(
                        ATTESTATION_POLICY_MAP_NAME, labels.ROLE_ATTESTATION_POLICY
                    ),
                    data=as_policies,
                    opts=child,
                )
            )
        vcek_files = vcek_store_files(settings.verifiers)
        if vcek_files:
            # Public certificates (AMD-signed VCEKs), read by the SNP verifier from the store.
            objects.append(
                k8s.core.v1.ConfigMap(
                    f"{name}-vcek-store",
                    metadata=self._meta(VCEK_STORE_MAP_NAME, labels.ROLE_KBS_CONFIG),
                    data=vcek_files,
                    opts=child,
                )
            )
        rv_files = reference_value_files(settings.reference_values)
        rv_json = reference_values_json(settings.reference_values)
        objects.append(
            k8s.core.v1.ConfigMap(
                f"{name}-reference-values",
                metadata=self._meta(REFERENCE_VALUES_MAP_NAME, labels.ROLE_REFERENCE_VALUES),
                data={REFERENCE_VALUES_KEY: rv_json, **rv_files},
                opts=child,
            )
        )
        return _PolicyFiles(objects, as_policies, rv_files, rv_json)

    def _token_signer(
        self, name: str, settings: TrusteeSettings, child: pulumi.ResourceOptions
    ) -> SelfSignedTls:
        """The attestation-token signer's key and certificate, which the KBS trusts.

        The AS signs attestation tokens with an EC P-256 key: trustee v0.21.0
        attestation-service/src/ear_token/broker.rs loads the signer with
        `EcKey::private_key_from_pem` and refuses any other curve ("Only P-256 attestation
        token signing keys are supported"; kbs/docs/config.md saying RSA is stale)."""
        signer_cert = SelfSignedTls(
            f"{name}-token-signer-cert",
            common_name=f"{SERVICE_NAME}.{self.namespace} attestation token signer",
            validity_hours=settings.tls.validity_hours,
            key_algorithm=TOKEN_SIGNER_KEY_ALGORITHM,
            is_ca=True,
            early_renewal_hours=settings.tls.renewal_hours,
            opts=child,
        )
        self.token_signer_certificate_pem = signer_cert.cert_pem
        self.token_signer_private_key_pem = pulumi.Output.secret(signer_cert.private_key_pem)
        return signer_cert

    def _secret_objects(
        self,
        name: str,
        tls: KbsIdentity,
        public: Mapping[str, pulumi.Input[str]],
        public_keys: Mapping[str, str],
        resource_secrets: Mapping[str, str],
        resource_values: Mapping[str, pulumi.Output[str]],
        secrets_delivery: SecretsDelivery,
        child: pulumi.ResourceOptions,
    ) -> list[pulumi.Resource]:
        """The generated public resources' ConfigMap, and in 'create' mode the Secrets: TLS,
        token signer and one per KBS resource (in 'reference' mode the user makes them, as
        `required_secrets` lists them)."""
        objects: list[pulumi.Resource] = []
        if public:
            objects.append(
                k8s.core.v1.ConfigMap(
                    f"{name}-public-resources",
                    metadata=self._meta(PUBLIC_RESOURCES_MAP_NAME, labels.ROLE_KBS_RESOURCE),
                    data={public_keys[p]: v for p, v in public.items()},
                    opts=child,
                )
            )
        self.required_secrets = {
            TLS_SECRET_NAME: ["tls.crt", "tls.key"],
            TOKEN_SIGNER_SECRET_NAME: ["tls.crt", "tls.key"],
            **{s: [RESOURCE_SECRET_KEY] for s in resource_secrets.values()},
        }
        if secrets_delivery != "create":
            return objects
        objects.append(
            k8s.core.v1.Secret(
                f"{name}-tls",
                metadata=self._meta(TLS_SECRET_NAME, labels.ROLE_KBS_TLS),
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
                metadata=self._meta(TOKEN_SIGNER_SECRET_NAME, labels.ROLE_KBS_TLS),
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
                    metadata=self._meta(
                        secret_name,
                        labels.ROLE_KBS_RESOURCE,
                        annotations={RESOURCE_PATH_ANNOTATION: path},
                    ),
                    type="Opaque",
                    string_data={RESOURCE_SECRET_KEY: _secret(resource_values[path])},
                    opts=child,
                )
            )
        return objects

    def _config_hash(
        self,
        tls: KbsIdentity,
        signer: SelfSignedTls,
        files: _PolicyFiles,
        resource_secrets: Mapping[str, str],
    ) -> pulumi.Output[str]:
        """The hash of every public input of the KBS pod: a change rolls the Deployment."""
        public_texts: dict[str, pulumi.Input[str]] = {
            CONFIG_FILE: self.kbs_config,
            "resource-policy": self.resource_policy,
            REFERENCE_VALUES_KEY: files.reference_values_json,
            "tls.crt": pulumi.Output.unsecret(tls.certificate_pem),
            "token-signer.crt": signer.cert_pem,
            "resources": "\n".join(f"{p} {s}" for p, s in resource_secrets.items()),
        }
        public_texts.update(files.as_policies)
        names = sorted(public_texts)
        return pulumi.Output.all(*[public_texts[n] for n in names]).apply(
            lambda texts: config_hash(dict(zip(names, texts, strict=True)))
        )

    def _deployment(
        self,
        name: str,
        settings: TrusteeSettings,
        pod_spec: dict[str, Any],
        opts: pulumi.ResourceOptions,
    ) -> k8s.apps.v1.Deployment:
        """The KBS Deployment, rolled (one new pod before an old one goes) on a config change."""
        return k8s.apps.v1.Deployment(
            f"{name}-kbs",
            metadata=self._meta(DEPLOYMENT_NAME, labels.ROLE_KBS),
            spec={
                "replicas": settings.replicas,
                "selector": {"matchLabels": _SELECTOR},
                "strategy": {
                    "type": "RollingUpdate",
                    "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1},
                },
                "template": {
                    "metadata": {
                        "labels": {
                            **labels.common(self._environment, labels.ROLE_KBS),
                            **_SELECTOR,
                        },
                        "annotations": self.config_hash.apply(
                            lambda h: {CONFIG_HASH_ANNOTATION: h}
                        ),
                    },
                    "spec": pod_spec,
                },
            },
            opts=opts,
        )

    def _service(
        self, name: str, settings: TrusteeSettings, child: pulumi.ResourceOptions
    ) -> k8s.core.v1.Service:
        """The KBS Service, at the port init-data measures."""
        return k8s.core.v1.Service(
            f"{name}-service",
            metadata=self._meta(SERVICE_NAME, labels.ROLE_KBS),
            spec={
                "type": settings.service_type,
                "selector": _SELECTOR,
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

    def _ingress(
        self,
        name: str,
        settings: TrusteeSettings,
        ingress: KbsIngress,
        child: pulumi.ResourceOptions,
    ) -> k8s.networking.v1.Ingress:
        """An Ingress at the URL's host. TLS passes through to the KBS (the guest pins its
        certificate); reachability (components/checks/reachability.py) checked the URL is
        https://<this host>."""
        host = urlparse(settings.service_url()).hostname
        return k8s.networking.v1.Ingress(
            f"{name}-ingress",
            metadata=self._meta(
                SERVICE_NAME,
                labels.ROLE_KBS,
                annotations=dict(sorted(ingress.annotations.items())),
            ),
            spec={
                **({"ingressClassName": ingress.class_name} if ingress.class_name else {}),
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
                child, pulumi.ResourceOptions(depends_on=[self.service])
            ),
        )


_SELECTOR = {"app.kubernetes.io/name": "kbs", labels.ROLE: labels.ROLE_KBS}
"""The labels that select the KBS pods (Deployment and Service)."""


@dataclass(frozen=True)
class _PolicyFiles:
    """The Trustee's public configuration objects and the texts the pod and its hash need."""

    objects: list[pulumi.Resource]
    as_policies: dict[str, str]
    """AS policy files by name (the custom CPU policy, coco's GPU policy)."""
    reference_value_files: dict[str, str]
    reference_values_json: str


def check_trustee_inputs(
    settings: TrusteeSettings,
    public: Mapping[str, object],
    resource_values: Mapping[str, object],
    secrets_delivery: SecretsDelivery,
) -> None:
    """Refuse inputs that would make a KBS serving less, or other, than its settings say:
    a generated resource at a declared path, a declared resource without a value to create,
    a value for an undeclared one, values in 'reference' mode."""
    clash = sorted(set(public) & {r.path for r in settings.resources})
    if clash:
        raise ValueError(f"generated KBS resources {clash} are also in trustee.resources")
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


SEED_DIR = "/etc/kbs-storage-seed"
"""Where the layout init container reads the policies and reference values (one projected
volume of their ConfigMaps, already in the storage tree's shape) before copying them."""

LAYOUT_CONTAINER = "storage-layout"


def _storage_seed(
    as_policy_files: Sequence[str], reference_values: Sequence[str]
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
    if as_policy_files:
        sources.append(
            {
                "configMap": {
                    "name": ATTESTATION_POLICY_MAP_NAME,
                    "items": [
                        {"key": f, "path": f"{_relative(AS_POLICY_DIR)}/{f}"}
                        for f in sorted(as_policy_files)
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
    as_policy_files: Sequence[str] = (),
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
    seed, folders = _storage_seed(as_policy_files, reference_values)
    public_resources = public_resources or {}
    mounts, volumes = _kbs_volumes(settings, seed, resource_secrets, public_resources)
    repository = bool(resource_secrets or public_resources)
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
        "initContainers": [_layout_container(settings, folders, repository)],
        "containers": [_kbs_container(settings, mounts)],
        "volumes": volumes,
    }


_SECRET_MODE = 0o440
"""Key material is readable by the KBS's group (fsGroup) only."""


def _kbs_volumes(
    settings: TrusteeSettings,
    seed: dict[str, Any],
    resource_secrets: Mapping[str, str],
    public_resources: Mapping[str, str],
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(the KBS container's mounts, the pod's volumes): its config, TLS and token-signer
    keys read-only, writable state and /tmp, the storage seed, and, when there is anything
    to serve, the VCEK store and the resource repository."""
    mounts: list[dict[str, Any]] = [
        {"name": "config", "mountPath": CONFIG_DIR, "readOnly": True},
        {"name": "tls", "mountPath": TLS_DIR, "readOnly": True},
        {"name": "token-signer", "mountPath": TOKEN_SIGNER_DIR, "readOnly": True},
        {"name": "state", "mountPath": STATE_DIR},
        {"name": "tmp", "mountPath": "/tmp"},
    ]
    volumes: list[dict[str, Any]] = [
        {"name": "config", "configMap": {"name": CONFIG_MAP_NAME}},
        {"name": "tls", "secret": {"secretName": TLS_SECRET_NAME, "defaultMode": _SECRET_MODE}},
        {
            "name": "token-signer",
            "secret": {"secretName": TOKEN_SIGNER_SECRET_NAME, "defaultMode": _SECRET_MODE},
        },
        {"name": "state", "emptyDir": {}},
        {"name": "tmp", "emptyDir": {}},
        seed,
    ]
    vcek_files = vcek_store_files(settings.verifiers)
    if vcek_files:
        mounts.append({"name": "vcek-store", "mountPath": VCEK_STORE_DIR, "readOnly": True})
        volumes.append(_vcek_store_volume(vcek_files))
    if resource_secrets or public_resources:
        mounts.append({"name": "repository", "mountPath": REPOSITORY_DIR, "readOnly": True})
        volumes.append(_repository_volume(resource_secrets, public_resources))
    return mounts, volumes


def _vcek_store_volume(vcek_files: Mapping[str, Any]) -> dict[str, Any]:
    """The SNP verifier's offline VCEK store: `<path>/vcek/<chip id>/vcek.der` (trustee
    deps/verifier/src/snp/mod.rs `fetch_vcek_from_offline_store`). Mounted whole (no
    subPath), so a refreshed VCEK reaches the running KBS without a restart."""
    return {
        "name": "vcek-store",
        "configMap": {
            "name": VCEK_STORE_MAP_NAME,
            "items": [{"key": key, "path": f"vcek/{key}/vcek.der"} for key in sorted(vcek_files)],
        },
    }


def _repository_volume(
    resource_secrets: Mapping[str, str], public_resources: Mapping[str, str]
) -> dict[str, Any]:
    """The resource repository: one projected volume of every resource Secret (and the
    public resources' ConfigMap), refreshed in place by the kubelet and read by LocalFs on
    every request, so a changed value is served without a restart."""
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
    secret_sources: list[dict[str, Any]] = [
        {
            "secret": {
                "name": secret_name,
                "items": [{"key": RESOURCE_SECRET_KEY, "path": repository_file_name(path)}],
            }
        }
        for path, secret_name in sorted(resource_secrets.items())
    ]
    return {
        "name": "repository",
        "projected": {"defaultMode": _SECRET_MODE, "sources": secret_sources + public_sources},
    }


def _layout_container(
    settings: TrusteeSettings, folders: Sequence[str], repository: bool
) -> dict[str, Any]:
    """The init container that lays the storage tree out (`layout_script`) in the state
    emptyDir from the seed, so the KBS, as uid 65532, owns the whole tree it writes into."""
    return {
        "name": LAYOUT_CONTAINER,
        "image": settings.image,
        "imagePullPolicy": "IfNotPresent",
        "command": ["/bin/sh", "-c", layout_script(folders, repository)],
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


def _kbs_container(settings: TrusteeSettings, mounts: list[dict[str, Any]]) -> dict[str, Any]:
    """The KBS itself, probed on its health endpoint over HTTPS."""
    # trustee v0.21.0 kbs/src/api_server.rs: `GET /healthz` answers 200 on the KBS port (HTTPS).
    health = {"path": "/healthz", "port": KBS_PORT, "scheme": "HTTPS"}
    return {
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
