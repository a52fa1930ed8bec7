"""Adversarial training on the word embeddings: FGM (one step) and PGD (projected steps inside an L2 ball).

After the normal loss's backward, the embedding rows of the batch's tokens move along their normalized
gradient; the loss on the perturbed input is backpropagated on top, and the rows are put back exactly::

    attack = EmbeddingAttack(model, options)      # finds model.get_input_embeddings() (peft models too)
    loss.backward(); attack.backward(lambda: model(**batch).loss); optimizer.step()
    attack.close()                                # a frozen embedding is frozen again

A frozen embedding (LoRA, freeze) gets a gradient for the attack only: it is never in the optimizer and its
gradient is dropped after each step, so it does not change and does not count in gradient clipping.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from streamtune_shared.adaptation import AdversarialOptions

from .domain import TrainingRejected

LossFn = Callable[[], torch.Tensor]


def input_embedding(model: torch.nn.Module) -> torch.nn.Parameter:
    """The word-embedding matrix of a model (anything answering ``get_input_embeddings()``: transformers, peft,
    the prompt-tuning trim), or TrainingRejected when it has none."""
    get = getattr(model, "get_input_embeddings", None)
    embedding = get() if callable(get) else None
    weight = getattr(embedding, "weight", None)
    if not isinstance(weight, torch.nn.Parameter) or weight.dim() != 2:
        raise TrainingRejected(f"adversarial training needs a word-embedding matrix; {type(model).__name__} "
                               "exposes none through get_input_embeddings()")
    return weight


def unit(grad: torch.Tensor) -> torch.Tensor | None:
    """``grad`` scaled to L2 norm 1, or None when it is zero or not finite (no direction to attack in)."""
    norm = torch.linalg.vector_norm(grad)
    if not torch.isfinite(norm) or norm == 0:
        return None
    return grad / norm


def project(delta: torch.Tensor, epsilon: float) -> torch.Tensor:
    """``delta`` pulled back onto the L2 ball of radius ``epsilon`` when it left it."""
    norm = torch.linalg.vector_norm(delta)
    return delta * (epsilon / norm) if norm > epsilon else delta


class EmbeddingAttack:
    """FGM or PGD on one model's word embeddings, applied to each training step through ``backward``."""

    def __init__(self, model: torch.nn.Module, options: AdversarialOptions) -> None:
        self.model, self.options = model, options
        self.weight = input_embedding(model)
        self.trainable = self.weight.requires_grad
        self.weight.requires_grad_(True)  # the attack needs the gradient even where the embedding is frozen
        self.delta_norms: list[float] = []  # the perturbation's L2 norm after each step of the last attack

    def _trainable_grads(self) -> list[torch.nn.Parameter]:
        return [p for p in self.model.parameters() if p.grad is not None]

    def backward(self, loss_fn: LossFn) -> float | None:
        """Add the adversarial loss's gradient to the one already accumulated; returns that loss (None: no attack).

        FGM: one step of ``epsilon`` along the gradient. PGD: ``steps`` steps of ``step_size * epsilon``, each
        projected back into the ``epsilon`` ball; only the last adversarial gradient is kept.
        """
        grad = self.weight.grad
        if grad is None:
            return None
        rows = grad.abs().sum(dim=1).nonzero().squeeze(1)  # the batch's tokens: only their rows have a gradient
        direction = unit(grad[rows])
        if direction is None:
            return self._finish(None)
        original = self.weight.data[rows].clone()
        pgd = self.options.method == "pgd"
        steps = self.options.steps if pgd else 1
        step = self.options.step_size * self.options.epsilon if pgd else self.options.epsilon
        kept = [(p, p.grad.clone()) for p in self._trainable_grads()] if steps > 1 else []
        delta = torch.zeros_like(original)
        self.delta_norms = []
        try:
            for index in range(steps):
                delta = project(delta + step * direction, self.options.epsilon)
                self.weight.data[rows] = original + delta
                self.delta_norms.append(float(torch.linalg.vector_norm(delta)))
                if index == steps - 1:
                    break
                self.model.zero_grad(set_to_none=True)  # an ascent step's gradient only steers the next one
                loss_fn().backward()
                following = unit(self.weight.grad[rows])
                if following is None:
                    break
                direction = following
            if kept:  # the step's own gradient, to which the last adversarial gradient is added
                self.model.zero_grad(set_to_none=True)
                for param, saved in kept:
                    param.grad = saved
            loss = loss_fn()
            loss.backward()
        finally:
            self.weight.data[rows] = original
        return self._finish(float(loss.detach()))

    def _finish(self, loss: float | None) -> float | None:
        if not self.trainable:
            self.weight.grad = None
        return loss

    def close(self) -> None:
        """Give the embedding back its own trainability and drop any gradient the attack left on it."""
        self.weight.requires_grad_(self.trainable)
        if not self.trainable:
            self.weight.grad = None
