"""The trainer's handler and app wiring with an in-memory bus and object store and a tiny local base model."""

from __future__ import annotations

import json

import pytest
from faststream.redis import TestRedisBroker
from streamtune_shared import streams
from streamtune_shared.bus import Entry
from streamtune_shared.schemas import TrainRequest
from streamtune_shared.storage import sha256_hex
from streamtune_shared.testing import InMemoryBus, InMemoryObjectStore
from streamtune_trainer.app import TrainerDeps, create_app, create_service
from streamtune_trainer.config import TrainerSettings
from streamtune_trainer.domain import stable_request_id

DATASET = "clinical-notes"


@pytest.fixture
def settings() -> TrainerSettings:
    return TrainerSettings(infra={"s3_access_key": "k", "s3_secret_key": "s"}, num_threads=2)


@pytest.fixture
def fakes(clinical_events, write_shards):
    store = InMemoryObjectStore()
    write_shards(store, DATASET, clinical_events[:80])
    return InMemoryBus(), store


def _request(base: str, **overrides) -> TrainRequest:
    fields = {"request_id": "run-1", "model_name": "notes-ner", "task": "token-classification", "dataset": DATASET,
              "base_model": base,
              "epochs": 2, "batch_size": 16, "learning_rate": 1e-3, "max_length": 48, "dev_fraction": 0.2,
              "test_fraction": 0.2, **overrides}
    return TrainRequest(**fields)


def _entry(entry_id: str, payload: bytes) -> Entry:
    return Entry(id=entry_id, fields={b"payload": payload})


async def test_a_request_trains_publishes_a_complete_version_and_announces_it(settings, fakes, tiny_base_model):
    bus, store = fakes
    service = create_service(settings, TrainerDeps(bus=bus, store=store))
    request = _request(str(tiny_base_model))
    await service.handler.process([_entry("1-0", request.model_dump_json().encode())])

    states = [m["state"] for m in bus.messages(streams.TRAIN_STATUS)]
    assert states[0] == "accepted" and states[1] == "running" and states[-1] == "published"
    assert states.count("epoch_end") == 2
    epoch_ends = [m for m in bus.messages(streams.TRAIN_STATUS) if m["state"] == "epoch_end"]
    assert [m["epoch"] for m in epoch_ends] == [1, 2] and "f1" in epoch_ends[0]["metrics"]["dev"]

    [announced] = bus.messages(streams.MODELS_PUBLISHED)
    assert announced["request_id"] == request.request_id and announced["task"] == "token-classification"
    prefix = announced["prefix"]
    assert prefix == f"models/notes-ner/{announced['version']}/"
    card = json.loads(store.get_bytes(announced["card_key"]))
    assert card["request_id"] == request.request_id and card["version"] == announced["version"]
    assert {"model.safetensors", "config.json", "labels.json", "tokenizer.json"} <= set(card["files"])
    stored = {k[len(prefix):] for k in store.list_keys(prefix)} - {"card.json"}
    assert stored == set(card["files"])
    for name, digest in card["files"].items():
        assert sha256_hex(store.get_bytes(prefix + name)) == digest
    assert not any(name.endswith((".bin", ".pt", ".pkl")) for name in stored)
    labels = json.loads(store.get_bytes(prefix + "labels.json"))
    assert labels["id2label"]["0"] == "O" and labels["task"] == "token-classification"
    assert len(card["metrics"]["dev_by_epoch"]) == 2 and "f1" in card["metrics"]["test"]
    assert sum(s["rows"] for s in card["lineage"]["shards"]) == 80
    assert bus.acked[(streams.TRAIN_REQUESTS, "trainer")] == ["1-0"]
    assert store.list_keys(f"checkpoints/{request.request_id}/") == []


