"""The wire contract as an AsyncAPI 3 document: one channel per stream, its message, who sends and receives it.

Pure: built from ``streams`` and the message models' JSON schemas; `make docs` writes it to
docs/asyncapi.yaml (docs/write_docs.py) and a unit test fails when the committed file is stale.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from . import streams
from .rollout import RolloutChanged
from .schemas import (
    SCHEMA_VERSION,
    CleanEvent,
    DatasetShardWritten,
    DeadLetter,
    Event,
    ModelPublished,
    Prediction,
    TrainRequest,
    TrainStatus,
    ValidEvent,
)

SCHEMAS_REF = "#/components/schemas/{model}"
ENTRY_NOTE = (f"Each stream entry has one field, `{streams.PAYLOAD_FIELD}`, holding this message as JSON "
              "(UTF-8). Consumers read through Redis consumer groups (XREADGROUP), acknowledge what they "
              "finished and dead-letter what they cannot parse to events.dlq with its original bytes.")


@dataclass(frozen=True)
class Channel:
    """A stream and the message its entries carry."""

    stream: str
    message: type[BaseModel]
    description: str


@dataclass(frozen=True)
class Operation:
    """A service sending to or receiving from a stream; ``group`` is its consumer group (None: plain XREAD)."""

    service: str
    action: Literal["send", "receive"]
    stream: str
    summary: str
    group: str | None = None


CHANNELS = (
    Channel(streams.RAW, Event, "Events as producers send them (XADD, or ingestion's POST /events)."),
    Channel(streams.VALID, ValidEvent, "Validated, deduplicated and cleaned events."),
    Channel(streams.CLEAN, CleanEvent, "Anonymized events: PII redacted, device pseudonymized."),
    Channel(streams.DLQ, DeadLetter, "Entries a stage could not handle, with the reason and the original bytes."),
    Channel(streams.SHARDS, DatasetShardWritten, "A dataset shard (parquet) and its manifest are stored."),
    Channel(streams.TRAIN_REQUESTS, TrainRequest, "Requests to fine-tune a model on a dataset."),
    Channel(streams.TRAIN_STATUS, TrainStatus, "Progress and metrics of training runs."),
    Channel(streams.MODELS_PUBLISHED, ModelPublished, "A complete model version is in the object store."),
    Channel(streams.PREDICTIONS, Prediction, "One prediction per clean event, by the primary or a canary version."),
    Channel(streams.PREDICTIONS_SHADOW, Prediction, "Predictions of a shadow version on a copy of the traffic."),
    Channel(streams.MODELS_CONTROL, RolloutChanged, "A dataset's serving state changed (promote, canary, ...)."),
)

OPERATIONS = (
    Operation("ingestion", "receive", streams.RAW, "Validate, deduplicate and clean raw events.", "ingestion"),
    Operation("ingestion", "send", streams.VALID, "Forward valid events."),
    Operation("ingestion", "send", streams.DLQ, "Dead-letter malformed or refused events."),
    Operation("anonymizer", "receive", streams.VALID, "Redact and pseudonymize valid events.", "anonymizer"),
    Operation("anonymizer", "send", streams.CLEAN, "Forward anonymized events."),
    Operation("anonymizer", "receive", streams.CLEAN, "Buffer labeled clean events into dataset shards.",
              "anonymizer-shards"),
    Operation("anonymizer", "send", streams.SHARDS, "Announce a stored dataset shard."),
    Operation("anonymizer", "receive", streams.MODELS_PUBLISHED, "Load a newly published PII model (every replica)."),
    Operation("anonymizer", "send", streams.DLQ, "Dead-letter events it cannot anonymize."),
    Operation("trainer", "receive", streams.TRAIN_REQUESTS, "Run a training request.", "trainer"),
    Operation("trainer", "send", streams.TRAIN_STATUS, "Report progress and metrics."),
    Operation("trainer", "send", streams.MODELS_PUBLISHED, "Announce a published model version."),
    Operation("trainer", "send", streams.DLQ, "Dead-letter malformed requests."),
    Operation("predictor", "receive", streams.CLEAN, "Predict every clean event.", "predictor"),
    Operation("predictor", "receive", streams.MODELS_PUBLISHED, "Follow new versions (every replica)."),
    Operation("predictor", "receive", streams.MODELS_CONTROL, "Apply serving-state changes (every replica)."),
    Operation("predictor", "send", streams.PREDICTIONS, "Publish primary and canary predictions."),
    Operation("predictor", "send", streams.PREDICTIONS_SHADOW, "Publish shadow predictions."),
    Operation("predictor", "send", streams.DLQ, "Dead-letter events it cannot predict."),
    Operation("cli", "send", streams.RAW, "`streamtune produce`: send events from a file."),
    Operation("cli", "send", streams.TRAIN_REQUESTS, "`streamtune train`: request a training run."),
    Operation("cli", "receive", streams.TRAIN_STATUS, "`streamtune train`: follow a run."),
    Operation("cli", "send", streams.MODELS_CONTROL, "`streamtune models promote | rollback | ...`."),
)


def channel_id(stream: str) -> str:
    """The channel's key in the document (the stream name itself)."""
    return stream


def operation_id(operation: Operation) -> str:
    """A unique, readable id, e.g. ``predictor.receive.events.clean``."""
    return f"{operation.service}.{operation.action}.{operation.stream}"


def _message(channel: Channel, schema_ref: dict[str, str]) -> dict[str, Any]:
    name = channel.message.__name__
    return {"name": name, "title": name, "summary": (channel.message.__doc__ or "").strip().splitlines()[0],
            "contentType": "application/json", "payload": schema_ref}


def _operation(operation: Operation, channels: dict[str, Channel]) -> dict[str, Any]:
    channel = channels[operation.stream]
    document: dict[str, Any] = {
        "action": operation.action, "summary": operation.summary,
        "channel": {"$ref": f"#/channels/{channel_id(operation.stream)}"},
        "messages": [{"$ref": f"#/channels/{channel_id(operation.stream)}/messages/{channel.message.__name__}"}],
        "tags": [{"name": operation.service}],
    }
    if operation.group is not None:  # an extension field: AsyncAPI's Redis bindings have none for groups
        document["x-consumer-group"] = operation.group
    return document


def build_asyncapi(channels: tuple[Channel, ...] = CHANNELS,
                   operations: tuple[Operation, ...] = OPERATIONS) -> dict[str, Any]:
    """The AsyncAPI 3.0 document of these channels and operations (every operation's stream must be a channel)."""
    models = sorted({c.message for c in channels}, key=lambda m: m.__name__)
    refs, schemas = models_json_schema([(m, "validation") for m in models], ref_template=SCHEMAS_REF)
    by_stream = {c.stream: c for c in channels}
    return {
        "asyncapi": "3.0.0",
        "info": {"title": "streamtune streams", "version": str(SCHEMA_VERSION),
                 "description": "The Redis streams between the streamtune services. " + ENTRY_NOTE},
        "defaultContentType": "application/json",
        "servers": {"redis": {"host": "127.0.0.1:6379", "pathname": "/0", "protocol": "redis",
                              "description": "Redis 7 (STREAMTUNE_REDIS_URL); streams need no setup."}},
        "channels": {channel_id(c.stream): {
            "address": c.stream, "description": c.description,
            "messages": {c.message.__name__: _message(c, refs[(c.message, "validation")])}} for c in channels},
        "operations": {operation_id(o): _operation(o, by_stream) for o in operations},
        "components": {"schemas": schemas.get("$defs", {})},
    }
