# shellcheck shell=bash
# Environment for running the Pulumi engine offline against this repo.
#
#   source scripts/env.sh        # from any directory, any shell script (bash/zsh)
#
# Run scripts/setup.sh once first: it creates .venv and builds the engine binaries this file points at.
# Sourcing makes no network calls and builds nothing; it only sets variables (and creates .state/ when the
# default file backend is used). See scripts/ENGINE.md.

if [ -n "${BASH_SOURCE[0]:-}" ]; then
  _coco_env_file="${BASH_SOURCE[0]}"
elif [ -n "${ZSH_VERSION:-}" ]; then
  # shellcheck disable=SC2296
  _coco_env_file="${(%):-%x}"
else
  _coco_env_file="$0"
fi
COCO_REPO="$(cd "$(dirname "$_coco_env_file")/.." && pwd)"
export COCO_REPO
unset _coco_env_file

# --- pinned engine versions (keep in sync with scripts/engine/*/go.mod) -------------------------------
# The Python SDKs in pyproject.toml pin pulumi==3.272.0 and pulumi-kubernetes==4.25.0 (no pulumi-tls: ENGINE.md).
# The Go module proxy reachable here does not serve all of the matching engine modules; ENGINE.md says
# which versions are built instead and why.
export COCO_PULUMI_SDK_VERSION="3.272.0"                                  # Python SDK; exec script source
export COCO_PULUMI_VERSION="3.274.1"                                      # pulumi CLI (pkg/v3)
# provider/v4 is served only as this pseudo-version; its commit f47bc2d6f199 is upstream's tag v4.25.0
# (ENGINE.md), so the provider is built, stamped and installed as 4.25.0, the release the SDK pin names.
export COCO_K8S_PROVIDER_MODULE_VERSION="v4.0.0-20260115033456-f47bc2d6f199" # provider/v4, only one served
export COCO_K8S_PROVIDER_VERSION="4.25.0"                                 # its release; the SDK's request
export COCO_OPA_VERSION="1.22.3"

# --- tools dir (outside the repo) --------------------------------------------------------------------
export COCO_TOOLS_HOME="${COCO_TOOLS_HOME:-$HOME/.cache/coco-tools}"

# The version key names the bin dir. It changes whenever anything that goes into the binaries changes:
# the build modules (go.mod, go.sum, the language host's *.go), setup.sh's COCO_BUILD_RECIPE, the pinned
# versions above, and the Go toolchain's version. Hashing these few files takes milliseconds.
_coco_engine_key() {
  local go_bin go_ver
  go_bin="$(command -v go 2>/dev/null || true)"
  [ -z "$go_bin" ] && [ -x /usr/local/go/bin/go ] && go_bin=/usr/local/go/bin/go
  go_ver="nogo"
  if [ -n "$go_bin" ]; then
    # `go env GOVERSION` reads no network and no module.
    go_ver="$(GOTOOLCHAIN=local "$go_bin" env GOVERSION 2>/dev/null || echo nogo)"
  fi
  {
    echo "go=$go_ver"
    echo "pulumi=$COCO_PULUMI_VERSION sdk=$COCO_PULUMI_SDK_VERSION"
    echo "k8s=$COCO_K8S_PROVIDER_MODULE_VERSION as $COCO_K8S_PROVIDER_VERSION opa=$COCO_OPA_VERSION"
    (cd "$COCO_REPO/scripts" &&
      find engine -type f \( -name go.mod -o -name go.sum -o -name '*.go' \) 2>/dev/null | LC_ALL=C sort |
      xargs -r sha256sum)
    grep -E '^(COCO_BUILD_RECIPE)=' "$COCO_REPO/scripts/setup.sh" 2>/dev/null || true
  } | sha256sum | cut -c1-12
}
COCO_ENGINE_KEY="pulumi-${COCO_PULUMI_VERSION}-$(_coco_engine_key)"
export COCO_ENGINE_KEY
unset -f _coco_engine_key
export COCO_TOOLS_DIR="$COCO_TOOLS_HOME/$COCO_ENGINE_KEY"
export COCO_TOOLS_BIN="$COCO_TOOLS_DIR/bin"

# --- PATH: tools bin first, then the project's virtualenv ---------------------------------------------
case ":$PATH:" in
  *":$COCO_REPO/.venv/bin:"*) ;;
  *) PATH="$COCO_REPO/.venv/bin:$PATH" ;;
esac
case ":$PATH:" in
  *":$COCO_TOOLS_BIN:"*) ;;
  *) PATH="$COCO_TOOLS_BIN:$PATH" ;;
esac
export PATH

