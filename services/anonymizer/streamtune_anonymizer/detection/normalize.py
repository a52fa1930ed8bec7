"""Text as the recognizers see it: NFKC, without invisible format characters, with a map back to the original.

Obfuscations such as ``jo\\u00adhn@example.com`` (soft hyphen), ``jo\\u200bhn`` (zero-width space) or
full-width digits ``４１１１`` disappear in the normalized text; the offset map turns a span found there
into the span of the original characters, so redaction replaces exactly what the user wrote.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

from .spans import PiiSpan

FORMAT_CATEGORY = "Cf"


@dataclass(frozen=True, slots=True)
class NormalizedText:
    """The normalized text and, for each of its characters, the index of the original character it came from."""

    text: str
    origins: tuple[int, ...] | None  # None: the text is its own normalization (offsets are the same)
    original_length: int

    def to_original(self, span: PiiSpan) -> PiiSpan:
        """The span of the original characters that produced ``span`` of the normalized text."""
        if self.origins is None:
            return span
        start = self.origins[span.start] if span.start < len(self.origins) else self.original_length
        end = self.origins[span.end - 1] + 1 if span.end > 0 else 0
        return PiiSpan(start, max(start, end), span.pii_type, span.source, span.score)


def normalize(text: str) -> NormalizedText:
    """NFKC, character by character, dropping format (Cf) characters such as zero-width spaces and soft hyphens."""
    if text.isascii():  # ASCII is already NFKC and has no format characters: the common case costs nothing
        return NormalizedText(text, None, len(text))
    pieces: list[str] = []
    origins: list[int] = []
    for index, char in enumerate(text):
        if unicodedata.category(char) == FORMAT_CATEGORY:
            continue
        folded = unicodedata.normalize("NFKC", char) if not char.isascii() else char
        pieces.append(folded)
        origins.extend([index] * len(folded))
    normalized = "".join(pieces)
    if normalized == text:
        return NormalizedText(text, None, len(text))
    return NormalizedText(normalized, tuple(origins), len(text))
