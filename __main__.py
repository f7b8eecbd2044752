"""coco: build the stack described by this stack's `coco:` configuration."""

import gc

import pulumi

from components.settings import SettingsError, load
from components.stack import build

# The Pulumi SDK keeps every resource's Outputs and tasks alive until the program ends, so
# CPython's default collector walks an ever larger heap: about 30 % of a 1000-workload
# preview (docs/benchmarks.md). Fewer young-generation collections; nothing here is cyclic
# garbage worth collecting early.
gc.freeze()
gc.set_threshold(50_000, 10, 10)

try:
    settings = load()
except SettingsError as err:
    # A configuration mistake is the user's to fix, not a crash: show the problems, no traceback.
    raise pulumi.RunError(str(err)) from None
build(settings)
