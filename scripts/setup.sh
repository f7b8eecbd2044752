#!/usr/bin/env bash
# Prepare everything this project needs on a fresh machine: the Python virtualenv (.venv) and the pinned,
# offline Pulumi engine (pulumi CLI, Python language host, kubernetes provider, opa), built from Go modules.
#
#   scripts/setup.sh            # idempotent; a re-run with nothing changed takes ~0.1 s; the first, cold
#                               # run ~12 min (over the 10-min foreground limit: use nohup or CI)
#   source scripts/env.sh       # then use pulumi/opa/python from any shell or script
#
# Environment knobs:
#   COCO_TOOLS_HOME   where engine binaries go (default ~/.cache/coco-tools; never inside the repo)
#   COCO_PYTHON       interpreter for creating .venv (default python3; needs >=3.11,<3.14)
#   COCO_SKIP_VENV=1  skip the virtualenv step;  COCO_SKIP_ENGINE=1  skip the engine step
#   COCO_SKIP_CHARTS=1  skip the local charts step (scripts/charts.sh: the dev stack's kata-deploy chart)
#   COCO_FORCE_PIP=1  run pip even if pyproject.toml is unchanged
#   COCO_BUILD_ENGINE=1  build the pinned engine even when your own Pulumi (>= the SDK's release,
#                     with its Python language host) and kubernetes plugin could be used
#   COCO_USER_PULUMI_HOME  your Pulumi plugin cache (default ~/.pulumi)
#
# Details, versions, timings and the reasons for each choice: scripts/ENGINE.md.
set -euo pipefail

# Changing this string changes the version key (a new bin dir), forcing a rebuild of everything;
# env.sh reads it from this file (grep), so keep it on one line.
# shellcheck disable=SC2034
COCO_BUILD_RECIPE="trimpath,s-w,version-ldflags,r1"

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ENGINE_SRC="$REPO/scripts/engine"

log() { printf '[setup] %s\n' "$*" >&2; }
die() { printf '[setup] ERROR: %s\n' "$*" >&2; exit 1; }

# ----------------------------------------------------------------------------------------------------
# 1. Python virtualenv
# ----------------------------------------------------------------------------------------------------
setup_venv() {
  local venv="$REPO/.venv" py="${COCO_PYTHON:-python3}" stamp want have
  if [ ! -x "$venv/bin/python" ]; then
    command -v "$py" >/dev/null || die "$py not found (set COCO_PYTHON)"
    "$py" -c 'import sys; sys.exit(0 if (3, 11) <= sys.version_info[:2] < (3, 14) else 1)' ||
      die "$py is $("$py" -V 2>&1); pyproject.toml needs >=3.11,<3.14 (set COCO_PYTHON)"
    log "creating $venv with $("$py" -V 2>&1)"
    "$py" -m venv "$venv"
  fi
  stamp="$venv/.coco-pyproject.sha256"
  want="$(sha256sum <"$REPO/pyproject.toml" | cut -d' ' -f1) $("$venv/bin/python" -V 2>&1)"
  have="$(cat "$stamp" 2>/dev/null || true)"
  if [ "$want" = "$have" ] && [ "${COCO_FORCE_PIP:-0}" != 1 ]; then
    log "venv: pyproject.toml unchanged since last install, skipping pip"
    return
  fi
  log "venv: pip install -e '.[dev]'"
  (cd "$REPO" && "$venv/bin/python" -m pip install --disable-pip-version-check -q -e '.[dev]')
  printf '%s\n' "$want" >"$stamp"
}

# ----------------------------------------------------------------------------------------------------
# 2. Engine binaries
# ----------------------------------------------------------------------------------------------------
GO=""
find_go() {
  GO="$(command -v go 2>/dev/null || true)"
  [ -z "$GO" ] && [ -x /usr/local/go/bin/go ] && GO=/usr/local/go/bin/go
  # Only a build needs Go (a user's own Pulumi and plugins need none): `need_go` checks.
  return 0
}
need_go() {
  [ -n "$GO" ] || die "no Go toolchain (go on PATH or /usr/local/go/bin/go) to build the engine with"
}

# Time a build step and append it to build-times.txt in the tools dir.
timed() {
  local name="$1"; shift
  local start end
  start=$(date +%s)
  "$@"
  end=$(date +%s)
  log "built $name in $((end - start)) s"
  printf '%s\t%s s\t%s\n' "$name" "$((end - start))" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" >>"$COCO_TOOLS_DIR/build-times.txt"
}

