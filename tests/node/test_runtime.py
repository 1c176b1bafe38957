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


def test_statistics_are_taken_again_each_time_the_log_doubles() -> None:
    # SPEC §11.7: on PostgreSQL the node analyses its tables as they grow, not when autovacuum does.
    import asyncio
    from types import SimpleNamespace

    from node.runtime.commit import GroupCommit

    analysed: list[int] = []
    tree = SimpleNamespace(size=400)  # the log at start: analysed then (node.store.upgrade)

    async def grow() -> None:
        commit = GroupCommit(
            None,  # type: ignore[arg-type]  # no job runs here
            None,  # type: ignore[arg-type]
            batch_max=1,
            on_control_queued=lambda: None,
            clock=lambda: None,  # type: ignore[arg-type,return-value]
            analyse=lambda: analysed.append(tree.size),
        )
        commit.tree = tree  # type: ignore[assignment]
        loop = asyncio.get_running_loop()
        for size in (400, 999, 1000, 1500, 1999, 2000, 3999, 4000, 10_000):
            tree.size = size
            commit._grown(loop)
            if commit._analysing is not None:
                await commit._analysing
        commit.close()

    asyncio.run(grow())
    assert analysed == [1000, 2000, 4000, 10_000]
