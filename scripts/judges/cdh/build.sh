#!/usr/bin/env bash
# Judge `cdh`: the guest side of Confidential Containers, from guest-components d4dce5c (the revision
# kata-containers 4.1.0 ships in its guest): the attestation agent (`ttrpc-aa`, sample attester, KBS
# token), the Confidential Data Hub (`cdh-oneshot`: unseal a sealed secret, get a KBS resource, through the
# AA over ttrpc, as in the guest) and our evaluator `cdh-config-judge` (evaluator/: parses a rendered
# cdh.toml with the hub's own CdhConfig / image-rs ImageConfig and a policy.json with image-rs's Policy,
# reporting every key the upstream types ignore).
#
#   scripts/judges/cdh/build.sh               # build (no-op when the cached build exists)
#   scripts/judges/cdh/build.sh --print-dir   # print the output folder, build nothing
#
# Output: $COCO_JUDGES_HOME/cdh/<key>/bin/{ttrpc-aa,cdh-oneshot,cdh-config-judge}, `features`, `done`.
#
# What the build copy changes in upstream's tree (nothing else is touched):
#   - image-rs's git dependencies (loopdev, oci-client) point at their pinned archives via `[patch]`;
#   - optional git dependencies that cargo resolves but this build never compiles (Azure guest attestation
#     SDK / azure-tpm, occlum DCAP, Intel tdx-attest-rs, NVIDIA attestation SDK, Intel eHSM client) are
#     empty stand-in packages of the same name and version (from upstream's Cargo.lock);
#   - our evaluator is added as a workspace member (so it resolves with upstream's Cargo.lock).
# Features: AA `--no-default-features --features bin,ttrpc,rust-crypto,kbs` (no hardware attester: the
# sample attester is always compiled, attester/src/lib.rs); CDH `--no-default-features --features bin,kbs`
# (the `cc_kbc` KBS client through the AA's ttrpc socket, confidential-data-hub/kms/src/plugins/kbs).
set -euo pipefail
JUDGE=cdh
# shellcheck source=scripts/judges/lib.sh
source "$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/lib.sh"

GC_REV=d4dce5ce62294cfa741225f7e5b4527ea276f326
LOOPDEV_REV=c9f91e8f0326ce8a3364ac911e81eb32328a5f27
OCI_REV=83092a67ebcaeed832eae090895a1c178d867344
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

command -v cargo >/dev/null || judge_unavailable "cargo is not installed (https://rustup.rs)"

gc_tgz="$(upstream_archive guest-components-d4dce5c.tar.gz https://github.com/confidential-containers/guest-components "$GC_REV")"
loop_tgz="$(upstream_archive loopdev-c9f91e8.tar.gz https://github.com/mdaffin/loopdev "$LOOPDEV_REV")"
oci_tgz="$(upstream_archive rust-oci-client-83092a6.tar.gz https://github.com/oras-project/rust-oci-client "$OCI_REV")"

toolchain="$(cd "$COCO_REPO" && rustc -V) / $(cd "$COCO_REPO" && cargo -V)"
KEY="$(judge_key "$gc_tgz" "$loop_tgz" "$oci_tgz" "${BASH_SOURCE[0]}" "$HERE/evaluator/Cargo.toml.in" \
  "$HERE/evaluator/src/main.rs" "$toolchain")"
OUT="$COCO_JUDGES_HOME/cdh/$KEY"

if [ "${1:-}" = "--print-dir" ]; then
  printf '%s\n' "$OUT"
  exit 0
fi
[ -f "$OUT/done" ] && exit 0

SRC="$COCO_JUDGES_HOME/src"
mkdir -p "$SRC"
unpack() {
  local tgz="$1" dir="$2" sum
  sum="$(sha256sum <"$tgz" | cut -d' ' -f1)"
  if [ -f "$SRC/$dir/.coco-unpacked" ] && [ "$(cat "$SRC/$dir/.coco-unpacked")" = "$sum" ]; then return 0; fi
  rm -rf "$SRC/$dir" "$SRC/$dir.part"
  mkdir -p "$SRC/$dir.part"
  tar -xzf "$tgz" -C "$SRC/$dir.part" --strip-components=1
  printf '%s\n' "$sum" >"$SRC/$dir.part/.coco-unpacked"
  mv "$SRC/$dir.part" "$SRC/$dir"
}
unpack "$loop_tgz" loopdev-c9f91e8
unpack "$oci_tgz" rust-oci-client-83092a6

# The guest-components tree is a build copy (its root manifest is edited): fresh for this key. Its path is
# stable, so the shared target dir reuses compiled workspace crates across rebuilds.
BUILD="$SRC/cdh-guest-components-d4dce5c"
rm -rf "$BUILD"
mkdir -p "$BUILD"
tar -xzf "$gc_tgz" -C "$BUILD" --strip-components=1
rm -f "$BUILD/rust-toolchain.toml" "$BUILD/rust-toolchain"
mkdir -p "$BUILD/coco-cdh-judge"
cp "$HERE/evaluator/Cargo.toml.in" "$BUILD/coco-cdh-judge/Cargo.toml"
cp -r "$HERE/evaluator/src" "$BUILD/coco-cdh-judge/src"

