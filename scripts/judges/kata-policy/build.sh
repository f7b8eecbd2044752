#!/usr/bin/env bash
# Judge "kata-policy": the Kata agent's own policy engine, as a small evaluator of ours
# (evaluator/src/main.rs) built against kata-containers 4.1.0's src/agent/policy and
# src/libs/protocols (feature with-serde), with regorus at the revision that crate pins.
#
#   scripts/judges/kata-policy/build.sh              # build (no-op when already built)
#   scripts/judges/kata-policy/build.sh --print-dir  # the output folder for the current inputs
#
# Output: $COCO_JUDGES_HOME/kata-policy/<key>/bin/kata-policy-judge (protocol: evaluator/src/main.rs),
# genpolicy-testdata/ (genpolicy's captured requests, from the same archive) and a `done` stamp.
# The build reuses kata's Cargo.lock, so the crates resolve to the versions the agent was released with.
set -euo pipefail
# Everything runs inside main(), which bash reads whole before running: editing this file while
# a build is under way cannot change the running build.
main() {
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
JUDGE=kata-policy
# shellcheck source=scripts/judges/lib.sh
source "$HERE/../lib.sh"

KATA_FILE=kata-containers-4.1.0.tar.gz
KATA_REPO=https://github.com/kata-containers/kata-containers
KATA_REV=4.1.0
REGORUS_FILE=regorus-8986431.tar.gz
REGORUS_REPO=https://github.com/microsoft/regorus
REGORUS_REV=898643129e3652efd43e596f978d99f85e770235

kata_tgz="$(upstream_archive "$KATA_FILE" "$KATA_REPO" "$KATA_REV")"
regorus_tgz="$(upstream_archive "$REGORUS_FILE" "$REGORUS_REPO" "$REGORUS_REV")"
rust_ver="$(rustc --version 2>/dev/null || echo norust)"
cargo_ver="$(cargo --version 2>/dev/null || echo nocargo)"
key="$(judge_key "$kata_tgz" "$regorus_tgz" "$HERE/build.sh" "$HERE/evaluator/Cargo.toml.in" \
  "$HERE/evaluator/src/main.rs" "$rust_ver" "$cargo_ver")"
out="$COCO_JUDGES_HOME/$JUDGE/$key"

if [ "${1:-}" = "--print-dir" ]; then printf '%s\n' "$out"; exit 0; fi
[ -f "$out/done" ] && exit 0
command -v cargo >/dev/null || judge_unavailable "cargo is not installed (rustup toolchain ${rust_ver})"

# Sources, unpacked once per archive checksum outside the repository.
unpack() { # TGZ -> prints the unpacked top folder
  local tgz="$1" sum dir
  sum="$(sha256sum <"$tgz" | cut -c1-12)"
  dir="$COCO_JUDGES_HOME/src/$(basename "$tgz" .tar.gz)-$sum"
  if [ ! -f "$dir/.unpacked" ]; then
    rm -rf "$dir.part" && mkdir -p "$dir.part"
    tar -xzf "$tgz" -C "$dir.part"
    # The pinned archives have one top folder; a `git archive` made by upstream_archive has none.
    # Both repositories have a Cargo.toml at their root.
    local top
    top="$(find "$dir.part" -mindepth 1 -maxdepth 1)"
    if [ ! -f "$dir.part/Cargo.toml" ] && [ -f "$top/Cargo.toml" ]; then
      mv "$top" "$dir.part.top" && rmdir "$dir.part" && mv "$dir.part.top" "$dir.part"
    fi
    [ -f "$dir.part/Cargo.toml" ] || judge_die "$tgz: no Cargo.toml at its root"
    touch "$dir.part/.unpacked"
    rm -rf "$dir" && mv "$dir.part" "$dir"
  fi
  printf '%s\n' "$dir"
}
kata="$(unpack "$kata_tgz")"
regorus="$(unpack "$regorus_tgz")"
[ -f "$kata/src/agent/policy/Cargo.toml" ] || judge_die "$kata has no src/agent/policy"

work="$COCO_JUDGES_HOME/src/kata-policy-judge-$key"
rm -rf "$work" && mkdir -p "$work/src"
cp "$HERE/evaluator/src/main.rs" "$work/src/main.rs"
sed -e "s|@KATA@|$kata|g" -e "s|@REGORUS@|$regorus|g" "$HERE/evaluator/Cargo.toml.in" >"$work/Cargo.toml"
cp "$kata/Cargo.lock" "$work/Cargo.lock"

build() {
  CARGO_HOME="$COCO_CARGO_HOME" CARGO_TARGET_DIR="$COCO_CARGO_TARGET_DIR" \
    cargo build --release -j2 --manifest-path "$work/Cargo.toml" --bin kata-policy-judge
}
judge_timed "$JUDGE" build

rm -rf "$out.part" && mkdir -p "$out.part/bin"
cp "$COCO_CARGO_TARGET_DIR/release/kata-policy-judge" "$out.part/bin/"
cp "$work/Cargo.lock" "$out.part/Cargo.lock"
# genpolicy's captured agent requests: the shapes the conformance tests build theirs from.
cp -r "$kata/src/tools/genpolicy/tests/policy/testdata" "$out.part/genpolicy-testdata"
{ echo "kata=$kata_tgz"; echo "regorus=$regorus_tgz"; echo "$rust_ver"; echo "$cargo_ver"; } >"$out.part/inputs.txt"
rm -rf "$out" && mv "$out.part" "$out"
touch "$out/done"
judge_log "ready: $out"
}

main "$@"