# If a binary of exactly the wanted version is already on PATH (outside our bin dir), copy it instead of
# building. $1 name, $2 expected line of `$1 <version args>` output, rest: version args.
use_existing() {
  local name="$1" want="$2"; shift 2
  local p
  p="$(PATH="${PATH//$COCO_TOOLS_BIN:/}" command -v "$name" 2>/dev/null || true)"
  [ -n "$p" ] || return 1
  # Output captured first: with pipefail, `grep -q` exiting on the first match can kill the writer
  # with SIGPIPE and fail the whole pipeline (seen with `opa version`, whose match is line 1).
  local out
  out="$("$p" "$@" 2>/dev/null || true)"
  if grep -qxF -- "$want" <<<"$out"; then
    # Copied, not linked: the engine looks for its bundled plugins (the language host) next to the
    # resolved pulumi executable, which must be the tools bin dir.
    log "$name: using $p ($want) from PATH"
    install -m 0755 "$p" "$COCO_TOOLS_BIN/$name"
    return 0
  fi
  return 1
}

# A stamp per binary records what it was built from; a binary with a matching stamp is not rebuilt.
fresh() { [ -x "$COCO_TOOLS_BIN/$1" ] && [ "$(cat "$COCO_TOOLS_DIR/stamps/$1" 2>/dev/null)" = "$2" ]; }
stamp() { mkdir -p "$COCO_TOOLS_DIR/stamps"; printf '%s\n' "$2" >"$COCO_TOOLS_DIR/stamps/$1"; }

# gobuild <module dir> <output> <package> [extra ldflags...]
gobuild() {
  need_go
  local dir="$1" out="$2" pkg="$3"; shift 3
  (cd "$dir" && "$GO" build -trimpath -ldflags "-s -w $*" -o "$out" "$pkg")
}

# The user's own Pulumi: a `pulumi` on PATH (outside our bin dir) of release >= the Python SDK's
# ($COCO_PULUMI_SDK_VERSION, major 3) with the Python language host it ships next to it
# (`pulumi-language-python`, `-exec`, `pulumi-resource-pulumi-python`, as in every release
# archive) is used instead of building ours: the four files are copied into the bin dir (the
# engine looks for bundled plugins next to the resolved `pulumi`). COCO_BUILD_ENGINE=1 skips
# this: the pinned build, as CI uses it.
USER_PULUMI=""
version_ge() { [ "$(printf '%s\n%s\n' "$2" "$1" | sort -V | head -n1)" = "$2" ]; }
use_user_pulumi() {
  [ "${COCO_BUILD_ENGINE:-0}" = 1 ] && return 1
  local p dir ver f
  p="$(PATH="${PATH//$COCO_TOOLS_BIN:/}" command -v pulumi 2>/dev/null || true)"
  [ -n "$p" ] || return 1
  p="$(readlink -f "$p")"
  dir="$(dirname "$p")"
  [ "$dir" = "$COCO_TOOLS_BIN" ] && return 1
  for f in pulumi-language-python pulumi-language-python-exec pulumi-resource-pulumi-python; do
    [ -x "$dir/$f" ] || { log "pulumi: $p has no $f next to it; building ours"; return 1; }
  done
  ver="$("$p" version 2>/dev/null | sed -n 's/^v\([0-9][0-9.]*\).*/\1/p' | head -n1)"
  case "$ver" in 3.*) ;; *) log "pulumi: $p is '${ver:-unknown}', not 3.x; building ours"; return 1 ;; esac
  if ! version_ge "$ver" "$COCO_PULUMI_SDK_VERSION"; then
    log "pulumi: $p is v$ver, older than the Python SDK's v$COCO_PULUMI_SDK_VERSION; building ours"
    return 1
  fi
  log "pulumi: using your Pulumi v$ver ($dir) instead of building one"
  for f in pulumi pulumi-language-python pulumi-language-python-exec pulumi-resource-pulumi-python; do
    install -m 0755 "$dir/$f" "$COCO_TOOLS_BIN/$f"
  done
  stamp pulumi "user pulumi v$ver $p"
  stamp pulumi-language-python "user pulumi v$ver $p"
  stamp pulumi-language-python-exec "user pulumi v$ver $p"
  USER_PULUMI="v$ver"
}

