#!/usr/bin/env bash
# Judge `kbs`: Trustee v0.21.0's KBS (built-in Attestation Service and RVPS) and `kbs-client` (sample
# attester), built from the pinned upstream sources, so tests/conformance/test_kbs.py can start the real
# KBS on what the program renders and attest against it.
#
#   scripts/judges/kbs/build.sh               # build (no-op when the cached build exists)
#   scripts/judges/kbs/build.sh --print-dir   # print the output folder, build nothing
#
# Output: $COCO_JUDGES_HOME/kbs/<key>/bin/{kbs,kbs-client}, plus `features` (what was compiled in) and
# `done` (written last).
#
# What the build copy changes in upstream's tree, and why (nothing else is touched):
#   - git dependencies (guest-components, virtee/sev, veraison/corim-rs) point at the pinned archives via
#     `[patch."<git url>"]`, so the build is offline apart from crates.io;
#   - the optional git dependencies that cargo resolves but this build never compiles (Intel DCAP QVL,
#     Azure guest attestation SDK, NVIDIA attestation SDK, occlum DCAP, veraison ccatoken/apiclient) are
#     satisfied by empty stand-in packages of the same name and version;
#   - kbs/Cargo.toml's x86_64 `attestation-service` features: `all-verifier` (which needs Intel's DCAP
#     library, not in Debian) becomes `snp-verifier` (pure Rust + OpenSSL). The sample verifier is always
#     compiled (deps/verifier/src/lib.rs); TDX is not (its verifier links Intel's QVL);
#   - OpenSSL is vendored (`openssl/vendored`): cose-rust needs OpenSSL >= 3.2, Debian 12 has 3.0;
#   - rust-toolchain.toml (1.93.0) is dropped: the machine's stable toolchain builds it and is in the key.
# The kbs features are those of upstream's built-in-AS image minus what needs external services:
# `--no-default-features --features coco-as-builtin` (kbs/Makefile, kbs/docker/Dockerfile).
#
# The cargo home and target dir are shared with the other Rust judges; guest-components is unpacked at a
# path named by its revision only ($COCO_JUDGES_HOME/src/guest-components-da8d93f), so a later judge that
# builds the guest side (attestation agent, CDH) from the same revision reuses the compiled crates.
set -euo pipefail
JUDGE=kbs
# shellcheck source=scripts/judges/lib.sh
source "$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/lib.sh"

TRUSTEE_REV=v0.21.0
GC_REV=da8d93f2797088a5f0636c8c1eeb31da73784fe8
SEV_REV=d487809188c3c92e397bc92e2cb2a85eb982c980
CORIM_REV=8d297d090521e1a8ee40c6a8bda97ff708e7302c

command -v cargo >/dev/null || judge_unavailable "cargo is not installed (https://rustup.rs)"

trustee_tgz="$(upstream_archive trustee-0.21.0.tar.gz https://github.com/confidential-containers/trustee "$TRUSTEE_REV")"
gc_tgz="$(upstream_archive guest-components-da8d93f.tar.gz https://github.com/confidential-containers/guest-components "$GC_REV")"
sev_tgz="$(upstream_archive sev-d487809.tar.gz https://github.com/virtee/sev "$SEV_REV")"
corim_tgz="$(upstream_archive corim-rs-8d297d0.tar.gz https://github.com/veraison/corim-rs "$CORIM_REV")"

# The toolchain is read outside the trustee tree (its rust-toolchain.toml would name another one).
toolchain="$(cd "$COCO_REPO" && rustc -V) / $(cd "$COCO_REPO" && cargo -V)"
KEY="$(judge_key "$trustee_tgz" "$gc_tgz" "$sev_tgz" "$corim_tgz" "${BASH_SOURCE[0]}" "$toolchain")"
OUT="$COCO_JUDGES_HOME/kbs/$KEY"

if [ "${1:-}" = "--print-dir" ]; then
  printf '%s\n' "$OUT"
  exit 0
fi
[ -f "$OUT/done" ] && exit 0

SRC="$COCO_JUDGES_HOME/src"
mkdir -p "$SRC"

