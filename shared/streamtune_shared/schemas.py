"""Every message on the bus, as frozen pydantic v2 models (the wire contract, schema_version 1).

Entries carry one field, ``payload``, holding the JSON of one of these models.
"""

from __future__ import annotations

import re
import types
from collections.abc import Mapping
from datetime import UTC, datetime
from functools import lru_cache
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from .adaptation import (
    MAX_MODEL_NAME,
    OPTION_BLOCKS,
    AdversarialOptions,
    AugmentationOptions,
    DaptOptions,
    DPOptions,
    FreezeOptions,
    LoraOptions,
    LrSchedule,
    Method,
    PrefixOptions,
    PromptOptions,
    SearchOptions,
    adapted_base_name,
    fill_method_defaults,
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
# A training request's id ends up in version names (<UTC time>-<first 8 characters>), checkpoint prefixes and
# redis keys: the predictor's version pattern exactly, so every prefix of it keeps a version name valid.
RequestId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")]
# One safe path segment: model versions are folders of the object store (models/<name>/<version>/).
VersionName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")]
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


def field_errors(exc: ValidationError, limit: int | None = 20, *, root: str = "payload",
                 model: type[BaseModel] | None = None) -> tuple[FieldError, ...]:
    """One error per field of a validation failure, its messages merged ('; '), never echoing the input.

    A field is a dotted path into the document, found by walking the error's location along the types of
    ``model`` (default: the schema model the error's title names): pydantic's union member tags
    ('constrained-str', 'int', 'list[str]') and '[key]' markers are not steps of the document and are left
    out. Keys are input too, so a dict key is a step only when it is valid for the dict (a SensorName, a
    MetaKey...) and an unexpected field only when it looks like a field name; otherwise the error goes to
    the enclosing field ('invalid key: ...', 'value of an invalid key: ...'). Errors of the whole input go
    under ``root``; ``limit`` caps the number of fields (None: all of them).
    """
    model = model or _schema_model(exc.title)
    merged: dict[str, list[str]] = {}
    for error in exc.errors(include_input=False, include_url=False, include_context=False):
        path, about = _document_path(tuple(error["loc"]), model or Any)
        message = about + str(error["msg"]).removeprefix("Value error, ")
        messages = merged.setdefault(path or root, [])
        if message not in messages:
            messages.append(message)
    return tuple(FieldError(field=field, message="; ".join(messages))
                 for field, messages in list(merged.items())[:limit])


_KEY_MARKER = "[key]"  # pydantic's last location step when a dict key (the step before it) failed validation
# An unexpected field is named when it looks like one: any other key is just input.
_FIELD_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
_SEQUENCES = (list, tuple, set, frozenset)


def _schema_model(title: str) -> type[BaseModel] | None:
    # Pydantic titles a model's validation errors with the class name; every bus message is defined here.
    found = globals().get(title)
    return found if isinstance(found, type) and issubclass(found, BaseModel) else None


def _document_path(loc: tuple[int | str, ...], tp: Any) -> tuple[str, str]:
    """The dotted path of ``loc`` without pydantic's steps, and what the error is about when a key is left out."""
    steps: list[str] = []
    i = 0
    while i < len(loc):
        step, tp = loc[i], _unwrap(tp)
        members = _union_members(tp)
        if members:  # the next step names the union member that was tried
            i += 1
            tp = _member_for(members, loc[i] if i < len(loc) else None)
            continue
        origin = get_origin(tp)
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            field = tp.model_fields.get(step) if isinstance(step, str) else None
            if field is None:  # an unexpected field (extra="forbid"): nothing below it was validated
                named = isinstance(step, str) and _FIELD_NAME.match(step) is not None
                return ".".join([*steps, str(step)] if named else steps), ""
            tp = field.annotation
        elif origin is dict or origin is Mapping:
            key_type, value_type = get_args(tp) or (Any, Any)
            if loc[i + 1:i + 2] == (_KEY_MARKER,):
                return ".".join(steps), "invalid key: "
            if not _valid_key(key_type, step):
                return ".".join(steps), "value of an invalid key: "
            tp = value_type
        elif origin in _SEQUENCES and isinstance(step, int):
            args = get_args(tp)
            if origin is tuple and args and args[-1] is not Ellipsis:
                tp = args[step] if 0 <= step < len(args) else Any
            else:
                tp = args[0] if args else Any
        elif step == _KEY_MARKER:  # under an untyped (Any) value: the step before it is the invalid key
            return ".".join(steps[:-1]), "invalid key: "
        else:
            tp = Any
        steps.append(str(step))
        i += 1
    return ".".join(steps), ""


def _unwrap(tp: Any) -> Any:
    # Annotated[X, ...] is X; X | None is X (pydantic makes it nullable, without member tags).
    while True:
        if get_origin(tp) is Annotated:
            tp = get_args(tp)[0]
            continue
        members = _union_members(tp)
        if members is not None and len(members) == 1:
            tp = members[0]
            continue
        return tp


def _union_members(tp: Any) -> list[Any] | None:
    if get_origin(tp) not in (Union, types.UnionType):
        return None
    return [member for member in get_args(tp) if member is not type(None)]


def _member_for(members: list[Any], next_step: int | str | None) -> Any:
    # The member the rest of the location walks into: only its shape matters (its tag is left out anyway).
    unwrapped = [_unwrap(member) for member in members]
    if isinstance(next_step, int):
        return next((m for m in unwrapped if get_origin(m) in _SEQUENCES), Any)
    if isinstance(next_step, str):
        for m in unwrapped:
            if isinstance(m, type) and issubclass(m, BaseModel) and next_step in m.model_fields:
                return m
        return next((m for m in unwrapped if get_origin(m) in (dict, Mapping)), Any)
    return Any


@lru_cache(maxsize=32)
def _key_adapter(key_type: Any) -> TypeAdapter[Any]:
    return TypeAdapter(key_type)


def _valid_key(key_type: Any, key: int | str) -> bool:
    if key_type is Any or key_type is str:
        return isinstance(key, str)
    try:
        adapter = _key_adapter(key_type)
    except TypeError:  # an unhashable annotation
        adapter = TypeAdapter(key_type)
    try:
        adapter.validate_python(key)
    except ValidationError:
        return False
    return True


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


class KAnonymityReport(BaseModel):
    """How a shard was made k-anonymous over its quasi-identifiers (the anonymizer's ``K_ANONYMITY``)."""

    model_config = _FROZEN

    k: int = Field(ge=1)
    quasi_identifiers: tuple[str, ...]
    classes: int = Field(ge=0, description="Equivalence classes among the stored rows.")
    smallest_class: int = Field(ge=0, description="Rows in the smallest stored class (0: no row stored).")
    suppressed_rows: int = Field(ge=0, description="Rows left out because their class stayed smaller than k.")
    generalization_level: int = Field(ge=0, description="Steps coarser than the configured generalization.")


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
    k_anonymity: KAnonymityReport | None = Field(default=None, description="Set when the dataset is made k-anonymous.")


Task = Literal["token-classification", "sequence-classification", "sensor-anomaly"]
# Options DP-SGD cannot account for, and why.
NOT_WITH_DP = {
    "augmentation": "an augmented copy (and a replaced mention) carries a row into other examples, so the epsilon "
                    "would not hold per row",
    "adversarial": "DP-SGD clips and noises one gradient per example and the adversarial pass adds a second one "
                   "it does not account",
}


class TrainRequest(BaseModel):
    """Ask the trainer for a fine-tune (``train.requests``)."""

    model_config = _FROZEN

    schema_version: Literal[1] = SCHEMA_VERSION
    request_id: RequestId | None = Field(
        default=None, description="Names the run (letters, digits, '.', '_', '-'; first a letter or digit);"
                                  " without one the trainer derives it from the stream entry id.")
    model_name: ModelName
    task: Task
    dataset: DatasetName
    base_model: str = Field(
        default="minilm",
        description="'minilm' (the offline all-MiniLM-L6-v2 package), a published full version '<model>/<version>', "
                    "a local model folder, or s3://bucket/prefix/",
    )
    epochs: int = Field(default=3, ge=1, le=100)
    batch_size: int = Field(default=16, ge=1, le=512)
    learning_rate: float = Field(gt=0, lt=1, description="Absent or null: the method's default "
                                                          "(streamtune_shared.adaptation.DEFAULT_LEARNING_RATES).")
    weight_decay: float = Field(default=0.01, ge=0, lt=1)
    seed: int = 42
    max_length: int = Field(default=128, ge=8, le=512)
    dev_fraction: float = Field(default=0.1, gt=0, lt=0.5)
    test_fraction: float = Field(default=0.1, gt=0, lt=0.5)
    early_stopping_patience: int | None = Field(default=2, ge=1)
    base_layers: int | None = Field(
        default=None, ge=1, le=48,
        description="Keep only the first N transformer layers of the base model: a smaller, faster model "
                    "(e.g. 3 of MiniLM's 6 for the anonymizer's PII detector); None keeps every layer.")
    # adaptation methods (issue 8): the method, its option block, regularization, DP-SGD
    method: Method = Field(default="full", description="full, lora, freeze, prefix or prompt.")
    lora: LoraOptions | None = None
    freeze: FreezeOptions | None = None
    prefix: PrefixOptions | None = None
    prompt: PromptOptions | None = None
    hidden_dropout: float | None = Field(default=None, ge=0, lt=1, description="None keeps the base's.")
    attention_dropout: float | None = Field(default=None, ge=0, lt=1, description="None keeps the base's.")
    classifier_dropout: float | None = Field(default=None, ge=0, lt=1, description="None: the hidden dropout.")
    max_grad_norm: float | None = Field(default=1.0, gt=0, description="Gradient clipping; None turns it off.")
    lr_schedule: LrSchedule = "linear"
    warmup_ratio: float = Field(default=0.1, ge=0, lt=1, description="Share of the steps spent warming up.")
    dp: DPOptions | None = Field(default=None, description="DP-SGD with Opacus (full, freeze or lora).")
    augmentation: AugmentationOptions | None = Field(default=None, description="Opt-in training-split augmentation.")
    adversarial: AdversarialOptions | None = Field(default=None, description="Opt-in FGM / PGD on the embeddings.")
    search: SearchOptions | None = Field(default=None, description="Opt-in Optuna hyper-parameter search.")
    dapt: DaptOptions | None = Field(default=None, description="Opt-in domain-adaptive (masked-LM) pretraining.")
    # sensor anomaly (issue 7): windows of one device's events, calibrated by its first events
    window: int = Field(default=64, ge=2, le=1024, description="Consecutive events of one device per window.")
    stride: int = Field(default=4, ge=1, le=1024, description="Training takes every stride-th window.")
    calibration_events: int = Field(
        default=400, ge=1, le=1_000_000,
        description="A device's first N events are its normal: they normalize it, and are never scored.")
    pretrain_epochs: int = Field(default=2, ge=0, le=100,
                                 description="Masked-reconstruction epochs on every window before fine-tuning.")
    mask_ratio: float = Field(default=0.25, gt=0, lt=1, description="Share of time steps masked in pretraining.")
    false_alarm_cap: float = Field(default=0.12, gt=0, le=1,
                                   description="The dev threshold is the best F1 with a false-alarm rate under this.")

    @model_validator(mode="before")
    @classmethod
    def _method_defaults(cls, data: Any) -> Any:
        return fill_method_defaults(data)

    @field_validator("base_model")
    @classmethod
    def _s3_base_names_a_prefix(cls, value: str) -> str:
        bucket, _, prefix = value.removeprefix("s3://").partition("/")
        if value.startswith("s3://") and (not bucket or not prefix.strip("/")):
            raise ValueError("an s3:// base model needs a bucket and a prefix: s3://<bucket>/<prefix>/")
        return value

    @field_validator("method", "dp", "search", "dapt", "adversarial")
    @classmethod
    def _transformer_options_only(cls, value: Any, info: ValidationInfo) -> Any:
        """A sensor-anomaly model is a small network trained from scratch, without word embeddings: none of these
        apply to it."""
        if info.data.get("task") == "sensor-anomaly" and value not in (None, "full"):
            raise ValueError(f"{info.field_name} is for the text tasks; a sensor-anomaly model is a small "
                             "network trained from scratch (its options: window, stride, calibration_events, "
                             "pretrain_epochs, mask_ratio, false_alarm_cap, augmentation)")
        return value

    @field_validator(*OPTION_BLOCKS)
    @classmethod
    def _options_match_method(cls, value: Any, info: ValidationInfo) -> Any:
        method = info.data.get("method")
        if value is not None and method is not None and info.field_name != method:
            raise ValueError(f"the {info.field_name} options are for method {info.field_name!r}, not {method!r}")
        return value

    @field_validator("dp")
    @classmethod
    def _dp_fits_method(cls, value: Any, info: ValidationInfo) -> Any:
        if value is not None and info.data.get("method") in ("prefix", "prompt"):
            raise ValueError("DP-SGD works with methods full, freeze and lora")
        return value

    @field_validator(*NOT_WITH_DP)
    @classmethod
    def _not_with_dp(cls, value: Any, info: ValidationInfo) -> Any:
        if value is not None and info.data.get("dp") is not None:
            raise ValueError(f"{info.field_name} cannot be combined with dp: {NOT_WITH_DP[info.field_name]}")
        return value

    @field_validator("search")
    @classmethod
    def _search_fits_method(cls, value: Any, info: ValidationInfo) -> Any:
        method = info.data.get("method")
        for name in value.space if value is not None and method is not None else ():
            block = name.partition(".")[0] if "." in name else method
            if block != method:
                raise ValueError(f"search parameter {name!r} needs method {block!r}, not {method!r}")
        return value

    @field_validator("dapt")
    @classmethod
    def _adapted_base_name_fits(cls, value: Any, info: ValidationInfo) -> Any:
        model_name = info.data.get("model_name")
        if value is not None and model_name is not None:
            name = adapted_base_name(model_name, value)
            if len(name) > MAX_MODEL_NAME:
                raise ValueError(f"the adapted base's name {name!r} is too long: set dapt.model_name")
        return value


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
    version: VersionName
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
    # sensor-anomaly: one per event; while its device calibrates, calibrating is true and is_anomaly false
    anomaly_score: float | None = None
    is_anomaly: bool | None = None
    threshold: float | None = None
    calibrating: bool | None = None


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
    rollout: Literal["primary", "canary", "shadow"] = Field(
        default="primary", description="Which side of a rollout made it: the primary version, a canary (a stable "
                                       "share of events), or a shadow (predictions.shadow only).")
    predicted_at: AwareDatetime = Field(default_factory=utcnow)
