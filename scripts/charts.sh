#!/usr/bin/env bash
# The upstream Helm charts a stack can name by a local path, made available offline: today the
# kata-deploy chart 4.1.0 the dev stack renders into out/dev (`coco:cluster.install.chart:
# ./.charts/kata-deploy-4.1.0`), so `./scripts/up.sh` on a fresh machine reaches no registry.
#
#   scripts/charts.sh            # idempotent; ~0.1 s when the chart is in place (scripts/setup.sh runs it)
#   scripts/charts.sh --print-dir  # print the cache folder the link points at, extract nothing
#
# Where the chart comes from: upstream's own source release, the pinned
# `kata-containers-4.1.0.tar.gz` in $COCO_UPSTREAM (checked against its SHA256SUMS line), or,
# where that folder is absent, the same tag fetched from GitHub (scripts/judges/lib.sh
# `upstream_archive`). kata-deploy 4.1.0's chart vendors its one dependency
# (`charts/node-feature-discovery-0.19.0.tgz`, see its Chart.yaml), so the folder is complete as
# released: `helm template` needs nothing else, and coco keeps the NFD subchart disabled anyway.
#
# Layout (nothing upstream is copied into this repository):
#   $COCO_TOOLS_HOME/charts/<sha256 of the archive, 16 hex>/kata-deploy-4.1.0/   the chart as released
#   $COCO_TOOLS_HOME/charts/<same>/kata-deploy-4.1.0.done   stamp, written last (outside the chart:
#                                                   Helm would load any file inside it as chart data)
#   .charts/kata-deploy-4.1.0 -> that folder        gitignored link, the stable path stacks name
#
# Exit status: 0 done; 3 the archive cannot be had (offline and not in $COCO_UPSTREAM): the
# dev stack then stops at preview with `coco:cluster.install.chart` and this fix.
set -euo pipefail
JUDGE=charts
# shellcheck source=scripts/judges/lib.sh
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/judges/lib.sh"

KATA_VERSION="4.1.0"
KATA_ARCHIVE="kata-containers-$KATA_VERSION.tar.gz"
CHART_SUBDIR="tools/packaging/kata-deploy/helm-chart/kata-deploy"
NAME="kata-deploy-$KATA_VERSION"

archive="$(upstream_archive "$KATA_ARCHIVE" https://github.com/kata-containers/kata-containers "$KATA_VERSION")"
sum="$(sha256sum <"$archive" | cut -c1-16)"
cache="$COCO_TOOLS_HOME/charts/$sum"
chart="$cache/$NAME"
if [ "${1:-}" = "--print-dir" ]; then
  printf '%s\n' "$chart"
  exit 0
fi

link_dir="$COCO_REPO/.charts"
link="$link_dir/$NAME"

extract() {
  local tmp member
  mkdir -p "$COCO_TOOLS_HOME/charts"
  tmp="$(mktemp -d "$COCO_TOOLS_HOME/charts/.extract.XXXXXX")"
  # The pinned archive carries a `kata-containers-<v>/` prefix; a `git archive` fetched by
  # lib.sh has none: find the chart's Chart.yaml either way.
  member="$(tar -tzf "$archive" | grep -E "(^|/)$CHART_SUBDIR/Chart\.yaml\$" | head -n1 || true)"
  if [ -z "$member" ]; then
    rm -rf "$tmp"
    judge_die "$archive: no $CHART_SUBDIR/Chart.yaml in it"
  fi
  member="${member%/Chart.yaml}"
  tar -xzf "$archive" -C "$tmp" "$member"
  local got
  got="$(sed -n 's/^version: *//p' "$tmp/$member/Chart.yaml" | tr -d '"' | head -n1)"
  [ "$got" = "$KATA_VERSION" ] || { rm -rf "$tmp"; judge_die "$archive: chart version $got, not $KATA_VERSION"; }
  [ -f "$tmp/$member/charts/node-feature-discovery-0.19.0.tgz" ] ||
    { rm -rf "$tmp"; judge_die "$archive: the chart's vendored node-feature-discovery-0.19.0.tgz is missing"; }
  rm -rf "$chart"
  mkdir -p "$cache"
  mv "$tmp/$member" "$chart"
  rm -rf "$tmp"
  date -u +%Y-%m-%dT%H:%M:%SZ >"$chart.done"
  judge_log "extracted $NAME from $(basename "$archive") into $chart"
}

# A link already at a finished extraction of this very archive (same checksum key) is kept, even
# under another tools home: a setup.sh run with a throwaway COCO_TOOLS_HOME must not repoint the
# repo's link into a folder that is deleted afterwards.
current="$(readlink "$link" 2>/dev/null || true)"
if [ -n "$current" ] && [ "$(basename "$(dirname "$current")")" = "$sum" ] && [ -f "$current.done" ]; then
  exit 0
fi

[ -f "$chart.done" ] || extract

# The link: replaced atomically, and only when it points elsewhere (a re-run changes nothing).
if [ "$current" != "$chart" ]; then
  mkdir -p "$link_dir"
  ln -sfn "$chart" "$link.new"
  mv -T "$link.new" "$link"
  judge_log "$link -> $chart"
fi
