"""Token-level recall and precision of PII tags over whitespace tokens (how a redaction is judged)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from .bio import OUTSIDE, entity_types


def _ratio(part: int, whole: int) -> float:
    return part / whole if whole else 0.0


def token_scores(gold: Iterable[Sequence[str]], predicted: Iterable[Sequence[str]],
                 types: Sequence[str]) -> dict[str, Any]:
    """Per type: recall and precision of tokens with that exact type, and ``found``: its tokens tagged as any
    PII (what redaction needs); ``any``: all of ``types`` together, whatever type was predicted.

    ``any`` recall counts a gold token of ``types`` found under any predicted type; ``any`` precision counts a
    predicted token of ``types`` that is PII of any gold type (a card number tagged PERSON is still redacted).
    """
    counts = {t: {"gold": 0, "predicted": 0, "correct": 0, "found": 0} for t in types}
    gold_pii = found = predicted_pii = real = 0
    for gold_tags, predicted_tags in zip(gold, predicted, strict=True):
        for g, p in zip(entity_types(gold_tags), entity_types(predicted_tags), strict=True):
            if g in counts:
                counts[g]["gold"] += 1
                gold_pii += 1
                found += p != OUTSIDE
                counts[g]["found"] += p != OUTSIDE
                counts[g]["correct"] += g == p
            if p in counts:
                counts[p]["predicted"] += 1
                predicted_pii += 1
                real += g != OUTSIDE
    per_type = {t: {"recall": _ratio(c["correct"], c["gold"]), "precision": _ratio(c["correct"], c["predicted"]),
                    "found": _ratio(c["found"], c["gold"]), "support": c["gold"]} for t, c in counts.items()}
    return {"types": per_type,
            "any": {"recall": _ratio(found, gold_pii), "precision": _ratio(real, predicted_pii), "support": gold_pii}}
