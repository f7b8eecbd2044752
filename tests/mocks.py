"""Pulumi mocks that record every registered resource, for unit tests of components.

`pulumi.runtime.set_mocks` runs the real program without an engine: each resource
registration reaches `RecordingMocks.new_resource`, which keeps the type, name and inputs and
answers with a plausible state. Inputs arrive exactly as the engine would see them, so a value
that came from a secret Output is still wrapped as a secret here: `Recorded.secret_paths` tells
which properties the engine would encrypt, and `Recorded.inputs` is the plain view for
assertions on content.

Outputs are deterministic (fake PEMs are derived from the resource name), so two runs of the
same program register byte-identical inputs, which is what the determinism tests compare.
"""

from __future__ import annotations

import base64
import hashlib
import json
import textwrap
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import pulumi
from pulumi.runtime import rpc

# The sealed-secret signer's real, name-derived P-256 key (components/stack.py signs with it
# while the program runs); one definition for the tests and the benchmarks.
from benchmarks.mocks import SEALED_SECRET_SIGNER, p256_from_seed

DYNAMIC = "pulumi-python:dynamic:Resource"
"""components.tls.SelfSignedTls registers as a Python dynamic resource."""


def is_secret(value: Any) -> bool:
    """True when `value` is a property the engine received as a secret."""
    return rpc.is_rpc_secret(value)


def unwrap(value: Any) -> Any:
    """`value` with every secret wrapper removed, recursively (the plain content)."""
    value = rpc.unwrap_rpc_secret(value)
    if isinstance(value, dict):
        return {k: unwrap(v) for k, v in value.items()}
    if isinstance(value, list):
        return [unwrap(v) for v in value]
    return value


def _secret_paths(value: Any, prefix: str = "") -> Iterator[str]:
    if is_secret(value):
        yield prefix or "."
        return
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _secret_paths(v, f"{prefix}.{k}" if prefix else k)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _secret_paths(v, f"{prefix}[{i}]")


def fake_pem(label: str, seed: str) -> str:
    """A PEM-shaped block whose body is derived from `seed` (stable across runs)."""
    body = base64.b64encode(hashlib.sha512(seed.encode()).digest() * 2).decode()
    lines = "\n".join(textwrap.wrap(body, 64))
    return f"-----BEGIN {label}-----\n{lines}\n-----END {label}-----\n"


@dataclass
class Recorded:
    """One resource registration as the engine saw it."""

    type: str
    name: str
    raw_inputs: dict[str, Any]
    """Inputs with secret wrappers left in place."""
    secret_paths: frozenset[str] = field(default_factory=frozenset)
    """Dotted property paths that arrived as secrets (e.g. `stringData`)."""

    @property
    def inputs(self) -> dict[str, Any]:
        """The plain inputs (secret wrappers removed)."""
        result: dict[str, Any] = unwrap(self.raw_inputs)
        return result

    @property
    def metadata(self) -> dict[str, Any]:
        meta: dict[str, Any] = self.inputs.get("metadata") or {}
        return meta

    @property
    def kind(self) -> str:
        """`Deployment` from `kubernetes:apps/v1:Deployment`."""
        return self.type.rsplit(":", 1)[-1]


class RecordingMocks(pulumi.runtime.Mocks):
    """Records registrations; echoes inputs as state, and invents key/certificate outputs."""

    def __init__(self) -> None:
        self.resources: list[Recorded] = []
        self.helm_templates: list[dict[str, Any]] = []
        """The options of each `kubernetes:helm:template` invoke (a rendered `helm.v3.Chart`),
        answered with no objects: the Helm tier renders them with real Helm."""

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str | None, dict]:  # type: ignore[type-arg]
        raw = dict(args.inputs)
        self.resources.append(Recorded(args.typ, args.name, raw, frozenset(_secret_paths(raw))))
        state = dict(raw)
        if args.typ == DYNAMIC and "key_algorithm" in raw:
            state["private_key_pem"] = rpc.wrap_rpc_secret(fake_pem("PRIVATE KEY", args.name))
            state["public_key_pem"] = fake_pem("PUBLIC KEY", "pub:" + args.name)
            state["cert_pem"] = fake_pem("CERTIFICATE", "cert:" + args.name)
            if args.name == SEALED_SECRET_SIGNER:
                private, public = p256_from_seed(args.name)
                state["private_key_pem"] = rpc.wrap_rpc_secret(private)
                state["public_key_pem"] = public
        return f"{args.name}-id", state

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict, list[tuple[str, str]] | None]:  # type: ignore[type-arg]
        if args.token == "kubernetes:helm:template":
            self.helm_templates.append(json.loads(args.args["jsonOpts"]))
            return {"result": []}, []
        return dict(args.args), []

    # ------------------------------------------------------------------ queries for tests

    def of_type(self, type_suffix: str) -> list[Recorded]:
        """Resources whose type ends with `type_suffix` (`"core/v1:Secret"`, `"Secret"`)."""
        return [r for r in self.resources if r.type.endswith(type_suffix)]

    def named(self, name: str) -> Recorded:
        """The one resource registered under the Pulumi name `name`."""
        found = [r for r in self.resources if r.name == name]
        if len(found) != 1:
            raise KeyError(f"{len(found)} resources named {name!r}")
        return found[0]

    def kubernetes(self) -> list[Recorded]:
        return [r for r in self.resources if r.type.startswith("kubernetes:")]


