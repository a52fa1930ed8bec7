"""Rows of ``models list``: one per model, from its versions and the card of its newest version. Pure."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from streamtune_shared.model_card import ModelCard


def headline_f1(metrics: Mapping[str, Any]) -> float | None:
    """The F1 a split's metrics lead with: entity F1 (NER) or macro F1 (classification)."""
    for key in ("f1", "macro_f1"):
        if isinstance(metrics.get(key), int | float):
            return float(metrics[key])
    return None


def model_row(name: str, versions: Sequence[str], card: ModelCard | None, problem: str | None = None) -> dict[str, Any]:
    """One model: how many versions, the newest, and what its card says (``card_problem`` when it is refused)."""
    return {
        "model": name,
        "versions": len(versions),
        "newest": versions[-1] if versions else None,
        "task": card.task if card else None,
        "dataset": card.dataset if card else None,
        "dev_f1": headline_f1(card.metrics.dev) if card else None,
        "test_f1": headline_f1(card.metrics.test) if card else None,
        "created_at": card.created_at.isoformat() if card else None,
        "card_problem": problem,
    }


def _score(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def row_cells(row: Mapping[str, Any]) -> tuple[str, ...]:
    """A row as table cells: model, versions, newest, task, dataset, dev F1, test F1."""
    task = row["task"] or f"(card refused: {row['card_problem']})"
    return (row["model"], str(row["versions"]), row["newest"] or "-", task, row["dataset"] or "-",
            _score(row["dev_f1"]), _score(row["test_f1"]))


TABLE_COLUMNS = ("model", "versions", "newest version", "task", "dataset", "dev F1", "test F1")
