"""Serve the `coco-production` policy pack to the Pulumi engine.

The engine runs this file with the pack directory on `sys.path`, not the repo root; the
checks reuse the repo's runtime-class catalogue (`components.tee`) and init-data codec
(`policies.initdata`) so the pack and the program can never disagree on them, hence the
repo root is put on the path first.
"""

import sys
from pathlib import Path

_REPO = str(Path(__file__).resolve().parents[2])
if _REPO not in sys.path:
    sys.path.insert(0, _REPO)

from pulumi_policy import EnforcementLevel, PolicyPack  # noqa: E402

from policies.pack.production import PACK_NAME, POLICIES  # noqa: E402

# Mandatory unless the stack's policy config says otherwise (production.stack_policy_config):
# a run without the config fails closed.
PolicyPack(
    name=PACK_NAME,
    policies=POLICIES,
    enforcement_level=EnforcementLevel.MANDATORY,
    description="coco production checklist: TEE runtime class, measured agent policy, "
    "init-data-bound KBS resource policy, reference values, pinned images",
)
