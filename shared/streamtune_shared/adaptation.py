"""How a train request adapts its base model: the method, its typed options, regularization, DP-SGD.

Part of the wire contract of ``TrainRequest`` (issue 8): pure pydantic, no torch, no peft.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Method = Literal["full", "lora", "freeze", "prefix", "prompt"]
LrSchedule = Literal["linear", "cosine", "constant"]
PromptInit = Literal["random", "vocab"]
METHODS: tuple[str, ...] = ("full", "lora", "freeze", "prefix", "prompt")
# The option block each method reads; a block for another method is refused.
OPTION_BLOCKS: tuple[str, ...] = ("lora", "freeze", "prefix", "prompt")
# Learning rates per method, from MiniLM on NCBI-disease, whole train split, 3 epochs, picked on the dev split
# (services/trainer/README.md has the runs): full did better at 1e-4 (best dev F1 0.816) than at 3e-4 (0.795);
# LoRA with the default options below reached 0.787 at 2e-3 and did not learn at 5e-3 (F1 0 every epoch); freeze
# reached 0.742 at 5e-4 and 0.684 at 2e-3. Soft prompts need larger steps.
DEFAULT_LEARNING_RATES: dict[str, float] = {"full": 1e-4, "freeze": 5e-4, "lora": 2e-3, "prefix": 1e-2,
                                            "prompt": 3e-2}
_OPTIONS = ConfigDict(frozen=True, extra="forbid")


class LoraOptions(BaseModel):
    """LoRA (peft): low-rank updates on the named linear layers; the base stays frozen, the head trains.

    By default every linear layer of a BERT encoder gets one ("dense": attention output, intermediate and output).
    """

    model_config = _OPTIONS
    # MiniLM on NCBI-disease (services/trainer/README.md): best dev F1 0.787 with these defaults at lr 2e-3, 0.739 with
    # r 8 on query and value only at lr 5e-3.

    r: int = Field(default=16, ge=1, le=256, description="Rank of the update matrices.")
    alpha: int = Field(default=32, ge=1, le=1024, description="Scaling: the update is multiplied by alpha / r.")
    dropout: float = Field(default=0.1, ge=0, lt=1, description="Dropout on the LoRA input.")
    target_modules: tuple[str, ...] = Field(
        default=("query", "key", "value", "dense"), min_length=1, max_length=16,
        description="Names of the linear layers that get an update (BERT: query, key, value, dense).")


class FreezeOptions(BaseModel):
    """Transfer learning: the lower ``layers`` transformer layers (and the embeddings) do not train."""

    model_config = _OPTIONS

    layers: int = Field(default=4, ge=0, le=48, description="How many lower transformer layers are frozen.")
    embeddings: bool = Field(default=True, description="Whether the embedding layer is frozen too.")


class PrefixOptions(BaseModel):
    """Prefix tuning (P-tuning v2 style, peft): trained key/value prefixes in every layer."""

    model_config = _OPTIONS

    num_virtual_tokens: int = Field(default=20, ge=1, le=256)


class PromptOptions(BaseModel):
    """Prompt tuning (peft): trained virtual tokens prepended to the input; the base stays frozen."""

    model_config = _OPTIONS

    num_virtual_tokens: int = Field(default=20, ge=1, le=256)
    init: PromptInit = Field(default="random", description="'random', or 'vocab' (copies of random vocabulary "
                                                           "embeddings).")


class DPOptions(BaseModel):
    """DP-SGD (Opacus): per-sample clipping and Gaussian noise calibrated to reach (target_epsilon, delta)."""

    model_config = _OPTIONS

    target_epsilon: float = Field(gt=0, le=100)
    delta: float = Field(default=1e-5, gt=0, lt=1, description="Must be below 1 / (train rows).")
    max_grad_norm: float = Field(default=1.0, gt=0, le=100, description="Per-sample gradient clipping norm.")


class AugmentationOptions(BaseModel):
    """Opt-in, label-preserving augmentation of the training split only (dev and test stay as they are).

    Each training example gets ``copies`` augmented copies, drawn once from the request's ``seed`` (a resumed run
    sees the same ones). Text: NER replaces entity mentions with other mentions of the same type from the training
    set itself and masks words outside entities; classification masks and swaps words. Sensor windows (the labeled
    training windows): jitter, scaling and time-warp. With ``dp`` the request is refused (a failed train.status).
    """

    model_config = _OPTIONS

    copies: int = Field(default=1, ge=1, le=10, description="Augmented copies added per training example.")
    mention_replacement: float = Field(default=0.5, ge=0, le=1, description="NER: chance that an entity mention "
                                       "is replaced by another training-set mention of the same type.")
    token_mask: float = Field(default=0.1, ge=0, le=0.5, description="Chance that a word (outside entities, for "
                              "NER) is replaced by the tokenizer's mask token.")
    token_swap: float = Field(default=0.1, ge=0, le=0.5, description="Classification: chance that a word swaps "
                              "places with its right neighbour.")
    jitter: float = Field(default=0.03, ge=0, le=1, description="Sensor windows: Gaussian noise, in calibrated "
                          "standard deviations.")
    scaling: float = Field(default=0.1, ge=0, le=1, description="Sensor windows: std of a per-window, per-sensor "
                           "scale factor around 1.")
    time_warp: float = Field(default=0.1, ge=0, le=0.5, description="Sensor windows: largest relative stretch of "
                             "the time axis (smooth, resampled by interpolation).")


class AdversarialOptions(BaseModel):
    """Opt-in adversarial training: FGM (one step) or PGD perturbations of the word embeddings.

    Text tasks only, with any method (a frozen embedding is perturbed but stays frozen); with ``dp`` or for
    sensor-anomaly the request is refused (a failed train.status).
    """

    model_config = _OPTIONS

    method: Literal["fgm", "pgd"] = "fgm"
    epsilon: float = Field(default=1.0, gt=0, le=10, description="L2 norm bound of the embedding perturbation.")
    steps: int = Field(default=3, ge=1, le=10, description="PGD ascent steps (FGM always takes one).")
    step_size: float = Field(default=0.3, gt=0, le=10, description="PGD step, as a share of epsilon.")


SearchParameter = Literal["learning_rate", "weight_decay", "epochs", "batch_size", "warmup_ratio", "hidden_dropout",
                          "attention_dropout", "classifier_dropout", "lora.r", "lora.alpha", "lora.dropout",
                          "freeze.layers"]
# Searched as whole numbers whether or not their dimension says ``integer``.
INTEGER_SEARCH_PARAMETERS = frozenset({"epochs", "batch_size", "lora.r", "lora.alpha", "freeze.layers"})
MAX_MODEL_NAME = 63


class SearchDimension(BaseModel):
    """One searched hyper-parameter: a range (``low``..``high``, optionally log-scaled or integer) or choices."""

    model_config = _OPTIONS

    low: float | None = None
    high: float | None = None
    log: bool = False
    integer: bool = False
    choices: tuple[float | int | str, ...] | None = Field(default=None, min_length=1, max_length=32)


def dimension_error(name: str, dim: SearchDimension) -> str | None:
    """Why a searched parameter's dimension cannot be searched (None when it can)."""
    if dim.choices is not None:
        if dim.low is not None or dim.high is not None:
            return f"search parameter {name!r}: give choices or low/high, not both"
        return None
    if dim.low is None or dim.high is None or dim.low > dim.high:
        return f"search parameter {name!r} needs low <= high (or choices)"
    if dim.log and dim.low <= 0:
        return f"search parameter {name!r}: a log scale needs low > 0"
    whole = dim.integer or name in INTEGER_SEARCH_PARAMETERS
    if whole and (dim.low != int(dim.low) or dim.high != int(dim.high)):
        return f"search parameter {name!r} takes whole numbers"
    return None


