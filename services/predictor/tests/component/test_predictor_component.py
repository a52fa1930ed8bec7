"""The predictor assembled by create_app with an in-memory bus and object store, serving REAL tiny models."""

from __future__ import annotations

import asyncio
import json
import threading
from dataclasses import replace

import pytest
from faststream.redis import TestRedisBroker
from prometheus_client import REGISTRY
from streamtune_predictor.app import PredictorDeps, build_service
from streamtune_predictor.config import PredictorSettings
from streamtune_predictor.handlers import ShuttingDown
from streamtune_predictor.registry import ServingModel
from streamtune_shared.bus import Entry
from streamtune_shared.model_registry import RegistryLayout
from streamtune_shared.schemas import Prediction
from streamtune_shared.settings import InfraSettings
from streamtune_shared.testing import InMemoryBus, InMemoryObjectStore, InMemoryRolloutControl
from structlog.testing import capture_logs

V1, V2, V3 = "20261128T120000Z-aaaa1111", "20261129T120000Z-bbbb2222", "20261130T120000Z-cccc3333"
TEXT = "Germline mutations in the  adenomatous polyposis coli gene ."


@pytest.fixture
def bus() -> InMemoryBus:
    return InMemoryBus()


@pytest.fixture
def store() -> InMemoryObjectStore:
    return InMemoryObjectStore()


def _service(bus, store, **settings):
    defaults = {"models": {"clinical-notes": "disease-ner", "pump-notes": "fault-cls"}}
    config = PredictorSettings(infra=InfraSettings(s3_access_key="k", s3_secret_key="s"), **{**defaults, **settings})
    return build_service(config, PredictorDeps(bus=bus, store=store, control=InMemoryRolloutControl(store)))


def _entries(make_event, texts: list[str | None], prefix: str = "e", dataset: str = "clinical-notes") -> list[Entry]:
    return [Entry(id=f"1-{i}", fields={b"payload": make_event(f"{prefix}{i}", text, dataset)})
            for i, text in enumerate(texts)]


def _predictions(bus: InMemoryBus) -> list[Prediction]:
    return [Prediction.model_validate(m) for m in bus.messages("predictions")]


def _rejected() -> float:
    return REGISTRY.get_sample_value("streamtune_predictor_reloads_total", {"outcome": "rejected"}) or 0.0


async def test_a_clean_event_on_the_broker_becomes_one_prediction(bus, store, model_folder, publish, make_event):
    publish(store, model_folder("ner-span"), "disease-ner", V1)
    service = _service(bus, store)
    await service.follower.sync()
    async with TestRedisBroker(service.app.broker) as broker:
        await broker.publish(make_event("note-1", TEXT), stream="events.clean")
    (message,) = bus.messages("predictions")
    assert set(message) >= {"event_id", "dataset", "model", "version", "task", "outputs", "latency_ms"}
    assert (message["event_id"], message["model"], message["version"]) == ("note-1", "disease-ner", V1)
    assert message["task"] == "token-classification" and message["latency_ms"] >= 0
    # The ner-span head tags every word I-Disease: one span over the whole text.
    (span,) = message["outputs"]["entities"]
    assert (span["start"], span["end"], span["label"]) == (0, len(TEXT), "Disease")
    assert span["text"] == TEXT and 0.9 < span["score"] <= 1.0
    assert len(bus.acked[("events.clean", "predictor")]) == 1


async def test_versions_are_found_under_the_one_configured_models_prefix(bus, store, model_folder, publish,
                                                                        make_event):
    # The trainer writes where STREAMTUNE_MODELS_PREFIX says; the predictor must read there, not at models/.
    publish(store, model_folder("ner-none"), "disease-ner", V2)  # the default prefix: not this deployment's
    publish(store, model_folder("ner-span"), "disease-ner", V1, layout=RegistryLayout("tenant-a/registry/"))
    config = PredictorSettings(infra=InfraSettings(s3_access_key="k", s3_secret_key="s",
                                                   models_prefix="tenant-a/registry/"),
                               models={"clinical-notes": "disease-ner"})
    service = build_service(config, PredictorDeps(bus=bus, store=store, control=InMemoryRolloutControl(
        store, RegistryLayout("tenant-a/registry/"))))
    await service.follower.sync()
    assert service.registry.route("clinical-notes").primary.version == V1


async def test_bad_unconfigured_and_textless_events(bus, store, model_folder, publish, make_event):
    publish(store, model_folder("ner-span"), "disease-ner", V1)
    service = _service(bus, store)
    await service.follower.sync()
    entries = [
        Entry(id="1-0", fields={b"payload": b'{"event_id": "broken"'}),
        Entry(id="1-1", fields={b"payload": make_event("other-1", "some text", "weather")}),
        Entry(id="1-2", fields={b"payload": make_event("no-text", None)}),
        Entry(id="1-3", fields={b"payload": make_event("good", "breast cancer")}),
        Entry(id="1-4", fields={b"payload": make_event("blank", "   ")}),
    ]
    await service.handler.process(entries)
    letters = {m["entry_id"]: m for m in bus.messages("events.dlq")}
    assert set(letters) == {"1-0", "1-2"}
    assert letters["1-0"]["stage"] == "predictor" and letters["1-0"]["original"] == '{"event_id": "broken"'
    assert letters["1-2"]["event_id"] == "no-text" and letters["1-2"]["errors"][0]["field"] == "text"
    predictions = {p.event_id: p for p in _predictions(bus)}
    assert set(predictions) == {"good", "blank"}
    assert predictions["blank"].outputs.entities == ()
    assert sorted(bus.acked[("events.clean", "predictor")]) == ["1-0", "1-1", "1-2", "1-3", "1-4"]


