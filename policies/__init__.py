"""Pure policy builders: configuration in, canonical text out.

Nothing in this package imports Pulumi, and of coco only the lowest layer, the shared
vocabulary (components/vocabulary.py, docs/architecture.md). Every function is deterministic
(same input, same bytes out) because its output is hashed into hardware evidence (init-data)
or compared by `pulumi preview --expect-no-changes`; a builder that reorders keys between runs
would both rotate every workload and make previews noisy.

Modules:
    initdata     the init-data TOML document, its digest and the pod annotation value
    agent        the Kata agent policy (Rego) from a declarative allow-list
    resource     the KBS resource policy (Rego) bound to init-data digests
    attestation  AS attestation policy overrides and RVPS reference values
"""
