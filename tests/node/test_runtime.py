"""Process-level set-up of a running node (``node.runtime.process.tune_gc``)."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from node.runtime.process import GC_THRESHOLDS, tune_gc


@pytest.fixture
def restore_gc() -> Iterator[None]:
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


@pytest.mark.usefixtures("restore_gc")
def test_tune_gc_freezes_start_up_objects_and_collects_less_often() -> None:
    gc.unfreeze()
    survivor = [object()]  # a container alive at start-up, like a loaded schema
    tune_gc()
    assert gc.get_threshold() == GC_THRESHOLDS
    assert GC_THRESHOLDS[0] > 700  # fewer young collections than CPython's default
    assert gc.get_freeze_count() > 0
    # Frozen objects are in no generation, so later collections do not walk them.
    assert not any(obj is survivor for obj in gc.get_objects())
    assert gc.is_tracked(survivor)
