#!/usr/bin/env bash
# Judge `yaml`: upstream Pulumi YAML's language host (pulumi-language-yaml, from the Go module
# github.com/pulumi/pulumi-yaml), so a YAML program that is not coco's can consume coco's
# component package (package/pulumi-resource-coco) through the engine: upstream YAML resolves
# the package's schema, type-checks the program against it and registers the remote components
# (tests/conformance/test_package_yaml.py, docs/embedding.md "Component package").
#
# A wrapper module: go.mod/go.sum pin pulumi-yaml v1.25.0 (the newest release the Go proxy here
# serves; v1.11.1 is the other) and pulumi's pkg/sdk v3.215.0. pulumi-yaml needs pkg/v3 >=
# v3.206.0; v3.274.1 (the CLI's) no longer compiles with it (plugin.NewContextWithRoot and
# schema.NewPluginLoader changed), v3.215.0 does and is what pulumi-resource-kubernetes is built
# with, so its packages are mostly in the Go build cache already. The language host protocol is
# gRPC, so a v3.215-based host runs under the v3.274.1 CLI. Output: its own key, never the
# engine's (scripts/engine is untouched).
#
#   build.sh               build (a no-op when the output's `done` stamp exists)
#   build.sh --print-dir   print the output folder for the current inputs; build nothing
set -euo pipefail
JUDGE=yaml
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=scripts/judges/lib.sh
source "$HERE/../lib.sh"

PULUMI_YAML=github.com/pulumi/pulumi-yaml
PULUMI_YAML_VERSION=v1.25.0  # kept in step with go.mod

GO="$(command -v go || true)"
[ -z "$GO" ] && [ -x /usr/local/go/bin/go ] && GO=/usr/local/go/bin/go
[ -n "$GO" ] || judge_unavailable "no Go toolchain (go) on PATH"
go_version="$(GOTOOLCHAIN=local "$GO" env GOVERSION)"

key="$(judge_key "go=$go_version" "$HERE/build.sh" "$HERE/go.mod" "$HERE/go.sum")"
out="$COCO_JUDGES_HOME/yaml/$PULUMI_YAML_VERSION-$key"

if [ "${1:-}" = "--print-dir" ]; then
  printf '%s\n' "$out"
  exit 0
fi
[ -f "$out/done" ] && exit 0

(cd "$HERE" && GOTOOLCHAIN=local GOFLAGS=-mod=readonly "$GO" mod download >&2) ||
  judge_unavailable "Go modules for yaml/go.mod cannot be downloaded (offline?)"

rm -rf "$out.part"
mkdir -p "$out.part/bin"
export GOTOOLCHAIN=local GOFLAGS="-mod=readonly -buildvcs=false" CGO_ENABLED=0
build_yaml() {
  (cd "$HERE" && "$GO" build -p "${COCO_GO_JOBS:-2}" -trimpath \
    -ldflags "-s -w -X $PULUMI_YAML/pkg/version.Version=$PULUMI_YAML_VERSION" \
    -o "$out.part/bin/pulumi-language-yaml" "$PULUMI_YAML/cmd/pulumi-language-yaml")
}
judge_timed "yaml (pulumi-language-yaml $PULUMI_YAML_VERSION)" build_yaml

[ -x "$out.part/bin/pulumi-language-yaml" ] || judge_die "pulumi-language-yaml was not built"
printf '%s\n' "$go_version" >"$out.part/go-version"
rm -rf "$out"
mv "$out.part" "$out"
touch "$out/done"
judge_log "built into $out"
