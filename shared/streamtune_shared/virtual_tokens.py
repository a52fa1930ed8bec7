"""Prompt tuning for token labels: peft prepends virtual tokens, this keeps labels and logits word-aligned.

Imports torch: import this module only where torch is installed (``hf_loading`` imports it lazily).
"""

from __future__ import annotations

from typing import Any

import torch

IGNORE_INDEX = -100


class VirtualTokenTrim(torch.nn.Module):
    """A peft prompt-tuning model whose token logits start at the first real token, as the caller's labels do."""

    def __init__(self, peft_model: Any) -> None:
        super().__init__()
        self.peft_model = peft_model
        self.num_virtual_tokens = int(peft_model.active_peft_config.num_virtual_tokens)

    @property
    def config(self) -> Any:
        """The base model's config (num_labels, id2label)."""
        return self.peft_model.config

    def get_input_embeddings(self) -> torch.nn.Module:
        """The base model's word embeddings (adversarial training perturbs them), as transformers models answer."""
        return self.peft_model.get_input_embeddings()

    def forward(self, labels: torch.Tensor | None = None, **inputs: Any) -> Any:
        """The peft forward; labels get ignored positions for the virtual tokens, logits lose them."""
        if labels is not None and labels.dim() == 2:
            pad = labels.new_full((labels.shape[0], self.num_virtual_tokens), IGNORE_INDEX)
            labels = torch.cat((pad, labels), dim=1)
        outputs = self.peft_model(labels=labels, **inputs)
        if outputs.logits.dim() == 3:
            outputs.logits = outputs.logits[:, self.num_virtual_tokens:]
        return outputs
