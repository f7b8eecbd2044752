#!/usr/bin/env bash
# Maintainer helper: refresh go.mod/go.sum of the engine build modules after a version bump.
# Needs the Go module proxy (network); setup.sh itself never changes these files.
#
#   scripts/engine/tidy.sh            # all modules
#   scripts/engine/tidy.sh opa        # one module (pulumi | kubernetes | opa)
#
# To bump a version: edit the require line in <module>/go.mod (and the matching COCO_* variable in
# scripts/env.sh), check the upstream module's own `replace` directives (printed below; each must be copied
# unless it points at a sibling directory of the same repo, which becomes a plain require), then run this.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
GO="$(command -v go 2>/dev/null || echo /usr/local/go/bin/go)"

upstream_replaces() { # $1 module@version: print the upstream go.mod's replace directives
  local gomod
  gomod="$("$GO" mod download -json "$1" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",\{0,1\}$/\1/p')"
  echo "--- replace directives in $1's go.mod:"
  grep -E '^replace|=>' "$gomod" || echo "(none)"
}

main_dep() { # $1 module dir, $2 module path: print "path@version" required by the build module
  (cd "$HERE/$1" && "$GO" list -m -f '{{.Path}}@{{.Version}}' "$2")
}

tidy_plain() { # $1 module dir, $2 upstream module path
  upstream_replaces "$(main_dep "$1" "$2")"
  (cd "$HERE/$1" && "$GO" mod tidy)
}

tidy_kubernetes() {
  local mod dep work
  dep="$(main_dep kubernetes github.com/pulumi/pulumi-kubernetes/provider/v4)"
  upstream_replaces "$dep"
  mod="$("$GO" mod download -json "$dep" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p')"
  # The main package only exists in setup.sh's work dir; give tidy a copy with placeholder schemas.
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' RETURN
  mkdir -p "$work/cmd/pulumi-resource-kubernetes"
  cp "$HERE/kubernetes/go.mod" "$HERE/kubernetes/go.sum" "$work/"
  install -m 0644 "$mod/cmd/pulumi-resource-kubernetes/main.go" "$work/cmd/pulumi-resource-kubernetes/"
  echo '{}' >"$work/cmd/pulumi-resource-kubernetes/schema-embed.json"
  echo '{}' >"$work/cmd/pulumi-resource-kubernetes/terraform-mapping-embed.json"
  (cd "$work" && "$GO" mod tidy)
  cp "$work/go.mod" "$work/go.sum" "$HERE/kubernetes/"
}

for m in "${@:-pulumi kubernetes opa}"; do
  for m1 in $m; do
    echo "== $m1"
    case "$m1" in
      pulumi) tidy_plain pulumi github.com/pulumi/pulumi/pkg/v3 ;;
      kubernetes) tidy_kubernetes ;;
      opa) tidy_plain opa github.com/open-policy-agent/opa ;;
      *) echo "unknown module $m1" >&2; exit 2 ;;
    esac
  done
done
