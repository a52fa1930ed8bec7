"""Pacing writes to a target rate: how big each pipelined batch is and how long to wait before the next."""

from __future__ import annotations

MAX_BATCH = 500
BATCHES_PER_SECOND = 10  # at a set rate, about ten round trips a second keeps the flow smooth


def batch_size(rate: float | None, limit: int = MAX_BATCH) -> int:
    """Events per pipelined round trip: ``limit`` when unpaced, about a tenth of a second's worth otherwise."""
    if rate is None:
        return limit
    return max(1, min(limit, int(rate / BATCHES_PER_SECOND)))


def seconds_to_wait(sent: int, rate: float | None, elapsed_s: float) -> float:
    """How long to sleep so that ``sent`` events took at least ``sent / rate`` seconds since the start."""
    if rate is None:
        return 0.0
    return max(0.0, sent / rate - elapsed_s)
