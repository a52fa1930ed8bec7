"""Following one training run on train.status, for the demo scripts."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

from redis.asyncio import Redis
from streamtune_shared import streams

PAYLOAD_KEY = streams.PAYLOAD_FIELD.encode()
EpochLine = Callable[[dict, dict], str]


def entity_f1_line(status: dict, dev: dict) -> str:
    """One epoch's dev entity F1 (token-classification runs)."""
    return f"  epoch {status['epoch']}/{status['epochs']}: dev entity F1 {dev.get('f1', float('nan')):.3f}"


async def follow_training(redis: Redis, request_id: str, timeout_s: float, say: Callable[[str], None],
                          epoch_line: EpochLine, what: str = "training") -> tuple[dict, list[dict]]:
    """Say ``epoch_line(status, dev metrics)`` at each epoch until the run is published or failed.

    Returns the last status and each epoch's dev metrics; exits the demo when the run takes too long.
    """
    last_id, deadline, dev_by_epoch = "0", time.monotonic() + timeout_s, []
    while time.monotonic() < deadline:
        for _, entries in await redis.xread({streams.TRAIN_STATUS: last_id}, block=1000) or []:
            for entry_id, fields in entries:
                last_id = entry_id
                status = json.loads(fields[PAYLOAD_KEY])
                if status["request_id"] != request_id:
                    continue
                if status["state"] == "epoch_end":
                    dev_by_epoch.append(status["metrics"].get("dev", status["metrics"]))
                    say(epoch_line(status, dev_by_epoch[-1]))
                elif status["state"] in ("published", "failed"):
                    return status, dev_by_epoch
    raise SystemExit(f"demo: {what} did not finish in time (see .stack/logs/trainer.log)")
