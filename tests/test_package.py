"""The component package: the schema the SDK's own analyzer infers, and args validation.

`Analyzer` and `generate_schema` are the code `component_provider_host` runs
(`pulumi/provider/experimental/{analyzer,schema}.py`); asserting on their output is asserting
on what `pulumi package get-schema` and every generated SDK see.
"""

from __future__ import annotations

import json
from typing import Any

import pulumi
import pytest
from mocks import RecordingMocks, resolve
from pulumi.provider.experimental.analyzer import Analyzer
from pulumi.provider.experimental.schema import generate_schema
from pydantic import BaseModel

from components import tokens
from components.package import components as package
from components.package.args import (
    ConfidentialWorkloadArgs,
    ContainerArgs,
    ContainerResourcesArgs,
    InitDataArgs,
    TlsArgs,
    TrusteeArgs,
)
from components.package.provider import schema
from components.settings import (
    ContainerResources,
    ContainerSettings,
    InitDataSettings,
    TlsSettings,
    TrusteeSettings,
    WorkloadSettings,
)
from components.workload import ConfidentialWorkload

APP = "registry.example.com/app@sha256:" + "a" * 64
KBS_CERT = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"


def analyzed() -> dict[str, Any]:
    result = Analyzer("coco").analyze(package.COMPONENTS)
    spec = generate_schema(
        "coco",
        "0.1.0",
        None,
        result["component_definitions"],
        result["type_definitions"],
        sorted(result["dependencies"], key=lambda d: d.name),
    )
    return dict(spec.to_json())


def test_the_sdk_analyzer_infers_coco_index_components() -> None:
    spec = analyzed()
    assert spec["name"] == "coco"
    assert sorted(spec["resources"]) == [
        "coco:index:ConfidentialWorkload",
        "coco:index:Trustee",
        "coco:index:TrusteeTls",
    ]
    assert all(r["isComponent"] for r in spec["resources"].values())
    assert all(t.startswith("coco:index:") for t in spec["types"])
    # The program's components register the very tokens the package serves.
    for name in spec["resources"]:
        assert tokens.token(name.rsplit(":", 1)[1]) == name


def test_workload_inputs_are_typed_and_required_where_the_settings_require_them() -> None:
    wl = analyzed()["resources"]["coco:index:ConfidentialWorkload"]
    inputs = wl["inputProperties"]
    assert sorted(wl["requiredInputs"]) == [
        "environment",
        "kbsCertificatePem",
        "kbsUrl",
        "name",
        "runtimeClass",
    ]
    # Structure-shaping settings are plain; the KBS endpoint takes other resources' outputs.
    assert inputs["replicas"] == {**inputs["replicas"], "type": "integer", "plain": True}
    assert inputs["runtimeClass"]["type"] == "string" and inputs["runtimeClass"]["plain"]
    assert inputs["kbsUrl"]["type"] == "string" and "plain" not in inputs["kbsUrl"]
    assert "plain" not in inputs["kbsCertificatePem"]
    assert inputs["containers"]["type"] == "array"
    assert inputs["containers"]["items"]["$ref"] == "#/types/coco:index:ContainerArgs"
    assert inputs["kind"]["$ref"] == "#/types/coco:index:WorkloadKind"
    assert inputs["agentPolicy"]["additionalProperties"]["$ref"] == "pulumi.json#/Any"
    types = analyzed()["types"]
    container = types["coco:index:ContainerArgs"]
    assert sorted(container["required"]) == ["image", "name"]
    assert container["properties"]["runAsUser"]["type"] == "integer"
    assert container["properties"]["readOnlyRootFilesystem"]["type"] == "boolean"
    assert container["properties"]["env"]["additionalProperties"]["type"] == "string"
    assert [e["value"] for e in types["coco:index:WorkloadKind"]["enum"]] == [
        "Pod",
        "Deployment",
        "StatefulSet",
        "Job",
        "CronJob",
    ]
    assert [e["value"] for e in types["coco:index:Environment"]["enum"]] == [
        "dev",
        "staging",
        "production",
    ]
    outputs = wl["properties"]
    assert outputs["initdataDigest"]["type"] == "string"
    assert "initdataDigest" in wl["required"]


