#!/usr/bin/env bash
# Judge `kube-score`: the Kubernetes manifest linter kube-score (github.com/zegl/kube-score), built
# from its Go module, so tests/conformance/test_kube_score.py can lint every manifest coco renders
# for every stack that renders, and fail on any finding the checked-in allow list
# (tests/conformance/kube_score_allow.yaml) does not justify (docs/hardening.md).
#
#   scripts/judges/kube-score/build.sh              # build (a no-op when the key's `done` exists)
#   scripts/judges/kube-score/build.sh --print-dir  # print the output folder, build nothing
#
# Output, under $COCO_JUDGES_HOME/kube-score/<version>-<key>/:
#   bin/kube-score    `go install github.com/zegl/kube-score/cmd/kube-score@KUBE_SCORE_VERSION`:
#                     the module's own go.mod and go.sum (checked against the checksum database)
#                     pin every dependency, so module@version and the toolchain are the inputs.
#
# Why kube-score: it is a linter of Kubernetes objects (security context, resources, probes,
# NetworkPolicy and PodDisruptionBudget coverage), not a schema validator, and the Go module
# proxy serves it. v1.20.0 is the newest version the proxy here serves
# (`go list -m -versions github.com/zegl/kube-score`).
set -euo pipefail
JUDGE=kube-score
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=scripts/judges/lib.sh
source "$HERE/../lib.sh"

KUBE_SCORE_MODULE=github.com/zegl/kube-score
KUBE_SCORE_VERSION=v1.20.0

GO="$(command -v go || true)"
[ -z "$GO" ] && [ -x /usr/local/go/bin/go ] && GO=/usr/local/go/bin/go
[ -n "$GO" ] || judge_unavailable "no Go toolchain (go) on PATH"
go_version="$(GOTOOLCHAIN=local "$GO" env GOVERSION)"

key="$(judge_key "kube-score=$KUBE_SCORE_MODULE@$KUBE_SCORE_VERSION" "go=$go_version" "$HERE/build.sh")"
out="$COCO_JUDGES_HOME/kube-score/$KUBE_SCORE_VERSION-$key"

if [ "${1:-}" = "--print-dir" ]; then
  printf '%s\n' "$out"
  exit 0
fi
[ -f "$out/done" ] && exit 0

(GOTOOLCHAIN=local GOFLAGS=-mod=mod "$GO" mod download "$KUBE_SCORE_MODULE@$KUBE_SCORE_VERSION" >&2) ||
  judge_unavailable "$KUBE_SCORE_MODULE@$KUBE_SCORE_VERSION cannot be downloaded (offline?)"

rm -rf "$out.part"
mkdir -p "$out.part/bin"
build_kube_score() {
  # The version stamp goreleaser sets (cmd/kube-score/cmd_version.go), so `kube-score version`
  # names what was built.
  GOBIN="$out.part/bin" GOTOOLCHAIN=local GOFLAGS=-buildvcs=false CGO_ENABLED=0 "$GO" install \
    -p "${COCO_GO_JOBS:-2}" -trimpath -ldflags "-s -w -X main.version=${KUBE_SCORE_VERSION#v}" \
    "$KUBE_SCORE_MODULE/cmd/kube-score@$KUBE_SCORE_VERSION"
}
judge_timed "kube-score $KUBE_SCORE_VERSION" build_kube_score

[ -x "$out.part/bin/kube-score" ] || judge_die "kube-score was not built"
"$out.part/bin/kube-score" version >&2
printf '%s\n' "$go_version" >"$out.part/go-version"
rm -rf "$out"
mv "$out.part" "$out"
touch "$out/done"
judge_log "built into $out"
