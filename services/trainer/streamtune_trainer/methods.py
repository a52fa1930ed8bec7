"""The adaptation methods: which parameters train (full, freeze) or which peft module is added (lora, prefix, prompt).

peft is imported inside the functions that need it (its import takes seconds): a full fine-tune never pays it.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any

import torch
from streamtune_shared.adaptation import FreezeOptions, LoraOptions, PrefixOptions, PromptOptions
from streamtune_shared.schemas import TrainRequest

from .domain import TOKEN_CLASSIFICATION, TrainingRejected

ADAPTER_METHODS = ("lora", "prefix", "prompt")
# BERT-family heads; peft trains and saves them beside the adapter.
HEAD_MODULES = ["classifier"]


@dataclass(frozen=True)
class AdaptedModel:
    """The model to train, and what the method made of it."""

    model: torch.nn.Module
    method: str
    trainable_parameters: int
    total_parameters: int

    @property
    def is_adapter(self) -> bool:
        """Whether the version stores an adapter on a base rather than full weights."""
        return self.method in ADAPTER_METHODS

    def peft_model(self) -> Any:
        """The peft model inside (prompt tuning on token labels wraps it)."""
        return getattr(self.model, "peft_model", self.model)


def count_parameters(model: torch.nn.Module) -> tuple[int, int]:
    """(trainable, total) parameter counts."""
    params = list(model.parameters())
    return sum(p.numel() for p in params if p.requires_grad), sum(p.numel() for p in params)


def dropout_overrides(request: TrainRequest) -> dict[str, float]:
    """Config overrides for the dropouts a request sets (BERT-family names)."""
    chosen = {"hidden_dropout_prob": request.hidden_dropout, "attention_probs_dropout_prob": request.attention_dropout,
              "classifier_dropout": request.classifier_dropout}
    return {name: value for name, value in chosen.items() if value is not None}


def transformer_layers(model: torch.nn.Module) -> torch.nn.ModuleList:
    """The stack of transformer layers (the ModuleList as long as the config's layer count)."""
    wanted = getattr(model.config, "num_hidden_layers", None)
    for module in model.modules():
        if isinstance(module, torch.nn.ModuleList) and len(module) == wanted:
            return module
    raise TrainingRejected("the base model has no transformer layer stack to freeze")


def freeze_lower(model: torch.nn.Module, options: FreezeOptions) -> None:
    """Stop the gradient of the lower ``options.layers`` layers (and the embeddings when asked)."""
    layers = transformer_layers(model)
    if options.layers > len(layers):
        raise TrainingRejected(f"freeze.layers {options.layers} is more than the base model's {len(layers)} layers")
    frozen = [*layers[: options.layers]]
    if options.embeddings:
        frozen.append(model.get_input_embeddings())
        frozen.extend(m for name, m in model.named_modules() if name.endswith("embeddings") and name.count(".") <= 1)
    for module in frozen:
        module.requires_grad_(False)


def task_type(task: str) -> str:
    """peft's task type for ours."""
    return "TOKEN_CLS" if task == TOKEN_CLASSIFICATION else "SEQ_CLS"


def lora_config(options: LoraOptions, task: str) -> Any:
    """peft's LoRA config; the head trains in full."""
    from peft import LoraConfig

    return LoraConfig(task_type=task_type(task), r=options.r, lora_alpha=options.alpha, lora_dropout=options.dropout,
                      target_modules=list(options.target_modules), modules_to_save=HEAD_MODULES)


def check_prefix_support(model: torch.nn.Module) -> None:
    """Refuse prefix tuning on a base whose transformer takes no past key values (peft needs them)."""
    backbone = getattr(model, model.base_model_prefix, model)
    for candidate in (model, backbone):
        if "past_key_values" in inspect.signature(candidate.forward).parameters:
            return
    raise TrainingRejected(f"prefix tuning needs a base that takes past key values; {model.config.model_type} "
                           "models in this transformers version do not (use lora or prompt)")


def prompt_config(options: PromptOptions, task: str) -> Any:
    """peft's prompt-tuning config (random or vocabulary initialisation)."""
    from peft import PromptTuningConfig, PromptTuningInit

    init = PromptTuningInit.SAMPLE_VOCAB if options.init == "vocab" else PromptTuningInit.RANDOM
    return PromptTuningConfig(task_type=task_type(task), num_virtual_tokens=options.num_virtual_tokens,
                              prompt_tuning_init=init, modules_to_save=HEAD_MODULES)


def peft_config(request: TrainRequest, model: torch.nn.Module) -> Any:
    """The peft config of an adapter method, with the request's options or their defaults."""
    if request.method == "lora":
        return lora_config(request.lora or LoraOptions(), request.task)
    if request.method == "prompt":
        return prompt_config(request.prompt or PromptOptions(), request.task)
    from peft import PrefixTuningConfig

    check_prefix_support(model)
    options = request.prefix or PrefixOptions()
    return PrefixTuningConfig(task_type=task_type(request.task), num_virtual_tokens=options.num_virtual_tokens,
                              modules_to_save=HEAD_MODULES)


def adapt_model(model: torch.nn.Module, request: TrainRequest) -> AdaptedModel:
    """Apply the request's method: a full model, one with frozen lower layers, or a peft adapter on a frozen base."""
    if request.method == "freeze":
        freeze_lower(model, request.freeze or FreezeOptions())
    elif request.method in ADAPTER_METHODS:
        from peft import get_peft_model

        model = get_peft_model(model, peft_config(request, model))
        model.peft_config["default"].base_model_name_or_path = request.base_model
        if request.method == "prompt" and request.task == TOKEN_CLASSIFICATION:
            from streamtune_shared.virtual_tokens import VirtualTokenTrim

            model = VirtualTokenTrim(model)
    trainable, total = count_parameters(model)
    return AdaptedModel(model, request.method, trainable, total)


def adapter_summary(adapted: AdaptedModel) -> dict[str, Any]:
    """The adapter's peft config as plain JSON (the card's record of it)."""
    config = adapted.peft_model().peft_config["default"].to_dict()
    return {key: sorted(value) if isinstance(value, set) else value for key, value in config.items()
            if isinstance(value, str | int | float | bool | list | set | type(None))}