build_pulumi() {
  local id="pulumi v$COCO_PULUMI_VERSION"
  fresh pulumi "$id" && return 0
  case "$(cat "$COCO_TOOLS_DIR/stamps/pulumi" 2>/dev/null)" in
    "user pulumi "*) [ "${COCO_BUILD_ENGINE:-0}" != 1 ] && [ -x "$COCO_TOOLS_BIN/pulumi" ] &&
      USER_PULUMI=reused && return 0 ;;
  esac
  use_user_pulumi && return 0
  use_existing pulumi "v$COCO_PULUMI_VERSION" version && { stamp pulumi "$id"; return 0; }
  log "building pulumi v$COCO_PULUMI_VERSION (github.com/pulumi/pulumi/pkg/v3/cmd/pulumi)"
  timed pulumi gobuild "$ENGINE_SRC/pulumi" "$COCO_TOOLS_BIN/pulumi" github.com/pulumi/pulumi/pkg/v3/cmd/pulumi \
    "-X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=v$COCO_PULUMI_VERSION"
  stamp pulumi "$id"
}

build_langhost() {
  # The user's Pulumi came with its own host (use_user_pulumi).
  [ -n "$USER_PULUMI" ] && return 0
  # coco's own host (scripts/engine/pulumi/cmd/pulumi-language-python); the upstream module is not served.
  local id="pulumi-language-python coco v$COCO_PULUMI_VERSION"
  if ! fresh pulumi-language-python "$id"; then
    log "building pulumi-language-python (coco's host, sdk/v3 v$COCO_PULUMI_VERSION)"
    timed pulumi-language-python gobuild "$ENGINE_SRC/pulumi" "$COCO_TOOLS_BIN/pulumi-language-python" \
      ./cmd/pulumi-language-python "-X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=v$COCO_PULUMI_VERSION"
    stamp pulumi-language-python "$id"
  fi

  # The program runner and the dynamic-provider shim, as the upstream release archive ships them next to the
  # host: taken verbatim from the github.com/pulumi/pulumi/sdk/v3 module of the Python SDK's version.
  local id2="sdk/v3 v$COCO_PULUMI_SDK_VERSION python scripts"
  if ! fresh pulumi-language-python-exec "$id2" || ! [ -x "$COCO_TOOLS_BIN/pulumi-resource-pulumi-python" ]; then
    local dir
    need_go
    # Run outside any module so that nothing can touch the committed go.mod/go.sum.
    dir="$(cd / && "$GO" mod download -json "github.com/pulumi/pulumi/sdk/v3@v$COCO_PULUMI_SDK_VERSION" |
      sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p')"
    [ -f "$dir/python/cmd/pulumi-language-python-exec" ] || die "pulumi-language-python-exec not found in sdk/v3 module ($dir)"
    install -m 0755 "$dir/python/cmd/pulumi-language-python-exec" "$COCO_TOOLS_BIN/pulumi-language-python-exec"
    install -m 0755 "$dir/python/dist/pulumi-resource-pulumi-python" "$COCO_TOOLS_BIN/pulumi-resource-pulumi-python"
    stamp pulumi-language-python-exec "$id2"
  fi
}

# The release a provider/v4 module version is. A tagged version is itself; the proxy serves
# provider/v4 only as a pseudo-version, whose commit must be a known release tag here: stamping
# the pseudo-version makes the engine warn on every command that the SDK asked for a release
# (`expected to have version >=X`), stamping a release the commit is not would hide a real mismatch.
k8s_provider_release() {
  case "$1" in
    # git tag --points-at f47bc2d6f199 in github.com/pulumi/pulumi-kubernetes: v4.25.0, sdk/v4.25.0
    # (commit f47bc2d6f1996444d11c12b4ef083b82585f7c07; its provider/go.mod and every readable
    # file of the module zip equal the tag's: ENGINE.md).
    v4.0.0-20260115033456-f47bc2d6f199) echo 4.25.0 ;;
    v*) if [[ "$1" =~ -[0-9]{14}-[0-9a-f]{12}$ ]]; then
          die "provider/v4 $1 is a pseudo-version of no known release: add its tag to k8s_provider_release"
        fi
        echo "${1#v}" ;;
    *) die "provider/v4 module version '$1' does not start with v" ;;
  esac
}

