# shellcheck shell=bash
# Debian packages the builds need beyond a new machine's image (../shared/hooks/image-packages.txt lists
# what a new machine has): one helper every recipe uses, so nothing is ever installed by hand.
#
#   source scripts/debs.sh
#   deb_need PACKAGE "why it is needed" CHECK [ARGS...]
#
# CHECK is a command that succeeds exactly when what the build loads is there (a program on PATH, a
# library where the build's own loader looks for it). Only when it fails is PACKAGE installed with
# apt-get (apt-get update first if the package lists are empty or stale), and CHECK must then pass:
# a package that installs but does not provide what the build loads is an error here, not 40 minutes
# later in a cargo build script.
#
# The presence tests are deliberately not "is the package installed": a machine may have the thing from
# elsewhere (a user's own LLVM, LIBCLANG_PATH), and a look-alike file must not count (issue 27:
# `libclang-cpp.so.14` is not libclang, and a glob that accepted it skipped the install).

_deb_log() { printf '[debs] %s\n' "$*" >&2; }

# deb_has_cmd NAME: NAME is a program on PATH.
deb_has_cmd() { command -v "$1" >/dev/null 2>&1; }

# deb_has_libclang: a libclang that bindgen's clang-sys (1.8, build/dynamic.rs `search_libclang_directories`)
# will load, plus clang's builtin headers (stddef.h, ...) that bindgen's parse of kernel headers needs.
# clang-sys looks in LIBCLANG_PATH, `llvm-config --libdir` and the usual lib dirs for `libclang.so`,
# `libclang-<version>.so` and (runtime linking) `libclang.so.<n>` / `libclang-<version>.so.<n>`; it never
# takes `libclang-cpp*` (the C++ API, a different library). The version suffix therefore starts with a
# digit here.
deb_has_libclang() {
  local dirs=() d f
  [ -n "${LIBCLANG_PATH:-}" ] && dirs+=("$LIBCLANG_PATH")
  # DEB_LLVM_CONFIG and DEB_LIB_ROOT (default: llvm-config on PATH, /) let a test lay out a fake
  # machine that the real one's LLVM does not leak into.
  local llvm_config="${DEB_LLVM_CONFIG:-llvm-config}"
  command -v "$llvm_config" >/dev/null 2>&1 && dirs+=("$("$llvm_config" --libdir)")
  local root="${DEB_LIB_ROOT:-}"
  dirs+=("$root"/usr/lib/llvm-*/lib "$root"/usr/lib/*-linux-gnu "$root"/usr/lib "$root"/usr/local/lib)
  local found=""
  for d in "${dirs[@]}"; do
    [ -d "$d" ] || continue
    for f in "$d"/libclang.so "$d"/libclang.so.[0-9]* "$d"/libclang-[0-9]*.so "$d"/libclang-[0-9]*.so.[0-9]*; do
      [ -e "$f" ] && { found="$f"; break 2; }
    done
  done
  [ -n "$found" ] || return 1
  # The builtin headers ship beside the library (libclang-common-<v>-dev on Debian).
  compgen -G "$root/usr/lib/llvm-*/lib/clang/*/include/stddef.h" >/dev/null ||
    compgen -G "$root/usr/lib/clang/*/include/stddef.h" >/dev/null ||
    { [ -n "${LIBCLANG_PATH:-}" ] && compgen -G "$LIBCLANG_PATH/clang/*/include/stddef.h" >/dev/null; }
}

_deb_apt() {
  local sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  # Non-interactive: CI has no standard input, and a debconf prompt would hang the run.
  DEBIAN_FRONTEND=noninteractive $sudo apt-get "$@" >&2
}

# deb_need PACKAGE WHY CHECK [ARGS...]
deb_need() {
  local pkg="$1" why="$2"
  shift 2
  "$@" && return 0
  _deb_log "$pkg: missing, needed for $why: installing it from Debian"
  command -v apt-get >/dev/null 2>&1 ||
    { _deb_log "ERROR: $pkg is needed ($why) and apt-get is not available: install it"; return 1; }
  # A new machine may never have run `apt-get update`: without lists the install finds nothing.
  _deb_apt install -y -q --no-install-recommends "$pkg" ||
    { _deb_apt update -q && _deb_apt install -y -q --no-install-recommends "$pkg"; } ||
    { _deb_log "ERROR: could not install $pkg ($why)"; return 1; }
  "$@" || { _deb_log "ERROR: $pkg is installed but '$*' still fails ($why)"; return 1; }
}
