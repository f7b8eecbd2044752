#!/usr/bin/env bash
# Judge `verifier`: Trustee v0.21.0's attestation service (its verifiers, RVPS and EAR token broker
# with the default or the stack's attestation policy) around a small evaluator of ours
# (evaluator/src/main.rs), so tests/conformance/test_real_evidence.py can run the AS on the real
# hardware evidence Trustee ships as test vectors (deps/verifier/test_data/), with each stack's
# rendered KBS config, attestation policy and reference values as the KBS pod loads them.
#
#   scripts/judges/verifier/build.sh               # build (no-op when the cached build exists)
#   scripts/judges/verifier/build.sh --print-dir   # print the output folder, build nothing
#
# Output: $COCO_JUDGES_HOME/verifier/<key>/bin/verifier-judge, test-data/ (the pinned archive's
# deps/verifier/test_data and attestation-service/tests/e2e, extracted at build time, never copied
# into the repository), default_cpu.rego (the AS's built-in policy), `features` and `done`
# (written last).
#
# Verifiers compiled: snp, az-snp-vtpm, nvidia (and sample, always). Not compiled: tdx, az-tdx-vtpm,
# sgx (they link Intel's DCAP quote verification library, not in Debian), csv, cca, se, tpm.
#
# The build copy of the trustee tree is patched like the kbs judge's (scripts/judges/kbs/build.sh):
# git dependencies point at the pinned archives, optional git dependencies never compiled are empty
# stand-ins, rust-toolchain.toml is dropped; the evaluator is added as one more workspace member so it
# builds against trustee's own Cargo.lock. The archives unpacked by the kbs judge are reused (same
# folders, same checksum stamps), and the cargo home and target dir are shared, so crates common to
# both judges compile once.
set -euo pipefail
JUDGE=verifier
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=scripts/judges/lib.sh
source "$HERE/../lib.sh"

TRUSTEE_REV=v0.21.0
GC_REV=da8d93f2797088a5f0636c8c1eeb31da73784fe8
SEV_REV=d487809188c3c92e397bc92e2cb2a85eb982c980
CORIM_REV=8d297d090521e1a8ee40c6a8bda97ff708e7302c

trustee_tgz="$(upstream_archive trustee-0.21.0.tar.gz https://github.com/confidential-containers/trustee "$TRUSTEE_REV")"
gc_tgz="$(upstream_archive guest-components-da8d93f.tar.gz https://github.com/confidential-containers/guest-components "$GC_REV")"
sev_tgz="$(upstream_archive sev-d487809.tar.gz https://github.com/virtee/sev "$SEV_REV")"
corim_tgz="$(upstream_archive corim-rs-8d297d0.tar.gz https://github.com/veraison/corim-rs "$CORIM_REV")"

toolchain="$(cd "$COCO_REPO" && rustc -V 2>/dev/null || echo norust) / $(cd "$COCO_REPO" && cargo -V 2>/dev/null || echo nocargo)"
KEY="$(judge_key "$trustee_tgz" "$gc_tgz" "$sev_tgz" "$corim_tgz" "${BASH_SOURCE[0]}" \
  "$HERE/evaluator/Cargo.toml.in" "$HERE/evaluator/src/main.rs" "$toolchain")"
OUT="$COCO_JUDGES_HOME/verifier/$KEY"

if [ "${1:-}" = "--print-dir" ]; then
  printf '%s\n' "$OUT"
  exit 0
fi
[ -f "$OUT/done" ] && exit 0
command -v cargo >/dev/null || judge_unavailable "cargo is not installed (https://rustup.rs)"

SRC="$COCO_JUDGES_HOME/src"
mkdir -p "$SRC"

# unpack ARCHIVE DIR: as in the kbs recipe (same folder names and stamps, so either judge reuses the
# other's extraction).
unpack() {
  local tgz="$1" dir="$2" sum
  sum="$(sha256sum <"$tgz" | cut -d' ' -f1)"
  if [ -f "$SRC/$dir/.coco-unpacked" ] && [ "$(cat "$SRC/$dir/.coco-unpacked")" = "$sum" ]; then return 0; fi
  rm -rf "$SRC/$dir" "$SRC/$dir.part.$$"
  mkdir -p "$SRC/$dir.part.$$"
  tar -xzf "$tgz" -C "$SRC/$dir.part.$$" --strip-components=1
  printf '%s\n' "$sum" >"$SRC/$dir.part.$$/.coco-unpacked"
  mv "$SRC/$dir.part.$$" "$SRC/$dir"
}
unpack "$gc_tgz" guest-components-da8d93f
unpack "$sev_tgz" sev-d487809
unpack "$corim_tgz" corim-rs-8d297d0

BUILD="$SRC/verifier-trustee-0.21.0"
rm -rf "$BUILD"
mkdir -p "$BUILD"
tar -xzf "$trustee_tgz" -C "$BUILD" --strip-components=1
rm -f "$BUILD/rust-toolchain.toml"
mkdir -p "$BUILD/coco-verifier-judge/src"
cp "$HERE/evaluator/Cargo.toml.in" "$BUILD/coco-verifier-judge/Cargo.toml"
cp "$HERE/evaluator/src/main.rs" "$BUILD/coco-verifier-judge/src/main.rs"