def test_trustee_resources_take_digests_as_inputs() -> None:
    spec = analyzed()
    trustee = spec["resources"]["coco:index:Trustee"]
    assert {"environment", "kbsCertificatePem", "kbsPrivateKeyPem", "teePlatforms"} <= set(
        trustee["requiredInputs"]
    )
    resource = spec["types"]["coco:index:KbsResourceArgs"]
    assert sorted(resource["required"]) == ["initdataDigests", "path", "platforms"]
    digests = resource["properties"]["initdataDigests"]
    assert digests["type"] == "array" and "plain" not in digests, "workload outputs flow in"
    assert set(trustee["properties"]) >= {"resourcePolicy", "tokenSignerPrivateKeyPem", "url"}


def test_the_served_schema_marks_secrets_secret() -> None:
    served = schema()
    assert served["version"] == "0.1.0"
    resources, types = served["resources"], served["types"]
    assert resources["coco:index:TrusteeTls"]["properties"]["privateKeyPem"]["secret"] is True
    assert resources["coco:index:Trustee"]["properties"]["tokenSignerPrivateKeyPem"]["secret"]
    assert resources["coco:index:Trustee"]["inputProperties"]["kbsPrivateKeyPem"]["secret"]
    assert types["coco:index:KbsResourceArgs"]["properties"]["value"]["secret"] is True
    # Nothing public is marked: the certificate is in every workload's init-data.
    assert "secret" not in resources["coco:index:TrusteeTls"]["properties"]["certificatePem"]
    marked = json.dumps(served).count('"secret": true')
    assert marked == 4
    # Without the marking step the analyzer's schema has none (what the provider adds).
    assert '"secret"' not in json.dumps(analyzed())


def workload_args(**extra: Any) -> dict[str, Any]:
    return {
        "name": "app",
        "namespace": "apps",
        "runtime_class": "kata-qemu-tdx",
        "containers": [{"name": "app", "image": APP, "command": ["/app"], "run_as_user": 1000}],
        "environment": "production",
        "kbs_url": "https://kbs.trustee.svc.cluster.local:8080",
        "kbs_certificate_pem": KBS_CERT,
        **extra,
    }


def test_package_workload_builds_what_the_program_builds(mocks: RecordingMocks) -> None:
    """Same settings through `args` and through the program: same objects, same digest."""
    args = workload_args()

    def build() -> dict[str, Any]:
        via_package = package.ConfidentialWorkload("pkg", args)  # type: ignore[arg-type]
        settings = WorkloadSettings.model_validate(
            {k: v for k, v in args.items() if not k.startswith(("kbs_", "environment"))}
        )
        direct = ConfidentialWorkload(
            "direct", settings, "kata-qemu-tdx", "production", args["kbs_url"], KBS_CERT
        )
        return {"pkg": via_package.initdata_digest, "direct": direct.initdata_digest}

    values, _ = resolve(build)
    assert values["pkg"] == values["direct"] and len(values["pkg"]) == 96  # sha384 on TDX
    assert [r.type for r in mocks.resources if r.name == "pkg" and r.type.startswith("coco")] == [
        "coco:index:ConfidentialWorkload"
    ]
    deployments = [r for r in mocks.of_type("apps/v1:Deployment")]
    assert len(deployments) == 2
    assert deployments[0].inputs["spec"] == deployments[1].inputs["spec"]


def test_bad_workload_args_name_the_argument() -> None:
    bad = workload_args(containers=[{"name": "App_1", "image": APP}], replicas=-1)
    with pytest.raises(package.PackageArgsError) as err:
        package.workload_settings(bad, "coco:index:ConfidentialWorkload 'app'")  # type: ignore[arg-type]
    text = str(err.value)
    assert "args.containers[0].name" in text and "DNS-1123" in text
    assert "args.replicas" in text
    assert "coco:index:ConfidentialWorkload 'app'" in text
    with pytest.raises(package.PackageArgsError, match=r"args\.runtimeClass.*unknown runtime"):
        package.workload_settings(workload_args(runtime_class="kata-nope"), "w")  # type: ignore[arg-type]


