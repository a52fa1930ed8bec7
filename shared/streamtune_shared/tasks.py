"""Background-task hygiene: loops that really stop when cancelled, and shutdowns that cannot hang.

redis-py runs blocking reads (XREAD / XREADGROUP with BLOCK) under a timeout; a cancel that
lands just as that timeout expires can come back as an ordinary empty reply. A loop that relies
on ``CancelledError`` alone then runs on, and a shutdown that awaits it hangs forever.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

import structlog

log = structlog.get_logger(__name__)


def raise_if_cancelled() -> None:
    """Raise ``CancelledError`` when this task was asked to stop, even if a library swallowed the cancel."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


async def cancel_and_wait(tasks: Iterable[asyncio.Task[object]], timeout_s: float = 5.0,
                          attempts: int = 3) -> set[asyncio.Task[object]]:
    """Cancel tasks and wait for them, cancelling again those a swallowed cancel left running.

    Returns the tasks still running after ``attempts`` rounds (logged), instead of waiting forever.
    """
    pending = {task for task in tasks if not task.done()}
    for _ in range(attempts):
        if not pending:
            break
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=timeout_s)
        if pending:
            log.warning("tasks.still_running_after_cancel", tasks=sorted(t.get_name() for t in pending))
    if pending:
        log.error("tasks.abandoned", tasks=sorted(t.get_name() for t in pending))
    return pending
