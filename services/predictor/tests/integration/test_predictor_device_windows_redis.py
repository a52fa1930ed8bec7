"""The device windows on a real Redis: trimmed rows leave the readings hash too, and a second replica (its own
row cache) sees the same windows as the one that wrote them."""

from __future__ import annotations

import pytest
from streamtune_predictor.device_windows import InMemoryDeviceWindows, RedisDeviceWindows, SensorEvent, device_key


def events(n: int, start: int = 0) -> list[SensorEvent]:
    return [SensorEvent(f"e-{i}", "pump-1", 1000.0 + i, {"Pressure": 1.0 + i / 100, "Current": 2.0 - i / 50})
            for i in range(start, start + n)]


async def test_trimmed_rows_are_deleted_and_another_replica_sees_the_same_windows(redis_client):
    writer, reader, reference = RedisDeviceWindows(redis_client), RedisDeviceWindows(redis_client), InMemoryDeviceWindows()
    stream = events(100)
    for i in range(0, 90, 9):
        await writer.append("pump-sensors", stream[i:i + 9], 4, 5)
        await reference.append("pump-sensors", stream[i:i + 9], 4, 5)
    base = device_key("pump-sensors", "pump-1")
    assert await redis_client.zcard(f"{base}:win") == 16
    assert sorted(await redis_client.hkeys(f"{base}:rows")) == sorted(m for m in await redis_client.zrange(
        f"{base}:win", 0, -1))
    tail = stream[90:]
    seen = await reader.append("pump-sensors", tail, 4, 5)  # a fresh replica: every row comes from Redis
    expected = await reference.append("pump-sensors", tail, 4, 5)
    assert [v.rows for v in seen] == [v.rows for v in expected]
    assert [v.calibrating for v in seen] == [False] * len(tail)
    assert seen[-1].calibration == pytest.approx(expected[-1].calibration)
