"""A trusted zone split in separate stacks, through the real engine (docs/topologies.md).

The Trustee stack and a confidential-cluster stack (examples/trusted_zone) render into
temporary folders and keep their state in one local file backend, so each stack's
`pulumi.StackReference` reads the other's real state. The first deploy runs in the documented
order (both stacks exist, Trustee, confidential, Trustee again), each `up` through the
production gate (the policy pack at mandatory); then the scan: the confidential stack's
exported state and every file rendered for the confidential cluster hold no secret value, no
private key, no policy and no reference value, while the Trustee's side does.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
import yaml
from builders import private_backend

import automation
from automation import Backend, StackSpec
from automation.workspace import open_stack
from automation.zones import up_trusted_zone
from components.settings import KubernetesTarget

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples" / "trusted_zone"
SECRET = "e2e-zones-db-password-5c1d"
POLICY_MAP = "kbs-resource-policy"


@pytest.fixture
def backend(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Backend:
    return private_backend(tmp_path, monkeypatch, "coco-e2e-zones-private-passphrase")


def example(name: str, render_dir: Path, secrets: dict[str, str] | None = None) -> StackSpec:
    """An example stack rendering into `render_dir` (CoCo taken as preinstalled: rendering
    fetches no chart), on the backend's passphrase provider (no KMS offline)."""
    spec = StackSpec.from_file(EXAMPLES / f"Pulumi.{name}.yaml", name=name, secrets=secrets)
    cluster = spec.settings.cluster
    install = cluster.install.model_copy(update={"method": "preinstalled"})  # type: ignore[union-attr]
    settings = spec.settings.model_copy(
        update={
            "kubernetes": KubernetesTarget(render_dir=str(render_dir)),
            "cluster": cluster.model_copy(update={"install": install}),
        }
    )
    return spec.model_copy(update={"settings": settings, "stack_file": None})


def files_text(directory: Path) -> str:
    return "\n".join(p.read_text() for p in sorted(directory.rglob("*")) if p.is_file())


def resource_policy(render_dir: Path) -> str:
    """The resource policy the Trustee stack rendered (its ConfigMap)."""
    for path in render_dir.rglob("*.yaml"):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc["kind"] == "ConfigMap" and doc["metadata"]["name"] == POLICY_MAP:
                text: str = doc["data"]["policy.rego"]
                return text
    raise AssertionError(f"no kbs-resource-policy ConfigMap under {render_dir}")


def guarded() -> list[str]:
    """What must never reach the untrusted side (docs/topologies.md)."""
    doc = yaml.safe_load((EXAMPLES / "Pulumi.trust-zone.yaml").read_text())
    trustee: dict[str, Any] = doc["config"]["coco:trustee"]
    values = [v for vs in trustee["referenceValues"].values() for v in vs]
    return [SECRET, "PRIVATE KEY", "package policy", "authorization_mode", *values]


def test_separate_stacks_first_deploy_and_the_scan(backend: Backend, tmp_path: Path) -> None:
    trust = example("trust-zone", tmp_path / "trust", {"apiDbPassword": SECRET})
    conf = example("tdx-a", tmp_path / "tdx-a")

    with open_stack(conf, backend):  # `pulumi stack init tdx-a`: exists, exports nothing
        pass
    first = automation.up(trust, backend=backend)
    assert first.outputs is not None
    kbs = first.outputs["kbs"]
    assert kbs["url"] == "https://kbs.trust-zone.example.com:8080"
    assert '"db"' not in resource_policy(tmp_path / "trust")  # no reader deployed yet

    second = automation.up(conf, backend=backend)
    assert second.outputs is not None
    digest = second.outputs["workloads"]["payments-api"]["initdataDigest"]
    assert second.outputs["kbsReaders"]["payments-api"]["digests"] == [digest]
    assert second.outputs["kbsCertificate"] == kbs["certificatePem"]
    rendered_conf = files_text(tmp_path / "tdx-a")
    assert "kata-qemu-tdx" in rendered_conf and "payments-api" in rendered_conf

    third = automation.up(trust, backend=backend)
    assert third.outputs is not None
    policy = resource_policy(tmp_path / "trust")
    assert digest in policy and '"db"' in policy
    assert not automation.preview(trust, backend=backend).changed

    # The scan: the confidential stack's state and its cluster's objects.
    with open_stack("tdx-a", backend) as stack:  # exported with --show-secrets: in the clear
        state = json.dumps(stack.export_stack().deployment)
    assert kbs["certificatePem"].splitlines()[1] in state  # the state was read for real
    for needle in guarded():
        assert needle not in state, needle[:24]
        assert needle not in rendered_conf, needle[:24]
    rendered_trust = files_text(tmp_path / "trust")
    assert "package policy" in rendered_trust and guarded()[-1] in rendered_trust

    automation.destroy(conf, backend=backend, remove=True)
    automation.destroy(trust, backend=backend, remove=True)
    assert not [p for p in (tmp_path / "tdx-a").rglob("*") if p.is_file()]
    assert os.path.isdir(tmp_path / "state")


def test_up_trusted_zone_converges_and_rebinds_a_changed_workload(
    backend: Backend, tmp_path: Path
) -> None:
    """`automation.zones.up_trusted_zone` runs the documented order; after a workload change
    the same call binds the new digest and drops the old one."""
    trust = example("trust-zone", tmp_path / "trust", {"apiDbPassword": SECRET})
    conf = example("tdx-a", tmp_path / "tdx-a")
    result = up_trusted_zone(trust, [conf], backend=backend)
    [deployed] = result.confidential
    assert deployed.outputs is not None
    old = deployed.outputs["workloads"]["payments-api"]["initdataDigest"]
    assert old in resource_policy(tmp_path / "trust")

    workload = conf.settings.workloads[0]
    container = workload.containers[0].model_copy(
        update={"image": "registry.example.com/payments/api@sha256:" + "5e" * 32}
    )
    changed_workload = workload.model_copy(update={"containers": [container]})
    changed = conf.model_copy(
        update={"settings": conf.settings.model_copy(update={"workloads": [changed_workload]})}
    )
    again = up_trusted_zone(trust, [changed], backend=backend)
    [redeployed] = again.confidential
    assert redeployed.outputs is not None
    new = redeployed.outputs["workloads"]["payments-api"]["initdataDigest"]
    assert new != old
    policy = resource_policy(tmp_path / "trust")
    assert new in policy and old not in policy
    assert not again.trustee_first.changed, "the KBS itself did not change"

    automation.destroy(changed, backend=backend, remove=True)
    automation.destroy(trust, backend=backend, remove=True)
