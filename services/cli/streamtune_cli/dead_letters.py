"""Dead letters as stored in ``events.dlq``: parse, filter, and plan a replay of their original bytes. Pure."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError
from streamtune_shared import streams
from streamtune_shared.schemas import DeadLetter

from .entries import payload_bytes


@dataclass(frozen=True)
class StoredLetter:
    """One DLQ entry: its id and the dead letter (None when the entry is not a valid DeadLetter)."""

    entry_id: str
    letter: DeadLetter | None


@dataclass(frozen=True)
class Replay:
    """Original bytes to append to ``target`` for one DLQ entry."""

    entry_id: str
    target: str
    payload: bytes


@dataclass(frozen=True)
class Skip:
    """A selected DLQ entry that cannot be replayed, and why."""

    entry_id: str
    why: str


def parse_letter(entry_id: str, fields: Mapping[bytes, bytes]) -> StoredLetter:
    """A DLQ entry as a dead letter."""
    raw = payload_bytes(fields)
    try:
        return StoredLetter(entry_id, DeadLetter.model_validate_json(raw or b""))
    except ValidationError:
        return StoredLetter(entry_id, None)


def is_selected(stored: StoredLetter, *, stage: str | None = None, reason: str | None = None,
                ids: Collection[str] = ()) -> bool:
    """Whether an entry passes the filters: exact stage, reason containing the text (any case), listed ids."""
    if ids and stored.entry_id not in ids:
        return False
    letter = stored.letter
    if letter is None:
        return stage is None and reason is None
    if stage is not None and letter.stage != stage:
        return False
    return reason is None or reason.lower() in letter.reason.lower()


def replay_of(stored: StoredLetter, to: str | None) -> Replay | Skip:
    """What replaying one entry means: its original bytes to ``to`` or the letter's source stream."""
    letter = stored.letter
    if letter is None:
        return Skip(stored.entry_id, "not a dead letter")
    if letter.original_truncated:
        return Skip(stored.entry_id, "original bytes were truncated when dead-lettered")
    target = to or letter.source_stream
    if target is None:
        return Skip(stored.entry_id, "the letter names no source stream (use --to)")
    if target == streams.DLQ:
        return Skip(stored.entry_id, "would replay into the dead-letter stream itself")
    try:
        payload = base64.b64decode(letter.original_b64, validate=True)
    except (binascii.Error, ValueError):
        return Skip(stored.entry_id, "original_b64 is not base64")
    return Replay(stored.entry_id, target, payload)


def plan_replay(letters: Iterable[StoredLetter], *, stage: str | None = None, reason: str | None = None,
                ids: Collection[str] = (), to: str | None = None) -> tuple[list[Replay], list[Skip]]:
    """The replays and skips for every selected entry, in stream order."""
    replays: list[Replay] = []
    skips: list[Skip] = []
    for stored in letters:
        if not is_selected(stored, stage=stage, reason=reason, ids=ids):
            continue
        planned = replay_of(stored, to)
        (replays if isinstance(planned, Replay) else skips).append(planned)
    return replays, skips


def letter_summary(stored: StoredLetter) -> dict[str, Any]:
    """A list row: what failed where and why, without the original bytes."""
    letter = stored.letter
    if letter is None:
        return {"entry_id": stored.entry_id, "stage": None, "reason": "not a dead letter"}
    return {"entry_id": stored.entry_id, "failed_at": letter.failed_at.isoformat(), "stage": letter.stage,
            "source_stream": letter.source_stream, "event_id": letter.event_id, "reason": letter.reason,
            "fields": [error.field for error in letter.errors], "deliveries": letter.deliveries}
