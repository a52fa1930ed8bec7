"""Redacting the texts of a whole batch with one detector call (the entity model runs once per batch).

A text the detector fails on is never passed on unredacted: the batch is redone text by text so that
only the failing events are dead-lettered, each with the reason and no text.
"""

from __future__ import annotations

from collections.abc import Sequence

import structlog
from streamtune_shared.schemas import MAX_TEXT_CHARS, ValidEvent

from .detection import PiiDetector
from .redaction import PseudonymOf, Redaction, redact_texts
from .text_policy import TextPolicy

log = structlog.get_logger(__name__)


class DetectionFailed(RuntimeError):
    """PII detection raised on this event's text; the event must not go on."""


def redact_batch(events: Sequence[ValidEvent | None], detector: PiiDetector, policy: TextPolicy,
                 pseudonym_of: PseudonymOf) -> list[Redaction | DetectionFailed | None]:
    """Per event: its text's redaction, ``DetectionFailed`` when detection raised on it, None without text."""
    with_text = [i for i, event in enumerate(events) if event is not None and event.text is not None]
    results: list[Redaction | DetectionFailed | None] = [None] * len(events)
    if not with_text:
        return results
    try:
        for i, redacted in zip(with_text, _redact([events[i] for i in with_text], detector, policy, pseudonym_of),
                               strict=True):
            results[i] = redacted
        return results
    except Exception as exc:  # noqa: BLE001 - find the text that fails, so the rest of the batch goes on
        log.warning("detection.batch_failed", texts=len(with_text), error=type(exc).__name__)
    for i in with_text:
        try:
            [results[i]] = _redact([events[i]], detector, policy, pseudonym_of)
        except Exception as exc:  # noqa: BLE001 - this event is dead-lettered with the reason
            results[i] = DetectionFailed(f"PII detection failed: {type(exc).__name__}")
    return results


def _redact(events: list[ValidEvent], detector: PiiDetector, policy: TextPolicy,
            pseudonym_of: PseudonymOf) -> list[Redaction]:
    return redact_texts([e.text or "" for e in events], detector, policy, datasets=[e.dataset for e in events],
                        labeled=[isinstance(e.label, list) for e in events], pseudonym_of=pseudonym_of,
                        max_chars=MAX_TEXT_CHARS)
