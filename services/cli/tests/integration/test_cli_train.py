"""train: the request reaches train.requests, and the follower ends with the run (published or failed)."""

from __future__ import annotations

import json
import threading

from redis import Redis
from streamtune_shared import streams
from streamtune_shared.schemas import TrainRequest, TrainStatus

from .conftest import Invoke


def _requests(redis: Redis) -> list[TrainRequest]:
    return [TrainRequest.model_validate_json(fields[b"payload"]) for _, fields in redis.xrange(streams.TRAIN_REQUESTS)]


def _fake_trainer(url: str, outcome: str) -> threading.Thread:
    """Waits for one request, then publishes a run's statuses for it (after another request's status)."""

    def run() -> None:
        redis = Redis.from_url(url)
        reply = redis.xread({streams.TRAIN_REQUESTS: "0-0"}, count=1, block=10_000)
        request = TrainRequest.model_validate_json(reply[0][1][0][1][b"payload"])
        statuses = [TrainStatus(request_id="someone-else", model_name="x", state="failed", message="not ours"),
                    TrainStatus(request_id=request.request_id, model_name=request.model_name, state="accepted", epochs=2),
                    TrainStatus(request_id=request.request_id, model_name=request.model_name, state="epoch_end",
                                epoch=1, epochs=2, step=4, total_steps=8,
                                metrics={"dev": {"f1": 0.42}, "train_loss": 0.9, "samples_per_s": 50.0, "best_epoch": 1})]
        final = {"state": "published", "version": "20260101T000000Z-cli", "metrics": {"test": {"f1": 0.5}}} \
            if outcome == "published" else {"state": "failed", "message": "dataset notes has no rows"}
        statuses.append(TrainStatus(request_id=request.request_id, model_name=request.model_name, **final))
        for status in statuses:
            redis.xadd(streams.TRAIN_STATUS, {"payload": status.model_dump_json()})
        redis.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_train_detach_sends_the_request_and_prints_its_id(invoke: Invoke, redis_sync: Redis, tmp_path) -> None:
    file = tmp_path / "request.yaml"
    file.write_text("model_name: ner\ntask: token-classification\ndataset: notes\nepochs: 4\n")
    result = invoke("train", "--file", str(file), "--epochs", "1", "--detach")
    assert result.exit_code == 0, result.output
    [request] = _requests(redis_sync)
    assert result.stdout.strip() == request.request_id
    assert (request.model_name, request.dataset, request.epochs) == ("ner", "notes", 1)


def test_train_follows_the_run_until_it_is_published(invoke: Invoke, redis_sync: Redis, infra_env) -> None:
    redis_sync.xadd(streams.TRAIN_STATUS, {"payload": TrainStatus(
        request_id="fixed-id", model_name="ner", state="failed", message="an older run").model_dump_json()})
    trainer = _fake_trainer(infra_env["STREAMTUNE_REDIS_URL"], "published")
    result = invoke("train", "--model", "ner", "--task", "token-classification", "--dataset", "notes",
                    "--request-id", "fixed-id", "--timeout", "20", "--json")
    trainer.join(5)
    assert result.exit_code == 0, result.output
    states = [json.loads(line)["state"] for line in result.stdout.splitlines()]
    assert states == ["accepted", "epoch_end", "published"]  # the older run's status came before the request


def test_a_failed_run_exits_1_with_its_reason(invoke: Invoke, redis_sync: Redis, infra_env) -> None:
    trainer = _fake_trainer(infra_env["STREAMTUNE_REDIS_URL"], "failed")
    result = invoke("train", "--model", "ner", "--task", "token-classification", "--dataset", "notes",
                    "--timeout", "20")
    trainer.join(5)
    assert result.exit_code == 1
    [request] = _requests(redis_sync)
    assert result.stderr.splitlines()[-1] == f"error: run {request.request_id} failed: dataset notes has no rows"
    assert "0.42" in result.stderr  # the epoch table was shown
