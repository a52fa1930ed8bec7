"""From payload bytes to a JSON object, and from pydantic errors to field errors: pure, no I/O.

Every failure is a ``PayloadRejected`` carrying a short code (for logs and metrics), a reason a
producer can act on, and field errors whose ``field`` is a dotted path into the producer's document.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from typing import Any

from pydantic import ValidationError
from streamtune_shared import streams
from streamtune_shared.schemas import SUPPORTED_SCHEMA_VERSIONS, Event, FieldError
from streamtune_shared.schemas import field_errors as shared_field_errors

PAYLOAD_FIELD = streams.PAYLOAD_FIELD
EVENT_FIELD = "event"
_SUPPORTED = ", ".join(str(v) for v in SUPPORTED_SCHEMA_VERSIONS)


class PayloadRejected(Exception):
    """An input that cannot become an event, with the reason and the fields at fault."""

    def __init__(self, code: str, reason: str, errors: tuple[FieldError, ...]) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason
        self.errors = errors


def _reject(code: str, reason: str, field: str = PAYLOAD_FIELD) -> PayloadRejected:
    return PayloadRejected(code, reason, (FieldError(field=field, message=reason),))


class _DuplicateKeyObject(dict[str, Any]):
    """A JSON object in which some key appeared more than once (the last value is kept, as json does)."""

    duplicate_keys: tuple[str, ...] = ()


def _object_hook(found: list[_DuplicateKeyObject]) -> Callable[[list[tuple[str, Any]]], dict[str, Any]]:
    # Builds each object like json does, remembering the ones with a repeated key (rare: no walk otherwise).
    def build(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        obj = dict(pairs)
        if len(obj) == len(pairs):
            return obj
        marked = _DuplicateKeyObject(obj)
        marked.duplicate_keys = tuple(key for key, n in Counter(k for k, _ in pairs).items() if n > 1)
        found.append(marked)
        return marked

    return build


def decode_object(raw: bytes | None, max_bytes: int) -> dict[str, Any]:
    """The JSON object in ``raw``; rejects missing, oversized, non-UTF-8, non-JSON and duplicate-key payloads."""
    if raw is None:
        raise _reject("missing_payload", f"entry has no {PAYLOAD_FIELD!r} field")
    if len(raw) > max_bytes:
        raise _reject("too_large", f"payload is {len(raw)} bytes (max {max_bytes})")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _reject("not_utf8", f"payload is not UTF-8 (invalid byte at offset {exc.start})") from None
    found: list[_DuplicateKeyObject] = []
    try:
        document = json.loads(text, object_pairs_hook=_object_hook(found))
    except RecursionError:
        raise _reject("not_json", "payload is not JSON: nested too deeply") from None
    except ValueError as exc:
        raise _reject("not_json", f"payload is not JSON: {exc}") from None
    if found:
        paths = duplicate_key_paths(document)
        raise PayloadRejected("duplicate_key", f"duplicate keys in JSON object: {', '.join(paths)}", tuple(
            FieldError(field=path, message="key appears more than once in its object") for path in paths))
    if not isinstance(document, dict):
        raise _reject("not_object", f"payload is a JSON {_json_type(document)}, not an object")
    return document


def duplicate_key_paths(document: Any) -> list[str]:
    """Dotted paths of the keys that appeared twice in their object (iterative: documents may nest deeply)."""
    paths: list[str] = []
    stack: list[tuple[str, Any]] = [("", document)]
    while stack:
        prefix, node = stack.pop()
        if isinstance(node, _DuplicateKeyObject):
            paths.extend(_join(prefix, key) for key in node.duplicate_keys)
        if isinstance(node, dict):
            stack.extend((_join(prefix, str(key)), value) for key, value in node.items())
        elif isinstance(node, list):
            stack.extend((_join(prefix, str(i)), value) for i, value in enumerate(node))
    return sorted(paths)


def _join(prefix: str, key: str) -> str:
    return f"{prefix}.{key}" if prefix else key


def _json_type(document: Any) -> str:
    if isinstance(document, list):
        return "array"
    if isinstance(document, str):
        return "string"
    if document is None:
        return "null"
    if isinstance(document, bool):
        return "boolean"
    return "number"


def check_schema_version(document: dict[str, Any]) -> None:
    """Reject a document without a supported ``schema_version`` before validating it against that schema."""
    if "schema_version" not in document:
        raise _reject("schema_version", f"missing schema_version (supported: {_SUPPORTED})", "schema_version")
    version = document["schema_version"]
    if type(version) is not int or version not in SUPPORTED_SCHEMA_VERSIONS:
        shown = json.dumps(version)[:40]
        raise _reject("schema_version", f"unsupported schema_version {shown} (supported: {_SUPPORTED})",
                      "schema_version")


def field_errors(exc: ValidationError) -> tuple[FieldError, ...]:
    """One error per field of the event document, every field named (the shared ``field_errors``).

    Paths come from walking pydantic's locations along the Event model; errors of the whole event
    are named ``event``.
    """
    return shared_field_errors(exc, limit=None, root=EVENT_FIELD, model=Event)


def event_id_of(document: dict[str, Any]) -> str | None:
    """The producer's event_id when it looks like one (for dead letters and HTTP results)."""
    event_id = document.get("event_id")
    if isinstance(event_id, str) and 0 < len(event_id) <= 128 and event_id.isprintable():
        return event_id
    return None
