"""How a batch of model inputs is cut into forwards: shortest first, each forward at most ``max_rows`` rows and,
padded to its longest row, at most ``max_tokens`` tokens.

On a CPU a forward whose activations fit the cache is faster than a wide one (the anonymizer's PII model ran
about 2.8x faster at 256 padded pieces a forward than at 64 windows), and rows of similar length pad less.
"""

from __future__ import annotations

from collections.abc import Sequence

# Padded tokens per forward that the anonymizer's PII model and the predictor's text models default to.
DEFAULT_TOKENS_PER_FORWARD = 256


def token_budget_chunks(lengths: Sequence[int], *, max_rows: int, max_tokens: int | None) -> list[list[int]]:
    """The indices of ``lengths``, shortest first, cut into chunks; ``max_tokens`` None: ``max_rows`` alone.

    A row longer than ``max_tokens`` goes alone. Every index appears exactly once.
    """
    if max_rows < 1:
        raise ValueError("max_rows must be at least 1")
    chunks: list[list[int]] = []
    current: list[int] = []
    for index in sorted(range(len(lengths)), key=lambda i: lengths[i]):
        # Lengths only grow along the order: a chunk padded to this row holds (rows + 1) * its length.
        too_many = len(current) >= max_rows
        too_wide = max_tokens is not None and (len(current) + 1) * lengths[index] > max_tokens
        if current and (too_many or too_wide):
            chunks.append(current)
            current = []
        current.append(index)
    if current:
        chunks.append(current)
    return chunks
