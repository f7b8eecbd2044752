"""Release sets: a bare-metal stack picks the current or the previous one
(`coco:cluster.releaseSet`), and the values builders follow the chart versions of that set.

The set decides more than a version string: kata-deploy 3.29.0 (previous) has no
`nodeFeatureRules` value and renders no NodeFeatureRule (its binary applies one at run time),
so on that set coco neither passes the value nor declares TEE keys in its RuntimeClasses.
The Helm tier renders both sets with the real charts (tests/conformance/test_kube_upgrade.py),
and the kube tier upgrades a live stack from one to the other.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from components import releases
from components.cluster import gpu_operator_values, kata_deploy_values, runtime_class_manifest
from components.settings import BareMetalCluster, SettingsError, parse, strip_namespace

ROOT = Path(__file__).resolve().parents[1]


def baremetal(**extra: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {"kind": "baremetal", "tee": "tdx", "install": {"method": "chart"}}
    raw.update(extra)
    return raw


def stack_config(name: str) -> dict[str, Any]:
    doc = yaml.safe_load((ROOT / "stacks" / f"Pulumi.{name}.yaml").read_text())
    return strip_namespace(doc["config"])


def test_the_current_set_is_the_default() -> None:
    s = BareMetalCluster.model_validate(baremetal(gpu={}))
    assert s.release_set == releases.CURRENT.name == releases.KATA_DEPLOY.version
    assert s.install.version == releases.CURRENT.kata_deploy.version
    assert s.gpu is not None and s.gpu.operator.version == releases.CURRENT.gpu_operator.version


def test_the_previous_set_sets_the_version_defaults() -> None:
    s = BareMetalCluster.model_validate(baremetal(releaseSet=releases.PREVIOUS.name, gpu={}))
    assert s.install.version == "3.29.0" == releases.PREVIOUS.kata_deploy.version
    assert s.gpu is not None and s.gpu.operator.version == "v26.3.1"
    assert releases.PREVIOUS.trustee_kbs_image == releases.CURRENT.trustee_kbs_image


def test_previous_set_values_have_no_node_feature_rules_and_classes_no_tee_key() -> None:
    """kata-deploy 3.29.0's values.yaml has no `nodeFeatureRules`; nothing in its release
    advertises `tdx.intel.com/keys`, so a class requesting one would leave its pods Pending."""
    previous = BareMetalCluster.model_validate(baremetal(releaseSet=releases.PREVIOUS.name))
    current = BareMetalCluster.model_validate(baremetal())
    old = kata_deploy_values(previous, ["kata-qemu-tdx"])
    new = kata_deploy_values(current, ["kata-qemu-tdx"])
    assert "nodeFeatureRules" not in old
    assert new["nodeFeatureRules"] == {"create": True}
    # Everything else the same: the shims, their guest pull, the node selection.
    assert {k: v for k, v in new.items() if k != "nodeFeatureRules"} == old
    old_rc = runtime_class_manifest(previous, "kata-qemu-tdx", "production")
    new_rc = runtime_class_manifest(current, "kata-qemu-tdx", "production")
    assert "tdx.intel.com/keys" not in old_rc["overhead"]["podFixed"]
    assert new_rc["overhead"]["podFixed"]["tdx.intel.com/keys"] == "1"
    # The upgrade changes the class in place: same name and handler (handler is immutable).
    assert (old_rc["metadata"], old_rc["handler"]) == (new_rc["metadata"], new_rc["handler"])
    assert old_rc["scheduling"] == new_rc["scheduling"]


def test_previous_set_gpu_operator_keeps_kata_manager_off() -> None:
    """GPU Operator v26.3.1 still honors `kataManager`: coco writes it off there."""
    previous = BareMetalCluster.model_validate(baremetal(releaseSet=releases.PREVIOUS.name, gpu={}))
    assert gpu_operator_values(previous)["kataManager"] == {"enabled": False}
    current = BareMetalCluster.model_validate(baremetal(gpu={}))
    assert "kataManager" not in gpu_operator_values(current)


def test_an_explicit_version_must_be_the_sets() -> None:
    raw = baremetal(releaseSet=releases.PREVIOUS.name)
    raw["install"]["version"] = "4.1.0"
    settings = BareMetalCluster.model_validate(raw)
    with pytest.raises(ValueError, match=r"coco:cluster.install.version '4.1.0'.*'3.29.0'"):
        kata_deploy_values(settings, ["kata-qemu-tdx"])


def test_an_unknown_release_set_is_refused_naming_the_key_and_the_known_sets() -> None:
    config = stack_config("baremetal-tdx")
    config["cluster"]["releaseSet"] = "4.2.0"
    with pytest.raises(SettingsError) as err:
        parse(config)
    text = str(err.value)
    assert "coco:cluster.releaseSet" in text
    assert "'4.2.0'" in text and "'4.1.0' (current)" in text and "'3.29.0' (previous)" in text


def test_peer_pods_run_the_current_set_only() -> None:
    """Peer-pods stacks run the current set only (peerpods 0.3.0's adaptor exits under IRSA)."""
    config = stack_config("aws-peerpods")
    config["cluster"]["releaseSet"] = releases.PREVIOUS.name
    with pytest.raises(SettingsError) as err:
        parse(config)
    text = str(err.value)
    assert "coco:cluster.releaseSet" in text and "bare-metal clusters only" in text, text
    config["cluster"]["releaseSet"] = releases.CURRENT.name
    assert parse(config).cluster.release_set == releases.CURRENT.name


def test_every_set_is_named_after_its_kata_deploy_and_pinned_on_a_date() -> None:
    assert list(releases.RELEASE_SETS) == [releases.CURRENT.name, releases.PREVIOUS.name]
    for s in releases.RELEASE_SETS.values():
        assert s.name == s.kata_deploy.version
        assert releases.version_tuple(s.gpu_operator.version)
    assert releases.version_tuple(releases.PREVIOUS.name) < releases.version_tuple(
        releases.CURRENT.name
    )
