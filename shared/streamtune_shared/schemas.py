"""Every message on the bus, as frozen pydantic v2 models (the wire contract, schema_version 1).

Entries carry one field, ``payload``, holding the JSON of one of these models.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    ValidationInfo,
    field_validator,
)

SCHEMA_VERSION = 1
SUPPORTED_SCHEMA_VERSIONS = (1,)

MAX_TEXT_CHARS = 10_000
MAX_READINGS = 256
MAX_META_KEYS = 64

_FROZEN = ConfigDict(frozen=True, extra="forbid")

# Names that end up in object keys and stream fields: no spaces, no slashes.
DatasetName = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9._-]{0,62}$")]
ModelName = DatasetName
Identifier = Annotated[str, StringConstraints(pattern=r"^[\x21-\x7e]{1,128}$")]
SensorName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9 ._/-]{0,63}$")]
MetaKey = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.-]{1,64}$")]
MetaValue = Annotated[str, StringConstraints(max_length=1024)] | int | float | bool | None

BIO_TAG = re.compile(r"^(O|[BI]-[A-Za-z0-9_]{1,32})$")
ClassLabel = Annotated[str, StringConstraints(min_length=1, max_length=64)]
# A class name, 0/1 for anomaly (or a class index), or one BIO tag per whitespace token of `text`.
Label = ClassLabel | int | list[str]

# Validation messages never quote the input (field_errors passes them on to logs and dead letters): they say
# what is wrong and where (a field path, a list position), not what was sent.


def _number_or_null(value: Any) -> Any:
    # Stricter than pydantic's float (no numeric strings, no booleans); runs per reading, so each error's
    # location is readings.<sensor name>.
    if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
        raise ValueError("must be a number or null")
    return value


Reading = Annotated[float | None, BeforeValidator(_number_or_null)]


def utcnow() -> datetime:
    """The current time, timezone-aware in UTC."""
    return datetime.now(UTC)


class Event(BaseModel):
    """What a producer writes to ``events.raw`` (and ``POST /events``)."""

    model_config = _FROZEN

    schema_version: Literal[1] = Field(description="Wire format version; only 1 exists.")
    event_id: Identifier = Field(description="Producer-chosen id; a second event with the same id is a duplicate.")
    device_id: Identifier = Field(description="The device that produced the event (pseudonymized downstream).")
    dataset: DatasetName = Field(description="Where the labeled copy of the event is stored.")
    ts: AwareDatetime = Field(description="When the event happened, ISO 8601 with a timezone.")
    readings: dict[SensorName, Reading] = Field(default_factory=dict, max_length=MAX_READINGS)
    text: Annotated[str, StringConstraints(max_length=MAX_TEXT_CHARS)] | None = None
    label: Label | None = None
    meta: dict[MetaKey, MetaValue] = Field(default_factory=dict, max_length=MAX_META_KEYS)

    @field_validator("label", mode="before")
    @classmethod
    def _label_is_not_bool(cls, value: Any) -> Any:
        if isinstance(value, bool):
            raise ValueError("label must be a class name, an integer or a list of BIO tags, not a boolean")
        return value

    @field_validator("label")
    @classmethod
    def _token_labels_match_text(cls, label: Label | None, info: ValidationInfo) -> Label | None:
        # `text` is declared before `label`, so it is in info.data unless it failed validation itself.
        if not isinstance(label, list) or "text" not in info.data:
            return label
        text = info.data["text"]
        if text is None:
            raise ValueError("BIO tags need a text")
        tokens = len(text.split())
        if tokens != len(label):
            raise ValueError(f"{len(label)} tags for {tokens} whitespace tokens of text")
        bad = [str(i) for i, tag in enumerate(label) if not BIO_TAG.match(tag)]
        if bad:
            more = f" and {len(bad) - 5} more" if len(bad) > 5 else ""
            raise ValueError(f"not BIO tags (O, B-<type>, I-<type>) at position {', '.join(bad[:5])}{more}")
        return label


class ValidEvent(Event):
    """An event that passed ingestion: validated, cleaned, deduplicated (``events.valid``)."""

    notes: tuple[str, ...] = Field(default=(), description="What cleaning changed, e.g. 'reading temp dropped: NaN'.")
    ingested_at: AwareDatetime


class CleanEvent(ValidEvent):
    """An anonymized event (``events.clean``): pseudonymized ids, PII in text replaced by type tags."""

    redactions: dict[str, int] = Field(default_factory=dict, description="Count of replaced values per PII type.")
    anonymized_at: AwareDatetime


class FieldError(BaseModel):
    """One reason an input was rejected, naming the field."""

    model_config = _FROZEN

    field: str
    message: str


def field_errors(exc: ValidationError, limit: int = 20) -> tuple[FieldError, ...]:
    """The first errors of a validation failure, each naming its field (dotted path), never echoing the input."""
    return tuple(
        FieldError(field=".".join(str(part) for part in error["loc"]) or "payload", message=error["msg"])
        for error in exc.errors(include_input=False, include_url=False)[:limit]
    )


class DeadLetter(BaseModel):
    """An input that could not be processed (``events.dlq``), with the original bytes."""

    model_config = _FROZEN

    schema_version: Literal[1] = SCHEMA_VERSION
    stage: str
    reason: str
    errors: tuple[FieldError, ...] = ()
    source_stream: str | None = None
    entry_id: str | None = None
    event_id: str | None = None
    deliveries: int = 1
    original: str | None = Field(default=None, description="The original payload as UTF-8 text, when it is text.")
    original_b64: str = Field(description="The original payload bytes, base64.")
    original_truncated: bool = False
    failed_at: AwareDatetime = Field(default_factory=utcnow)


class DatasetShardWritten(BaseModel):
    """A Parquet shard of clean labeled events was stored (``datasets.shards``)."""

    model_config = _FROZEN

    schema_version: Literal[1] = SCHEMA_VERSION
    dataset: DatasetName
    shard_key: str
    manifest_key: str
    rows: int
    sha256: str
    min_ts: AwareDatetime
    max_ts: AwareDatetime
    written_at: AwareDatetime = Field(default_factory=utcnow)


class ShardManifest(BaseModel):
    """The JSON manifest stored beside each shard."""

    model_config = _FROZEN

    schema_version: Literal[1] = SCHEMA_VERSION
    dataset: DatasetName
    shard_key: str
    format: Literal["parquet"] = "parquet"
    rows: int
    size_bytes: int
    sha256: str
    min_ts: AwareDatetime
    max_ts: AwareDatetime
    columns: dict[str, str]
    writer: str
    created_at: AwareDatetime = Field(default_factory=utcnow)


Task = Literal["token-classification", "sequence-classification"]


class TrainRequest(BaseModel):
    """Ask the trainer for a fine-tune (``train.requests``)."""

    model_config = _FROZEN

    schema_version: Literal[1] = SCHEMA_VERSION
    request_id: Identifier | None = Field(
        default=None, description="Names the run; without one the trainer derives it from the stream entry id.")
    model_name: ModelName
    task: Task
    dataset: DatasetName
    base_model: str = Field(
        default="minilm",
        description="'minilm' (the offline all-MiniLM-L6-v2 package), a local model folder, or s3://bucket/prefix/",
    )
    epochs: int = Field(default=3, ge=1, le=100)
    batch_size: int = Field(default=16, ge=1, le=512)
    learning_rate: float = Field(default=5e-5, gt=0, lt=1)
    weight_decay: float = Field(default=0.01, ge=0, lt=1)
    seed: int = 42
    max_length: int = Field(default=128, ge=8, le=512)
    dev_fraction: float = Field(default=0.1, gt=0, lt=0.5)
    test_fraction: float = Field(default=0.1, gt=0, lt=0.5)
    early_stopping_patience: int | None = Field(default=2, ge=1)


TrainState = Literal["accepted", "running", "epoch_end", "published", "failed"]


class TrainStatus(BaseModel):
    """Progress and metrics of a training run (``train.status``)."""

    model_config = _FROZEN

    schema_version: Literal[1] = SCHEMA_VERSION
    request_id: Identifier
    model_name: ModelName
    state: TrainState
    epoch: int | None = None
    epochs: int | None = None
    step: int | None = None
    total_steps: int | None = None
    metrics: dict[str, Any] = Field(default_factory=dict)
    message: str | None = None
    version: str | None = None
    at: AwareDatetime = Field(default_factory=utcnow)


class ModelPublished(BaseModel):
    """A complete model version is in the object store (``models.published``)."""

    model_config = _FROZEN

    schema_version: Literal[1] = SCHEMA_VERSION
    model_name: ModelName
    version: str
    task: Task
    dataset: DatasetName
    prefix: str = Field(description="Object-store prefix of the version: models/<name>/<version>/")
    card_key: str
    request_id: Identifier
    metrics: dict[str, Any] = Field(default_factory=dict)
    published_at: AwareDatetime = Field(default_factory=utcnow)


class EntitySpan(BaseModel):
    """An entity found in a text, with character offsets into the (clean) text."""

    model_config = _FROZEN

    start: int
    end: int
    label: str
    text: str
    score: float


class PredictionOutputs(BaseModel):
    """Task-shaped outputs: entity spans for NER, label and probabilities for classification."""

    model_config = _FROZEN

    entities: tuple[EntitySpan, ...] | None = None
    label: str | None = None
    probabilities: dict[str, float] | None = None


class Prediction(BaseModel):
    """One prediction per clean event (``predictions``)."""

    model_config = _FROZEN

    schema_version: Literal[1] = SCHEMA_VERSION
    event_id: Identifier
    dataset: DatasetName
    model: ModelName
    version: str
    task: Task
    outputs: PredictionOutputs
    latency_ms: float
    predicted_at: AwareDatetime = Field(default_factory=utcnow)
