"""scripts/debs.sh: the Debian packages a build needs are found by what the build loads.

Issue 27: the cdh recipe's old test for libclang (`ls /usr/lib/llvm-*/lib/libclang*.so*`) also
matched `libclang-cpp.so.14`, the C++ API library a new machine has, so `libclang-dev` was never
installed and bindgen (clang-sys) failed 50 minutes into a cold CI run. These tests lay out fake
machines under DEB_LIB_ROOT and run the real shell functions; `deb_need` runs against a stand-in
`apt-get` on PATH that records its calls, so no package is installed by the tests.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DEBS = ROOT / "scripts" / "debs.sh"


def _bash(script: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-c", f'set -u; source "{DEBS}"; {script}'],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


def _machine(root: Path, *files: str) -> dict[str, str]:
    for rel in files:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"")
    # No llvm-config and no LIBCLANG_PATH from the real machine: only the fake root is searched.
    env = {k: v for k, v in os.environ.items() if k != "LIBCLANG_PATH"}
    env["PATH"] = "/usr/bin:/bin"
    env["DEB_LIB_ROOT"] = str(root)
    env["DEB_LLVM_CONFIG"] = str(root / "no-llvm-config")
    return env


HEADERS = "usr/lib/llvm-14/lib/clang/14.0.6/include/stddef.h"


@pytest.mark.parametrize(
    ("files", "found"),
    [
        # What a new machine of this kind has: the C++ API library only. Not libclang.
        (
            (
                "usr/lib/x86_64-linux-gnu/libclang-cpp.so.14",
                "usr/lib/llvm-14/lib/libclang-cpp.so.14",
            ),
            False,
        ),
        # libclang-14-dev's unversioned link, with libclang-common-14-dev's headers.
        (("usr/lib/llvm-14/lib/libclang.so", HEADERS), True),
        # libclang1-14's runtime library alone, as clang-sys accepts it for runtime linking.
        (("usr/lib/x86_64-linux-gnu/libclang-14.so.1", HEADERS), True),
        (("usr/lib/llvm-14/lib/libclang.so.1", HEADERS), True),
        # The library without clang's builtin headers: bindgen cannot parse <linux/loop.h>.
        (("usr/lib/llvm-14/lib/libclang.so",), False),
        (("usr/lib/llvm-14/lib/libclang-cpp.so", HEADERS), False),
    ],
)
def test_libclang_is_what_clang_sys_loads(
    tmp_path: Path, files: tuple[str, ...], found: bool
) -> None:
    proc = _bash("deb_has_libclang", _machine(tmp_path, *files))
    assert (proc.returncode == 0) is found, proc.stderr


def _fake_apt(tmp_path: Path, provides: str | None) -> Path:
    """An `apt-get` that logs its arguments and, on install, creates `provides` (if any)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "apt.log"
    create = f'mkdir -p "$(dirname "{provides}")"; : > "{provides}"' if provides else ":"
    script = bin_dir / "apt-get"
    script.write_text(
        f'#!/bin/bash\necho "$*" >> "{log}"\nif [ "$1" = install ]; then {create}; fi\nexit 0\n'
    )
    script.chmod(0o755)
    return bin_dir


def test_deb_need_installs_when_the_check_fails_and_checks_again(tmp_path: Path) -> None:
    marker = tmp_path / "provided"
    env = _machine(tmp_path / "root")
    env["PATH"] = f"{_fake_apt(tmp_path, str(marker))}:{env['PATH']}"
    proc = _bash(f'deb_need some-dev "the test" test -e "{marker}"', env)
    assert proc.returncode == 0, proc.stderr
    assert "some-dev: missing, needed for the test" in proc.stderr
    calls = (tmp_path / "apt.log").read_text().splitlines()
    assert calls == ["install -y -q --no-install-recommends some-dev"]


def test_deb_need_does_nothing_when_present(tmp_path: Path) -> None:
    marker = tmp_path / "provided"
    marker.write_text("")
    env = _machine(tmp_path / "root")
    env["PATH"] = f"{_fake_apt(tmp_path, None)}:{env['PATH']}"
    proc = _bash(f'deb_need some-dev "the test" test -e "{marker}"', env)
    assert proc.returncode == 0, proc.stderr
    assert not (tmp_path / "apt.log").exists()


def test_deb_need_fails_when_the_package_does_not_provide_it(tmp_path: Path) -> None:
    # The install "succeeds" but what the build loads is still absent: an error now, naming both.
    env = _machine(tmp_path / "root")
    env["PATH"] = f"{_fake_apt(tmp_path, None)}:{env['PATH']}"
    proc = _bash('deb_need libclang-dev "bindgen" deb_has_libclang', env)
    assert proc.returncode != 0
    assert "libclang-dev is installed but 'deb_has_libclang' still fails (bindgen)" in proc.stderr


def test_every_recipe_installs_debian_packages_through_deb_need() -> None:
    # One helper: no recipe calls apt-get itself (the old copies each had their own, wrong, check).
    offenders = [
        str(path.relative_to(ROOT))
        for path in (ROOT / "scripts").rglob("*.sh")
        if path != DEBS and "apt-get" in path.read_text()
    ]
    assert offenders == []
