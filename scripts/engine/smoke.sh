#!/usr/bin/env bash
# End-to-end check of the offline engine built by scripts/setup.sh, in a throwaway project under a temp
# dir (nothing is written to the repo): a Python program with a kubernetes Provider that renders YAML to a
# directory + a ConfigMap, `up`, `preview --expect-no-changes`, a Python policy pack (mandatory violation
# must fail the preview, advisory must pass), a Python dynamic provider, then `destroy`.
#
#   scripts/engine/smoke.sh          # exit 0 = all good
#   scripts/engine/smoke.sh --tls    # also add a pulumi_tls.PrivateKey (fails: no tls provider, see ENGINE.md)
#   KEEP=1 scripts/engine/smoke.sh   # keep the temp dir
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=scripts/env.sh
source "$HERE/../env.sh"

WITH_TLS=0
[ "${1:-}" = "--tls" ] && WITH_TLS=1
export WITH_TLS

tmp="$(mktemp -d "${TMPDIR:-/tmp}/coco-engine-smoke.XXXXXX")"
cleanup() { if [ "${KEEP:-0}" = 1 ]; then echo "kept $tmp"; else rm -rf "$tmp"; fi; }
trap cleanup EXIT

export PULUMI_BACKEND_URL="file://$tmp/state"
export PULUMI_CONFIG_PASSPHRASE="smoke-test-only"
unset PULUMI_CONFIG_PASSPHRASE_FILE
mkdir -p "$tmp/state" "$tmp/project/policy"
cd "$tmp/project"

cat >Pulumi.yaml <<EOF
name: coco-engine-smoke
runtime:
  name: python
  options:
    toolchain: pip
    virtualenv: $COCO_REPO/.venv
EOF

cat >__main__.py <<'EOF'
import os
import secrets

import pulumi
import pulumi_kubernetes as k8s
from pulumi.dynamic import CreateResult, Resource, ResourceProvider

out_dir = os.path.join(os.path.dirname(os.path.abspath(__file__)), "rendered")
provider = k8s.Provider("render", render_yaml_to_directory=out_dir)
cm = k8s.core.v1.ConfigMap(
    "cm",
    metadata={"name": "coco-smoke", "namespace": "default"},
    data={"hello": pulumi.Config().get("hello") or "world"},
    opts=pulumi.ResourceOptions(provider=provider),
)
pulumi.export("cm_name", cm.metadata["name"])


class TokenProvider(ResourceProvider):
    def create(self, props):
        return CreateResult(id_=secrets.token_hex(4), outs={"token": secrets.token_hex(16)})


class Token(Resource):
    token: pulumi.Output[str]

    def __init__(self, name, opts=None):
        super().__init__(TokenProvider(), name, {"token": None}, opts)


pulumi.export("token_len", Token("tok").token.apply(len))

if os.environ.get("WITH_TLS") == "1":
    import pulumi_tls as tls

    key = tls.PrivateKey("key", algorithm="ECDSA", ecdsa_curve="P256")
    pulumi.export("public_key", key.public_key_pem)
EOF

cat >policy/PulumiPolicy.yaml <<EOF
description: smoke-test policy pack
runtime:
  name: python
  options:
    virtualenv: $COCO_REPO/.venv
EOF

cat >policy/__main__.py <<'EOF'
import os

from pulumi_policy import EnforcementLevel, PolicyPack, ResourceValidationPolicy


def configmap_needs_app_label(args, report_violation):
    if args.resource_type == "kubernetes:core/v1:ConfigMap":
        labels = (args.props.get("metadata") or {}).get("labels") or {}
        if "app" not in labels:
            report_violation("ConfigMap must carry an 'app' label")


PolicyPack(
    name="smoke",
    enforcement_level=EnforcementLevel[os.environ.get("SMOKE_LEVEL", "MANDATORY")],
    policies=[
        ResourceValidationPolicy(
            name="cm-app-label",
            description="ConfigMaps need an app label",
            validate=configmap_needs_app_label,
        )
    ],
)
EOF

step() {
  local name="$1"; shift
  local start rc
  start=$(date +%s%N)
  set +e
  "$@" >"$tmp/$name.log" 2>&1
  rc=$?
  set -e
  printf '%-34s rc=%-3s %5d ms\n' "$name" "$rc" "$(( ($(date +%s%N) - start) / 1000000 ))"
  return $rc
}
fail() { echo "FAILED: $1 (log below)"; cat "$tmp/$2.log"; exit 1; }

echo "engine: $(command -v pulumi) $(pulumi version); PULUMI_HOME=$PULUMI_HOME"
step login pulumi login "$PULUMI_BACKEND_URL" || fail "login" login
step stack-init pulumi stack init dev || fail "stack init" stack-init
step config-set pulumi config set hello smoke || fail "config set" config-set
step up pulumi up --yes --skip-preview || fail "up" up
[ -f rendered/1-manifest/v1-configmap-default-coco-smoke.yaml ] || fail "no rendered YAML" up
step preview-no-changes pulumi preview --expect-no-changes || fail "preview --expect-no-changes" preview-no-changes
if step policy-mandatory pulumi preview --policy-pack policy; then
  fail "mandatory policy violation did not fail the preview" policy-mandatory
fi
grep -q "ConfigMap must carry an 'app' label" "$tmp/policy-mandatory.log" || fail "no policy message" policy-mandatory
SMOKE_LEVEL=ADVISORY step policy-advisory pulumi preview --policy-pack policy || fail "advisory policy" policy-advisory
step destroy pulumi destroy --yes --skip-preview || fail "destroy" destroy
step stack-rm pulumi stack rm --yes dev || fail "stack rm" stack-rm
grep -h "warning:" "$tmp"/*.log | sort | uniq -c | sed 's/^/  engine /' || true
echo "smoke: OK"
