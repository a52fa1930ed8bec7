"""Which version serves: the startup choice and the hot-reload decision (pure).

Where versions live, their names and what a trustworthy card is belong to
``streamtune_shared.model_registry`` and ``streamtune_shared.model_card``, shared with the trainer.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from typing import Literal

ReloadDecision = Literal["load", "pinned", "not_newer"]


def startup_candidates(committed: Iterable[str], pinned: str | None, refused: Collection[str] = ()) -> list[str]:
    """Versions to try at startup, best first: the pinned one only, else every committed one newest first."""
    available = [v for v in committed if v not in refused]
    if pinned is not None:
        return [pinned] if pinned in available else []
    return sorted(available, reverse=True)


def reload_decision(announced: str, serving: str | None, pinned: str | None) -> ReloadDecision:
    """Whether an announced version replaces the one serving: only newer ones, and never past a pin."""
    if pinned is not None and announced != pinned:
        return "pinned"
    if serving is not None and announced <= serving:
        return "not_newer"
    return "load"
