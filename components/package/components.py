"""The package's components: coco's own, constructed from typed `args`.

Each class subclasses the program's component, so a package user gets exactly the resources,
checks and `coco:index:` token the program creates (components/tokens.py); only the entry
differs: one `args` TypedDict (components/package/args.py), validated into the program's
pydantic settings before any resource exists. The class annotations repeat the base's
outputs as objects (the base modules use postponed annotations, which the SDK's analyzer
cannot read); they are the package's output properties.

No `from __future__ import annotations` here: see components/package/__init__.py.
"""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any

import pulumi
from pydantic import ValidationError

from components import tee
from components import trustee as base_trustee
from components import workload as base_workload
from components.package.args import (
    ConfidentialWorkloadArgs,
    Environment,
    KbsResourceArgs,
    TrusteeArgs,
    TrusteeTlsArgs,
)
from components.settings import (
    KbsResource,
    Problem,
    TrusteeSettings,
    WorkloadSettings,
    check_resource_path,
)
from policies.resource import ResourceGrant

# Arguments that are not settings fields: the component takes them itself.
_WORKLOAD_CONTEXT = ("environment", "kbs_url", "kbs_certificate_pem")
_TRUSTEE_CONTEXT = (
    "environment",
    "kbs_certificate_pem",
    "kbs_private_key_pem",
    "resources",
    "tee_platforms",
)


class PackageArgsError(ValueError):
    """Invalid component arguments, each problem addressed as `args.<property>` (the form of
    `SettingsError`, whose problems name `coco:` config keys)."""

    def __init__(self, problems: Iterable[Problem], where: str) -> None:
        self.problems = list(problems)
        n = len(self.problems)
        lines = "\n".join(str(p) for p in self.problems)
        super().__init__(
            f"invalid arguments of {where} ({n} problem{'s' if n != 1 else ''}):\n{lines}"
        )


def _plain(value: Any) -> Any:
    """Enum members (the package schema's enums) as their values, recursively."""
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _arg_path(loc: Iterable[int | str], prefix: str = "args") -> str:
    out = prefix
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


def _problems(err: ValidationError, prefix: str = "args") -> list[Problem]:
    """pydantic's errors as Problems keyed by argument path (camelCase, as in the schema)."""
    problems = []
    for e in err.errors(include_url=False):
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            msg = "unknown argument: check its spelling against the package schema"
        elif e["type"] == "missing":
            msg = "required argument is missing"
        problems.append(Problem(_arg_path(e["loc"], prefix), msg))
    return problems


def _environment(value: Any, where: str) -> str:
    allowed = [e.value for e in Environment]
    plain = _plain(value)
    if plain not in allowed:
        raise PackageArgsError(
            [Problem("args.environment", f"{plain!r} is not one of {allowed}")], where
        )
    return str(plain)


def workload_settings(args: ConfidentialWorkloadArgs, where: str) -> WorkloadSettings:
    """The `coco:workloads` entry the arguments describe, validated by the program's model."""
    data = {k: _plain(v) for k, v in args.items() if k not in _WORKLOAD_CONTEXT}
    try:
        settings = WorkloadSettings.model_validate(data)
    except ValidationError as err:
        raise PackageArgsError(_problems(err), where) from None
    runtime_class = settings.runtime_class or ""
    if runtime_class not in tee.CATALOGUE:
        known = ", ".join(sorted(tee.CATALOGUE))
        why = f"unknown runtime class {runtime_class!r}; known: {known}"
        raise PackageArgsError([Problem("args.runtimeClass", why)], where)
    return settings


