"""What to do with each kind of PII found in a text, per type and per dataset.

Actions: ``tag`` (``<PERSON>``), ``mask`` (every character ``*``, whitespace kept), ``pseudonym``
(``<PERSON_3f9a1c>``: a keyed HMAC of the normalized value, stable across events, not reversible) and
``drop`` (the whole text becomes None; a labeled text keeps its token count instead, every token masked).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

TextAction = Literal["tag", "mask", "pseudonym", "drop"]
DEFAULT_TEXT_ACTION: TextAction = "tag"


class TextPolicy(BaseModel):
    """Per-type and per-dataset actions, e.g. ``{"default": "tag", "types": {"EMAIL": "pseudonym"},
    "datasets": {"clinical-notes": {"PERSON": "pseudonym"}}}``; a dataset's entry beats ``types``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    default: TextAction = DEFAULT_TEXT_ACTION
    types: dict[str, TextAction] = Field(default_factory=dict, description="Action per PII type, every dataset.")
    datasets: dict[str, dict[str, TextAction]] = Field(default_factory=dict,
                                                       description="Action per PII type for one dataset.")

    def action(self, pii_type: str, dataset: str | None = None) -> TextAction:
        """The action for ``pii_type`` in ``dataset``: the dataset's, else the type's, else the default."""
        per_dataset: Mapping[str, TextAction] = self.datasets.get(dataset, {}) if dataset is not None else {}
        return per_dataset.get(pii_type) or self.types.get(pii_type) or self.default

    def actions_for(self, dataset: str | None) -> Callable[[str], TextAction]:
        """``action`` with the dataset fixed: a function of the PII type."""
        return lambda pii_type: self.action(pii_type, dataset)


def normalized_value(value: str) -> str:
    """The form a pseudonym is computed from: casefolded, runs of whitespace collapsed to one space."""
    return " ".join(value.casefold().split())
