"""Deploy a trusted zone split in separate stacks in the one order that converges.

The Trustee stack issues the KBS certificate the confidential stacks pin in their init-data,
and binds the digests they export (docs/topologies.md, components/zones.py). So a first
deploy, a certificate renewal or a new confidential cluster is: every stack exists, `up` the
Trustee stack, `up` each confidential stack, `up` the Trustee stack again. `up_trusted_zone`
runs exactly that, each `up` through the usual gate, and stops at the first failure (a later
step would read a state the failed one did not write).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from automation.operations import up
from automation.results import OperationResult
from automation.spec import Backend, StackSpec
from automation.workspace import open_stack


@dataclass(frozen=True)
class ZoneResult:
    """The three steps of a trusted-zone deploy."""

    trustee_first: OperationResult
    confidential: tuple[OperationResult, ...]
    trustee_bound: OperationResult


def _check(trustee: StackSpec, confidential: Sequence[StackSpec]) -> None:
    """The specs form one zone: a Trustee stack listing every confidential stack given,
    each of which names a stack of the Trustee's name as its `trusteeStack`."""
    t = trustee.settings.trustee_topology
    if t.role != "trustee":
        raise ValueError(f"{trustee.name}: coco:topology.role is not trustee")
    listed = {s.rsplit("/", 1)[-1] for s in t.confidential_stacks}
    for spec in confidential:
        c = spec.settings.trustee_topology
        if c.role != "confidential" or (c.trustee_stack or "").rsplit("/", 1)[-1] != trustee.name:
            raise ValueError(
                f"{spec.name}: coco:topology must be role confidential with trusteeStack "
                f"naming {trustee.name!r}"
            )
        if spec.name not in listed:
            raise ValueError(
                f"{trustee.name}: coco:topology.confidentialStacks does not list {spec.name!r}"
            )


def up_trusted_zone(
    trustee: StackSpec,
    confidential: Sequence[StackSpec],
    *,
    backend: Backend | None = None,
) -> ZoneResult:
    """Create the stacks that do not exist, then Trustee, each confidential stack, Trustee."""
    _check(trustee, confidential)
    be = backend or Backend()
    for spec in confidential:
        with open_stack(spec, be):  # `pulumi stack init`: exists, exports nothing yet
            pass
    first = up(trustee, backend=be)
    done = tuple(up(spec, backend=be) for spec in confidential)
    return ZoneResult(first, done, up(trustee, backend=be))
