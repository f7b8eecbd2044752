"""Shared pytest fixtures."""

from __future__ import annotations

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
