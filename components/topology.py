"""`coco:topology`: where the Trustee runs relative to the confidential workloads.

Why: CoCo treats the cluster that runs the confidential pods (its admins, hosts, control plane)
as untrusted. A Trustee on that cluster keeps its TLS and token-signing keys, its policies,
its reference values and every secret it guards as Kubernetes Secrets and ConfigMaps there:
whoever reads Secrets in its namespace gets every secret without attesting, whoever edits its
ConfigMaps rewrites the policies. Vendor guidance puts the production Trustee in a separate,
trusted environment (docs/topologies.md). Three topologies, typed here:

- `co-located` (the default): Trustee on the confidential cluster. Dev and test only: a
  production stack refuses it unless `coco:waivers` waives `co-located-trustee` with a reason.
- `trusted-zone`: Trustee on its own cluster, serving one or more confidential clusters.
  * one stack, two Kubernetes providers: `trusteeCluster` names the trusted cluster (a
    kubeconfig/context, or a render folder); `coco:kubernetes` stays the confidential one;
  * separate stacks linked by `pulumi.StackReference`: one stack with `role: trustee`
    (its `coco:kubernetes` is the trusted cluster; `confidentialStacks` lists the stacks it
    serves) and N stacks with `role: confidential` (`trusteeStack` names the Trustee stack).
    The KBS URL and certificate flow Trustee -> confidential stacks (into init-data); the
    workloads' init-data digests flow confidential stacks -> Trustee (into the resource
    policy). Who may read which secret stays in the Trustee stack's `coco:trustee.resources`:
    an operator of a confidential stack cannot grant their workloads a secret.
- `external`: a Trustee coco did not deploy (a shared company Trustee, Red Hat's build, the
  Trustee operator). coco deploys no Trustee object anywhere; the workloads' init-data points
  at `external.url` and pins `external.certificatePem`; the resource policy (with the
  workloads' init-data digests), attestation policy, reference values and resources of
  `coco:trustee` are set through the KBS admin API (components/kbs_admin_resources.py),
  signed with the admin key named by `external.adminKeyFrom` (a secret config key).

Kept apart from stack_settings.py so the rules of where the Trustee lives sit in one small
module; the rules that span other keys are components/checks/topology.py.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from components.config_types import KubernetesTarget, Model, SecretKeyRef

CO_LOCATED_WAIVER: Literal["co-located-trustee"] = "co-located-trustee"

_STACK_REF = re.compile(r"\A([A-Za-z0-9_.-]+/){0,2}[A-Za-z0-9_.-]+\Z")


def _check_stack(v: str) -> str:
    if not _STACK_REF.match(v):
        raise ValueError(f"{v!r} is not a stack name: use <org>/<project>/<stack> or <stack>")
    return v


class TrusteeClusterTarget(Model):
    """The trusted cluster the Trustee goes to (same keys as `coco:kubernetes`)."""

    render_dir: str | None = Field(
        default=None, description="Render the Trustee's manifests into this folder instead."
    )
    kubeconfig: str | None = Field(
        default=None, description="Path to the trusted cluster's kubeconfig."
    )
    context: str | None = None

    @model_validator(mode="after")
    def _one_target(self) -> TrusteeClusterTarget:
        if self.render_dir and (self.kubeconfig or self.context):
            raise ValueError("renderDir and kubeconfig/context are exclusive")
        if not (self.render_dir or self.kubeconfig or self.context):
            raise ValueError(
                "name the trusted cluster: kubeconfig (and context), or renderDir; the ambient "
                "KUBECONFIG is the confidential cluster's"
            )
        return self

    def target(self) -> KubernetesTarget:
        return KubernetesTarget(
            render_dir=self.render_dir, kubeconfig=self.kubeconfig, context=self.context
        )


class ExternalTrustee(Model):
    """An external Trustee's KBS: where guests and the admin client reach it, the certificate
    (or CA) both check it against, and how coco authenticates to its admin API (trustee
    v0.21.0 `[admin] authorization_mode = "AuthenticatedAuthorization"`, `bearer_jwt`)."""

    url: str = Field(description="The KBS root URL guests and coco reach, e.g. https://kbs:8080.")
    certificate_pem: str = Field(
        description="The KBS's certificate or its CA (PEM): pinned in init-data, and trusted by "
        "coco's admin client."
    )
    admin_key_from: SecretKeyRef = Field(
        description="The secret config key holding the admin private key (PEM: EC P-256, RSA "
        "or Ed25519) whose public key the KBS lists in `identity_providers`."
    )
    admin_role: str = Field(
        default="kbs-admin",
        description="The JWT `role` claim; the KBS's `regex_acl` must allow it on "
        "/kbs/v0/resource-policy, attestation-policy, reference-value(/.*) and resource/.+",
    )
    admin_issuer: str | None = Field(
        default=None, description="The JWT `iss` claim, when the identity provider checks one."
    )
    admin_audience: str | None = Field(
        default=None, description="The JWT `aud` claim, when the identity provider checks one."
    )

    @field_validator("url")
    @classmethod
    def _https(cls, v: str) -> str:
        from urllib.parse import urlsplit

        parts = urlsplit(v)
        if parts.scheme != "https" or not parts.hostname:
            raise ValueError(
                f"{v!r}: the KBS URL must be https://<host>[:port] (guests and the admin "
                "client check its certificate)"
            )
        if parts.path.strip("/") or parts.query or parts.fragment:
            raise ValueError(f"{v!r}: give the KBS root URL, without a path")
        return v.rstrip("/")

    @field_validator("certificate_pem")
    @classmethod
    def _certificate(cls, v: str) -> str:
        from cryptography import x509

        try:
            x509.load_pem_x509_certificates(v.encode())
        except ValueError:
            raise ValueError(
                "not a PEM certificate: give the KBS's certificate or the CA that signed it"
            ) from None
        return v

    @field_validator("admin_role")
    @classmethod
    def _role(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("the KBS requires a non-empty `role` claim")
        return v


class TopologySettings(Model):
    """Where the Trustee runs (docs/topologies.md)."""

    kind: Literal["co-located", "trusted-zone", "external"] = Field(
        default="co-located",
        description="co-located: Trustee on the confidential cluster (dev/test); trusted-zone: "
        "Trustee on its own, trusted cluster; external: a Trustee coco did not deploy, "
        "managed through its KBS admin API.",
    )
    external: ExternalTrustee | None = Field(
        default=None, description="external: the KBS and how coco authenticates to it."
    )
    trustee_cluster: TrusteeClusterTarget | None = Field(
        default=None,
        description="trusted-zone, one stack: the trusted cluster (a second Kubernetes provider).",
    )
    role: Literal["trustee", "confidential"] | None = Field(
        default=None,
        description="trusted-zone, separate stacks: this stack is the Trustee (on coco:kubernetes) "
        "or a confidential cluster served by it.",
    )
    trustee_stack: str | None = Field(
        default=None, description="role confidential: the Trustee stack to read the KBS from."
    )
    confidential_stacks: list[str] = Field(
        default_factory=list,
        description="role trustee: the confidential-cluster stacks whose workloads it serves.",
    )

    @field_validator("trustee_stack")
    @classmethod
    def _stack_name(cls, v: str | None) -> str | None:
        return None if v is None else _check_stack(v)

    @field_validator("confidential_stacks")
    @classmethod
    def _stack_names(cls, v: list[str]) -> list[str]:
        for name in v:
            _check_stack(name)
        if len(set(v)) != len(v):
            raise ValueError("a confidential stack is listed twice")
        return v

    @model_validator(mode="after")
    def _shape(self) -> TopologySettings:
        if self.kind == "external":
            if self.external is None:
                raise ValueError(
                    "kind external needs `external`: url, certificatePem and adminKeyFrom of "
                    "the KBS (docs/topologies.md)"
                )
            if self.trustee_cluster or self.role or self.trustee_stack or self.confidential_stacks:
                raise ValueError(
                    "an external Trustee takes no trusteeCluster, role, trusteeStack or "
                    "confidentialStacks: coco deploys no Trustee"
                )
            return self
        if self.external is not None:
            raise ValueError("`external` is for kind: external")
        if self.kind == "co-located":
            if self.trustee_cluster or self.role or self.trustee_stack or self.confidential_stacks:
                raise ValueError(
                    "co-located takes no trusteeCluster, role, trusteeStack or "
                    "confidentialStacks: set kind: trusted-zone to use them"
                )
            return self
        if self.role is None:
            if self.trustee_cluster is None:
                raise ValueError(
                    "trusted-zone needs the trusted cluster: trusteeCluster (one stack, two "
                    "providers), or role: trustee / confidential (separate stacks)"
                )
            if self.trustee_stack or self.confidential_stacks:
                raise ValueError("trusteeStack and confidentialStacks need a role")
            return self
        if self.trustee_cluster is not None:
            raise ValueError(
                "trusteeCluster is for the one-stack form; with a role, the Trustee stack's own "
                "coco:kubernetes is the trusted cluster"
            )
        if self.role == "trustee":
            if not self.confidential_stacks:
                raise ValueError(
                    "role trustee serves confidential-cluster stacks: list them in "
                    "confidentialStacks, e.g. [organization/coco/tdx-a]"
                )
            if self.trustee_stack:
                raise ValueError("trusteeStack is for role confidential")
        else:
            if not self.trustee_stack:
                raise ValueError(
                    "role confidential reads the KBS from a Trustee stack: set trusteeStack, "
                    "e.g. organization/coco/trust"
                )
            if self.confidential_stacks:
                raise ValueError("confidentialStacks is for role trustee")
        return self

    @property
    def co_located(self) -> bool:
        return self.kind == "co-located"

    @property
    def remote_trustee(self) -> bool:
        """This stack deploys no Trustee: a confidential-cluster stack of the split form, or
        an external Trustee."""
        return self.role == "confidential" or self.kind == "external"
