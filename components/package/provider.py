"""The package's provider: the SDK's component provider, with secrets marked in the schema.

`pulumi.provider.experimental.component_provider_host` builds a `ComponentProvider` whose
schema comes from the analyzer alone, and the analyzer has no notion of a secret property
(`analyzer.py` reads types and docstrings only). A consumer's generated SDK and `pulumi
package get-schema` should still say which values are secret, so this provider adds
`"secret": true` (a field of the package schema's property spec, `pkg/codegen/schema`
`PropertySpec.Secret`) to the properties the components keep secret at run time. The values
themselves are secret either way: the components wrap them in `Output.secret`, and the
provider returns them as secrets over the wire.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from pulumi.provider import main as provider_main
from pulumi.provider.experimental.component import ComponentProvider

from components.package.components import COMPONENTS, SECRET_INPUTS, SECRET_OUTPUTS

NAME = "coco"
VERSION = "0.1.0"


def mark_secrets(schema: dict[str, Any]) -> dict[str, Any]:
    """The schema with `secret: true` on every property listed in SECRET_*."""
    for resource, props in SECRET_OUTPUTS.items():
        for prop in props:
            schema["resources"][f"{NAME}:index:{resource}"]["properties"][prop]["secret"] = True
    for owner, props in SECRET_INPUTS.items():
        token = f"{NAME}:index:{owner}"
        target = schema["resources"].get(token) or schema["types"][token]
        section = "inputProperties" if token in schema["resources"] else "properties"
        for prop in props:
            target[section][prop]["secret"] = True
    return schema


class CocoProvider(ComponentProvider):
    """`ComponentProvider` serving COMPONENTS, its schema with the secrets marked."""

    def __init__(self, version: str = VERSION) -> None:
        super().__init__(COMPONENTS, NAME, version=version)
        if self.schema is None:  # ComponentProvider always sets it; a guard for the type
            raise RuntimeError("the component provider produced no schema")
        self.schema = json.dumps(mark_secrets(json.loads(self.schema)), sort_keys=True)


def schema() -> dict[str, Any]:
    """The package schema, as `pulumi package get-schema` returns it."""
    return dict(json.loads(CocoProvider().schema or "{}"))


def main(argv: list[str]) -> None:
    """Serve the provider (argv: the engine address and flags, as the engine passes them)."""
    provider_main(CocoProvider(), argv)


if __name__ == "__main__":
    main(sys.argv[1:])
