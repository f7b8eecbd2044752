"""What coco manages on an external Trustee, as Pulumi resources over the KBS admin API.

Why: so `pulumi up` sets, updates and removes the resource policy, the attestation policy, the
reference values and the resources of a KBS coco did not deploy, and `pulumi refresh` shows
drift wherever the v0.21.0 admin API can read a value back. Where it cannot, `read` says only
what it can observe and keeps the last state it set (docs/topologies.md, "External Trustee"):

| kind               | create/update           | delete                 | read (refresh)   |
|--------------------|-------------------------|------------------------|------------------|
| resource policy    | POST resource-policy    | POST a deny-all policy | id only, no text |
| attestation policy | POST attestation-policy | none in the API        | none in the API  |
| reference value    | POST reference-value    | POST an empty list     | GET: the value   |
| resource           | POST resource/<path>    | DELETE resource/<path> | none (TEE only)  |

Every call carries a fresh admin JWT signed with the admin key (a Pulumi secret; kept secret
in the state, `additional_secret_outputs`). Delete uses the key in the state: after rotating
the admin key, `up` once (the state takes the new key) before removing resources.
"""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi.dynamic
from pulumi.dynamic import CreateResult, DiffResult, ReadResult, ResourceProvider, UpdateResult

from components.kbs_admin import (
    DENY_ALL_RESOURCE_POLICY,
    RESOURCE_POLICY_ID,
    AdminIdentity,
    KbsAdmin,
)


def admin_of(props: dict[str, Any]) -> KbsAdmin:
    """The admin API client the resource's own inputs (or state) describe."""
    kbs, admin = props["kbs"], props["admin"]
    return KbsAdmin(
        url=kbs["url"],
        certificate_pem=kbs["certificate_pem"],
        identity=AdminIdentity(
            private_key_pem=admin["private_key_pem"],
            role=admin["role"],
            issuer=admin.get("issuer") or None,
            audience=admin.get("audience") or None,
        ),
    )


