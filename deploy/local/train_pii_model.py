"""`make pii-model`: give the running local stack (`make up`) its own PII model.

Generates the synthetic PII training set, imports it with `streamtune datasets import` (trusted data: it
bypasses ingestion and the anonymizer), asks the trainer for `pii-ner` (the demo's request: MiniLM's first
3 layers, 2 epochs), follows train.status and returns once the version is published; the anonymizer
hot-reloads it from models.published. Until then the anonymizer uses spaCy's small NER.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time

from redis.asyncio import Redis
from streamtune_shared import streams

import processes  # deploy/local, beside this script
from demo import follow_training, say
from demo_privacy import PII_MODEL, TRAIN_REQUEST, import_training_set


async def run() -> int:
    env = {**os.environ, **processes.stack_env()}
    redis = Redis.from_url(env["STREAMTUNE_REDIS_URL"])
    try:
        await asyncio.to_thread(import_training_set, env, say)
        request = {**TRAIN_REQUEST, "request_id": f"pii-ner-{int(time.time())}"}
        await redis.xadd(streams.TRAIN_REQUESTS, {streams.PAYLOAD_FIELD: json.dumps(request)})
        say(f"train request {request['request_id']} sent; following train.status")
        status, _ = await follow_training(redis, request["request_id"], timeout_s=1800)
    finally:
        await redis.aclose()
    if status["state"] == "failed":
        say(f"training {PII_MODEL} failed: {status.get('message')}")
        return 1
    say(f"published {PII_MODEL} {status['version']}: the anonymizer loads it from models.published")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(run()))
