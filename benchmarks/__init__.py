"""Performance measurements of the coco program itself, always side by side with a baseline.

A platform team runs this program for many workloads and clusters, so `pulumi preview` must
stay quick as a stack grows. Absolute seconds depend on the machine; what this package
reports and what its targets are about is the *ratio* to a baseline that registers the very
same Kubernetes objects with plain pulumi-kubernetes, measured within one run, plus how the
cost grows with the number of workloads. Nothing here asserts a time: the test suite stays
deterministic, and `python -m benchmarks` prints the figures (see benchmarks/README.md).
"""