build_kubernetes() {
  # Providers are NOT put in the tools bin dir: the engine warns "using pulumi-resource-X from $PATH" on
  # every operation (even in projects that don't use X) for an ambient provider. They are built into
  # $COCO_TOOLS_DIR/providers and installed into $PULUMI_HOME's plugin cache (install_plugins).
  # Provider binaries have no --version flag, so a binary already on PATH is not reused.
  local ver
  ver="$(k8s_provider_release "$COCO_K8S_PROVIDER_MODULE_VERSION")"
  [ "$ver" = "$COCO_K8S_PROVIDER_VERSION" ] ||
    die "provider/v4 $COCO_K8S_PROVIDER_MODULE_VERSION is release $ver, but COCO_K8S_PROVIDER_VERSION (the SDK pin) is $COCO_K8S_PROVIDER_VERSION: pin pulumi-kubernetes==$ver in pyproject.toml and env.sh"
  local id="pulumi-resource-kubernetes $COCO_K8S_PROVIDER_MODULE_VERSION as $ver"
  local out="$COCO_TOOLS_DIR/providers/pulumi-resource-kubernetes"
  [ -x "$out" ] && [ "$(cat "$COCO_TOOLS_DIR/stamps/pulumi-resource-kubernetes" 2>/dev/null)" = "$id" ] && return 0
  # The user's own plugin cache already has the version the SDK requests: use it.
  local theirs="$USER_PULUMI_HOME/plugins/resource-kubernetes-v$COCO_K8S_PROVIDER_VERSION/pulumi-resource-kubernetes"
  if [ "${COCO_BUILD_ENGINE:-0}" != 1 ] && [ -x "$theirs" ] && [ "$USER_PULUMI_HOME" != "$PULUMI_HOME" ]; then
    log "pulumi-resource-kubernetes: using your plugin v$COCO_K8S_PROVIDER_VERSION ($theirs)"
    install -m 0755 "$theirs" "$out"
    stamp pulumi-resource-kubernetes "$id"
    return 0
  fi
  log "building pulumi-resource-kubernetes $ver ($COCO_K8S_PROVIDER_MODULE_VERSION)"
  # The provider's main package embeds a schema that upstream generates at build time (cmd/.../generate.go),
  # so it is assembled in a work dir outside the repo: our go.mod/go.sum + upstream's main.go + the schema.
  local work="$COCO_TOOLS_DIR/src/kubernetes" mod
  need_go
  rm -rf "$work"
  mkdir -p "$work/cmd/pulumi-resource-kubernetes"
  cp "$ENGINE_SRC/kubernetes/go.mod" "$ENGINE_SRC/kubernetes/go.sum" "$work/"
  mod="$(cd "$work" && "$GO" mod download -json "github.com/pulumi/pulumi-kubernetes/provider/v4@$COCO_K8S_PROVIDER_MODULE_VERSION" |
    sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p')"
  [ -f "$mod/cmd/pulumi-resource-kubernetes/main.go" ] || die "provider/v4 module not found ($mod)"
  install -m 0644 "$mod/cmd/pulumi-resource-kubernetes/main.go" "$work/cmd/pulumi-resource-kubernetes/main.go"
  # Same as upstream's generate.go: schema.json with .version set, and the terraform mapping, minified.
  VERSION="$ver" python3 - "$mod/cmd/pulumi-resource-kubernetes" "$work/cmd/pulumi-resource-kubernetes" <<'PY'
import json, os, sys
src, dst = sys.argv[1], sys.argv[2]
with open(os.path.join(src, "schema.json")) as f:
    spec = json.load(f)
spec["version"] = os.environ["VERSION"]
with open(os.path.join(dst, "schema-embed.json"), "w") as f:
    json.dump(spec, f, separators=(",", ":"))
with open(os.path.join(src, "terraform-mapping.json")) as f:
    mapping = json.load(f)
with open(os.path.join(dst, "terraform-mapping-embed.json"), "w") as f:
    json.dump(mapping, f, separators=(",", ":"))
PY
  # The version ldflag is the release the module's commit is (upstream's Makefile stamps the same
  # generic form, e.g. 4.25.0), so the engine's check against the SDK's request passes honestly.
  timed pulumi-resource-kubernetes gobuild "$work" "$out" ./cmd/pulumi-resource-kubernetes \
    "-X github.com/pulumi/pulumi-kubernetes/provider/v4/pkg/version.Version=$ver"
  rm -rf "$work"
  stamp pulumi-resource-kubernetes "$id"
}

