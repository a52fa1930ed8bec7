"""Settings of the anonymizer, from ``ANONYMIZER_*`` (and ``STREAMTUNE_*`` for Redis and S3)."""

from __future__ import annotations

from typing import Literal, Self

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from streamtune_shared.batching import DEFAULT_TOKENS_PER_FORWARD
from streamtune_shared.schemas import DatasetName, MetaKey, ModelName
from streamtune_shared.settings import InfraSettings

from .domain import DEFAULT_META_POLICY, MetaAction, check_pseudonym_key
from .dp import DatasetDP
from .generalization import DatasetGeneralization
from .kanonymity import KAnonymityRule
from .text_policy import TextPolicy


class AnonymizerSettings(BaseSettings):
    """Everything the anonymizer reads from the environment; refuses a weak pseudonym key."""

    # Validation errors must never echo the key back into a log.
    model_config = SettingsConfigDict(env_prefix="ANONYMIZER_", extra="ignore", hide_input_in_errors=True)

    infra: InfraSettings = Field(default_factory=InfraSettings)
    pseudonym_key: SecretStr = Field(description="HMAC-SHA256 key for pseudonyms: random, at least 32 characters.")
    allow_dev_key: bool = Field(default=False, description="Accept a short or default key (development only).")
    meta_policy: dict[MetaKey, MetaAction] = Field(
        default_factory=lambda: dict(DEFAULT_META_POLICY),
        description='JSON {"meta key": "keep" | "pseudonymize" | "drop"}; unlisted keys are pseudonymized.',
    )
    text_policy: TextPolicy = Field(
        default_factory=TextPolicy,
        description='JSON {"default": "tag", "types": {"EMAIL": "pseudonym"}, "datasets": {"clinical-notes": '
                    '{"PERSON": "mask"}}}; actions tag | mask | pseudonym | drop (labeled texts: every token masked).',
    )
    generalization: dict[DatasetName, DatasetGeneralization] = Field(
        default_factory=dict, description='JSON per dataset: {"ts": "minute"|"hour"|"day", "gps": {"grid_deg": 0.01}'
                                          ' or {"decimals": 2}, "buckets": {"age": 10}}; off by default.')
    k_anonymity: dict[DatasetName, KAnonymityRule] = Field(
        default_factory=dict, description='JSON per dataset: {"quasi_identifiers": ["ts", "lat", "lon"], "k": 5,'
                                          ' "max_steps": 3, "max_suppressed_fraction": 0.05}; off by default.')
    dp: dict[DatasetName, DatasetDP] = Field(
        default_factory=dict, description='JSON per dataset: {"mechanism": "laplace"|"gaussian", "epsilon_per_event",'
                                          ' "delta", "sensors": {"name": [low, high]}, "budget_epsilon", "window_s"};'
                                          ' off by default.')
    dp_metric_devices: int = Field(default=1000, ge=0,
                                   description="Devices given a spent-epsilon gauge (label cardinality cap).")
    pii_model: ModelName | Literal[""] = Field(
        default="pii-ner", description="Registry model whose newest version finds names, places and organisations "
                                       "in text ('' to use only the fallback).")
    ner_fallback: Literal["spacy", "none"] = Field(
        default="spacy", description="Entity model used until a PII model version is published: spaCy "
                                     "en_core_web_sm (packaged, nothing downloaded), or none (patterns only).")
    pii_model_max_length: int = Field(default=128, ge=16, le=512,
                                      description="Word pieces per model window; longer texts are split into windows.")
    pii_model_tokens_per_forward: int = Field(
        default=DEFAULT_TOKENS_PER_FORWARD, ge=16, le=65_536,
        description="Padded word pieces per model forward: windows of similar length are grouped until the next "
                    "would pass this (at most 64 windows). Small forwards keep the activations in the CPU's cache: "
                    "on 1 thread, 256 was about 2.8x as fast as 64 windows a forward.")
    pii_model_quantize: bool = Field(default=True, description="int8 dynamic quantization of the PII model (CPU).")
    pii_model_runtime: Literal["onnx", "torch"] = Field(
        default="torch", description="What runs the PII model: torch, or ONNX Runtime (exported at load time; "
                                     "faster than torch on a contended CPU, slower on an idle one). Without "
                                     "onnxruntime installed, torch.")
    pii_model_threads: int | None = Field(
        default=None, ge=1, le=256,
        description="CPU threads of the PII model (None: torch's default, every core). Where other processes "
                    "share the cores, 1 per anonymizer process (and more replicas) was faster.")
    pii_model_outside_threshold: float | None = Field(
        default=None, gt=0, le=1,
        description="A word is PII unless the model gives it 'O' at least this probability (higher: more recall, "
                    "less precision); None: the most probable tag.")
    pii_model_rescan_s: float = Field(default=30.0, gt=0, description="How often the registry is scanned for a "
                                                                      "newer PII model version.")
    announce_block_ms: int = Field(default=1_000, ge=10, description="XREAD BLOCK on models.published.")
    batch_size: int = Field(default=256, ge=1, le=10_000, description="Entries read per XREADGROUP.")
    claim_idle_ms: int = Field(default=30_000, ge=0, description="events.valid entries idle this long are reclaimed.")
    shard_claim_idle_ms: int = Field(default=60_000, ge=0,
                                     description="events.clean entries idle this long are reclaimed (> shard age).")
    max_deliveries: int = Field(default=5, ge=1, description="Deliveries before an entry is dead-lettered.")
    dedupe_ttl_s: int = Field(default=7 * 86_400, ge=1, description="How long an event_id is remembered.")
    shard_max_rows: int = Field(default=1_000, ge=1, le=1_000_000, description="Rows that make a shard due.")
    shard_max_age_s: float = Field(default=5.0, gt=0,
                                   description="Age of the oldest buffered row that makes a shard due.")
    shard_buffer_limit: int = Field(default=20_000, ge=1,
                                    description="Rows buffered across datasets before new entries are left pending.")
    http_host: str = "0.0.0.0"
    http_port: int = 8082

    @model_validator(mode="after")
    def _key_is_strong_and_timings_agree(self) -> Self:
        check_pseudonym_key(self.pseudonym_key.get_secret_value(), allow_dev_key=self.allow_dev_key)
        if self.shard_claim_idle_ms <= self.shard_max_age_s * 1000:
            raise ValueError("shard_claim_idle_ms must exceed shard_max_age_s, or buffered rows would be reclaimed")
        return self
