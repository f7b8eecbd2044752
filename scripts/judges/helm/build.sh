#!/usr/bin/env bash
# Judge `helm`: the real Helm binary, built from its Go module, plus the upstream charts coco installs,
# laid out with their dependencies resolved locally, so `helm template` renders exactly what a
# `pulumi up` would install (tests/conformance/test_charts.py).
#
#   scripts/judges/helm/build.sh              # build (a no-op when the key's `done` exists)
#   scripts/judges/helm/build.sh --print-dir  # print the output folder, build nothing
#
# Output, under $COCO_JUDGES_HOME/helm/<key>/:
#   bin/helm                                  helm.sh/helm/v3 at HELM_VERSION (`go install`, so the
#                                             module's own go.sum verifies every dependency)
#   charts/kata-deploy-<v>/                   kata-deploy 3.29.0, 3.31.0, 4.0.0, 4.1.0
#   charts/peerpods-<v>/                      peerpods 0.3.0, 0.4.0 with charts/ = peerpod-ctrl, webhook
#                                             and the kata-deploy chart of the version its Chart.yaml pins
#   charts/gpu-operator-<v>/                  GPU Operator v26.3.1, v26.7.0 (NFD vendored by upstream)
#   src/cloud-api-adaptor-<tag>/entrypoint.sh the adaptor's start-up checks (which peer-pods-cm keys)
#   src/kata-deploy-4.1.0/                    kata-deploy's binary sources (what it does on the nodes)
#
# Why local dependencies: the charts depend on OCI registries (ghcr.io, registry.k8s.io) that are not
# reachable here; the pinned archives of the same revisions take their place. kata-deploy < 4.1.0
# lists node-feature-discovery as a dependency without vendoring it, and helm refuses a chart whose
# dependency is missing even when it is disabled (as coco always disables it): those get the NFD chart
# upstream vendors elsewhere (0.18.3 from the GPU Operator v26.3.1 archive, 0.19.0 from kata 4.1.0).
set -euo pipefail
JUDGE=helm
# shellcheck source=scripts/judges/lib.sh
source "$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/lib.sh"

# helm v3: pulumi-kubernetes (the provider that installs these charts, scripts/engine/kubernetes)
# embeds helm.sh/helm/v3, so the v3 line is what renders at `pulumi up`; v3.22.0 is the newest
# v3 the Go module proxy serves (`go list -m -versions helm.sh/helm/v3`).
HELM_VERSION="v3.22.0"
HELM_MODULE="helm.sh/helm/v3"

KATA_DEPLOY_VERSIONS=(3.29.0 3.31.0 4.0.0)
KATA_ARCHIVE="kata-containers-4.1.0.tar.gz"
CAA_TAGS=(v0.21.0 v0.22.0)
GPU_TAGS=(v26.3.1 v26.7.0)

go_bin="$(command -v go || true)"
[ -z "$go_bin" ] && [ -x /usr/local/go/bin/go ] && go_bin=/usr/local/go/bin/go
[ -n "$go_bin" ] || judge_unavailable "no Go toolchain to build helm"
go_version="$(GOTOOLCHAIN=local "$go_bin" env GOVERSION)"

archives=()
for v in "${KATA_DEPLOY_VERSIONS[@]}"; do
  archives+=("$(upstream_archive "kata-deploy-chart-$v.tar.gz" https://github.com/kata-containers/kata-containers "$v")")
done
kata_archive="$(upstream_archive "$KATA_ARCHIVE" https://github.com/kata-containers/kata-containers 4.1.0)"
archives+=("$kata_archive")
for t in "${CAA_TAGS[@]}"; do
  archives+=("$(upstream_archive "cloud-api-adaptor-charts-$t.tar.gz" https://github.com/confidential-containers/cloud-api-adaptor "$t")")
done
for t in "${GPU_TAGS[@]}"; do
  archives+=("$(upstream_archive "gpu-operator-chart-$t.tar.gz" https://github.com/NVIDIA/gpu-operator "$t")")
done

key="$(judge_key "helm=$HELM_MODULE@$HELM_VERSION" "go=$go_version" "${BASH_SOURCE[0]}" "${archives[@]}")"
out="$COCO_JUDGES_HOME/helm/$key"
if [ "${1:-}" = "--print-dir" ]; then
  printf '%s\n' "$out"
  exit 0
fi
[ -f "$out/done" ] && exit 0

# unpack ARCHIVE DIR SUBPATH: extract ARCHIVE into DIR and print the folder ending in SUBPATH (the
# pinned archives carry a `<repo>-<rev>/` prefix, a `git archive` fetched by lib.sh does not).
unpack() {
  local archive="$1" dir="$2" sub="$3" found
  mkdir -p "$dir"
  tar -xzf "$archive" -C "$dir"
  if [ -e "$dir/$sub" ]; then found="$dir/$sub"; else
    found="$(cd "$dir" && ls -d */"$sub" 2>/dev/null | head -1)"
    [ -n "$found" ] && found="$dir/$found"
  fi
  [ -n "$found" ] && [ -e "$found" ] || judge_die "$(basename "$archive"): no $sub in it"
  printf '%s\n' "$found"
}

build_tmp=""
cleanup() { [ -z "$build_tmp" ] || rm -rf "$build_tmp"; }
trap cleanup EXIT