# --- Pulumi engine settings ------------------------------------------------------------------------
# Plugin cache and CLI state live outside the repo, shared by all version keys. COCO_PULUMI_HOME overrides.
if [ "${PULUMI_HOME:-}" != "${COCO_PULUMI_HOME:-$COCO_TOOLS_HOME/pulumi-home}" ]; then
  _coco_user_pulumi_home="${PULUMI_HOME:-$HOME/.pulumi}" # where your own `pulumi login` is
fi
export PULUMI_HOME="${COCO_PULUMI_HOME:-$COCO_TOOLS_HOME/pulumi-home}"
export PULUMI_SKIP_UPDATE_CHECK=true
export PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION=true
# Providers are installed in $PULUMI_HOME's plugin cache, not on PATH (an ambient provider on PATH makes
# the engine warn on every operation). The language host and pulumi-resource-pulumi-python (Python
# dynamic providers) sit next to the pulumi binary, where the engine looks for bundled plugins.

# State backend: the one you chose, else a directory in the repo (gitignored, local development only).
# Chosen means PULUMI_BACKEND_URL, or a `pulumi login` (credentials.json `current`): one made with this
# PULUMI_HOME is left to the CLI (so a later login takes effect at once); one in your own PULUMI_HOME
# (default ~/.pulumi, hidden by the PULUMI_HOME above) is exported. Re-sourcing re-decides a default this
# file set, so `pulumi login s3://...` then `source scripts/env.sh` switches to it (docs/operations.md).
_coco_login() { # the `current` backend of a credentials.json, empty when none (status 0: set -e)
  if [ -f "$1" ]; then
    sed -n 's/^[[:space:]]*"current":[[:space:]]*"\([^"]*\)".*/\1/p' "$1" | head -n1
  fi
}
if [ -n "${COCO_DEFAULT_BACKEND:-}" ] && [ "${PULUMI_BACKEND_URL:-}" = "$COCO_DEFAULT_BACKEND" ]; then
  unset PULUMI_BACKEND_URL
fi
unset COCO_DEFAULT_BACKEND
if [ -z "${PULUMI_BACKEND_URL:-}" ] && [ -z "$(_coco_login "$PULUMI_HOME/credentials.json")" ]; then
  _coco_user_login="$(_coco_login "${_coco_user_pulumi_home:-$HOME/.pulumi}/credentials.json")"
  if [ -n "$_coco_user_login" ]; then
    export PULUMI_BACKEND_URL="$_coco_user_login"
  else
    export PULUMI_BACKEND_URL="file://$COCO_REPO/.state"
    export COCO_DEFAULT_BACKEND="$PULUMI_BACKEND_URL"
  fi
  unset _coco_user_login
fi
unset _coco_user_pulumi_home
unset -f _coco_login
case "${PULUMI_BACKEND_URL:-}" in
  file://*) mkdir -p "${PULUMI_BACKEND_URL#file://}" 2>/dev/null || true ;;
esac

# Passphrase for the secrets of LOCAL file-backend dev stacks only (it is public: it's in this file).
# A staging or production stack encrypted with it is refused (the program, the Automation API) and
# scripts/up.sh drops it for them: such a stack names a KMS/Vault secrets provider in its stack file, or
# you set PULUMI_CONFIG_PASSPHRASE(_FILE) yourself (docs/production.md). An existing value is never
# overridden.
if [ -z "${PULUMI_CONFIG_PASSPHRASE:-}" ] && [ -z "${PULUMI_CONFIG_PASSPHRASE_FILE:-}" ]; then
  export PULUMI_CONFIG_PASSPHRASE="coco-local-dev"
fi

export COCO_OPA="$COCO_TOOLS_BIN/opa"

# --- judges: upstream's own code, built from pinned sources (scripts/judges/README.md) ----------------
# Pinned upstream archives: ../shared/upstream beside the repo when present (a user's machine fetches
# the same revisions instead). Builds go to one cache root; the Rust judges share a cargo home and a
# target dir so crates common to several of them compile once.
if [ -z "${COCO_UPSTREAM:-}" ]; then
  COCO_UPSTREAM="$(cd "$COCO_REPO/.." && pwd)/shared/upstream"
fi
export COCO_UPSTREAM
export COCO_JUDGES_HOME="${COCO_JUDGES_HOME:-$COCO_TOOLS_HOME/judges}"
export COCO_CARGO_HOME="${COCO_CARGO_HOME:-$COCO_TOOLS_HOME/cargo-home}"
export COCO_CARGO_TARGET_DIR="${COCO_CARGO_TARGET_DIR:-$COCO_TOOLS_HOME/cargo-target}"