async def test_a_request_delivered_again_after_publishing_is_announced_once_and_not_retrained(
        settings, fakes, tiny_base_model):
    bus, store = fakes
    service = create_service(settings, TrainerDeps(bus=bus, store=store))
    payload = _request(str(tiny_base_model), epochs=1).model_dump_json().encode()
    await service.handler.process([_entry("1-0", payload)])
    versions_before = store.list_keys("models/")
    await service.handler.process([_entry("1-0", payload)])

    assert store.list_keys("models/") == versions_before
    assert len(bus.messages(streams.MODELS_PUBLISHED)) == 1
    states = [m["state"] for m in bus.messages(streams.TRAIN_STATUS)]
    assert states.count("accepted") == 1 and states.count("published") == 2
    assert bus.acked[(streams.TRAIN_REQUESTS, "trainer")] == ["1-0", "1-0"]


async def test_a_request_without_an_id_keeps_one_id_across_deliveries(settings, fakes, tiny_base_model):
    bus, store = fakes
    service = create_service(settings, TrainerDeps(bus=bus, store=store))
    fields = json.loads(_request(str(tiny_base_model), epochs=1).model_dump_json())
    del fields["request_id"]
    payload = json.dumps(fields).encode()
    await service.handler.process([_entry("1700000000000-0", payload)])
    await service.handler.process([_entry("1700000000000-0", payload)])

    statuses = bus.messages(streams.TRAIN_STATUS)
    assert len({s["request_id"] for s in statuses}) == 1
    assert [s["state"] for s in statuses].count("accepted") == 1
    assert len(bus.messages(streams.MODELS_PUBLISHED)) == 1


async def test_an_invalid_request_is_dead_lettered_with_the_fields_named(settings, fakes):
    bus, store = fakes
    service = create_service(settings, TrainerDeps(bus=bus, store=store))
    bad = {"model_name": "Bad Name", "task": "regression", "dataset": DATASET, "epochs": 0, "surprise": 1}
    await service.handler.process([_entry("1-0", json.dumps(bad).encode()), _entry("1-1", b"{not json")])

    letters = bus.messages(streams.DLQ)
    assert len(letters) == 2
    fields = {e["field"] for e in letters[0]["errors"]}
    assert {"model_name", "task", "epochs", "surprise"} <= fields
    assert letters[0]["stage"] == "trainer" and json.loads(letters[0]["original"]) == bad
    assert letters[1]["original"] == "{not json"
    assert bus.acked[(streams.TRAIN_REQUESTS, "trainer")] == ["1-0", "1-1"]
    assert bus.messages(streams.TRAIN_STATUS) == [] and store.list_keys("models/") == []


async def test_a_refused_combination_fails_on_train_status_with_its_reason_and_is_dead_lettered(settings, fakes):
    bus, store = fakes
    service = create_service(settings, TrainerDeps(bus=bus, store=store))
    refused = {"model_name": "notes-ner", "task": "token-classification", "dataset": DATASET,
               "augmentation": {"copies": 1}, "dp": {"target_epsilon": 8}}
    await service.handler.process([_entry("1-0", json.dumps(refused).encode())])

    [status] = bus.messages(streams.TRAIN_STATUS)
    assert status["state"] == "failed" and status["model_name"] == "notes-ner"
    assert "augmentation: augmentation cannot be combined with dp" in status["message"]
    assert status["request_id"] == stable_request_id("1-0")  # the id a valid request from this entry would get
    [letter] = bus.messages(streams.DLQ)
    assert [e["field"] for e in letter["errors"]] == ["augmentation"]
    assert bus.acked[(streams.TRAIN_REQUESTS, "trainer")] == ["1-0"] and store.list_keys("models/") == []


async def test_a_request_without_enough_data_fails_with_a_reason_and_is_acked(settings, fakes, tiny_base_model):
    bus, store = fakes
    service = create_service(settings, TrainerDeps(bus=bus, store=store))
    request = _request(str(tiny_base_model), dataset="empty-dataset")
    await service.handler.process([_entry("1-0", request.model_dump_json().encode())])

    states = bus.messages(streams.TRAIN_STATUS)
    assert [s["state"] for s in states] == ["accepted", "failed"]
    assert "too little data" in states[-1]["message"]
    assert bus.acked[(streams.TRAIN_REQUESTS, "trainer")] == ["1-0"]
    assert bus.messages(streams.MODELS_PUBLISHED) == [] and store.list_keys("models/") == []


