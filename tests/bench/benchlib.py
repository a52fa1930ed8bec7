"""What the benchmarks share: the local stack on a bench Redis database, pipelined XADDs, the JSON result.

Imported as `benchlib` by the scripts beside it (a script's folder is first on sys.path); it puts
deploy/local on sys.path too, so they can import its `stack` and `processes` scripts.
"""

from __future__ import annotations

import json
import sys
import uuid
from pathlib import Path

from redis.asyncio import Redis
from streamtune_shared import streams

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "deploy" / "local"))
import stack  # noqa: E402  (deploy/local holds scripts, not a package)


def bench_env(redis_db: int, **extra: str) -> dict[str, str]:
    """Redis and S3 up (started when not running); their settings on Redis database redis_db and a
    fresh bucket bench-<8 hex>, plus extra variables."""
    env = stack.up()
    return {**env, "STREAMTUNE_REDIS_URL": stack.redis_url_for_db(env["STREAMTUNE_REDIS_URL"], redis_db),
            "STREAMTUNE_S3_BUCKET": f"bench-{uuid.uuid4().hex[:8]}", **extra}


def drop_bench_bucket(env: dict[str, str]) -> None:
    """Remove the bench's bucket and whatever the services stored in it."""
    from streamtune_shared.settings import InfraSettings  # noqa: PLC0415
    from streamtune_shared.storage import MinioObjectStore, minio_client  # noqa: PLC0415

    settings = InfraSettings(**{key.removeprefix("STREAMTUNE_").lower(): value for key, value in env.items()
                                if key.startswith("STREAMTUNE_")})
    MinioObjectStore(minio_client(settings), settings.s3_bucket).drop_bucket()


async def xadd_all(redis: Redis, stream: str, payloads: list[bytes], chunk: int = 1000) -> None:
    """Write payloads to a stream in pipelined chunks, one payload field per entry."""
    for i in range(0, len(payloads), chunk):
        pipe = redis.pipeline(transaction=False)
        for payload in payloads[i:i + chunk]:
            pipe.xadd(stream, {streams.PAYLOAD_FIELD: payload})
        await pipe.execute()


def write_result(path: Path, result: dict) -> None:
    """Write a benchmark's figures as indented JSON, creating the folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2))


def quiet_training_logs(threads: int | None = None) -> None:
    """transformers logs only errors and draws no progress bars; torch uses ``threads`` CPU threads when given."""
    import torch  # noqa: PLC0415  (only the training benchmarks pay the import)
    from transformers.utils import logging as transformers_logging  # noqa: PLC0415

    transformers_logging.set_verbosity_error()
    transformers_logging.disable_progress_bar()
    if threads:
        torch.set_num_threads(threads)