# Install the providers into $PULUMI_HOME's plugin cache under the version the Python SDKs request, so the
# engine finds them with plugin downloads disabled. Re-installs only when the binary changed.
install_plugin() { # kind name version binary
  local kind="$1" name="$2" version="$3" bin="$4" want stampf
  want="$bin $(stat -c '%s %Y' "$bin")"
  stampf="$PULUMI_HOME/coco-stamps/$kind-$name-v$version"
  if [ -x "$PULUMI_HOME/plugins/$kind-$name-v$version/pulumi-$kind-$name" ] && [ "$(cat "$stampf" 2>/dev/null)" = "$want" ]; then
    return 0
  fi
  log "installing $kind plugin $name v$version into $PULUMI_HOME"
  "$COCO_TOOLS_BIN/pulumi" plugin install "$kind" "$name" "$version" --file "$bin" --reinstall >&2
  mkdir -p "$(dirname "$stampf")"
  printf '%s\n' "$want" >"$stampf"
}

install_plugins() {
  install_plugin resource kubernetes "$COCO_K8S_PROVIDER_VERSION" "$COCO_TOOLS_DIR/providers/pulumi-resource-kubernetes"
}

build_opa() {
  local id="opa v$COCO_OPA_VERSION"
  fresh opa "$id" && return 0
  use_existing opa "Version: $COCO_OPA_VERSION" version && { stamp opa "$id"; return 0; }
  log "building opa v$COCO_OPA_VERSION (github.com/open-policy-agent/opa)"
  # opa's version is a constant in its source; no ldflags needed.
  timed opa gobuild "$ENGINE_SRC/opa" "$COCO_TOOLS_BIN/opa" github.com/open-policy-agent/opa
  stamp opa "$id"
}

setup_engine() {
  # The user's plugin cache, before env.sh points PULUMI_HOME at ours.
  USER_PULUMI_HOME="${COCO_USER_PULUMI_HOME:-$HOME/.pulumi}"
  # shellcheck source=scripts/env.sh
  source "$REPO/scripts/env.sh"
  mkdir -p "$COCO_TOOLS_BIN" "$COCO_TOOLS_DIR/providers" "$PULUMI_HOME"
  find_go
  log "tools dir: $COCO_TOOLS_DIR ($([ -n "$GO" ] && "$GO" env GOVERSION || echo "no Go"))"
  build_pulumi
  build_langhost
  build_opa
  build_kubernetes
  install_plugins
}

# ----------------------------------------------------------------------------------------------------
# 3. Local charts (scripts/charts.sh): the kata-deploy chart the dev stack renders, from the pinned
#    upstream archive into the tools cache, linked as .charts/. Not fatal when the archive cannot be
#    had: only stacks naming a local chart need it, and their preview says so (coco:cluster.install.chart).
# ----------------------------------------------------------------------------------------------------
setup_charts() {
  local rc=0
  bash "$REPO/scripts/charts.sh" || rc=$?
  case "$rc" in
    0) ;;
    3) log "WARNING: no kata-deploy chart for the dev stack (see above); it needs one to render" ;;
    *) die "scripts/charts.sh failed ($rc)" ;;
  esac
}

main() {
  # One setup at a time per tools home (several work trees may share it).
  local tools_home="${COCO_TOOLS_HOME:-$HOME/.cache/coco-tools}"
  mkdir -p "$tools_home"
  exec 9>"$tools_home/.setup.lock"
  if command -v flock >/dev/null && ! flock -n 9; then
    log "waiting for another setup.sh (lock $tools_home/.setup.lock)"
    flock 9
  fi
  [ "${COCO_SKIP_VENV:-0}" = 1 ] || setup_venv
  [ "${COCO_SKIP_ENGINE:-0}" = 1 ] || setup_engine
  [ "${COCO_SKIP_CHARTS:-0}" = 1 ] || setup_charts
  # shellcheck source=scripts/env.sh
  source "$REPO/scripts/env.sh"
  log "done. bin dir: $COCO_TOOLS_BIN"
  echo "COCO_TOOLS_BIN=$COCO_TOOLS_BIN"
  echo "# use: source $REPO/scripts/env.sh"
}

main "$@"
