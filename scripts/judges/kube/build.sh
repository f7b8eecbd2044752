#!/usr/bin/env bash
# Judge `kube`: a local Kubernetes control plane built from upstream's Go modules, so the e2e
# tests can make `pulumi up` apply, schedule, roll out, refresh and destroy against a real API
# server (tests/conformance/kube_cluster.py starts it; docs/kube-judge.md describes it).
#
#   kube/   kube-apiserver, kube-controller-manager, kube-scheduler from k8s.io/kubernetes, built by
#           ONE `go build` so the packages they share compile once;
#   etcd/   etcd's server (go.etcd.io/etcd/server/v3, upstream's own main is etcdmain.Main);
#   kwok/   kwok (sigs.k8s.io/kwok): fakes the kubelet, so nodes are Ready and pods go Running and
#           Ready with no container runtime.
#
# Each folder is a wrapper module; its go.mod/go.sum pin every module version (the Go proxy and
# the checksum database verify them), so the key below is exactly the inputs.
#
#   build.sh               build (a no-op when the output's `done` stamp exists)
#   build.sh --print-dir   print the output folder for the current inputs; build nothing
set -euo pipefail
JUDGE=kube
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=scripts/judges/lib.sh
source "$HERE/../lib.sh"

# Kept in step with kube/go.mod: the version the binaries report (upstream's hack/lib/version.sh
# sets the same ldflags; without them they report v0.0.0-master).
KUBE_VERSION=v1.34.4

GO="$(command -v go || true)"
[ -z "$GO" ] && [ -x /usr/local/go/bin/go ] && GO=/usr/local/go/bin/go
[ -n "$GO" ] || judge_unavailable "no Go toolchain (go) on PATH"
go_version="$(GOTOOLCHAIN=local "$GO" env GOVERSION)"

inputs=("$HERE/build.sh")
for f in kube/go.mod kube/go.sum kube/tools.go etcd/go.mod etcd/go.sum etcd/main.go \
         kwok/go.mod kwok/go.sum kwok/tools.go; do
  inputs+=("$HERE/$f")
done
key="$(judge_key "go=$go_version" "${inputs[@]}")"
out="$COCO_JUDGES_HOME/kube/$key"

if [ "${1:-}" = "--print-dir" ]; then
  printf '%s\n' "$out"
  exit 0
fi
[ -f "$out/done" ] && exit 0

# Modules come from the Go proxy; without it (offline) the judge cannot be built here.
for mod in kube etcd kwok; do
  (cd "$HERE/$mod" && GOTOOLCHAIN=local GOFLAGS=-mod=readonly "$GO" mod download >&2) ||
    judge_unavailable "Go modules for $mod/go.mod cannot be downloaded (offline?)"
done

rm -rf "$out.part"
mkdir -p "$out.part/bin"
export GOTOOLCHAIN=local GOFLAGS="-mod=readonly -buildvcs=false" CGO_ENABLED=0
vpkg=k8s.io/component-base/version
minor="${KUBE_VERSION#v1.}"
minor="${minor%%.*}"
kube_ldflags="-s -w -X $vpkg.gitVersion=$KUBE_VERSION -X $vpkg.gitMajor=1 -X $vpkg.gitMinor=$minor"
kube_ldflags+=" -X $vpkg.gitTreeState=clean -X $vpkg.buildDate=1970-01-01T00:00:00Z"

build_kube() {
  (cd "$HERE/kube" && "$GO" build -trimpath -ldflags "$kube_ldflags" -o "$out.part/bin/" \
    k8s.io/kubernetes/cmd/kube-apiserver \
    k8s.io/kubernetes/cmd/kube-controller-manager \
    k8s.io/kubernetes/cmd/kube-scheduler)
}
build_etcd() {
  (cd "$HERE/etcd" && "$GO" build -trimpath -ldflags "-s -w" -o "$out.part/bin/etcd" .)
}
build_kwok() {
  (cd "$HERE/kwok" && "$GO" build -trimpath -ldflags "-s -w" -o "$out.part/bin/kwok" \
    sigs.k8s.io/kwok/cmd/kwok)
}
judge_timed "kube (etcd)" build_etcd
judge_timed "kube (kwok)" build_kwok
judge_timed "kube (kube-apiserver, kube-controller-manager, kube-scheduler)" build_kube

for b in kube-apiserver kube-controller-manager kube-scheduler etcd kwok; do
  [ -x "$out.part/bin/$b" ] || judge_die "$b was not built"
done
"$out.part/bin/kube-apiserver" --version >&2
printf '%s\n' "$go_version" >"$out.part/go-version"
rm -rf "$out"
mv "$out.part" "$out"
touch "$out/done"
judge_log "built into $out"
