# shellcheck shell=bash
# Shared helpers for the judges: recipes that build upstream's own code (Trustee's KBS, the Kata
# agent's policy engine, helm, a Kubernetes control plane, ...) into the tools cache, so the tests
# can make upstream judge what coco renders. Sourced by scripts/judges/<name>/build.sh.
#
# Rules every judge follows (see scripts/judges/README.md):
#   - inputs are the pinned archives in $COCO_UPSTREAM (../shared/upstream), or, where that folder is
#     absent, the same revision fetched from the public repository; nothing upstream is copied into
#     this repository;
#   - outputs go to $COCO_JUDGES_HOME/<name>/<key>/, where <key> hashes everything the build read
#     (archive checksums, recipe files, toolchain versions); a finished build leaves a `done` stamp
#     and is never rebuilt for the same key;
#   - Rust judges share one cargo home ($CARGO_HOME) and one target dir ($COCO_CARGO_TARGET_DIR),
#     so crates common to several judges compile once.

set -euo pipefail

# shellcheck source=scripts/env.sh
source "$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/scripts/env.sh"
# deb_need: the Debian packages a recipe needs beyond a new machine's image, installed when missing.
# shellcheck source=scripts/debs.sh
source "$COCO_REPO/scripts/debs.sh"

judge_log() { printf '[judge %s] %s\n' "${JUDGE:-?}" "$*" >&2; }
judge_die() { printf '[judge %s] ERROR: %s\n' "${JUDGE:-?}" "$*" >&2; exit 1; }

# Exit status 3 = "cannot be built here" (no upstream source reachable): judges.sh reports it as a
# skip outside CI and as a failure when COCO_REQUIRE_JUDGES=1.
judge_unavailable() { printf '[judge %s] UNAVAILABLE: %s\n' "${JUDGE:-?}" "$*" >&2; exit 3; }

# upstream_archive FILE REPO REV: path of the pinned archive FILE, from $COCO_UPSTREAM when it has it
# (checked against its SHA256SUMS), else made from a clone of REPO at REV into the judges cache
# (`git archive`, so the layout matches). Prints the path; exits 3 when neither is possible.
upstream_archive() {
  local file="$1" repo="$2" rev="$3"
  if [ -f "$COCO_UPSTREAM/$file" ]; then
    if [ -f "$COCO_UPSTREAM/SHA256SUMS" ] && grep -q " $file\$" "$COCO_UPSTREAM/SHA256SUMS"; then
      (cd "$COCO_UPSTREAM" && grep " $file\$" SHA256SUMS | sha256sum -c --status) ||
        judge_die "$COCO_UPSTREAM/$file does not match its SHA256SUMS line"
    fi
    printf '%s\n' "$COCO_UPSTREAM/$file"
    return 0
  fi
  local fetched="$COCO_JUDGES_HOME/upstream/$file"
  if [ -f "$fetched" ]; then printf '%s\n' "$fetched"; return 0; fi
  command -v git >/dev/null || judge_unavailable "$file: not in $COCO_UPSTREAM and git is not installed"
  local tmp
  tmp="$(mktemp -d)"
  judge_log "$file not in $COCO_UPSTREAM: fetching $repo at $rev"
  if ! (git init -q "$tmp/repo" && cd "$tmp/repo" &&
        git fetch -q --depth 1 "$repo" "$rev" && git checkout -q FETCH_HEAD) >&2 2>/dev/null; then
    rm -rf "$tmp"
    judge_unavailable "$file: not in $COCO_UPSTREAM and $repo@$rev could not be fetched (offline?)"
  fi
  mkdir -p "$(dirname "$fetched")"
  (cd "$tmp/repo" && git archive --format=tar.gz -o "$fetched.part" HEAD) && mv "$fetched.part" "$fetched"
  rm -rf "$tmp"
  printf '%s\n' "$fetched"
}

# judge_key PARTS...: a short hash of strings and files (files are hashed by content).
judge_key() {
  local p
  for p in "$@"; do
    if [ -f "$p" ]; then sha256sum <"$p"; else printf '%s\n' "$p"; fi
  done | sha256sum | cut -c1-16
}

# judge_timed NAME CMD...: run and append the wall time to $COCO_JUDGES_HOME/build-times.txt.
judge_timed() {
  local name="$1" start end; shift
  start=$(date +%s)
  "$@"
  end=$(date +%s)
  judge_log "built $name in $((end - start)) s"
  mkdir -p "$COCO_JUDGES_HOME"
  printf '%s\t%s s\t%s\n' "$name" "$((end - start))" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" >>"$COCO_JUDGES_HOME/build-times.txt"
}
