"""Context words: the evidence that makes an ambiguous pattern (a bare number, a year) PII."""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Context:
    """Words that must appear within ``before`` characters ahead of a match or ``after`` characters behind it."""

    words: re.Pattern[str]
    before: int = 40
    after: int = 0

    def around(self, text: str, start: int, end: int) -> bool:
        """Whether a context word occurs near ``text[start:end]``."""
        if self.words.search(text, max(0, start - self.before), start):
            return True
        return self.after > 0 and self.words.search(text, end, min(len(text), end + self.after)) is not None


def words(*alternatives: str) -> re.Pattern[str]:
    """A case-insensitive pattern matching any of the words (regex fragments) as whole words."""
    return re.compile(r"(?<!\w)(?:" + "|".join(alternatives) + r")(?!\w)", re.IGNORECASE)