# Empty stand-ins (name and version from trustee's Cargo.lock) for optional git dependencies never compiled.
STUBS="$SRC/verifier-stubs"
rm -rf "$STUBS"
stub() {
  local name="$1" version="$2"
  mkdir -p "$STUBS/$name/src"
  printf '[package]\nname = "%s"\nversion = "%s"\nedition = "2021"\n\n[workspace]\n' "$name" "$version" \
    >"$STUBS/$name/Cargo.toml"
  printf '//! Empty stand-in: this optional dependency is never compiled by the verifier judge.\n' \
    >"$STUBS/$name/src/lib.rs"
}
stub intel-tee-quote-verification-rs 0.3.0
stub veraison-apiclient 0.0.2
stub ccatoken 0.1.0
stub azure-guest-attestation-sdk 0.1.0
stub nv-attestation-sdk 1.2.0
stub occlum_dcap 0.1.0

GC="$SRC/guest-components-da8d93f"
python3 - "$BUILD" "$GC" "$SRC/sev-d487809" "$SRC/corim-rs-8d297d0" "$STUBS" <<'PY'
import pathlib, sys

build, gc, sev, corim, stubs = (pathlib.Path(p) for p in sys.argv[1:])
root = build / "Cargo.toml"
text = root.read_text()
old = '[patch.crates-io]\nsev = { git = "https://github.com/virtee/sev", rev = "d487809188c3c92e397bc92e2cb2a85eb982c980" }\n'
if old not in text:
    sys.exit("trustee Cargo.toml: [patch.crates-io] sev line not found")
text = text.replace(old, f'[patch.crates-io]\nsev = {{ path = "{sev}" }}\n')
members = '[workspace]\nmembers = [\n    "kbs",\n'
if members not in text:
    sys.exit("trustee Cargo.toml: workspace members not found")
text = text.replace(members, '[workspace]\nmembers = [\n    "coco-verifier-judge",\n    "kbs",\n')
text += f'''
[patch."https://github.com/confidential-containers/guest-components.git"]
kbs_protocol = {{ path = "{gc}/attestation-agent/kbs_protocol" }}
kms = {{ path = "{gc}/confidential-data-hub/kms" }}
attester = {{ path = "{gc}/attestation-agent/attester" }}
attestation-agent = {{ path = "{gc}/attestation-agent/attestation-agent" }}
crypto = {{ path = "{gc}/attestation-agent/deps/crypto" }}
resource_uri = {{ path = "{gc}/attestation-agent/deps/resource_uri" }}
protos = {{ path = "{gc}/protos" }}

[patch."https://github.com/veraison/corim-rs"]
corim-rs = {{ path = "{corim}" }}

[patch."https://github.com/intel/confidential-computing.tee.dcap"]
intel-tee-quote-verification-rs = {{ path = "{stubs}/intel-tee-quote-verification-rs" }}

[patch."https://github.com/veraison/rust-apiclient"]
veraison-apiclient = {{ path = "{stubs}/veraison-apiclient" }}

[patch."https://github.com/veraison/rust-ccatoken"]
ccatoken = {{ path = "{stubs}/ccatoken" }}

[patch."https://github.com/Azure/azure-guest-attestation-sdk"]
azure-guest-attestation-sdk = {{ path = "{stubs}/azure-guest-attestation-sdk" }}

[patch."https://github.com/NVIDIA/attestation-sdk"]
nv-attestation-sdk = {{ path = "{stubs}/nv-attestation-sdk" }}

[patch."https://github.com/occlum/occlum"]
occlum_dcap = {{ path = "{stubs}/occlum_dcap" }}
'''
root.write_text(text)
PY

# Debian packages beyond a new machine's image (scripts/debs.sh checks what the build loads).
deb_need protobuf-compiler "protoc, run by the build scripts of Trustee's gRPC protocol crates (RVPS)" \
  deb_has_cmd protoc || judge_die "protoc is needed"
# tss-esapi-sys 0.6 (az-snp-vtpm verifier) finds the TPM2 software stack with pkg-config
# (its build.rs probes these modules) and links them.
deb_need libtss2-dev "the TPM2 software stack headers and libraries tss-esapi-sys links (az-snp-vtpm verifier)" \
  pkg-config --exists tss2-sys tss2-esys tss2-tctildr tss2-mu || judge_die "libtss2-dev is needed"

build() {
  cd "$BUILD"
  export CARGO_HOME="$COCO_CARGO_HOME" CARGO_TARGET_DIR="$COCO_CARGO_TARGET_DIR"
  cargo build --release -j"${COCO_CARGO_JOBS:-2}" -p coco-verifier-judge
}
judge_timed verifier build

rm -rf "$OUT.part"
mkdir -p "$OUT.part/bin" "$OUT.part/test-data"
cp "$COCO_CARGO_TARGET_DIR/release/verifier-judge" "$OUT.part/bin/"
# The vectors, from the pinned archive (extracted into the cache, never into the repository).
cp -r "$BUILD/deps/verifier/test_data/." "$OUT.part/test-data/"
mkdir -p "$OUT.part/test-data/e2e"
cp "$BUILD/attestation-service/tests/e2e/evidence.json" "$OUT.part/test-data/e2e/snp-evidence.json"
# The default CPU policy the AS compiled in, for tests that read it without the TDX verifier.
cp "$BUILD/attestation-service/src/ear_token/ear_default_policy_cpu.rego" "$OUT.part/default_cpu.rego"
cat >"$OUT.part/features" <<EOT
verifier-judge: attestation-service --no-default-features --features snp-verifier,az-snp-vtpm-verifier,nvidia-verifier
verifiers compiled: sample, snp, az-snp-vtpm, nvidia; not compiled: tdx, az-tdx-vtpm, sgx (Intel DCAP), csv, cca, se, tpm
toolchain: $toolchain
trustee $TRUSTEE_REV, guest-components $GC_REV, sev $SEV_REV, corim-rs $CORIM_REV
EOT
touch "$OUT.part/done"
rm -rf "$OUT"
mv "$OUT.part" "$OUT"
judge_log "ready: $OUT"