# unpack ARCHIVE DIR: extract ARCHIVE (a `git archive` with one top folder) to $SRC/DIR once; the stamp
# holds the archive's checksum, so a changed archive is re-extracted.
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
unpack "$gc_tgz" guest-components-da8d93f
unpack "$sev_tgz" sev-d487809
unpack "$corim_tgz" corim-rs-8d297d0

# The trustee tree is a build copy (its manifests are edited below): always fresh for this key.
BUILD="$SRC/kbs-trustee-0.21.0"
rm -rf "$BUILD"
mkdir -p "$BUILD"
tar -xzf "$trustee_tgz" -C "$BUILD" --strip-components=1
rm -f "$BUILD/rust-toolchain.toml"

# Empty stand-ins (name and version from trustee's Cargo.lock) for optional git dependencies never compiled.
STUBS="$SRC/kbs-stubs"
rm -rf "$STUBS"
stub() {
  local name="$1" version="$2"
  mkdir -p "$STUBS/$name/src"
  printf '[package]\nname = "%s"\nversion = "%s"\nedition = "2021"\n\n[workspace]\n' "$name" "$version" \
    >"$STUBS/$name/Cargo.toml"
  printf '//! Empty stand-in: this optional dependency is never compiled by the kbs judge.\n' \
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
import pathlib, re, sys

build, gc, sev, corim, stubs = (pathlib.Path(p) for p in sys.argv[1:])
root = build / "Cargo.toml"
text = root.read_text()
# Upstream's own patch of sev (a git revision) becomes the local archive of that revision.
old = '[patch.crates-io]\nsev = { git = "https://github.com/virtee/sev", rev = "d487809188c3c92e397bc92e2cb2a85eb982c980" }\n'
if old not in text:
    sys.exit("trustee Cargo.toml: [patch.crates-io] sev line not found")
text = text.replace(old, f'[patch.crates-io]\nsev = {{ path = "{sev}" }}\n')
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

kbs = build / "kbs" / "Cargo.toml"
text = kbs.read_text()
x86 = re.compile(
    r"(\[target\.'cfg\(not\(any\(target_arch = \"s390x\", target_arch = \"aarch64\"\)\)\)'\.dependencies\]\n"
    r"attestation-service = \{ path = \"../attestation-service\", default-features = false, features = \[\n)"
    r"    \"all-verifier\",\n"
)
text, n = x86.subn(r'\1    "snp-verifier",\n', text)
if n != 1:
    sys.exit("kbs/Cargo.toml: x86_64 attestation-service all-verifier line not found")
if "\nopenssl.workspace = true\n" not in text:
    sys.exit("kbs/Cargo.toml: openssl dependency not found")
text = text.replace(
    "\nopenssl.workspace = true\n", '\nopenssl = { workspace = true, features = ["vendored"] }\n'
)
kbs.write_text(text)
PY

# Debian packages beyond a new machine's image (scripts/debs.sh checks what the build loads, not names).
deb_need protobuf-compiler "protoc, run by the build scripts of Trustee's gRPC/ttrpc protocol crates" \
  deb_has_cmd protoc || judge_die "protoc is needed"

build() {
  cd "$BUILD"
  export CARGO_HOME="$COCO_CARGO_HOME" CARGO_TARGET_DIR="$COCO_CARGO_TARGET_DIR"
  # One invocation: the two binaries share one feature resolution, so their common crates
  # compile once (two invocations resolve features differently and rebuild each other's).
  cargo build --release -j"${COCO_CARGO_JOBS:-2}" -p kbs -p kbs-client --no-default-features \
    --features kbs/coco-as-builtin,kbs-client/default-tls
}
judge_timed kbs build

rm -rf "$OUT.part"
mkdir -p "$OUT.part/bin"
cp "$COCO_CARGO_TARGET_DIR/release/kbs" "$COCO_CARGO_TARGET_DIR/release/kbs-client" "$OUT.part/bin/"
cat >"$OUT.part/features" <<EOF
kbs: --no-default-features --features coco-as-builtin (built-in AS + RVPS); verifiers: sample, snp
kbs-client: default-tls (its default features; sample attester)
toolchain: $toolchain
trustee $TRUSTEE_REV, guest-components $GC_REV, sev $SEV_REV, corim-rs $CORIM_REV
EOF
touch "$OUT.part/done"
rm -rf "$OUT"
mv "$OUT.part" "$OUT"
judge_log "ready: $OUT"
