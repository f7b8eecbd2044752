"""`coco:manifests`: a stack deploys the user's own YAML folder as confidential workloads.

Under mocks, the real program (components/stack.py `build`) reads the folder, makes its
Deployment confidential with the cluster's runtime class, passes its Service unchanged, and
binds the KBS resource whose reader names the source to that Deployment's init-data digest.
Bad folders are refused while the settings are validated, naming the config key, the file,
the object and the field.
"""

from __future__ import annotations

import base64
import gzip
from pathlib import Path
from typing import Any

import pytest
import yaml
from mocks import DecodingMocks, RecordingMocks, config_values, run_program

from components import labels
from components.settings import SettingsError, parse
from policies.initdata import INITDATA_ANNOTATION

PINNED = "registry.example.com/shop/web@sha256:" + "ab" * 32
KEY = "coco:appKey"


def deployment(image: str = PINNED, **pod: Any) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": image}], **pod},
            },
        },
    }


SERVICE = {
    "apiVersion": "v1",
    "kind": "Service",
    "metadata": {"name": "web"},
    "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]},
}


def folder(tmp: Path, *objects: dict[str, Any]) -> Path:
    out = tmp / "manifests"
    out.mkdir()
    (out / "app.yaml").write_text(yaml.safe_dump_all(list(objects)))
    return out


def config(path: Path, environment: str = "dev", tee: str = "none") -> dict[str, Any]:
    return {
        "environment": environment,
        "kubernetes": {"renderDir": "out/test"},
        "cluster": {"kind": "baremetal", "tee": tee, "install": {"method": "preinstalled"}},
        "trustee": {
            "serviceType": "LoadBalancer",
            "url": "https://kbs.example.com:8080",
            "resources": [{"path": "default/key/1", "valueFrom": "appKey", "readers": ["shop"]}],
            "referenceValues": {"mr_td": ["aa" * 48]},
            "secretsDelivery": "reference",
        },
        "manifests": [{"name": "shop", "path": str(path), "namespace": "shop"}],
    }


def run(data: dict[str, Any]) -> RecordingMocks:
    parse(data)  # the same validation `load` runs
    mocks = DecodingMocks()
    run_program(mocks, "manifests", config_values(data, "coco:") | {KEY: "s3cret-value"}, [KEY])
    return mocks


def test_folder_workloads_are_confidential_and_bound_to_the_kbs(tmp_path: Path) -> None:
    mocks = run(config(folder(tmp_path, deployment(), SERVICE)))
    (web,) = [
        r for r in mocks.kubernetes() if r.kind == "Deployment" and r.metadata["name"] == "web"
    ]
    template = web.inputs["spec"]["template"]
    assert web.inputs["metadata"]["namespace"] == "shop"
    assert template["spec"]["runtimeClassName"] == "kata-qemu-coco-dev"
    digest = template["metadata"]["annotations"][labels.INITDATA_DIGEST_ANNOTATION]
    text = gzip.decompress(
        base64.b64decode(template["metadata"]["annotations"][INITDATA_ANNOTATION])
    )
    assert PINNED.encode() in text  # the agent policy allows exactly this image
    (svc,) = [r for r in mocks.kubernetes() if r.kind == "Service" and r.metadata["name"] == "web"]
    assert svc.inputs["spec"] == SERVICE["spec"]
    policies = [
        r
        for r in mocks.of_type("core/v1:ConfigMap")
        if r.metadata.get("labels", {}).get(labels.ROLE) == "resource-policy"
    ]
    assert digest in policies[0].inputs["data"]["policy.rego"]
    namespaces = [r.metadata["name"] for r in mocks.of_type("core/v1:Namespace")]
    assert "shop" in namespaces


def problems(data: dict[str, Any]) -> str:
    with pytest.raises(SettingsError) as err:
        parse(data)
    return str(err.value)


def test_invalid_manifest_names_key_file_object_and_field(tmp_path: Path) -> None:
    bad = deployment()
    bad["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"] = 3
    text = problems(config(folder(tmp_path, bad)))
    assert "coco:manifests[0].path" in text
    assert "app.yaml: Deployment shop/web: spec.template.spec.containers.0.imagePullPolicy" in text


def test_workload_the_tee_cannot_run_is_refused(tmp_path: Path) -> None:
    text = problems(config(folder(tmp_path, deployment(hostNetwork=True))))
    assert "coco:manifests[0].path" in text
    assert "spec.template.spec.hostNetwork: the pod VM has its own network stack" in text


def test_production_refuses_a_tag_without_digest(tmp_path: Path) -> None:
    data = config(folder(tmp_path, deployment(image="nginx:1.27")), "production", "tdx")
    text = problems(data)
    assert "spec.template.spec.containers.0.image: 'nginx:1.27' has a tag but no digest" in text


