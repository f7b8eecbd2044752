"""The validation layer: checks that span several keys of the stack configuration or read the
input files it names, each problem addressed by its config key. `components.settings.parse`
runs them after the models have checked their own fields (docs/architecture.md).
"""
