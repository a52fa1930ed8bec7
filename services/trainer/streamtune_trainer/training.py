"""The model and train phases: load a base model for the label set, fine-tune with resume, keep the best epoch."""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from streamtune_shared.adaptation import AdversarialOptions, DPOptions
from streamtune_shared.model_card import CardPrivacy
from streamtune_shared.schemas import TrainRequest
from transformers import (
    AutoConfig,
    AutoModelForSequenceClassification,
    AutoModelForTokenClassification,
    AutoTokenizer,
    get_scheduler,
)

from .adversarial import EmbeddingAttack
from .checkpoint import Checkpoint, RunState
from .domain import TOKEN_CLASSIFICATION, Example, LabelMap, TrainingRejected
from .encoding import EncodedExample, epoch_generator, iterate_batches
from .evaluation import autocast, evaluate
from .privacy import PrivateTraining, make_private, plan_dp

# transformers' scheduler names for the request's lr_schedule
SCHEDULES = {"linear": "linear", "cosine": "cosine", "constant": "constant_with_warmup"}

StateDict = dict[str, torch.Tensor]


class TrainingInterrupted(Exception):
    """The trainer is shutting down; the run continues from its last checkpoint elsewhere."""


@dataclass(frozen=True, slots=True)
class Hyperparameters:
    """What shapes one fine-tuning run."""

    epochs: int
    batch_size: int
    learning_rate: float
    weight_decay: float
    seed: int
    max_length: int
    early_stopping_patience: int | None
    max_grad_norm: float | None = 1.0
    lr_schedule: str = "linear"
    warmup_ratio: float = 0.1
    dp: DPOptions | None = None
    bf16: bool = True  # autocast on CUDA; CPU always trains in fp32
    adversarial: AdversarialOptions | None = None

    @classmethod
    def from_request(cls, request: TrainRequest) -> Hyperparameters:
        """The hyper-parameters a train request asks for."""
        return cls(request.epochs, request.batch_size, request.learning_rate, request.weight_decay,
                   request.seed, request.max_length, request.early_stopping_patience, request.max_grad_norm,
                   request.lr_schedule, request.warmup_ratio, request.dp, adversarial=request.adversarial)


@dataclass(frozen=True)
class TrainingData:
    """Encoded train and dev splits of one run."""

    label_map: LabelMap
    train: Sequence[EncodedExample]
    dev_examples: Sequence[Example]
    dev: Sequence[EncodedExample]
    pad_token_id: int


@dataclass
class TrainingHooks:
    """How the loop reports: per step, per finished epoch (checkpointing), and when to stop."""

    on_step: Callable[[int, int, int], None] = lambda epoch, step, total: None
    on_epoch_end: Callable[[RunState, Callable[[], Checkpoint]], None] = lambda state, checkpoint: None
    should_stop: Callable[[], bool] = lambda: False


@dataclass
class TrainingOutcome:
    """The finished run: its state, the best epoch's weights (on CPU), its throughput, the privacy spent."""

    state: RunState
    best_weights: StateDict
    samples_per_s: float
    resumed_from_epoch: int = 0
    privacy: CardPrivacy | None = None


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (CPU and CUDA)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def pick_device() -> torch.device:
    """CUDA when present, else CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def load_tokenizer(base_dir: Path) -> Any:
    """The base model's fast tokenizer, from local files only."""
    return AutoTokenizer.from_pretrained(base_dir, local_files_only=True, use_fast=True)


def load_model(base_dir: Path, label_map: LabelMap, base_layers: int | None = None,
               config_overrides: dict[str, float] | None = None) -> torch.nn.Module:
    """The base model with a fresh head for the label set (safetensors weights, local files only).

    ``base_layers`` keeps only the first N transformer layers (the weights of the others are not loaded);
    ``config_overrides`` sets config values such as the dropouts.
    """
    auto = AutoModelForTokenClassification if label_map.task == TOKEN_CLASSIFICATION else AutoModelForSequenceClassification
    config = AutoConfig.from_pretrained(base_dir, local_files_only=True)
    layers = getattr(config, "num_hidden_layers", None)
    if base_layers is not None and (layers is None or base_layers > layers):
        raise ValueError(f"base_layers {base_layers} is more than the base model's {layers} layers")
    overrides = {"num_hidden_layers": base_layers} if base_layers is not None else {}
    overrides.update(config_overrides or {})
    return auto.from_pretrained(
        base_dir, num_labels=len(label_map.labels), id2label=label_map.id2label, label2id=label_map.label2id,
        local_files_only=True, use_safetensors=True, ignore_mismatched_sizes=True, **overrides,
    )