def test_not_yaml_and_unknown_reader(tmp_path: Path) -> None:
    path = tmp_path / "manifests"
    path.mkdir()
    (path / "broken.yaml").write_text("kind: [unclosed\n")
    data = config(path)
    data["trustee"]["resources"][0]["readers"] = ["nobody"]
    text = problems(data)
    assert "broken.yaml: not YAML" in text
    assert "'nobody' is not a workload in coco:workloads or coco:manifests" in text


def test_one_source_kind_only() -> None:
    text = problems({**config(Path("x")), "manifests": [{"name": "a", "path": "x", "chart": "y"}]})
    assert "coco:manifests[0]" in text and "exactly one of `path`" in text


def test_chart_that_is_not_a_chart_names_the_key(tmp_path: Path) -> None:
    data = config(tmp_path)
    data["manifests"] = [{"name": "shop", "chart": str(tmp_path / "nochart")}]
    text = problems(data)
    assert "coco:manifests[0].chart" in text and "no Chart.yaml" in text


# --------------------------------------------------------------------------- sealedSecrets

DB_SECRET = {
    "apiVersion": "v1",
    "kind": "Secret",
    "metadata": {"name": "db"},
    "stringData": {"password": "chart-default-pw", "user": "shop"},
}


def reads_secret(name: str = "db", key: str = "password") -> dict[str, Any]:
    """The web Deployment with a literal env var and one read from Secret `name`/`key`."""
    dep = deployment()
    dep["spec"]["template"]["spec"]["containers"][0]["env"] = [
        {"name": "PLAIN", "value": "x"},
        {"name": "DB_PASSWORD", "valueFrom": {"secretKeyRef": {"name": name, "key": key}}},
    ]
    return dep


def sealed_config(tmp: Path, *objects: dict[str, Any], **entry: Any) -> dict[str, Any]:
    tmp.mkdir(parents=True, exist_ok=True)
    data = config(folder(tmp, *objects), **entry)
    data["manifests"][0]["sealedSecrets"] = [
        {"secret": "db", "key": "password", "sealedFrom": "default/key/1"}
    ]
    return data


def test_a_mapped_secret_key_is_served_from_the_kbs_as_a_sealed_secret(tmp_path: Path) -> None:
    """The env var reads the source's sealed Secret (a signed reference to the KBS resource),
    the agent policy pins that reference, the source's own Secret loses the key (its value
    never reaches state or the render), and the KBS releases the verification key to the
    source's digest."""
    from policies.sealed import SIGNING_KEY_RESOURCE, sealed_env_pattern

    mocks = run(sealed_config(tmp_path, reads_secret(), DB_SECRET))
    (web,) = [
        r for r in mocks.kubernetes() if r.kind == "Deployment" and r.metadata["name"] == "web"
    ]
    template = web.inputs["spec"]["template"]
    env = template["spec"]["containers"][0]["env"]
    assert env[1] == {
        "name": "DB_PASSWORD",
        "valueFrom": {"secretKeyRef": {"name": "shop-sealed-secrets", "key": "db.password"}},
    }
    secrets = {r.metadata["name"]: r for r in mocks.of_type("core/v1:Secret")}
    sealed = secrets["shop-sealed-secrets"]
    assert sealed.metadata["namespace"] == "shop"
    value = sealed.inputs["stringData"]["db.password"]
    payload = value.split(".")[2]
    assert value.startswith("sealed.")
    assert b"kbs:///default/key/1" in base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    assert secrets["db"].inputs["stringData"] == {"user": "shop"}
    for r in mocks.kubernetes():
        text = yaml.safe_dump(r.inputs, default_flow_style=True)
        assert "chart-default-pw" not in text and "s3cret-value" not in text, r.name
    policy = gzip.decompress(
        base64.b64decode(template["metadata"]["annotations"][INITDATA_ANNOTATION])
    ).decode()
    assert sealed_env_pattern("DB_PASSWORD", "default/key/1").replace("\\", "\\\\") in policy
    digest = template["metadata"]["annotations"][labels.INITDATA_DIGEST_ANNOTATION]
    (resource_policy,) = [
        r
        for r in mocks.of_type("core/v1:ConfigMap")
        if r.metadata.get("labels", {}).get(labels.ROLE) == "resource-policy"
    ]
    rego = resource_policy.inputs["data"]["policy.rego"]
    assert SIGNING_KEY_RESOURCE in rego and digest in rego


def test_an_unmapped_secret_key_ref_is_refused_naming_sealed_secrets(tmp_path: Path) -> None:
    text = problems(sealed_config(tmp_path, reads_secret(key="other"), DB_SECRET))
    assert "env.1.valueFrom: (DB_PASSWORD) a value the host supplies" in text
    assert "serve it from the KBS (the manifests entry's sealedSecrets" in text
    # The entry maps a key no container reads (the Secret holding it does not count).
    assert "sealedSecrets[0]: no container of the source reads Secret 'db' key 'password'" in text


