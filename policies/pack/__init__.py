"""The `coco-production` Pulumi policy pack (CrossGuard): the production checklist, enforced.

    pulumi preview --policy-pack policies/pack

`checks` holds the checks as pure functions, `production` registers them as policies
(one rule each; its level comes from the stack's policy config: mandatory in
production, advisory elsewhere), `__main__` serves the pack to the engine.
See docs/policy-pack.md.
"""
