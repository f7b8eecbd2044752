"""coco: build the stack described by this stack's `coco:` configuration."""

import pulumi

from components.settings import SettingsError, load
from components.stack import build

try:
    settings = load()
except SettingsError as err:
    # A configuration mistake is the user's to fix, not a crash: show the problems, no traceback.
    raise pulumi.RunError(str(err)) from None
build(settings)
