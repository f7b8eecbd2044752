#!/usr/bin/env bash
# The main job: `pulumi up` on a stack of this project (default: dev), with the engine this
# project builds for itself. The dev stack renders its manifests, policies and init-data into
# out/dev instead of applying them, so it needs no cluster and no cloud account.
#
#   ./scripts/up.sh              # dev
#   ./scripts/up.sh STACK        # any stack in stacks/ (its kubeconfig/credentials must exist)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
stack="${1:-dev}"

bash scripts/setup.sh
# shellcheck source=scripts/env.sh
source scripts/env.sh

pulumi stack select "$stack" --create --non-interactive >/dev/null
pulumi up --stack "$stack" --yes --non-interactive --skip-preview
pulumi stack output --stack "$stack" --json