async def test_classification_gives_a_label_and_probabilities(bus, store, model_folder, publish, make_event):
    publish(store, model_folder("classifier"), "fault-cls", V1, dataset="pump-notes")
    service = _service(bus, store)
    await service.follower.sync()
    await service.handler.process(_entries(make_event, ["pump 3 vibrates", "all normal today"], dataset="pump-notes"))
    predictions = _predictions(bus)
    assert [p.event_id for p in predictions] == ["e0", "e1"]
    for prediction in predictions:
        assert prediction.task == "sequence-classification" and prediction.outputs.label == "fault"
        assert set(prediction.outputs.probabilities) == {"normal", "fault"}
        assert sum(prediction.outputs.probabilities.values()) == pytest.approx(1.0, abs=1e-4)
        assert prediction.outputs.entities is None


async def test_a_tampered_version_is_refused_and_the_old_one_keeps_serving(bus, store, model_folder, publish,
                                                                            make_event):
    publish(store, model_folder("ner-span"), "disease-ner", V1)
    service = _service(bus, store)
    await service.follower.sync()
    tampered = publish(store, model_folder("ner-none"), "disease-ner", V2, tamper="model.safetensors")
    rejected_before = _rejected()
    with capture_logs() as logs:
        await service.follower.on_announcement(tampered.model_dump_json().encode())
    (line,) = [entry for entry in logs if entry["event"] == "model.rejected"]
    assert (line["model"], line["version"], line["reason"]) == ("disease-ner", V2, "sha256 mismatch for model.safetensors")
    assert _rejected() == rejected_before + 1
    await service.handler.process(_entries(make_event, [TEXT]))
    assert [p.version for p in _predictions(bus)] == [V1]


async def test_a_version_listing_a_missing_file_or_pickle_weights_is_refused(bus, store, model_folder, publish):
    publish(store, model_folder("ner-span"), "disease-ner", V1)
    service = _service(bus, store)
    await service.follower.sync()
    missing = publish(store, model_folder("ner-span"), "disease-ner", V2,
                      card_files=lambda files: {**files, "extra/vocab.txt": "0" * 64})
    pickled = publish(store, model_folder("ner-span"), "disease-ner", V3,
                      card_files=lambda files: {**files, "pytorch_model.bin": "0" * 64})
    with capture_logs() as logs:
        await service.follower.on_announcement(missing.model_dump_json().encode())
        await service.follower.on_announcement(pickled.model_dump_json().encode())
    reasons = [entry["reason"] for entry in logs if entry["event"] == "model.rejected"]
    assert reasons == ["extra/vocab.txt listed in the card is missing", "pickle-based weights listed: pytorch_model.bin"]
    assert service.registry.route("clinical-notes").primary.version == V1


async def test_startup_skips_a_tampered_newest_version_and_honours_pins(bus, store, model_folder, publish):
    publish(store, model_folder("ner-span"), "disease-ner", V1)
    publish(store, model_folder("ner-span"), "disease-ner", V2, tamper="config.json")
    service = _service(bus, store)
    await service.follower.sync()
    assert service.registry.route("clinical-notes").primary.version == V1

    # A pin is a start-up seed: it applies to a deployment whose datasets have no serving state yet.
    fresh = InMemoryObjectStore()
    publish(fresh, model_folder("ner-span"), "disease-ner", V1)
    pinned = _service(InMemoryBus(), fresh, pinned={"disease-ner": V1})
    newer = publish(fresh, model_folder("ner-none"), "disease-ner", V3)
    await pinned.follower.sync()
    await pinned.follower.on_announcement(newer.model_dump_json().encode())
    assert pinned.registry.route("clinical-notes").primary.version == V1


async def test_a_swap_happens_between_batches(bus, store, model_folder, publish, make_event):
    publish(store, model_folder("ner-span"), "disease-ner", V1)
    service = _service(bus, store)
    await service.follower.sync()
    inside, release = threading.Event(), threading.Event()
    route = service.registry.route("clinical-notes")
    v1 = route.primary

    def gated(texts):
        inside.set()
        release.wait(30)
        return v1.predict(texts)

    service.registry.install(replace(route, primary=ServingModel(v1.name, v1.version, v1.task, gated)))
    first = asyncio.create_task(service.handler.process(_entries(make_event, [TEXT] * 5, prefix="a")))
    assert await asyncio.to_thread(inside.wait, 30)
    # v2 (whose head tags everything O) is announced and loaded while the first batch is inside the model.
    await service.follower.on_announcement(
        publish(store, model_folder("ner-none"), "disease-ner", V2).model_dump_json().encode())
    assert service.registry.route("clinical-notes").primary.version == V2
    release.set()
    await first
    await service.handler.process(_entries(make_event, [TEXT] * 4, prefix="b"))
    predictions = _predictions(bus)
    assert [(p.event_id[0], p.version) for p in predictions] == [("a", V1)] * 5 + [("b", V2)] * 4
    assert all(len(p.outputs.entities) == 1 for p in predictions[:5])
    assert all(p.outputs.entities == () for p in predictions[5:])
    assert len({p.event_id for p in predictions}) == 9


