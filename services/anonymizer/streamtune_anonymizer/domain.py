"""Anonymizing one event: keyed pseudonyms for ids and meta, PII in text replaced by type tags.

Pure: no Redis, no S3, no environment. The key comes in as bytes, the clock as a value.
"""

from __future__ import annotations

import hmac
import json
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from datetime import datetime
from typing import Literal, TypeVar

from pydantic import ValidationError
from streamtune_shared.schemas import MAX_TEXT_CHARS, CleanEvent, FieldError, MetaValue, ValidEvent, field_errors

from .generalization import DatasetGeneralization, generalize_fields
from .redaction import Redaction, redact_text

MetaAction = Literal["keep", "pseudonymize", "drop"]
DEFAULT_META_POLICY: dict[str, MetaAction] = {
    "site": "keep", "operator": "pseudonymize", "clinician": "pseudonymize", "gps": "drop",
}
# Keys not named in the policy may hold anything, so they are pseudonymized.
UNLISTED_META_ACTION: MetaAction = "pseudonymize"
MIN_KEY_CHARS = 32
MIN_DISTINCT_KEY_CHARS = 8
KNOWN_DEFAULT_KEYS = ("changeme", "secret", "dev", "test", "default", "password")
PSEUDONYM_PREFIX = "ps_"
PSEUDONYM_HEX_CHARS = 24
PSEUDONYM_MEMO_SIZE = 65_536
EventModel = TypeVar("EventModel", ValidEvent, CleanEvent)


class WeakPseudonymKey(ValueError):
    """The pseudonym key is missing, short or a well-known default."""


