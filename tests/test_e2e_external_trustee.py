"""An external-Trustee stack through the real engine (docs/topologies.md, "External Trustee").

examples/external_trustee/Pulumi.tdx-shared-kbs.yaml, its cluster side rendered into a
temporary folder and its KBS replaced by the stand-in admin API of
tests/test_external_trustee.py (it checks the bearer JWT as v0.21.0 does and keeps what it is
sent), run through the production gate in a local file backend: `up` sets the resources,
reference values and the resource policy bound to the rendered workload's digest; a reference
value changed on the KBS behind coco's back shows as drift on `refresh` and is set back by the
next `up`; `destroy` leaves a deny-all resource policy, no resource and emptied reference
values; the admin key and the resource value are secrets in the state.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from builders import private_backend, private_key_pem
from cryptography.hazmat.primitives.asymmetric import ec
from test_external_trustee import serve

import automation
from automation import Backend, StackSpec
from automation.workspace import open_stack
from components.kbs_admin import DENY_ALL_RESOURCE_POLICY
from components.settings import KubernetesTarget
from components.topology import TopologySettings

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "external_trustee" / "Pulumi.tdx-shared-kbs.yaml"
SECRET = "e2e-external-payments-key-7f3a"
SECRET_SIG = "4dabf18193072939515e22adb298388d"
"""The engine's marker of a secret value in an exported state."""


@pytest.fixture
def backend(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Backend:
    return private_backend(tmp_path, monkeypatch, "coco-e2e-external-private-passphrase")


def test_external_trustee_up_refresh_destroy(backend: Backend, tmp_path: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    (tmp_path / "kbs").mkdir()
    with serve(key, tmp_path / "kbs") as kbs:
        spec = StackSpec.from_file(
            EXAMPLE,
            name="tdx-shared-kbs",
            secrets={"kbsAdminKey": kbs.key_pem, "paymentsKey": SECRET},
        )
        s = spec.settings
        topology = s.trustee_topology
        assert topology.external is not None
        external = topology.external.model_copy(
            update={
                "url": kbs.url,
                "certificate_pem": kbs.certificate_pem,
                "admin_role": "coco",
                "admin_issuer": "coco-iss",
                "admin_audience": "kbs-admin",
            }
        )
        install = s.cluster.install.model_copy(update={"method": "preinstalled"})  # type: ignore[union-attr]
        settings = s.model_copy(
            update={
                "kubernetes": KubernetesTarget(render_dir=str(tmp_path / "out")),
                "cluster": s.cluster.model_copy(update={"install": install}),
                "topology": TopologySettings(kind="external", external=external),
            }
        )
        spec = spec.model_copy(update={"settings": settings, "stack_file": None})

        first = automation.up(spec, backend=backend)
        assert first.outputs is not None
        digest = first.outputs["workloads"]["payments-api"]["initdataDigest"]
        held = kbs.kbs
        assert held.resource_policy is not None and digest in held.resource_policy
        assert held.resources == {"payments/key/tls": SECRET.encode()}
        assert sorted(held.reference_values) == ["mr_td", "rtmr_1", "rtmr_2", "xfam"]
        rendered = "\n".join(p.read_text() for p in (tmp_path / "out").rglob("*") if p.is_file())
        assert first.outputs["kbs"]["url"] == kbs.url and "payments-api" in rendered
        assert SECRET not in rendered and "package policy" not in rendered
        assert not automation.preview(spec, backend=backend).changed

        # The admin key and the resource value are secrets in the state (the export shows
        # them in the clear, inside the engine's secret envelope).
        with open_stack("tdx-shared-kbs", backend) as stack:
            state = stack.export_stack().deployment
        admin_objects = [
            r["outputs"]
            for r in state["resources"]
            if r["type"] == "pulumi-python:dynamic:Resource" and "admin" in r.get("outputs", {})
        ]
        assert len(admin_objects) == 6, admin_objects  # 1 resource, 4 reference values, policy
        for outputs in admin_objects:
            assert SECRET_SIG in outputs["admin"], "admin key not secret in the state"
        [resource] = [o for o in admin_objects if "path" in o]
        assert SECRET_SIG in resource["value"]

        # Drift: a reference value rewritten on the KBS shows on refresh; up sets it back.
        wanted = held.reference_values["mr_td"]
        held.reference_values["mr_td"] = ["00" * 48]
        # (Refresh of the KBS objects only: the rendered Kubernetes objects have no cluster
        # to be read from.)
        urns = [
            r["urn"]
            for r in state["resources"]
            if r["type"] == "pulumi-python:dynamic:Resource" and "admin" in r.get("outputs", {})
        ]
        with open_stack("tdx-shared-kbs", backend) as stack:
            drift = stack.refresh(target=urns, color="never")
            after = stack.export_stack().deployment
        assert (drift.summary.resource_changes or {}).get("update") == 1, drift.stdout
        [mr_td] = [r for r in after["resources"] if r["urn"].endswith("kbs-rv-mr_td")]
        assert mr_td["outputs"]["value"] == ["00" * 48]
        automation.up(spec, backend=backend)
        assert held.reference_values["mr_td"] == wanted

        automation.destroy(spec, backend=backend, remove=True)
        assert held.resource_policy == DENY_ALL_RESOURCE_POLICY
        assert held.resources == {}
        assert all(v == [] for v in held.reference_values.values())
        assert private_key_pem(key) == kbs.key_pem