build() {
  local tmp work
  tmp="$(mktemp -d "$COCO_JUDGES_HOME/helm/.build.XXXXXX")"
  build_tmp="$tmp"
  work="$tmp/out"
  mkdir -p "$work/bin" "$work/charts" "$work/src"

  judge_log "building helm $HELM_VERSION with $go_version"
  GOBIN="$work/bin" GOFLAGS=-buildvcs=false GOTOOLCHAIN=local "$go_bin" install \
    -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION" \
    "$HELM_MODULE/cmd/helm@$HELM_VERSION"

  local v t a src
  # kata-deploy charts: 3.29.0, 3.31.0, 4.0.0 from their chart archives, 4.1.0 from the source archive.
  local i=0
  for v in "${KATA_DEPLOY_VERSIONS[@]}"; do
    src="$(unpack "${archives[$i]}" "$tmp/kd-$v" tools/packaging/kata-deploy)"
    cp -a "$src/helm-chart/kata-deploy" "$work/charts/kata-deploy-$v"
    i=$((i + 1))
  done
  src="$(unpack "$kata_archive" "$tmp/kata-4.1.0" tools/packaging/kata-deploy)"
  cp -a "$src/helm-chart/kata-deploy" "$work/charts/kata-deploy-4.1.0"
  cp -a "$src/binary" "$work/src/kata-deploy-4.1.0"

  # GPU Operator: upstream vendors node-feature-discovery in charts/ at both tags.
  for t in "${GPU_TAGS[@]}"; do
    a="$(upstream_archive "gpu-operator-chart-$t.tar.gz" https://github.com/NVIDIA/gpu-operator "$t")"
    cp -a "$(unpack "$a" "$tmp/gpu-$t" deployments/gpu-operator)" "$work/charts/gpu-operator-$t"
    [ -f "$work/charts/gpu-operator-$t/charts/node-feature-discovery/Chart.yaml" ] ||
      judge_die "gpu-operator $t: no vendored node-feature-discovery chart"
  done

  # node-feature-discovery for kata-deploy < 4.1.0 (dependency "~0.18.0" / "~0.19.0", never enabled
  # by coco, but helm requires it present): the copies upstream vendors, as released.
  local nfd018="$work/charts/gpu-operator-v26.3.1/charts/node-feature-discovery"
  local nfd019="$tmp/nfd-0.19.0"
  mkdir -p "$nfd019"
  tar -xzf "$work/charts/kata-deploy-4.1.0/charts/node-feature-discovery-0.19.0.tgz" -C "$nfd019"
  for v in "${KATA_DEPLOY_VERSIONS[@]}"; do
    mkdir -p "$work/charts/kata-deploy-$v/charts"
    case "$v" in
      3.*) cp -a "$nfd018" "$work/charts/kata-deploy-$v/charts/node-feature-discovery" ;;
      4.*) cp -a "$nfd019/node-feature-discovery" "$work/charts/kata-deploy-$v/charts/node-feature-discovery" ;;
    esac
  done

  # peerpods charts with their three dependencies resolved locally.
  for t in "${CAA_TAGS[@]}"; do
    a="$(upstream_archive "cloud-api-adaptor-charts-$t.tar.gz" https://github.com/confidential-containers/cloud-api-adaptor "$t")"
    src="$(unpack "$a" "$tmp/caa-$t" src/cloud-api-adaptor)"
    src="$(dirname "$src")"
    v="$(sed -n 's/^version: *//p' "$src/cloud-api-adaptor/install/charts/peerpods/Chart.yaml" | tr -d '"')"
    local dest="$work/charts/peerpods-$v"
    cp -a "$src/cloud-api-adaptor/install/charts/peerpods" "$dest"
    mkdir -p "$dest/charts"
    cp -a "$src/peerpod-ctrl/chart" "$dest/charts/peerpodctrl"
    cp -a "$src/webhook/chart" "$dest/charts/peerpods-webhook"
    local kd
    kd="$(awk '/- name: kata-deploy/{f=1} f && /version:/{gsub(/[" ]/,"",$2); print $2; exit}' \
      "$dest/Chart.yaml")"
    [ -d "$work/charts/kata-deploy-$kd" ] || judge_die "peerpods $v wants kata-deploy $kd: no archive"
    cp -a "$work/charts/kata-deploy-$kd" "$dest/charts/kata-deploy"
    mkdir -p "$work/src/cloud-api-adaptor-$t"
    cp "$src/cloud-api-adaptor/entrypoint.sh" "$work/src/cloud-api-adaptor-$t/entrypoint.sh"
  done

  # Every chart must load with its dependencies satisfied (what `helm template` checks first).
  local c
  for c in "$work"/charts/*/; do
    "$work/bin/helm" dependency list "$c" | awk 'NR>1 && NF && $NF != "ok" && $NF != "unpacked" {bad=1; print} END {exit bad}' ||
      judge_die "$(basename "$c"): dependencies not resolved"
  done
  "$work/bin/helm" version --short >"$work/helm-version.txt"

  rm -rf "$out"
  mkdir -p "$(dirname "$out")"
  mv "$work" "$out"
  date -u +%Y-%m-%dT%H:%M:%SZ >"$out/done"
}

mkdir -p "$COCO_JUDGES_HOME/helm"
judge_timed helm build
judge_log "ready: $out"
