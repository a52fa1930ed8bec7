"""The model card: the typed document that commits a model version, and the checks every reader applies.

A version's ``card.json`` is written last; it names the version, its task and data, how it was
trained, and the sha256 of every other file. A service serves a version only through a card that
passes ``parse_card``: safe relative file names, sha256 digests, safetensors weights and no
format that unpickles on load. Pure: no object store (``model_registry`` reads and writes them).
"""

from __future__ import annotations

import json
import re
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from .schemas import DatasetName, Identifier, ModelName, Task, VersionName, field_errors

CARD_FILE = "card.json"
LABELS_FILE = "labels.json"
WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
REQUIRED_FILES = (WEIGHTS_FILE, CONFIG_FILE, LABELS_FILE)
ADAPTER_WEIGHTS_FILE = "adapter_model.safetensors"
ADAPTER_CONFIG_FILE = "adapter_config.json"
TOKENIZER_FILE = "tokenizer.json"
# An adapter version stores the adapter (with the trained head) and names its base instead of holding it.
ADAPTER_REQUIRED_FILES = (ADAPTER_WEIGHTS_FILE, ADAPTER_CONFIG_FILE, LABELS_FILE, TOKENIZER_FILE)
AdapterMethod = Literal["lora", "prefix", "prompt"]
# LoRA folds into the base weights at load time; prompt and prefix tuning change the input, so stay peft modules.
MERGEABLE_METHODS = ("lora",)
# Formats that unpickle on load, i.e. run code from the file: never written, never loaded.
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt")
# A domain-adapted base (masked-LM training, the trainer's DAPT): a registry version to fine-tune from, never served.
BASE_MODEL_TASK = "fill-mask"
BASE_MODEL_REQUIRED_FILES = (WEIGHTS_FILE, CONFIG_FILE, TOKENIZER_FILE)
CardTask = Task | Literal["fill-mask"]
CARD_FORMAT = 1
SUMMARY_KEYS = ("f1", "precision", "recall", "accuracy", "macro_f1", "loss")