async def test_events_wait_for_their_model(bus, store, model_folder, publish, make_event):
    service = _service(bus, store)
    await service.follower.sync()
    waiting = asyncio.create_task(service.handler.process(_entries(make_event, [TEXT, "colon cancer"])))
    await asyncio.sleep(0.5)
    assert not waiting.done() and not bus.messages("predictions") and not bus.acked
    publish(store, model_folder("ner-span"), "disease-ner", V1)
    await service.follower.sync()
    await asyncio.wait_for(waiting, 30)
    assert [(p.event_id, p.version) for p in _predictions(bus)] == [("e0", V1), ("e1", V1)]


async def test_a_waiting_batch_gives_up_at_shutdown_without_acking(bus, store, make_event):
    service = _service(bus, store)
    waiting = asyncio.create_task(service.handler.process(_entries(make_event, [TEXT])))
    await asyncio.sleep(0.2)
    await service.app.stop()  # the app's own shutdown path, so the stopping hook's wiring is what is tested
    with pytest.raises(ShuttingDown):
        await asyncio.wait_for(waiting, 5)
    assert not bus.acked and not bus.messages("predictions")


async def test_post_predict(bus, store, model_folder, publish):
    import httpx

    service = _service(bus, store)
    transport = httpx.ASGITransport(app=service.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://predictor") as client:
        not_loaded = await client.post("/predict", json={"dataset": "clinical-notes", "text": TEXT})
        assert not_loaded.status_code == 503
        publish(store, model_folder("ner-span"), "disease-ner", V1)
        await service.follower.sync()
        one = await client.post("/predict", json={"dataset": "clinical-notes", "text": TEXT})
        assert one.status_code == 200
        body = one.json()
        assert (body["model"], body["version"], body["task"]) == ("disease-ner", V1, "token-classification")
        assert body["outputs"][0]["entities"][0]["text"] == TEXT
        many = await client.post("/predict", json={"model": "disease-ner", "texts": ["a b", "", "colon cancer"]})
        assert [len(o["entities"]) for o in many.json()["outputs"]] == [1, 0, 1]
        assert (await client.post("/predict", json={"dataset": "weather", "text": "x"})).status_code == 404
        assert (await client.post("/predict", json={"model": "nope", "text": "x"})).status_code == 404
        too_many = await client.post("/predict", json={"model": "disease-ner", "texts": ["x"] * 65})
        assert too_many.status_code == 422 and too_many.json()["detail"][0]["loc"] == ["body", "texts"]
        neither = await client.post("/predict", json={"model": "disease-ner"})
        assert neither.status_code == 422 and "'text' or 'texts'" in json.dumps(neither.json())


async def test_outputs_follow_their_events_across_chunks_and_truncation(bus, store, model_folder, publish,
                                                                        make_event):
    publish(store, model_folder("ner-span"), "disease-ner", V1)
    service = _service(bus, store, batch_size=2, max_length=16)
    await service.follower.sync()
    long_text = " ".join(f"word{i}" for i in range(60))
    texts = ["colon cancer", "a", long_text, "breast cancer in women", "x y z"]
    await service.handler.process(_entries(make_event, texts))
    predictions = _predictions(bus)
    assert [p.event_id for p in predictions] == ["e0", "e1", "e2", "e3", "e4"]
    for prediction, text in zip(predictions, texts, strict=True):
        (span,) = prediction.outputs.entities
        assert span.start == 0 and text.startswith(span.text)
    # Words past max_length tokens get no tag: the span stops where truncation cut the text.
    truncated = predictions[2].outputs.entities[0]
    assert 0 < truncated.end < len(long_text) and long_text[truncated.end] == " ", "cut between words"
    assert [p.outputs.entities[0].text for p in predictions if p.event_id != "e2"] == [
        "colon cancer", "a", "breast cancer in women", "x y z"]


async def test_a_word_the_tokenizer_drops_does_not_shift_the_spans(bus, store, model_folder, publish, make_event):
    publish(store, model_folder("ner-span"), "disease-ner", V1)
    service = _service(bus, store)
    await service.follower.sync()
    text = "colon \u200b cancer"
    await service.handler.process(_entries(make_event, [text]))
    (prediction,) = _predictions(bus)
    assert [(s.text, s.start, s.end) for s in prediction.outputs.entities] == [("colon", 0, 5), ("cancer", 8, 14)]
