"""The runtime-class catalogue: every class docs/workloads.md lists, and hardware matching."""

from __future__ import annotations

import pytest

from components import tee

BARE_TDX = tee.Hardware(host="baremetal", arch="x86_64", tee="tdx")
BARE_SNP = tee.Hardware(host="baremetal", arch="x86_64", tee="snp")
BARE_TDX_GPU = tee.Hardware(host="baremetal", arch="x86_64", tee="tdx", gpu=True)
BARE_SE = tee.Hardware(host="baremetal", arch="s390x", tee="se")
BARE_NONE = tee.Hardware(host="baremetal", arch="x86_64", tee="none")
PEER = tee.Hardware(host="peerpods", arch="x86_64", tee=None)


def test_catalogue_has_every_design_class() -> None:
    assert set(tee.CATALOGUE) == {
        "kata-qemu-coco-dev",
        "kata-qemu-tdx",
        "kata-qemu-snp",
        "kata-qemu-sev",
        "kata-qemu-nvidia-gpu-tdx",
        "kata-qemu-nvidia-gpu-snp",
        "kata-qemu-se",
        "kata-remote",
    }


@pytest.mark.parametrize(
    ("name", "field_len"),
    [
        ("kata-qemu-tdx", 48),
        ("kata-qemu-nvidia-gpu-tdx", 48),
        ("kata-qemu-snp", 32),
        ("kata-qemu-nvidia-gpu-snp", 32),
        ("kata-qemu-se", None),
        ("kata-qemu-coco-dev", None),
    ],
)
def test_initdata_binding_field(name: str, field_len: int | None) -> None:
    assert tee.CATALOGUE[name].initdata_field_len == field_len


def test_only_coco_dev_is_insecure() -> None:
    assert [n for n, s in tee.CATALOGUE.items() if not s.secure] == ["kata-qemu-coco-dev"]


@pytest.mark.parametrize(
    ("rc", "hw", "fragment"),
    [
        ("kata-qemu-tdx", BARE_SNP, "needs TEE tdx"),
        ("kata-qemu-snp", BARE_TDX, "needs TEE snp"),
        ("kata-qemu-nvidia-gpu-tdx", BARE_TDX, "needs NVIDIA GPUs"),
        ("kata-qemu-se", BARE_TDX, "is for s390x"),
        ("kata-qemu-tdx", BARE_SE, "is for x86_64"),
        ("kata-qemu-tdx", PEER, "use 'kata-remote'"),
        ("kata-remote", BARE_TDX, "runs peer pods"),
        ("kata-qemu-nope", BARE_TDX, "unknown runtime class"),
    ],
)
def test_mismatch_names_class_and_hardware(rc: str, hw: tee.Hardware, fragment: str) -> None:
    why = tee.mismatch(rc, hw)
    assert why is not None
    assert fragment in why
    assert rc in why


@pytest.mark.parametrize(
    ("rc", "hw"),
    [
        ("kata-qemu-tdx", BARE_TDX),
        ("kata-qemu-tdx", BARE_TDX_GPU),
        ("kata-qemu-nvidia-gpu-tdx", BARE_TDX_GPU),
        ("kata-qemu-coco-dev", BARE_TDX),
        ("kata-qemu-se", BARE_SE),
        ("kata-remote", PEER),
    ],
)
def test_matches(rc: str, hw: tee.Hardware) -> None:
    assert tee.mismatch(rc, hw) is None


def test_default_class_follows_hardware_and_gpu_need() -> None:
    assert tee.default_class(BARE_TDX) == "kata-qemu-tdx"
    assert tee.default_class(BARE_SNP) == "kata-qemu-snp"
    assert tee.default_class(BARE_TDX_GPU, wants_gpu=True) == "kata-qemu-nvidia-gpu-tdx"
    assert tee.default_class(BARE_TDX_GPU, wants_gpu=False) == "kata-qemu-tdx"
    assert tee.default_class(BARE_SE) == "kata-qemu-se"
    assert tee.default_class(BARE_NONE) == "kata-qemu-coco-dev"
    assert tee.default_class(PEER) == "kata-remote"
    with pytest.raises(ValueError, match="no runtime class"):
        tee.default_class(BARE_TDX, wants_gpu=True)


def test_classes_for_lists_secure_first() -> None:
    assert tee.classes_for(BARE_TDX) == ["kata-qemu-tdx", "kata-qemu-coco-dev"]
    assert tee.classes_for(PEER) == ["kata-remote"]