class ConfidentialWorkload(base_workload.ConfidentialWorkload):
    """A confidential Pod, Deployment, StatefulSet, Job or CronJob, its init-data (with the
    agent policy the TEE measures), and the init-data digest the KBS must bind its secrets
    to."""

    initdata: pulumi.Output[str]
    """The init-data TOML document exactly as the guest measures it."""
    initdata_digest: pulumi.Output[str]
    """Hex of the init-data digest fitted to the TEE field: the claim the attestation token
    carries, to bind KBS resources to (a Trustee resource's `initdataDigests`)."""
    agent_policy: str
    """The rendered Kata agent policy (Rego)."""
    runtime_class: str
    """The runtime class the pods run with."""
    algorithm: str
    """The init-data digest algorithm."""

    def __init__(
        self,
        name: str,
        args: ConfidentialWorkloadArgs,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        where = f"coco:index:ConfidentialWorkload {name!r}"
        environment = _environment(args.get("environment"), where)
        settings = workload_settings(args, where)
        super().__init__(
            name,
            settings,
            settings.runtime_class or "",
            environment,
            kbs_url=args["kbs_url"],
            kbs_cert_pem=args["kbs_certificate_pem"],
            opts=opts,
        )


def _trustee_data(args: Mapping[str, Any], keys: Iterable[str]) -> dict[str, Any]:
    return {k: _plain(args[k]) for k in keys if k in args}


class TrusteeTls(base_trustee.TrusteeTls):
    """The KBS HTTPS identity: its URL, a self-signed certificate (public: every workload's
    init-data pins it) and private key (secret), renewed before it expires."""

    url: str
    """The KBS URL guests attest to."""
    certificate_pem: pulumi.Output[str]
    """The certificate guests pin."""
    private_key_pem: pulumi.Output[str]
    """The HTTPS private key (a secret)."""
    dns_names: list[str]
    """DNS names in the certificate."""
    ip_addresses: list[str]
    """IP addresses in the certificate."""

    def __init__(
        self,
        name: str,
        args: TrusteeTlsArgs,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        where = f"coco:index:TrusteeTls {name!r}"
        try:
            settings = TrusteeSettings.model_validate(
                _trustee_data(args, ("namespace", "port", "url", "tls"))
            )
        except ValidationError as err:
            raise PackageArgsError(_problems(err), where) from None
        super().__init__(name, settings, opts=opts)


@dataclass
class _Identity:
    """The KBS identity a TrusteeTls issued, passed in (components.trustee.KbsIdentity)."""

    url: str
    certificate_pem: pulumi.Output[str]
    private_key_pem: pulumi.Output[str]


def _resource(i: int, r: KbsResourceArgs, where: str) -> tuple[KbsResource, ResourceGrant]:
    """The declared resource and its grant (digests filled in later), validated.

    The package passes each value in, not a config key: the `KbsResource` is built without
    validation (`model_construct`) after every field it holds has been checked here, with
    `valueFrom` naming the argument the value came from.
    """
    loc = f"args.resources[{i}]"
    problems: list[Problem] = []
    path = str(r.get("path", ""))
    try:
        check_resource_path(path)
    except ValueError as err:
        problems.append(Problem(f"{loc}.path", str(err)))
    try:
        grant = ResourceGrant.model_validate(
            {
                "path": path,
                "initdata_digests": [],
                **_trustee_data(r, ("platforms", "min_trust", "require_gpu")),
            }
        )
    except ValidationError as err:
        problems += _problems(err, loc)
    if problems:
        raise PackageArgsError(problems, where)
    declared = KbsResource.model_construct(
        path=path,
        value_from=f"{loc}.value",
        readers=[],
        min_trust=grant.min_trust,
        require_gpu=grant.require_gpu,
        allow_unbound=bool(r.get("allow_unbound", False)),
    )
    return declared, grant


class Trustee(base_trustee.Trustee):
    """Trustee (KBS with built-in attestation service and RVPS) in its own namespace: it
    releases each secret only to the init-data digests given for it."""

    url: str
    """The KBS URL."""
    certificate_pem: pulumi.Output[str]
    """The KBS certificate."""
    resource_policy: pulumi.Output[str]
    """The KBS resource policy (Rego) binding each secret to its readers' digests."""
    namespace: str
    """The Trustee's namespace."""
    config_hash: pulumi.Output[str]
    """Hash of the public configuration (rolls the KBS when it changes)."""
    kbs_config: str
    """The KBS configuration (TOML)."""
    token_signer_certificate_pem: pulumi.Output[str]
    """The attestation-token signer's certificate."""
    token_signer_private_key_pem: pulumi.Output[str]
    """The attestation-token signing key (a secret)."""
    required_secrets: dict[str, list[str]]
    """Kubernetes Secret name -> keys the KBS mounts."""

    def __init__(
        self,
        name: str,
        args: TrusteeArgs,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        where = f"coco:index:Trustee {name!r}"
        environment = _environment(args.get("environment"), where)
        declared: list[KbsResource] = []
        grants: list[ResourceGrant] = []
        for i, r in enumerate(args.get("resources") or []):
            resource, grant = _resource(i, r, where)
            declared.append(resource)
            grants.append(grant)
        data = {k: v for k, v in _plain(dict(args)).items() if k not in _TRUSTEE_CONTEXT}
        try:
            settings = TrusteeSettings.model_validate({"secrets_delivery": "create", **data})
        except ValidationError as err:
            raise PackageArgsError(_problems(err), where) from None
        settings = settings.model_copy(update={"resources": declared})
        resources = list(args.get("resources") or [])
        digests = pulumi.Output.all(
            *[pulumi.Output.from_input(r["initdata_digests"]) for r in resources]
        )
        bound = digests.apply(
            lambda ds: [
                g.model_copy(update={"initdata_digests": sorted(set(d))})
                for g, d in zip(grants, ds, strict=True)
            ]
        )
        identity = _Identity(
            url=settings.service_url(),
            certificate_pem=pulumi.Output.from_input(args["kbs_certificate_pem"]),
            private_key_pem=pulumi.Output.secret(args["kbs_private_key_pem"]),
        )
        super().__init__(
            name,
            settings,
            environment,
            tls=identity,
            grants=bound,
            resource_values={
                r["path"]: pulumi.Output.secret(r["value"]) for r in resources if "value" in r
            },
            secrets_delivery=settings.secrets_delivery or "create",
            tee_platforms=[str(p) for p in _plain(args.get("tee_platforms") or [])],
            opts=opts,
        )


COMPONENTS: list[type[pulumi.ComponentResource]] = [ConfidentialWorkload, Trustee, TrusteeTls]
"""What the package serves."""

SECRET_OUTPUTS: dict[str, tuple[str, ...]] = {
    "TrusteeTls": ("privateKeyPem",),
    "Trustee": ("tokenSignerPrivateKeyPem",),
}
"""Output properties that are always Pulumi secrets (the schema marks them `secret`)."""

SECRET_INPUTS: dict[str, tuple[str, ...]] = {
    "Trustee": ("kbsPrivateKeyPem",),
    "KbsResourceArgs": ("value",),
}
"""Input properties (of components or types) the components keep secret."""
