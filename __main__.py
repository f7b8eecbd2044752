"""coco: build the stack described by this stack's `coco:` configuration."""

import gc

import pulumi

from components.cancellation import quiet_cancellation
from components.chart_check import check_charts
from components.layers import build_stack
from components.preflight import kubeconfig_problem
from components.secrets_provider import check_running_stack
from components.settings import SettingsError, load

# The Pulumi SDK keeps every resource's Outputs, futures and tasks alive until the program
# ends, so each full collection of CPython's cyclic collector walks an ever larger heap and
# evaluation grows faster than the stack (x14.7 from 100 to 1000 workloads with the default
# thresholds, docs/benchmarks.md). But the SDK also makes cyclic garbage on every value it
# checks (`rpc.contains_unknowns` builds a self-referencing closure per call, about 270 per
# workload), which only the collector frees: with the collector off, peak memory at 1000
# workloads was 1.2x a plain pulumi-kubernetes program's. So the young and middle generations
# are collected (each bounded, so the cost stays linear) and the oldest never is.
# `freeze` first: the imported modules are out of every generation's reach.
gc.freeze()
gc.set_threshold(10_000, 10, 1_000_000_000)
# ^C cancels the engine; the program's calls it cut short end as one line, not a traceback.
quiet_cancellation()

try:
    settings = load()
except SettingsError as err:
    # A configuration mistake is the user's to fix, not a crash: show the problems, no traceback.
    raise pulumi.RunError(str(err)) from None
# Before any resource: a staging/production stack never encrypts with the public dev passphrase.
refusal = check_running_stack(settings.environment)
if refusal is not None:
    raise pulumi.RunError(f"refused: {refusal}")
# The deploying machine has what the stack names (its kubeconfig), before any resource.
missing = kubeconfig_problem(settings.kubernetes)
if missing is not None:
    raise pulumi.RunError(missing)
# Every chart rendered and checked before any resource: a refusal never comes half-way.
try:
    check_charts(settings, pulumi.get_stack())
except SettingsError as err:
    raise pulumi.RunError(str(err)) from None
build_stack(settings)
