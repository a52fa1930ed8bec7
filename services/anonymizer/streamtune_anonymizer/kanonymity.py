"""k-anonymity of one shard over configured quasi-identifiers: generalize the shard further, then suppress.

Pure. Rows are grouped into equivalence classes by their quasi-identifier values. While more rows
sit in classes smaller than k than the rule lets us suppress, and a step merges classes, the whole
shard is generalized one step further (global recoding, as in Sweeney's Datafly: one granularity per column per shard, so a
reader can tell what a value means). Rows still in classes smaller than k are then dropped from the
shard: dropping is the only suppression that works for every quasi-identifier, `ts` included
(a shard row must have a time), and it leaves no half-suppressed row for a trainer to misread.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator
from streamtune_shared.schemas import CleanEvent, KAnonymityReport

from .generalization import TIME_LADDER, DatasetGeneralization, coarsen_time, generalize_meta_value

QuasiKey = tuple[Any, ...]


class KAnonymityRule(BaseModel):
    """One dataset's k-anonymity check: which fields identify together, and how small a class may be."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    quasi_identifiers: tuple[str, ...] = Field(
        min_length=1, description="'ts', 'device_id', or meta keys (GPS 'lat', 'lon', 'gps'; bucketed numbers...).")
    k: int = Field(default=5, ge=2, le=10_000, description="Smallest class size allowed in a stored shard.")
    max_steps: int = Field(default=3, ge=0, le=16, description="Generalization steps tried before suppressing.")
    max_suppressed_fraction: float = Field(
        default=0.05, ge=0, le=1, description="Stop generalizing once at most this share of rows needs suppressing.")

    @model_validator(mode="after")
    def _distinct_names(self) -> Self:
        if len(set(self.quasi_identifiers)) != len(self.quasi_identifiers):
            raise ValueError("quasi_identifiers must be distinct")
        return self


@dataclass(frozen=True)
class KAnonymousRows:
    """The rows to store and what it took."""

    events: list[CleanEvent]
    report: KAnonymityReport


def quasi_key(event: CleanEvent, names: Sequence[str], rules: DatasetGeneralization | None, level: int) -> QuasiKey:
    """The event's quasi-identifier values, ``level`` steps coarser than the configured generalization."""
    return tuple(_value(event, name, rules, level) for name in names)


def _value(event: CleanEvent, name: str, rules: DatasetGeneralization | None, level: int) -> Any:
    if name == "ts":
        if rules is None or rules.ts is None or level == 0:
            return event.ts
        top = len(TIME_LADDER) - 1 - TIME_LADDER.index(rules.ts)
        return coarsen_time(event.ts, rules.ts, min(level, top))
    if name == "device_id":
        return event.device_id
    value = event.meta.get(name)
    if rules is None or level == 0:
        return value
    return generalize_meta_value(name, value, rules, level)


def _violations(keys: Sequence[QuasiKey], k: int) -> tuple[Counter[QuasiKey], int]:
    sizes = Counter(keys)
    return sizes, sum(1 for key in keys if sizes[key] < k)


def _at_level(event: CleanEvent, rule: KAnonymityRule, rules: DatasetGeneralization | None,
              level: int) -> CleanEvent:
    """The event with its quasi-identifiers stored at ``level``."""
    if level == 0 or rules is None:
        return event
    key = quasi_key(event, rule.quasi_identifiers, rules, level)
    values = dict(zip(rule.quasi_identifiers, key, strict=True))
    meta = {name: values.get(name, value) for name, value in event.meta.items()}
    return event.model_copy(update={"ts": values.get("ts", event.ts), "meta": meta})


def enforce_k_anonymity(events: Sequence[CleanEvent], rule: KAnonymityRule,
                        rules: DatasetGeneralization | None) -> KAnonymousRows:
    """The shard's rows, generalized until at most ``max_suppressed_fraction`` violate k, the rest dropped."""
    allowed = int(rule.max_suppressed_fraction * len(events))
    level = 0
    keys = [quasi_key(e, rule.quasi_identifiers, rules, level) for e in events]
    sizes, violating = _violations(keys, rule.k)
    while violating > allowed and level < rule.max_steps and rules is not None:
        coarser = [quasi_key(e, rule.quasi_identifiers, rules, level + 1) for e in events]
        coarser_sizes, coarser_violating = _violations(coarser, rule.k)
        if len(coarser_sizes) == len(sizes):
            break  # the step merges no class: it would only lose detail
        level, keys, sizes, violating = level + 1, coarser, coarser_sizes, coarser_violating
    kept = [_at_level(e, rule, rules, level) for e, key in zip(events, keys, strict=True) if sizes[key] >= rule.k]
    kept_sizes = [size for size in sizes.values() if size >= rule.k]
    report = KAnonymityReport(k=rule.k, quasi_identifiers=rule.quasi_identifiers, classes=len(kept_sizes),
                              smallest_class=min(kept_sizes, default=0), suppressed_rows=len(events) - len(kept),
                              generalization_level=level)
    return KAnonymousRows(kept, report)