class DecodingMocks(RecordingMocks):
    """Also answers the Kubernetes provider's `kubernetes:yaml:decode` invoke (a YAML stream
    split into objects), which yaml.ConfigGroup/ConfigFile call before their transformations."""

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict, list[tuple[str, str]] | None]:  # type: ignore[type-arg]
        if args.token == "kubernetes:yaml:decode":
            import yaml

            return {"result": [d for d in yaml.safe_load_all(args.args["text"]) if d]}, []
        return super().call(args)


class CloudMocks(RecordingMocks):
    """The recorder, plus the computed outputs the cloud resources would return."""

    def __init__(self, gcp_private_key: str = "mock-gcp-private-key") -> None:
        super().__init__()
        self.gcp_private_key = gcp_private_key

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str | None, dict]:  # type: ignore[type-arg]
        rid, state = super().new_resource(args)
        t = args.typ
        if t == "aws:eks/cluster:Cluster":
            state["identities"] = [
                {"oidcs": [{"issuer": "https://oidc.eks.us-east-2.amazonaws.com/id/NEW"}]}
            ]
            state["vpcConfig"] = {**state.get("vpcConfig", {}), "clusterSecurityGroupId": "sg-new"}
            state["endpoint"] = "https://NEW.gr7.us-east-2.eks.amazonaws.com"
            state["certificateAuthority"] = {"data": "Q0EK"}
        elif t in ("aws:iam/role:Role", "aws:iam/policy:Policy"):
            state["arn"] = f"arn:aws:iam::123456789012:{t.rsplit(':', 1)[1].lower()}/{args.name}"
            state["name"] = args.name
        elif t == "aws:iam/openIdConnectProvider:OpenIdConnectProvider":
            host = str(state["url"]).removeprefix("https://")
            state["arn"] = f"arn:aws:iam::123456789012:oidc-provider/{host}"
        elif t == "azure-native:managedidentity:UserAssignedIdentity":
            state.update(
                clientId=f"client-{args.name}", principalId=f"principal-{args.name}", name=args.name
            )
        elif t == "azure-native:containerservice:ManagedCluster":
            state["oidcIssuerProfile"] = {"enabled": True, "issuerURL": "https://issuer/new/"}
            state["name"] = state.get("resourceName", args.name)
            # Azure answers the identity list as a map of id -> identity.
            ids = state.get("identity", {}).get("userAssignedIdentities", [])
            state["identity"] = {
                **state["identity"],
                "userAssignedIdentities": {key: {} for key in ids},
            }
        elif t == "azure-native:network:VirtualNetwork":
            state["name"] = state["virtualNetworkName"]
        elif t == "gcp:container/cluster:Cluster":
            state["endpoint"] = "34.1.2.3"
            state["masterAuth"] = {"clusterCaCertificate": "Q0EK"}
        elif t == "gcp:serviceaccount/account:Account":
            email = f"{state['accountId']}@coco-project-1.iam.gserviceaccount.com"
            state.update(
                email=email,
                member=f"serviceAccount:{email}",
                name=f"projects/coco-project-1/serviceAccounts/{email}",
            )
        elif t == "gcp:serviceaccount/key:Key":
            key = json.dumps({"type": "service_account", "private_key": self.gcp_private_key})
            state["privateKey"] = rpc.wrap_rpc_secret(base64.b64encode(key.encode()).decode())
        return rid, state

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict, list[tuple[str, str]] | None]:  # type: ignore[type-arg]
        if args.token == "azure-native:containerservice:listManagedClusterUserCredentials":
            config = base64.b64encode(b"apiVersion: v1\nkind: Config\n").decode()
            return {"kubeconfigs": [{"name": "clusterUser", "value": config}]}, []
        return super().call(args)


def resolve(build: Callable[[], Mapping[str, Any]]) -> tuple[dict[str, Any], dict[str, bool]]:
    """Run `build` as a Pulumi program under the mocks; its outputs' values and secretness."""
    values: dict[str, Any] = {}
    secret: dict[str, bool] = {}

    @pulumi.runtime.test  # type: ignore[untyped-decorator]
    def program() -> Any:
        outs = build()

        async def collect() -> None:
            for key, out in outs.items():
                output = pulumi.Output.from_input(out)
                values[key] = await output.future()
                secret[key] = await output.is_secret()

        return collect()

    program()
    return values, secret


def config_values(config: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Stack config as the engine hands it to a program: strings as written, the rest JSON."""
    return {f"{prefix}{k}": v if isinstance(v, str) else json.dumps(v) for k, v in config.items()}


def run_program(
    mocks: pulumi.runtime.Mocks,
    stack: str,
    values: Mapping[str, str],
    secret_keys: Iterable[str] = (),
) -> None:
    """Run the coco program (`build(load())`, as `__main__.py` does) under `mocks`, with
    `values` as the stack config and `secret_keys` among them as secrets. The config is
    cleared afterwards, failure or not, so no test sees another's."""
    pulumi.runtime.set_mocks(mocks, project="coco", stack=stack, preview=False)
    pulumi.runtime.set_all_config(dict(values), secret_keys=list(secret_keys))

    @pulumi.runtime.test  # type: ignore[untyped-decorator]
    def program() -> None:
        from components.settings import load
        from components.stack import build

        build(load())

    try:
        program()
    finally:
        pulumi.runtime.set_all_config({})