async def test_an_unusable_base_model_fails_the_request(settings, fakes, tmp_path):
    bus, store = fakes
    service = create_service(settings, TrainerDeps(bus=bus, store=store))
    await service.handler.process([_entry("1-0", _request(str(tmp_path)).model_dump_json().encode())])

    failed = bus.messages(streams.TRAIN_STATUS)[-1]
    assert failed["state"] == "failed" and "no config.json" in failed["message"]
    assert bus.acked[(streams.TRAIN_REQUESTS, "trainer")] == ["1-0"]


async def test_a_crash_mid_run_leaves_the_request_pending_with_its_checkpoint(settings, fakes, tiny_base_model):
    bus, store = fakes

    def crash(epoch: int) -> None:
        raise RuntimeError("simulated crash")

    service = create_service(settings, TrainerDeps(bus=bus, store=store, after_epoch=crash))
    request = _request(str(tiny_base_model))
    with pytest.raises(RuntimeError, match="simulated crash"):
        await service.handler.process([_entry("1-0", request.model_dump_json().encode())])

    assert bus.acked[(streams.TRAIN_REQUESTS, "trainer")] == []
    assert any(k.endswith("epoch-0001/trainer_state.json") for k in store.list_keys("checkpoints/"))

    resumed = create_service(settings, TrainerDeps(bus=bus, store=store))
    await resumed.handler.process([Entry(id="1-0", fields={b"payload": request.model_dump_json().encode()},
                                         deliveries=2)])
    messages = [m.get("message") or "" for m in bus.messages(streams.TRAIN_STATUS)]
    assert "resumed from epoch 1" in messages
    [announced] = bus.messages(streams.MODELS_PUBLISHED)
    card = json.loads(store.get_bytes(announced["card_key"]))
    assert card["training"]["resumed_from_epoch"] == 1
    assert [h["epoch"] for h in card["metrics"]["dev_by_epoch"]] == [1, 2]
    assert store.list_keys("checkpoints/") == []


async def test_a_checkpoint_from_before_the_label_set_changed_is_not_resumed(
        settings, fakes, tiny_base_model, clinical_events, write_shards):
    bus, store = fakes

    def crash(epoch: int) -> None:
        raise RuntimeError("simulated crash")

    request = _request(str(tiny_base_model))
    payload = request.model_dump_json().encode()
    with pytest.raises(RuntimeError):
        await create_service(settings, TrainerDeps(bus=bus, store=store, after_epoch=crash)).handler.process(
            [_entry("1-0", payload)])
    chemicals = [e.model_copy(update={"event_id": f"chem-{i}", "label": ["B-Chemical"] + ["O"] * (len(e.label) - 1)})
                 for i, e in enumerate(clinical_events[100:140])]
    write_shards(store, DATASET, chemicals)
    await create_service(settings, TrainerDeps(bus=bus, store=store)).handler.process([_entry("1-0", payload)])

    assert not any("resumed" in (m.get("message") or "") for m in bus.messages(streams.TRAIN_STATUS))
    [announced] = bus.messages(streams.MODELS_PUBLISHED)
    labels = json.loads(store.get_bytes(announced["prefix"] + "labels.json"))
    assert "B-Chemical" in labels["label2id"]
    card = json.loads(store.get_bytes(announced["card_key"]))
    assert card["training"]["resumed_from_epoch"] == 0


async def test_entries_reach_the_handler_through_the_broker(settings, fakes):
    bus, store = fakes
    app = create_app(settings, TrainerDeps(bus=bus, store=store))
    async with TestRedisBroker(app.broker) as broker:
        await broker.publish(b'{"model_name": 3}', stream=streams.TRAIN_REQUESTS)

    [letter] = bus.messages(streams.DLQ)
    assert letter["source_stream"] == streams.TRAIN_REQUESTS and letter["original"] == '{"model_name": 3}'
