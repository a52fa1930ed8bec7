"""Background tasks stop when cancelled, even when a library swallowed the cancel."""

from __future__ import annotations

import asyncio

import pytest
from streamtune_shared.tasks import cancel_and_wait, raise_if_cancelled

pytestmark = pytest.mark.unit


async def _swallowing_loop() -> None:
    while True:
        try:
            await asyncio.sleep(0.01)
        except asyncio.CancelledError:
            pass  # what a blocking redis-py read sometimes does with a cancel
        raise_if_cancelled()


async def test_a_loop_that_checks_stops_although_the_cancel_was_swallowed():
    task = asyncio.create_task(_swallowing_loop())
    await asyncio.sleep(0.05)
    assert await cancel_and_wait([task], timeout_s=1.0) == set()
    assert task.cancelled()


async def test_a_task_that_will_not_stop_is_reported_instead_of_hanging_shutdown():
    may_stop = asyncio.Event()

    async def stubborn() -> None:
        while not may_stop.is_set():
            try:
                await asyncio.sleep(0.01)
            except asyncio.CancelledError:
                asyncio.current_task().uncancel()  # swallowed for good

    task = asyncio.create_task(stubborn(), name="stubborn")
    await asyncio.sleep(0.02)
    assert await cancel_and_wait([task], timeout_s=0.1, attempts=2) == {task}
    assert not task.done()
    may_stop.set()
    await asyncio.wait_for(task, 1.0)


async def test_raise_if_cancelled_is_silent_in_a_task_nobody_cancelled():
    raise_if_cancelled()
