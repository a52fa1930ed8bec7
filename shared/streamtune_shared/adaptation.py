"""How a train request adapts its base model: the method, its typed options, regularization, DP-SGD.

Part of the wire contract of ``TrainRequest`` (issue 8): pure pydantic, no torch, no peft.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Method = Literal["full", "lora", "freeze", "prefix", "prompt"]
LrSchedule = Literal["linear", "cosine", "constant"]
PromptInit = Literal["random", "vocab"]
METHODS: tuple[str, ...] = ("full", "lora", "freeze", "prefix", "prompt")
# The option block each method reads; a block for another method is refused.
OPTION_BLOCKS: tuple[str, ...] = ("lora", "freeze", "prefix", "prompt")
# Learning rates per method, from MiniLM on an NCBI-disease subset (services/trainer/README.md has the runs; LoRA
# at 2e-3 reached dev F1 0.03 after an epoch, at 5e-3 0.30): adapters and soft prompts need larger steps.
DEFAULT_LEARNING_RATES: dict[str, float] = {"full": 3e-4, "freeze": 5e-4, "lora": 5e-3, "prefix": 1e-2,
                                            "prompt": 3e-2}
_OPTIONS = ConfigDict(frozen=True, extra="forbid")


class LoraOptions(BaseModel):
    """LoRA (peft): low-rank updates on the named linear layers; the base stays frozen, the head trains."""

    model_config = _OPTIONS

    r: int = Field(default=8, ge=1, le=256, description="Rank of the update matrices.")
    alpha: int = Field(default=16, ge=1, le=1024, description="Scaling: the update is multiplied by alpha / r.")
    dropout: float = Field(default=0.1, ge=0, lt=1, description="Dropout on the LoRA input.")
    target_modules: tuple[str, ...] = Field(
        default=("query", "value"), min_length=1, max_length=16,
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
