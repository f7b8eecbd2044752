"""The components' type tokens: `coco:index:<Name>`, the form a Pulumi component package has.

A component package puts every type in the `index` module (the SDK's schema analyzer,
`pulumi/provider/experimental/analyzer.py`, makes `<package>:index:<ClassName>`, and its
`ComponentProvider.validate_resource_type` refuses any other module), so the program's own
components register under the same tokens: one component is one type, whether this program
or another one (through the package, docs/embedding.md) creates it.

A type token is part of every URN below it, so stacks deployed before the move would see
their whole tree deleted and recreated. Each component therefore carries an alias to the
token it had before (`PREVIOUS`); the engine matches the old URNs, and children, whose URNs
embed their parent's type, follow their parent's aliases (tests/test_e2e_tokens.py proves it
on a stack state written with the old tokens).
"""

from __future__ import annotations

import pulumi

PACKAGE = "coco"

PREVIOUS: dict[str, str] = {
    "ConfidentialCluster": "coco:cluster:ConfidentialCluster",
    "ConfidentialManifests": "coco:workload:ConfidentialManifests",
    "ConfidentialWorkload": "coco:workload:ConfidentialWorkload",
    "PeerPods": "coco:peerpods:PeerPods",
    "Trustee": "coco:trustee:Trustee",
    "TrusteeTls": "coco:trustee:Tls",
}
"""Component name -> the token its deployed resources were registered with before."""


def token(name: str) -> str:
    """`coco:index:<name>`."""
    return f"{PACKAGE}:index:{name}"


def options(name: str, opts: pulumi.ResourceOptions | None) -> pulumi.ResourceOptions:
    """`opts` plus the alias to the component's previous token, so deployed stacks keep it."""
    alias = pulumi.ResourceOptions(aliases=[pulumi.Alias(type_=PREVIOUS[name])])
    return pulumi.ResourceOptions.merge(opts, alias)
