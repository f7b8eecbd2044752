#!/usr/bin/env bash
# The whole test suite, from a fresh clone: installs what it needs, then lints, type-checks and
# runs every test (unit under mocks, policies under OPA, manifests against the Kubernetes
# schemas, end-to-end runs of the real Pulumi engine, and the conformance tiers where upstream's own
# code judges what the program renders).
#
#   ./scripts/test.sh            # everything
#   ./scripts/test.sh -m 'not e2e'   # extra arguments go to pytest
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/setup.sh
# Upstream's own code, built from pinned sources into the tools cache (cached by revision).
bash scripts/judges.sh
# shellcheck source=scripts/env.sh
source scripts/env.sh

echo "== ruff"
ruff check .
ruff format --check .
echo "== mypy"
mypy components policies automation benchmarks examples
echo "== pytest"
pytest -n 2 "$@"