class InvalidPayload(ValueError):
    """A stream entry that is not the message it should be, with the reasons per field."""

    def __init__(self, reason: str, errors: Sequence[FieldError] = (), event_id: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.errors = tuple(errors)
        self.event_id = event_id


def check_pseudonym_key(key: str, *, allow_dev_key: bool = False) -> None:
    """Refuse keys an attacker could guess: shorter than 32 characters, a known default, or low-variety.

    ``allow_dev_key`` lets a developer run with a weak (but non-empty) key on purpose.
    """
    if not key:
        raise WeakPseudonymKey("ANONYMIZER_PSEUDONYM_KEY is empty")
    if allow_dev_key:
        return
    remainder = key.lower()
    for word in KNOWN_DEFAULT_KEYS:
        remainder = remainder.replace(word, "")
    if not remainder:
        raise WeakPseudonymKey("ANONYMIZER_PSEUDONYM_KEY is a well-known default; generate a random one")
    if len(key) < MIN_KEY_CHARS:
        raise WeakPseudonymKey(f"ANONYMIZER_PSEUDONYM_KEY must have at least {MIN_KEY_CHARS} characters")
    if len(remainder) < MIN_KEY_CHARS // 2 or len(set(key)) < MIN_DISTINCT_KEY_CHARS:
        raise WeakPseudonymKey("ANONYMIZER_PSEUDONYM_KEY is built from a default word or too few characters; generate "
                               "a random one: python -c 'import secrets; print(secrets.token_urlsafe(48))'")


def pseudonym(key: bytes, field_name: str, value: str) -> str:
    """A stable, keyed, non-reversible stand-in for ``value`` of ``field_name``: ``ps_`` + 24 hex chars."""
    digest = hmac.digest(key, f"{field_name}\x00{value}".encode(), "sha256")
    return PSEUDONYM_PREFIX + digest.hex()[:PSEUDONYM_HEX_CHARS]


class Pseudonymizer:
    """``pseudonym`` with the key set up once and a bounded memo: devices and operators repeat on every event."""

    def __init__(self, key: bytes, memo_size: int = PSEUDONYM_MEMO_SIZE) -> None:
        self._keyed = hmac.new(key, digestmod="sha256")
        self._memo: dict[tuple[str, str], str] = {}
        self._memo_size = memo_size

    def __call__(self, field_name: str, value: str) -> str:
        """The pseudonym of ``value`` in ``field_name``, equal to ``pseudonym(key, field_name, value)``."""
        token = (field_name, value)
        known = self._memo.get(token)
        if known is None:
            mac = self._keyed.copy()
            mac.update(f"{field_name}\x00{value}".encode())
            known = PSEUDONYM_PREFIX + mac.hexdigest()[:PSEUDONYM_HEX_CHARS]
            if len(self._memo) >= self._memo_size:
                self._memo.clear()
            self._memo[token] = known
        return known


@dataclass(frozen=True)
class AnonymizationPolicy:
    """How to anonymize: the HMAC key and what to do with each meta key."""

    key: bytes = field(repr=False)
    meta_actions: Mapping[str, MetaAction] = field(default_factory=lambda: dict(DEFAULT_META_POLICY))
    generalization: Mapping[str, DatasetGeneralization] = field(default_factory=dict)

    @cached_property
    def pseudonymize(self) -> Pseudonymizer:
        """The keyed pseudonym function of this policy."""
        return Pseudonymizer(self.key)

    def meta_action(self, name: str) -> MetaAction:
        """The action for a meta key; unlisted keys are pseudonymized."""
        return self.meta_actions.get(name, UNLISTED_META_ACTION)


def anonymize_meta(meta: Mapping[str, MetaValue], policy: AnonymizationPolicy) -> dict[str, MetaValue]:
    """Keep, pseudonymize or drop each meta value by policy; None stays None."""
    out: dict[str, MetaValue] = {}
    for name, value in meta.items():
        action = policy.meta_action(name)
        if action == "drop":
            continue
        if action == "keep" or value is None:
            out[name] = value
        else:
            out[name] = policy.pseudonymize(name, value if isinstance(value, str) else json.dumps(value))
    return out


def generalized_meta(meta: Mapping[str, MetaValue], generalized: Mapping[str, MetaValue],
                     policy: AnonymizationPolicy) -> dict[str, MetaValue]:
    """Meta by policy, except that a generalized key keeps its generalized value unless the policy drops it.

    A pseudonym would undo the generalization: it keeps every distinct value apart.
    """
    if not generalized:
        return anonymize_meta(meta, policy)
    out = anonymize_meta({k: v for k, v in meta.items() if k not in generalized}, policy)
    out.update({k: v for k, v in generalized.items() if policy.meta_action(k) != "drop"})
    return out


def redact_event_text(text: str) -> Redaction:
    """Redact an event's text; when type tags would push it past the schema limit, mask with single characters."""
    redacted = redact_text(text)
    if len(redacted.text) > MAX_TEXT_CHARS:
        redacted = redact_text(text, compact=True)
    return redacted


def anonymize_event(event: ValidEvent, policy: AnonymizationPolicy, now: datetime, *,
                    redacted_text: Redaction | None = None) -> CleanEvent:
    """The clean copy of an event: device id and meta pseudonymized, PII in text and notes replaced.

    Whitespace tokens of the text keep their count, so BIO labels stay aligned. ``redacted_text`` is the
    text's redaction when the caller did a whole batch at once (``redaction.redact_texts``).
    """
    counts: Counter[str] = Counter()
    text = None
    if event.text is not None:
        redacted = redacted_text if redacted_text is not None else redact_event_text(event.text)
        text = redacted.text
        counts.update(redacted.counts)
    notes = []
    for note in event.notes:
        redacted_note = redact_text(note)
        notes.append(redacted_note.text)
        counts.update(redacted_note.counts)
    # Field by field: iterating a pydantic model (dict(event)) costs more than the rest of this function.
    fields = {name: getattr(event, name) for name in ValidEvent.model_fields}
    general = generalize_fields(event.ts, event.meta, policy.generalization.get(event.dataset))
    fields.update(
        device_id=policy.pseudonymize("device_id", event.device_id),
        ts=general.ts,
        text=text,
        notes=tuple(notes),
        meta=generalized_meta(event.meta, general.meta, policy),
        redactions=dict(counts),
        anonymized_at=now,
    )
    return CleanEvent(**fields)


def decode_valid_event(payload: bytes | None) -> ValidEvent:
    """The ValidEvent in an entry's payload; InvalidPayload (with field errors) for anything else."""
    return _decode(ValidEvent, payload)


def decode_clean_event(payload: bytes | None) -> CleanEvent:
    """The CleanEvent in an entry's payload; InvalidPayload (with field errors) for anything else."""
    return _decode(CleanEvent, payload)


def _decode(model: type[EventModel], payload: bytes | None) -> EventModel:
    if payload is None:
        raise InvalidPayload("entry has no payload field")
    try:
        return model.model_validate_json(payload)
    except ValidationError as exc:
        raise InvalidPayload(f"not a valid {model.__name__}: {exc.error_count()} error(s)", field_errors(exc),
                             _event_id_of(payload)) from None


def _event_id_of(payload: bytes) -> str | None:
    # Best effort, so the dead letter names the event when the payload is JSON with an id.
    try:
        document = json.loads(payload)
    except ValueError:
        return None
    event_id = document.get("event_id") if isinstance(document, dict) else None
    return event_id if isinstance(event_id, str) and 0 < len(event_id) <= 128 else None
