#!/usr/bin/env bash
# The main job: `pulumi up` on a stack of this project (default: dev), with the engine this
# project builds for itself. The dev stack renders its manifests, policies and init-data into
# out/dev instead of applying them, so it needs no cluster and no cloud account.
#
#   ./scripts/up.sh              # dev
#   ./scripts/up.sh STACK        # any stack in stacks/ (its kubeconfig/credentials must exist)
#
# Every stack runs with the coco-production policy pack (policies/pack) at the levels its
# environment gets (`python -m automation policy-config`: mandatory in production, advisory
# elsewhere). A stack that is not dev is gated: `preview` with the pack first, and a mandatory
# violation stops the script before `up` changes anything. Organisation exceptions:
# COCO_POLICY_EXCEPTIONS=FILE (docs/policy-pack.md). The public dev passphrase that
# scripts/env.sh exports is used for dev stacks only (docs/production.md).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
stack="${1:-dev}"

bash scripts/setup.sh
# shellcheck source=scripts/env.sh
source scripts/env.sh

log() { printf '[up] %s\n' "$*" >&2; }

config="$(mktemp -t coco-policy-config.XXXXXX)"
trap 'rm -f "$config"' EXIT
# Validates the stack's settings and writes its policy config; prints its environment.
environment="$(python -m automation policy-config --stack "$stack" --out "$config")"

if [ "$environment" != dev ] && [ "${PULUMI_CONFIG_PASSPHRASE:-}" = coco-local-dev ]; then
  log "the public passphrase coco-local-dev is for dev stacks only: not used for $environment stack $stack"
  unset PULUMI_CONFIG_PASSPHRASE
fi

# A new stack gets the secrets provider its stack file names (e.g. awskms://...).
create=(--create)
provider="$(sed -n 's/^secretsprovider:[[:space:]]*//p' "stacks/Pulumi.$stack.yaml" 2>/dev/null | head -n1)"
[ -n "$provider" ] && create+=(--secrets-provider "$provider")
pulumi stack select "$stack" "${create[@]}" --non-interactive >/dev/null

policy=(--policy-pack policies/pack --policy-pack-config "$config")
if [ "$environment" != dev ]; then
  log "gate: preview of $environment stack $stack with the coco-production policy pack"
  if ! pulumi preview --stack "$stack" --non-interactive "${policy[@]}"; then
    log "refused: the preview of $stack failed (a mandatory policy violation or an error above); nothing was changed"
    exit 1
  fi
fi
pulumi up --stack "$stack" --yes --non-interactive --skip-preview "${policy[@]}"
pulumi stack output --stack "$stack" --json