STUBS="$SRC/cdh-stubs"
rm -rf "$STUBS"
stub() {
  local name="$1" version="$2"
  mkdir -p "$STUBS/$name/src"
  printf '[package]\nname = "%s"\nversion = "%s"\nedition = "2021"\n\n[workspace]\n' "$name" "$version" \
    >"$STUBS/$name/Cargo.toml"
  printf '//! Empty stand-in: this optional dependency is never compiled by the cdh judge.\n' \
    >"$STUBS/$name/src/lib.rs"
}
stub azure-guest-attestation-sdk 0.1.0
stub azure-tpm 0.1.0
stub occlum_dcap 0.1.0
stub tdx-attest-rs 0.1.2
stub nv-attestation-sdk 1.2.2
stub ehsm_client 0.1.0

python3 - "$BUILD" "$SRC/loopdev-c9f91e8" "$SRC/rust-oci-client-83092a6" "$STUBS" <<'PY'
import pathlib, sys

build, loopdev, oci, stubs = (pathlib.Path(p) for p in sys.argv[1:])
root = build / "Cargo.toml"
text = root.read_text()
anchor = '    "protos",\n]\n'
if anchor not in text:
    sys.exit("guest-components Cargo.toml: workspace members list not found")
text = text.replace(anchor, '    "protos",\n    "coco-cdh-judge",\n]\n', 1)
text += f'''
[patch."https://github.com/mdaffin/loopdev"]
loopdev = {{ path = "{loopdev}" }}

[patch."https://github.com/oras-project/rust-oci-client"]
oci-client = {{ path = "{oci}" }}

[patch."https://github.com/Azure/azure-guest-attestation-sdk"]
azure-guest-attestation-sdk = {{ path = "{stubs}/azure-guest-attestation-sdk" }}
azure-tpm = {{ path = "{stubs}/azure-tpm" }}

[patch."https://github.com/occlum/occlum"]
occlum_dcap = {{ path = "{stubs}/occlum_dcap" }}

[patch."https://github.com/intel/confidential-computing.tee.dcap"]
tdx-attest-rs = {{ path = "{stubs}/tdx-attest-rs" }}

[patch."https://github.com/NVIDIA/attestation-sdk"]
nv-attestation-sdk = {{ path = "{stubs}/nv-attestation-sdk" }}

[patch."https://github.com/intel/ehsm"]
ehsm_client = {{ path = "{stubs}/ehsm_client" }}
'''
root.write_text(text)
PY

# Debian packages beyond a new machine's image (scripts/debs.sh checks what the build loads, not names).
deb_need protobuf-compiler "protoc, run by the ttrpc/protobuf code generators of the AA and CDH" \
  deb_has_cmd protoc || judge_die "protoc is needed"
deb_need libclang-dev "libclang and clang's headers, loaded by bindgen in loopdev's build script (image-rs)" \
  deb_has_libclang || judge_die "libclang is needed"

build() {
  cd "$BUILD"
  export CARGO_HOME="$COCO_CARGO_HOME" CARGO_TARGET_DIR="$COCO_CARGO_TARGET_DIR"
  local j="${COCO_CARGO_JOBS:-2}"
  cargo build --release -j"$j" -p attestation-agent --bin ttrpc-aa --no-default-features \
    --features bin,ttrpc,rust-crypto,kbs
  cargo build --release -j"$j" -p confidential-data-hub --bin cdh-oneshot --no-default-features \
    --features bin,kbs
  cargo build --release -j"$j" -p coco-cdh-judge
}
judge_timed cdh build

rm -rf "$OUT.part"
mkdir -p "$OUT.part/bin"
cp "$COCO_CARGO_TARGET_DIR/release/ttrpc-aa" "$COCO_CARGO_TARGET_DIR/release/cdh-oneshot" \
  "$COCO_CARGO_TARGET_DIR/release/cdh-config-judge" "$OUT.part/bin/"
cat >"$OUT.part/features" <<EOT
ttrpc-aa: --no-default-features --features bin,ttrpc,rust-crypto,kbs (sample attester)
cdh-oneshot: --no-default-features --features bin,kbs (cc_kbc through the AA)
cdh-config-judge: CdhConfig::from_file + serde_ignored over CdhConfig / image_rs::signature::Policy
toolchain: $toolchain
guest-components $GC_REV, loopdev $LOOPDEV_REV, rust-oci-client $OCI_REV
EOT
touch "$OUT.part/done"
rm -rf "$OUT"
mv "$OUT.part" "$OUT"
judge_log "ready: $OUT"
