"""Settings -> Pulumi config: the exact values the engine hands the program.

How the engine carries config (checked against the CLI and the Python SDK): every config
value reaches the program as a string; a YAML mapping or list in a stack file is passed as
its JSON text, and `pulumi.Config.get_object` JSON-decodes it. `pulumi config set KEY VALUE`
(what `Workspace.set_all_config(..., path=False)` runs) stores VALUE as one string, so a
structured key set to `json.dumps(obj)` reaches the program byte-for-byte like the same
object written in a stack file. `--path` would instead split the object into one `set` per
leaf and guess each leaf's type (a "true" string becomes a bool), which is why it is not
used. Plain strings are stored as they are, not JSON-quoted, matching a stack file's
`coco:environment: production`.
"""

from __future__ import annotations

import json
from typing import Any

from pulumi.automation import ConfigValue

from components.settings import NAMESPACE, TOP_LEVEL_KEYS, StackSettings


def settings_to_config(settings: StackSettings) -> dict[str, Any]:
    """Every top-level `coco:` key (without the namespace) and its value, as a stack file holds it.

    Every top-level key is present, even when it holds only defaults: the project file
    declares them (`config:` in Pulumi.yaml), and the engine treats a declared key without
    a project default as required. Inside each value, defaults are left out so the stack
    config says only what the user chose (a default changed in a later release then reaches
    the stack, as it would for a stack file).
    """
    compact = settings.model_dump(by_alias=True, mode="json", exclude_defaults=True)
    full = settings.model_dump(by_alias=True, mode="json")
    out = {}
    for key in TOP_LEVEL_KEYS:
        if key in compact:
            out[key] = compact[key]
        elif full[key] is None:  # an optional key left unset (`protect`): not declared either
            continue
        else:  # all defaults: the empty value of its shape (or the default scalar)
            out[key] = {} if isinstance(full[key], dict) else full[key]
    return out


def encode(value: Any) -> str:
    """One config value as the string the engine stores: strings as is, the rest as JSON."""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def config_map(
    settings: StackSettings, secrets: dict[str, str] | None = None
) -> dict[str, ConfigValue]:
    """The full `namespace:key -> ConfigValue` map for `set_all_config(..., path=False)`."""
    out = {
        f"{NAMESPACE}:{key}": ConfigValue(value=encode(value))
        for key, value in settings_to_config(settings).items()
    }
    for key, value in (secrets or {}).items():
        out[key] = ConfigValue(value=value, secret=True)
    return out