_FILE_PART = re.compile(r"^[A-Za-z0-9_.-]+$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
Sha256 = Annotated[str, StringConstraints(pattern=_SHA256.pattern)]
_DOCUMENT = ConfigDict(frozen=True, extra="forbid")


class VersionRejected(Exception):
    """A version that must not be served; ``reason`` says why (never file contents)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class CardMetrics(BaseModel):
    """Dev metrics per epoch, the best epoch and its dev metrics, and the test metrics."""

    model_config = _DOCUMENT

    dev_by_epoch: list[dict[str, Any]] = Field(default_factory=list)
    best_epoch: int = 0
    dev: dict[str, Any] = Field(default_factory=dict)
    test: dict[str, Any] = Field(default_factory=dict)


class CardTraining(BaseModel):
    """How the run went: throughput, epochs, whether it resumed from a checkpoint."""

    model_config = _DOCUMENT

    samples_per_s: float = 0.0
    epochs_run: int = 0
    resumed_from_epoch: int = 0
    global_steps: int = 0


class ShardLineage(BaseModel):
    """One dataset shard that fed the run."""

    model_config = _DOCUMENT

    key: str
    sha256: Sha256
    rows: int


class CardLineage(BaseModel):
    """Which shards fed the run, and how many rows each split had."""

    model_config = _DOCUMENT

    shards: list[ShardLineage] = Field(default_factory=list)
    rows: dict[str, int] = Field(default_factory=dict)


class CardAdapter(BaseModel):
    """What an adapter version adapts: its method, peft settings, and the base it must be loaded on."""

    model_config = _DOCUMENT

    method: AdapterMethod
    peft_config: dict[str, Any] = Field(default_factory=dict)
    base: str = Field(min_length=1, description="'minilm', a registry version '<model>/<version>', an s3:// URI "
                                                "or a local folder")
    base_sha256: Sha256 | None = Field(default=None, description="sha256 of the base's model.safetensors")
    base_layers: int | None = Field(default=None, ge=1, description="The base is cut to its first N layers")
    trainable_parameters: int = 0
    total_parameters: int = 0

    @property
    def mergeable(self) -> bool:
        """Whether the adapter folds into the base weights (served as a plain model)."""
        return self.method in MERGEABLE_METHODS


class CardPrivacy(BaseModel):
    """DP-SGD: the privacy spent by the published weights, and how the noise was calibrated."""

    model_config = _DOCUMENT

    epsilon: float
    delta: float
    target_epsilon: float
    noise_multiplier: float
    max_grad_norm: float
    sample_rate: float
    steps: int
    accountant: str = "rdp"


class CardAnomaly(BaseModel):
    """A sensor-anomaly version's decision rule: the dev-calibrated threshold and the cap it was chosen under."""

    model_config = _DOCUMENT

    threshold: float = Field(ge=0, le=1, description="An event is an anomaly when its score is at least this.")
    false_alarm_cap: float = Field(gt=0, le=1)
    dev_f1: float = 0.0
    dev_far: float = 0.0


TrialState = Literal["complete", "pruned", "fail", "running", "waiting"]


class CardTrial(BaseModel):
    """One trial of a hyper-parameter search: its searched values, its metric value and how it ended."""

    model_config = _DOCUMENT

    number: int = Field(ge=0)
    params: dict[str, float | int | str] = Field(default_factory=dict)
    value: float | None = None
    state: TrialState


class CardSearch(BaseModel):
    """The search a version won: the metric, its direction, the winning trial and every trial."""

    model_config = _DOCUMENT

    metric: str
    direction: Literal["maximize", "minimize"]
    best_trial: int = Field(ge=0)
    trials: list[CardTrial] = Field(default_factory=list)


class ModelCard(BaseModel):
    """What a version is, how it was made, from which data, and the sha256 of every file but itself."""

    model_config = _DOCUMENT

    card_format: Literal[1] = CARD_FORMAT
    model_name: ModelName
    version: VersionName
    task: CardTask
    dataset: DatasetName
    base_model: str = ""
    request_id: Identifier
    hyperparameters: dict[str, Any] = Field(default_factory=dict)
    device: str = ""
    metrics: CardMetrics = Field(default_factory=CardMetrics)
    training: CardTraining = Field(default_factory=CardTraining)
    lineage: CardLineage = Field(default_factory=CardLineage)
    files: dict[str, Sha256]
    created_at: AwareDatetime
    libraries: dict[str, str] = Field(default_factory=dict)
    adapter: CardAdapter | None = None
    privacy: CardPrivacy | None = None
    anomaly: CardAnomaly | None = None
    search: CardSearch | None = None

    def summary(self) -> dict[str, Any]:
        """The headline numbers an announcement carries: dev and test, without per-label reports."""
        return {"dev": metric_summary(self.metrics.dev), "test": metric_summary(self.metrics.test),
                "best_epoch": self.metrics.best_epoch}

    def to_bytes(self) -> bytes:
        """The card as stored: indented JSON."""
        return self.model_dump_json(indent=2).encode()


def metric_summary(metrics: dict[str, Any]) -> dict[str, float]:
    """The headline numbers of a metrics dict, without the per-label report."""
    return {key: float(metrics[key]) for key in SUMMARY_KEYS if key in metrics}


def pickle_files(names: Any) -> list[str]:
    """The names that are formats which unpickle on load."""
    return [name for name in names if str(name).lower().endswith(PICKLE_SUFFIXES)]


def parse_card(raw: bytes, model_name: str, version: str) -> ModelCard:
    """The card of ``model_name``/``version`` from its bytes; ``VersionRejected`` when it must not be trusted."""
    try:
        document = json.loads(raw)
    except ValueError:
        raise VersionRejected("card.json is not valid JSON") from None
    if not isinstance(document, dict):
        raise VersionRejected("card.json is not a JSON object")
    if document.get("model_name") != model_name or document.get("version") != version:
        raise VersionRejected("card.json names another model or version")
    check_card_files(document.get("files"), adapter=document.get("adapter") is not None, task=document.get("task"))
    try:
        return ModelCard.model_validate(document)
    except ValidationError as exc:
        fields = ", ".join(error.field for error in field_errors(exc, limit=5, root="card", model=ModelCard))
        raise VersionRejected(f"card.json does not fit the card schema: {fields}") from None


def required_files(adapter: bool, task: Any = None) -> tuple[str, ...]:
    """The files a version must list: full weights and config, or (adapter versions) adapter and tokenizer;
    a domain-adapted base has no labels."""
    if task == BASE_MODEL_TASK:
        return BASE_MODEL_REQUIRED_FILES
    return ADAPTER_REQUIRED_FILES if adapter else REQUIRED_FILES


def check_card_files(files: Any, *, adapter: bool = False, task: Any = None) -> None:
    """Refuse a file list with unsafe names, missing digests, pickle formats, itself, or no required file."""
    if not isinstance(files, dict) or not files:
        raise VersionRejected("card.json lists no files")
    for name, digest in files.items():
        if not is_safe_file_name(name):
            raise VersionRejected(f"unsafe file name in card: {str(name)[:80]!r}")
        if not isinstance(digest, str) or not _SHA256.match(digest):
            raise VersionRejected(f"no sha256 for {name}")
        if pickle_files([name]):
            raise VersionRejected(f"pickle-based weights listed: {name}")
    if CARD_FILE in files:
        raise VersionRejected("card.json lists itself")
    for required in required_files(adapter, task):
        if required not in files:
            raise VersionRejected(f"card lists no {required}")


def is_safe_file_name(name: Any) -> bool:
    """Relative, no ``..``, plain characters: a tampered card must not write outside the download folder."""
    if not isinstance(name, str) or len(name) > 200:
        return False
    return all(_FILE_PART.match(part) and part not in (".", "..") for part in name.split("/"))


def read_labels(raw: bytes, task: str) -> dict[int, str]:
    """``id2label`` from labels.json, for the card's task, with ids 0..n-1."""
    try:
        labels = json.loads(raw)
        id2label = {int(i): str(label) for i, label in labels["id2label"].items()}
    except (ValueError, KeyError, TypeError, AttributeError):
        raise VersionRejected("labels.json has no valid id2label") from None
    if labels.get("task") != task:
        raise VersionRejected("labels.json names another task than the card")
    if sorted(id2label) != list(range(len(id2label))) or len(id2label) < 2:
        raise VersionRejected("labels.json ids are not 0..n-1 with at least two labels")
    return id2label