class SearchOptions(BaseModel):
    """Hyper-parameter search with Optuna: ``trials`` trainings over ``space``, the best one is published."""

    model_config = _OPTIONS

    space: dict[SearchParameter, SearchDimension] = Field(min_length=1, max_length=12)
    trials: int = Field(default=8, ge=1, le=200)
    metric: str = Field(default="dev_f1", pattern=r"^[a-z0-9_]{1,64}$",
                        description="The dev metric to optimize, as reported on train.status (e.g. dev_f1).")
    direction: Literal["maximize", "minimize"] = "maximize"
    pruning: bool = Field(default=True, description="Stop hopeless trials early (median pruner on the epoch metric).")
    timeout_s: float | None = Field(default=None, gt=0, description="Stop starting trials after this long.")

    @model_validator(mode="after")
    def _dimensions_searchable(self) -> SearchOptions:
        errors = [error for name, dim in self.space.items() if (error := dimension_error(name, dim))]
        if errors:
            raise ValueError("; ".join(errors))
        return self


class DaptOptions(BaseModel):
    """Opt-in domain-adaptive pretraining: masked-LM training of the base on the dataset's own text first.

    The adapted base is published as a version of ``model_name`` (default ``<request model_name>-dapt``), so a
    later request can name it as its ``base_model`` ('<model>/<version>').
    """

    model_config = _OPTIONS

    epochs: int = Field(default=1, ge=1, le=20)
    learning_rate: float = Field(default=5e-5, gt=0, lt=1)
    mlm_probability: float = Field(default=0.15, gt=0, lt=1)
    max_texts: int | None = Field(default=50_000, ge=1, description="At most this many texts (labeled or not).")
    model_name: str | None = Field(default=None, pattern=r"^[a-z0-9][a-z0-9._-]{0,62}$",
                                   description="Where the adapted base is published; None: '<model_name>-dapt'.")


def adapted_base_name(model_name: str, options: DaptOptions) -> str:
    """Where a request's adapted base is published: ``dapt.model_name`` or '<model_name>-dapt'."""
    return options.model_name or f"{model_name}-dapt"


def default_learning_rate(method: str) -> float:
    """The learning rate a request of ``method`` gets when it names none."""
    return DEFAULT_LEARNING_RATES.get(method, DEFAULT_LEARNING_RATES["full"])


SENSOR_ANOMALY_LEARNING_RATE = 2e-3


def fill_method_defaults(data: Any) -> Any:
    """A raw request with the method's learning rate when it names none (or null)."""
    if not isinstance(data, dict) or data.get("learning_rate") is not None:
        return data
    if data.get("task") == "sensor-anomaly":  # a small CNN trained from scratch, not a pretrained transformer
        return {**data, "learning_rate": SENSOR_ANOMALY_LEARNING_RATE}
    method = data.get("method", "full")
    if method not in METHODS:
        return data  # the method field reports the error
    return {**data, "learning_rate": default_learning_rate(method)}