class _AdminProvider(ResourceProvider):
    """Shared diff: which inputs name the object (a change replaces it), which only change its
    content (updated in place). The KBS URL names the object: another KBS is another object."""

    identity_keys: tuple[str, ...] = ()

    def object_id(self, props: dict[str, Any]) -> str:
        raise NotImplementedError

    def put(self, props: dict[str, Any]) -> None:
        raise NotImplementedError

    def create(self, props: dict[str, Any]) -> CreateResult:
        self.put(props)
        return CreateResult(id_=self.object_id(props), outs=props)

    def update(self, _id: str, _olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        self.put(news)
        return UpdateResult(outs=news)

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        keys = sorted(set(olds) | set(news))
        changed = [k for k in keys if not k.startswith("__") and olds.get(k) != news.get(k)]
        named_by = {"kbs", *self.identity_keys}
        old_url = (olds.get("kbs") or {}).get("url")
        new_url = (news.get("kbs") or {}).get("url")
        replaces = [k for k in changed if k in named_by and (k != "kbs" or old_url != new_url)]
        return DiffResult(
            changes=bool(changed), replaces=replaces, delete_before_replace=bool(replaces)
        )


class ResourcePolicyProvider(_AdminProvider):
    """The KBS resource policy (one per KBS: `resource-policy`)."""

    def object_id(self, props: dict[str, Any]) -> str:
        return RESOURCE_POLICY_ID

    def put(self, props: dict[str, Any]) -> None:
        admin_of(props).set_resource_policy(props["policy"])

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        admin_of(props).set_resource_policy(DENY_ALL_RESOURCE_POLICY)

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        """The API lists policy ids, not their text: a policy removed from the KBS shows as
        gone; a policy rewritten by someone else cannot be seen (docs/topologies.md)."""
        if RESOURCE_POLICY_ID not in admin_of(props).resource_policy_ids():
            return ReadResult(id_=None, outs={})
        return ReadResult(id_=id_, outs=props)


class AttestationPolicyProvider(_AdminProvider):
    """One attestation policy, by id (e.g. `default_cpu`)."""

    identity_keys = ("policy_id",)

    def object_id(self, props: dict[str, Any]) -> str:
        return str(props["policy_id"])

    def put(self, props: dict[str, Any]) -> None:
        admin_of(props).set_attestation_policy(props["policy_id"], props["policy"])

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        """v0.21.0 has no call to remove or reset an attestation policy: it stays on the KBS.
        What guards the secrets is the resource policy, reset to deny-all on delete."""

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        """Nothing to read: the API has no GET for attestation policies. The state is what
        coco last set; drift is invisible (docs/topologies.md)."""
        return ReadResult(id_=id_, outs=props)


class ReferenceValueProvider(_AdminProvider):
    """One RVPS reference value (the `sample` provenance: name -> value)."""

    identity_keys = ("name",)

    def object_id(self, props: dict[str, Any]) -> str:
        return str(props["name"])

    def put(self, props: dict[str, Any]) -> None:
        admin_of(props).set_reference_value(props["name"], props["value"])

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        """The API has no delete: an empty list of accepted values matches no measurement."""
        admin_of(props).set_reference_value(props["name"], [])

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        """The stored value, read back: a changed value shows as drift, an absent or emptied
        one as gone."""
        value = admin_of(props).reference_value(props["name"])
        if value is None or value == []:
            return ReadResult(id_=None, outs={})
        return ReadResult(id_=id_, outs={**props, "value": value})


class KbsResourceProvider(_AdminProvider):
    """One KBS resource (`<repository>/<type>/<tag>`), its value a secret."""

    identity_keys = ("path",)

    def object_id(self, props: dict[str, Any]) -> str:
        return str(props["path"])

    def put(self, props: dict[str, Any]) -> None:
        admin_of(props).set_resource(props["path"], str(props["value"]).encode())

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        admin_of(props).delete_resource(props["path"])

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        """Nothing to read with admin rights: a resource is served only to an attested guest
        (a GET needs an attestation token). The state is what coco last set."""
        return ReadResult(id_=id_, outs=props)


class _AdminResource(pulumi.dynamic.Resource):
    def __init__(
        self,
        provider: _AdminProvider,
        name: str,
        kbs: pulumi.Input[dict[str, str]],
        admin: pulumi.Input[dict[str, str]],
        props: dict[str, Any],
        opts: pulumi.ResourceOptions | None,
        secret_outputs: tuple[str, ...] = (),
    ) -> None:
        secret = pulumi.ResourceOptions(additional_secret_outputs=["admin", *secret_outputs])
        super().__init__(
            provider,
            name,
            {"kbs": kbs, "admin": pulumi.Output.secret(admin), **props},
            pulumi.ResourceOptions.merge(opts, secret),
        )


class KbsResourcePolicy(_AdminResource):
    """The resource policy of an external KBS."""

    def __init__(
        self,
        name: str,
        kbs: pulumi.Input[dict[str, str]],
        admin: pulumi.Input[dict[str, str]],
        policy: pulumi.Input[str],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__(ResourcePolicyProvider(), name, kbs, admin, {"policy": policy}, opts)


class KbsAttestationPolicy(_AdminResource):
    """One attestation policy of an external KBS."""

    def __init__(
        self,
        name: str,
        kbs: pulumi.Input[dict[str, str]],
        admin: pulumi.Input[dict[str, str]],
        policy_id: str,
        policy: pulumi.Input[str],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        props = {"policy_id": policy_id, "policy": policy}
        super().__init__(AttestationPolicyProvider(), name, kbs, admin, props, opts)


class KbsReferenceValue(_AdminResource):
    """One reference value of an external KBS's RVPS."""

    def __init__(
        self,
        name: str,
        kbs: pulumi.Input[dict[str, str]],
        admin: pulumi.Input[dict[str, str]],
        rv_name: str,
        value: Any,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        props = {"name": rv_name, "value": value}
        super().__init__(ReferenceValueProvider(), name, kbs, admin, props, opts)


class KbsSecretResource(_AdminResource):
    """One resource an external KBS serves to attested guests."""

    def __init__(
        self,
        name: str,
        kbs: pulumi.Input[dict[str, str]],
        admin: pulumi.Input[dict[str, str]],
        path: str,
        value: pulumi.Input[str],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        props = {"path": path, "value": pulumi.Output.secret(value)}
        super().__init__(KbsResourceProvider(), name, kbs, admin, props, opts, ("value",))