def trustee_args(**extra: Any) -> dict[str, Any]:
    return {
        "namespace": "trustee",
        "environment": "production",
        "tee_platforms": ["tdx"],
        "kbs_certificate_pem": KBS_CERT,
        "kbs_private_key_pem": pulumi.Output.secret("-----BEGIN PRIVATE KEY-----\nX\n"),
        "resources": [
            {
                "path": "default/key/db",
                "value": "s3cr3t-db-password",
                "initdata_digests": pulumi.Output.from_input(["ab" * 48]),
                "platforms": ["tdx"],
            }
        ],
        **extra,
    }


def test_package_trustee_binds_the_given_digests(mocks: RecordingMocks) -> None:
    def build() -> dict[str, Any]:
        trustee = package.Trustee("trustee", trustee_args())  # type: ignore[arg-type]
        return {"policy": trustee.resource_policy, "url": trustee.url}

    values, _ = resolve(build)
    assert "ab" * 48 in values["policy"] and "default/key/db" in values["policy"]
    assert values["url"] == "https://kbs.trustee.svc.cluster.local:8080"
    (resource,) = [r for r in mocks.of_type("core/v1:Secret") if "db" in r.name]
    assert "stringData" in resource.secret_paths
    assert [r.type for r in mocks.resources if r.name == "trustee"] == ["coco:index:Trustee"]


def test_bad_trustee_args_name_the_argument(mocks: RecordingMocks) -> None:
    bad = trustee_args(
        resources=[{"path": "no-slashes", "value": "v", "initdata_digests": [], "platforms": []}],
        port=0,
    )

    def build() -> dict[str, Any]:
        package.Trustee("trustee", bad)  # type: ignore[arg-type]
        return {}

    with pytest.raises(package.PackageArgsError) as err:
        resolve(build)
    text = str(err.value)
    assert "args.resources[0].path" in text and "repo/type/tag" in text
    assert "args.resources[0].platforms" in text


# Settings fields the package deliberately does not offer, with the reason (docs/embedding.md).
NOT_OFFERED = {
    WorkloadSettings: {
        "image_signatures": "needs KBS resources the program's stack builder generates",
        "image_decryption_keys": "needs KBS resources the program's stack builder generates",
    },
    ContainerSettings: {
        "sealed_env": "needs the stack's sealed-secret signing key",
        "sealed_files": "needs the stack's sealed-secret signing key",
    },
    TlsSettings: {
        "mode": "only self-signed: provided reads the program's stack config keys",
        "certificate_from": "a stack config key",
        "private_key_from": "a stack config key",
    },
}


@pytest.mark.parametrize(
    ("args_type", "model", "context"),
    [
        (
            ConfidentialWorkloadArgs,
            WorkloadSettings,
            {"environment", "kbs_url", "kbs_certificate_pem"},
        ),
        (ContainerArgs, ContainerSettings, set()),
        (ContainerResourcesArgs, ContainerResources, set()),
        (InitDataArgs, InitDataSettings, set()),
        (
            TrusteeArgs,
            TrusteeSettings,
            {"environment", "kbs_certificate_pem", "kbs_private_key_pem", "tee_platforms"},
        ),
        (TlsArgs, TlsSettings, set()),
    ],
)
def test_typed_args_mirror_the_settings_models(
    args_type: type, model: type[BaseModel], context: set[str]
) -> None:
    """Every settings field is an argument of the same name or listed as not offered, and
    every argument is a settings field or one the component takes itself: a field added to
    the settings without the package (or the reverse) fails here."""
    offered = set(args_type.__annotations__) - context
    fields = set(model.model_fields)
    skipped = set(NOT_OFFERED.get(model, {}))
    # (TrusteeArgs.resources has its own type, KbsResourceArgs: a value and the readers'
    # digests passed in, where the settings name a config key and workloads.)
    assert offered <= fields, offered - fields
    assert fields - offered == skipped
