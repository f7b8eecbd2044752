#!/usr/bin/env bash
# Build every judge (scripts/judges/<name>/build.sh) into the tools cache; a judge whose cache key is
# unchanged takes well under a second. Called by scripts/test.sh after scripts/setup.sh.
#
#   scripts/judges.sh            # all judges
#   scripts/judges.sh kbs helm   # some
#
# A judge that cannot be built on this machine (no ../shared/upstream and no network to fetch its
# sources) is skipped with its reason, and its tests skip with the same reason; with
# COCO_REQUIRE_JUDGES=1 (set by .ci/run) that is a failure instead.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/env.sh
source scripts/env.sh
mkdir -p "$COCO_JUDGES_HOME"

if [ "$#" -gt 0 ]; then names=("$@"); else
  names=()
  for d in scripts/judges/*/; do [ -x "$d/build.sh" ] && names+=("$(basename "$d")"); done
fi

failed=0
for name in "${names[@]}"; do
  [ -x "scripts/judges/$name/build.sh" ] || { echo "[judges] no such judge: $name" >&2; exit 2; }
  rc=0
  JUDGE="$name" "scripts/judges/$name/build.sh" || rc=$?
  case "$rc" in
    0) rm -f "$COCO_JUDGES_HOME/$name.unavailable" ;;
    3) if [ "${COCO_REQUIRE_JUDGES:-0}" = 1 ]; then
         echo "[judges] $name cannot be built here and COCO_REQUIRE_JUDGES=1" >&2; failed=1
       else
         echo "[judges] $name skipped: its tests will skip" >&2
         echo "source unavailable (see scripts/judges.sh output)" >"$COCO_JUDGES_HOME/$name.unavailable"
       fi ;;
    *) echo "[judges] $name failed to build (exit $rc)" >&2; failed=1 ;;
  esac
done
exit "$failed"
