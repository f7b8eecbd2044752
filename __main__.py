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
# evaluation grows faster than the stack: x14.7 from 100 to 1000 workloads with the default
# thresholds, x9.5 with none (docs/benchmarks.md). This process lives for one deployment, so
# the collector is off. What it leaves is the SDK's own cyclic garbage (`rpc.contains_unknowns`
# makes a self-referencing closure per value it checks): collecting only the young and middle
# generations freed 4 % of peak memory at 1000 workloads and cost 19 % more time, and the
# growth went to x11.0 (measured 2026-12-07), so it stays off.
# `freeze` first, so that a collection someone forces later skips the imported modules.
gc.freeze()
gc.disable()
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
