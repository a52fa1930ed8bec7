"""The per-device privacy budget: epsilon spent per (dataset, device pseudonym) in a fixed window, in Redis.

One Lua script checks and spends every charge of a batch, so replicas sharing a Redis never
overspend: Redis runs a script alone, so no other replica's spend lands between a check and its
write. Each budget is one hash, ``streamtune:anonymizer:dp:<dataset>:<device pseudonym>``, holding
the window it counts, the micro-epsilon spent, and one field per event charged, so a redelivered
event is not charged twice. Keys name pseudonyms only, never a raw device id.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from redis.asyncio import Redis

BUDGET_KEY_PREFIX = "streamtune:anonymizer:dp:"
MICRO = 1_000_000  # epsilon is counted in integer micro-units: repeated float adds would drift

# KEYS[i]: a budget hash; ARGV, 5 per key: event id, cost, budget (micro-epsilon), window index, ttl (s).
# A window index lower than the stored one (a replica whose clock lags) counts in the stored window:
# resetting back would hand the device a fresh budget.
# Returns per key {1 granted | 0 refused, micro-epsilon spent in the window after this charge}.
_SPEND_LUA = """
local out = {}
for i, key in ipairs(KEYS) do
  local a = (i - 1) * 5
  local event, cost, budget = 'ev:' .. ARGV[a + 1], tonumber(ARGV[a + 2]), tonumber(ARGV[a + 3])
  local window, ttl = tonumber(ARGV[a + 4]), tonumber(ARGV[a + 5])
  local stored = tonumber(redis.call('HGET', key, 'window') or '-1')
  if stored < window then
    redis.call('DEL', key)
    redis.call('HSET', key, 'window', window, 'spent', 0)
  end
  local granted = 1
  if redis.call('HEXISTS', key, event) == 0 then
    local spent = tonumber(redis.call('HGET', key, 'spent'))
    if spent + cost <= budget then
      redis.call('HINCRBY', key, 'spent', cost)
      redis.call('HSET', key, event, cost)
    else
      granted = 0
    end
  end
  redis.call('EXPIRE', key, ttl)
  out[i] = {granted, tonumber(redis.call('HGET', key, 'spent'))}
end
return out
"""


@dataclass(frozen=True, slots=True)
class Charge:
    """What releasing one event's readings would cost its device in one dataset."""

    dataset: str
    device: str  # the pseudonym, never the raw id
    event_id: str
    epsilon: float
    budget_epsilon: float
    window_s: int


@dataclass(frozen=True, slots=True)
class Grant:
    """Whether a charge fit in the budget, and the device's epsilon spent in the window afterwards."""

    granted: bool
    spent_epsilon: float


class BudgetLedger(Protocol):
    """Where budgets are kept: ``RedisBudgetLedger``, or an in-memory fake in tests."""

    async def spend(self, charges: Sequence[Charge], now: datetime) -> list[Grant]: ...

    async def spent(self, dataset: str, device: str, window_s: int, now: datetime) -> float: ...


def budget_key(dataset: str, device: str) -> str:
    """The hash holding one device's budget in one dataset."""
    return f"{BUDGET_KEY_PREFIX}{dataset}:{device}"


def window_index(now: datetime, window_s: int) -> int:
    """Which fixed window ``now`` falls in (windows start at the Unix epoch)."""
    return math.floor(now.timestamp() / window_s)


def to_micro(epsilon: float, *, round_up: bool) -> int:
    """Epsilon in micro-units: costs round up, budgets down, so rounding never overspends."""
    scaled = epsilon * MICRO
    return math.ceil(scaled - 1e-6) if round_up else math.floor(scaled + 1e-6)


class RedisBudgetLedger:
    """Budgets in Redis, checked and spent atomically, one script call per batch."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._spend = redis.register_script(_SPEND_LUA)

    async def spend(self, charges: Sequence[Charge], now: datetime) -> list[Grant]:
        """Spend each charge that fits its device's budget, in order; one ``Grant`` per charge."""
        if not charges:
            return []
        args: list[str | int] = []
        for c in charges:
            window = window_index(now, c.window_s)
            # The key outlives its window a little, so a late reader still finds the total.
            ttl = (window + 1) * c.window_s - math.floor(now.timestamp()) + 60
            args += [c.event_id, to_micro(c.epsilon, round_up=True), to_micro(c.budget_epsilon, round_up=False),
                     window, ttl]
        rows = await self._spend(keys=[budget_key(c.dataset, c.device) for c in charges], args=args)
        return [Grant(bool(int(granted)), int(spent) / MICRO) for granted, spent in rows]

    async def spent(self, dataset: str, device: str, window_s: int, now: datetime) -> float:
        """Epsilon the device has spent in the dataset's current window."""
        window, spent = await self._redis.hmget(budget_key(dataset, device), ["window", "spent"])
        if window is None or int(window) < window_index(now, window_s):
            return 0.0
        return int(spent or 0) / MICRO