def test_a_sealed_secret_nothing_reads_is_refused(tmp_path: Path) -> None:
    data = config(folder(tmp_path, deployment()))
    data["manifests"][0]["sealedSecrets"] = [
        {"secret": "db", "key": "password", "sealedFrom": "default/key/1"}
    ]
    text = problems(data)
    assert "sealedSecrets[0]: no container of the source reads Secret 'db' key 'password'" in text


def test_a_sealed_secret_must_be_a_resource_the_source_reads(tmp_path: Path) -> None:
    data = sealed_config(tmp_path, reads_secret(), DB_SECRET)
    data["manifests"][0]["sealedSecrets"][0]["sealedFrom"] = "default/key/9"
    text = problems(data)
    assert "coco:manifests[0].sealedSecrets[0].sealedFrom: sealed secret 'default/key/9'" in text
    bad = sealed_config(tmp_path / "b", reads_secret(), DB_SECRET)
    bad["manifests"][0]["sealedSecrets"][0]["secret"] = "Not_A_Name"
    assert "is not a Secret name" in problems(bad)


def test_a_non_dev_render_refuses_a_secret_still_holding_a_value(tmp_path: Path) -> None:
    """Rendering for staging: the mapped key is gone from the source's Secret, but `user`
    would still be written in plain text; with only the mapped key, the render is fine."""
    text = problems(sealed_config(tmp_path, reads_secret(), DB_SECRET, environment="staging"))
    assert "Secret shop/db would be written in plain text into the render folder" in text
    only_mapped = {**DB_SECRET, "stringData": {"password": "chart-default-pw"}}
    parse(sealed_config(tmp_path / "ok", reads_secret(), only_mapped, environment="staging"))


class HelmMocks(DecodingMocks):
    """Answers `kubernetes:helm:template` with fixed objects (what a chart would render)."""

    def __init__(self, objects: list[dict[str, Any]]) -> None:
        super().__init__()
        self.objects = objects

    def call(self, args: Any) -> tuple[dict, list[tuple[str, str]] | None]:  # type: ignore[type-arg]
        if args.token == "kubernetes:helm:template":
            self.helm_templates.append(yaml.safe_load(args.args["jsonOpts"]))
            return {"result": self.objects}, []
        return super().call(args)


def chart_check(objects: list[dict[str, Any]], **source: Any) -> tuple[list[str], HelmMocks]:
    """`components.chart_check.chart_problems` for a chart source rendering `objects`."""
    import pulumi

    from components.chart_check import chart_problems

    chart = Path(__file__).parent / "fixtures" / "charts" / "webapp"
    data = {
        **config(Path("unused")),
        "manifests": [{"name": "shop", "chart": str(chart), **source}],
    }
    settings = parse(data)
    mocks = HelmMocks(objects)
    pulumi.runtime.set_mocks(mocks, project="coco", stack="charts", preview=True)
    found: list[str] = []

    @pulumi.runtime.test  # type: ignore[untyped-decorator]
    def program() -> None:
        found.extend(str(p) for p in chart_problems(settings))

    program()
    return found, mocks


def test_a_chart_is_checked_before_any_resource_with_its_key() -> None:
    """The program renders each chart first (the chart-check provider, the source's values
    and release name) and refuses with every problem keyed: nothing else was registered."""
    found, mocks = chart_check([deployment(hostNetwork=True)], values={"replicaCount": 1})
    chart = Path(__file__).parent / "fixtures" / "charts" / "webapp"
    assert len(found) == 1 and found[0].startswith(f"  - coco:manifests[0] (chart {chart}): ")
    assert "spec.template.spec.hostNetwork: the pod VM has its own network stack" in found[0]
    assert mocks.helm_templates == [
        {
            "path": str(chart),
            "namespace": "default",
            "values": {"replicaCount": 1},
            "release_name": "shop",
        }
    ]
    assert [r.type for r in mocks.resources] == ["pulumi:providers:kubernetes"]
    assert mocks.resources[0].name == "coco-chart-check"


def test_a_chart_with_nothing_wrong_passes_and_unused_sealed_secrets_are_named() -> None:
    found, _ = chart_check([deployment(), SERVICE])
    assert found == []
    found, _ = chart_check(
        [reads_secret(), DB_SECRET],
        sealedSecrets=[{"secret": "db", "key": "nope", "sealedFrom": "default/key/1"}],
    )
    assert any(
        "sealedSecrets[0]: no container of the source reads Secret 'db' key 'nope'" in p
        for p in found
    )
    assert any("(DB_PASSWORD) a value the host supplies" in p for p in found)