def parameter_groups(model: torch.nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """AdamW groups: weight decay on weights, none on biases and LayerNorm parameters."""
    exempt: set[int] = set()
    for module in model.modules():
        if isinstance(module, torch.nn.LayerNorm):
            exempt.update(id(p) for p in module.parameters(recurse=False))
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        (no_decay if id(param) in exempt or name.endswith("bias") else decay).append(param)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def build_optimizer(model: torch.nn.Module, hp: Hyperparameters, total_steps: int) -> tuple[Any, Any]:
    """AdamW on the trainable parameters and the requested schedule after a linear warmup."""
    optimizer = torch.optim.AdamW(parameter_groups(model, hp.weight_decay), lr=hp.learning_rate)
    warmup = math.ceil(hp.warmup_ratio * total_steps)
    scheduler = get_scheduler(SCHEDULES[hp.lr_schedule], optimizer, num_warmup_steps=warmup,
                              num_training_steps=total_steps)
    return optimizer, scheduler


def cpu_copy(model: torch.nn.Module) -> StateDict:
    """A CPU copy of the model's weights (the best epoch kept in memory)."""
    return {name: t.detach().to("cpu", copy=True) for name, t in model.state_dict().items()}


def record_epoch(state: RunState, epoch: int, dev: dict[str, Any], train_stats: dict[str, float]) -> bool:
    """Add an epoch's dev metrics to the state; True when it is the best epoch so far (by dev F1)."""
    state.epoch = epoch
    state.history.append({"epoch": epoch, **train_stats, "dev": dev})
    improved = dev["f1"] > state.best_metric
    if improved:
        state.best_metric, state.best_epoch, state.epochs_without_improvement = dev["f1"], epoch, 0
    else:
        state.epochs_without_improvement += 1
    return improved


def should_stop_early(state: RunState, patience: int | None) -> bool:
    """True when dev F1 did not improve for ``patience`` epochs in a row."""
    return patience is not None and state.epochs_without_improvement >= patience


def run_epoch(model: torch.nn.Module, data: TrainingData, hp: Hyperparameters, epoch: int, optimizer: Any,
              scheduler: Any, device: torch.device, hooks: TrainingHooks, state: RunState,
              total_steps: int, attack: EmbeddingAttack | None = None) -> dict[str, float]:
    """One pass over the shuffled train split; returns its loss, samples and seconds.

    With ``attack`` each step also backpropagates the loss on adversarially perturbed embeddings.
    """
    model.train()
    torch.manual_seed(hp.seed * 1_000_003 + epoch)
    token_labels = data.label_map.task == TOKEN_CLASSIFICATION
    loss_sum, adversarial_sum, samples, started = 0.0, 0.0, 0, time.perf_counter()
    batches = iterate_batches(data.train, hp.batch_size, data.pad_token_id, token_labels,
                              epoch_generator(hp.seed, epoch))
    for batch in batches:
        if hooks.should_stop():
            raise TrainingInterrupted(f"stopped during epoch {epoch}")
        batch = {k: v.to(device) for k, v in batch.items()}
        loss = batch_loss(model, batch, device, hp)
        loss.backward()
        if attack is not None:
            adversarial_sum += attack.backward(lambda: batch_loss(model, batch, device, hp)) or 0.0
        if hp.max_grad_norm is not None and hp.dp is None:  # DP-SGD clips per sample instead
            torch.nn.utils.clip_grad_norm_(model.parameters(), hp.max_grad_norm)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        loss_sum += float(loss.detach())
        samples += batch["input_ids"].shape[0]
        state.global_step += 1
        hooks.on_step(epoch, state.global_step, total_steps)
    seconds = time.perf_counter() - started
    steps = steps_per_epoch(len(data.train), hp)
    stats = {"train_loss": loss_sum / steps, "train_samples": samples, "train_seconds": seconds,
             "samples_per_s": samples / seconds if seconds > 0 else 0.0}
    return {**stats, "adversarial_loss": adversarial_sum / steps} if attack is not None else stats


def batch_loss(model: torch.nn.Module, batch: dict[str, torch.Tensor], device: torch.device,
               hp: Hyperparameters) -> torch.Tensor:
    """The model's loss on one batch (bf16 autocast on CUDA)."""
    with autocast(device, hp.bf16):
        return model(**batch).loss


def restore(model: torch.nn.Module, optimizer: Any, scheduler: Any, checkpoint: Checkpoint) -> StateDict:
    """Load a checkpoint into the model, optimizer and scheduler; returns the best weights so far."""
    model.load_state_dict(checkpoint.model)
    optimizer.load_state_dict(checkpoint.optimizer)
    scheduler.load_state_dict(checkpoint.scheduler)
    return checkpoint.best_model if checkpoint.best_model is not None else cpu_copy(model)


def steps_per_epoch(train_rows: int, hp: Hyperparameters) -> int:
    """Optimizer steps of one epoch (one per batch)."""
    return max(math.ceil(train_rows / hp.batch_size), 1)


def count_steps(train_rows: int, hp: Hyperparameters) -> int:
    """Optimizer steps of a whole run."""
    return steps_per_epoch(train_rows, hp) * hp.epochs


def train_model(model: torch.nn.Module, data: TrainingData, hp: Hyperparameters, device: torch.device,
                hooks: TrainingHooks, resume: Checkpoint | None = None) -> TrainingOutcome:
    """Fine-tune for up to ``hp.epochs`` epochs (after the resumed one), evaluating on dev after each.

    With ``hp.dp`` the steps are DP-SGD (per-sample clipping and noise) and each epoch records the epsilon spent.
    """
    if hp.adversarial is not None and hp.dp is not None:
        raise TrainingRejected("adversarial training cannot be combined with dp (TrainRequest refuses it too)")
    model.to(device)
    total_steps = count_steps(len(data.train), hp)
    optimizer, scheduler = build_optimizer(model, hp, total_steps)
    state, best, resumed_from = RunState(seed=hp.seed, labels=list(data.label_map.labels)), cpu_copy(model), 0
    if resume is not None:
        best, state, resumed_from = restore(model, optimizer, scheduler, resume), resume.state, resume.state.epoch
    plan = plan_dp(hp.dp, len(data.train), hp.batch_size, total_steps) if hp.dp is not None else None
    private: PrivateTraining | None = make_private(model, optimizer, plan, hp.batch_size) if plan else None
    attack = EmbeddingAttack(model, hp.adversarial) if hp.adversarial is not None else None
    try:
        for epoch in range(state.epoch + 1, hp.epochs + 1):
            if should_stop_early(state, hp.early_stopping_patience):
                break
            stepper = private.optimizer if private is not None else optimizer
            stats = run_epoch(model, data, hp, epoch, stepper, scheduler, device, hooks, state, total_steps, attack)
            if plan is not None:
                stats["privacy"] = {"epsilon": plan.spent(state.global_step), "delta": plan.delta}
            dev = evaluate(model, data.dev_examples, data.dev, data.label_map, hp.batch_size, data.pad_token_id,
                           device)
            if record_epoch(state, epoch, dev, stats):
                best = cpu_copy(model)
            hooks.on_epoch_end(state, _checkpoint_factory(model, optimizer, scheduler, state, best))
    finally:
        if private is not None:
            private.close()
        if attack is not None:
            attack.close()
    privacy = plan.card(state.global_step) if plan is not None else None
    return TrainingOutcome(state, best, throughput(state), resumed_from, privacy)


def throughput(state: RunState) -> float:
    """Training samples per second over every epoch of the run, resumed ones included."""
    samples = sum(h["train_samples"] for h in state.history)
    seconds = sum(h["train_seconds"] for h in state.history)
    return samples / seconds if seconds > 0 else 0.0


def _checkpoint_factory(model: torch.nn.Module, optimizer: Any, scheduler: Any, state: RunState,
                        best: StateDict) -> Callable[[], Checkpoint]:
    def snapshot() -> Checkpoint:
        best_model = None if state.best_epoch == state.epoch else best
        return Checkpoint(state, model.state_dict(), optimizer.state_dict(), scheduler.state_dict(), best_model)

    return snapshot
