"""Shared pytest fixtures."""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pulumi
import pytest
from mocks import RecordingMocks


@pytest.fixture
def mocks() -> Iterator[RecordingMocks]:
    """Fresh Pulumi mocks (no engine, not a preview) recording every registered resource."""
    recording = RecordingMocks()
    pulumi.runtime.set_mocks(recording, project="coco", stack="test", preview=False)
    pulumi.runtime.set_all_config({})
    yield recording
    pulumi.runtime.set_all_config({})


@pytest.fixture(scope="module")
def engine() -> str:
    """The `pulumi` CLI; fails (does not skip) with instructions when it is missing."""
    found = shutil.which("pulumi")
    if found is None:
        pytest.fail(
            "the Pulumi engine is missing: run `bash scripts/setup.sh`, then "
            "`source scripts/env.sh` (it puts pulumi and its plugins on PATH) and re-run",
            pytrace=False,
        )
    return found
