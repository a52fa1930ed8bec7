"""DP-SGD with Opacus: calibrate the noise to a target (epsilon, delta), train with per-sample clipping, account.

opacus is imported inside the functions (a run without ``dp`` never imports it). The spent epsilon is
a pure function of (noise multiplier, sample rate, steps), so a resumed run accounts exactly as an
uninterrupted one without storing accountant state. Batches are shuffled and of fixed size (Opacus'
``poisson_sampling=False`` case); the RDP accounting of Poisson sampling is the usual approximation of it.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any

import torch
from streamtune_shared.adaptation import DPOptions
from streamtune_shared.model_card import CardPrivacy

from .domain import TrainingRejected

ACCOUNTANT = "rdp"


@dataclass(frozen=True, slots=True)
class DPPlan:
    """The calibrated DP-SGD run: the noise that meets the target over every planned step."""

    target_epsilon: float
    delta: float
    max_grad_norm: float
    noise_multiplier: float
    sample_rate: float
    steps: int

    def spent(self, steps: int) -> float:
        """Epsilon spent after ``steps`` noisy steps (at this plan's delta)."""
        return spent_epsilon(self.noise_multiplier, self.sample_rate, steps, self.delta)

    def card(self, steps: int) -> CardPrivacy:
        """The card's privacy block after ``steps`` steps."""
        return CardPrivacy(epsilon=self.spent(steps), delta=self.delta, target_epsilon=self.target_epsilon,
                           noise_multiplier=self.noise_multiplier, max_grad_norm=self.max_grad_norm,
                           sample_rate=self.sample_rate, steps=steps, accountant=ACCOUNTANT)


def spent_epsilon(noise_multiplier: float, sample_rate: float, steps: int, delta: float) -> float:
    """Opacus' RDP accountant's epsilon for ``steps`` steps of the subsampled Gaussian mechanism."""
    from opacus.accountants import RDPAccountant

    if steps == 0:
        return 0.0
    accountant = RDPAccountant()
    accountant.history = [(noise_multiplier, sample_rate, steps)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "optimal order is the largest alpha" is about tightness, not validity
        return float(accountant.get_epsilon(delta))


def plan_dp(options: DPOptions, train_rows: int, batch_size: int, steps: int) -> DPPlan:
    """The noise multiplier that spends at most ``target_epsilon`` over ``steps``; TrainingRejected when none can."""
    from opacus.accountants.utils import get_noise_multiplier

    if options.delta >= 1 / train_rows:
        raise TrainingRejected(f"dp.delta {options.delta:g} must be below 1 / train rows ({1 / train_rows:.2g}): "
                               "a larger delta can leak a whole row")
    sample_rate = min(batch_size / train_rows, 1.0)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            sigma = get_noise_multiplier(target_epsilon=options.target_epsilon, target_delta=options.delta,
                                         sample_rate=sample_rate, steps=steps, accountant=ACCOUNTANT)
    except ValueError as exc:
        raise TrainingRejected(
            f"dp.target_epsilon {options.target_epsilon:g} cannot be met over {steps} steps at sample rate "
            f"{sample_rate:.3g} ({exc}); raise the target, or train fewer epochs or on more rows") from exc
    return DPPlan(options.target_epsilon, options.delta, options.max_grad_norm, float(sigma), sample_rate, steps)


def steps_for(train_rows: int, batch_size: int, epochs: int) -> int:
    """Optimizer steps of a run (one per batch) — the count the noise is calibrated for."""
    return max(math.ceil(train_rows / batch_size), 1) * epochs


@dataclass
class PrivateTraining:
    """The per-sample-gradient hooks and the noisy optimizer of a run; ``close`` removes the hooks."""

    grad_sample_module: Any
    optimizer: Any

    def close(self) -> None:
        """Remove the hooks (the model is plain again for evaluation and publishing)."""
        self.grad_sample_module._close()


def freeze_shared_input_embeddings(model: torch.nn.Module) -> list[str]:
    """Freeze embeddings looked up by ids shared across the batch (BERT's position and token-type buffers).

    Their input has batch size 1, so no per-sample gradient exists for them; returns the frozen module names.
    """
    frozen = []
    for name, module in model.named_modules():
        shared = name.endswith(("position_embeddings", "token_type_embeddings"))
        if shared and isinstance(module, torch.nn.Embedding) and module.weight.requires_grad:
            module.requires_grad_(False)
            frozen.append(name)
    return frozen


def make_private(model: torch.nn.Module, optimizer: torch.optim.Optimizer, plan: DPPlan,
                 batch_size: int) -> PrivateTraining:
    """Per-sample gradients on the trainable parameters, clipped and noised by Opacus' DPOptimizer."""
    from opacus import GradSampleModule
    from opacus.optimizers import DPOptimizer

    freeze_shared_input_embeddings(model)
    try:
        grad_sample_module = GradSampleModule(model, batch_first=True, loss_reduction="mean", strict=False)
    except (NotImplementedError, ValueError) as exc:
        raise TrainingRejected(f"the model has layers Opacus cannot compute per-sample gradients for ({exc})") from exc
    dp_optimizer = DPOptimizer(optimizer, noise_multiplier=plan.noise_multiplier, max_grad_norm=plan.max_grad_norm,
                               expected_batch_size=batch_size, loss_reduction="mean")
    return PrivateTraining(grad_sample_module, dp_optimizer)
