"""coco as a Pulumi component package: typed arguments, `coco:index:` components, a provider.

Other Pulumi programs (any language, through `pulumi package add`) construct coco's components
remotely: the engine starts this package's provider (`package/pulumi-resource-coco`, which
runs `python -m components.package`), the provider builds the component with the program's
own code, and the consumer gets its outputs (docs/embedding.md, "Component package").

The SDK infers the package schema from Python annotations
(`pulumi/provider/experimental/analyzer.py`): each component's `__init__` takes one `args`
TypedDict (components/package/args.py), and its class annotations are its outputs. Those
modules therefore do NOT use `from __future__ import annotations`: the analyzer reads
annotations as objects and cannot follow them as strings.
"""
