"""Splitting a ``POST /events`` body into the bytes of each event: pure, no I/O.

Each item keeps the producer's own bytes, so it is judged by ``ingest_payload`` exactly like a
stream entry (duplicate keys included) and written to ``events.raw`` unchanged.
"""

from __future__ import annotations

import json
import re

_WHITESPACE = re.compile(r"[ \t\n\r]*")
# No object_pairs_hook: duplicate keys are judged per item later, not for the whole body.
_DECODER = json.JSONDecoder()


class BodyNotJSON(ValueError):
    """The body as a whole is not a JSON document."""


class TooManyItems(ValueError):
    """The body holds more events than one request may carry."""


def split_events_body(body: bytes, max_items: int) -> list[bytes]:
    """The bytes of each event in a body that is one JSON value or a JSON array of them."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BodyNotJSON(f"body is not UTF-8 (invalid byte at offset {exc.start})") from None
    start = _skip_whitespace(text, 0)
    try:
        if text.startswith("[", start):
            return _split_array(text, start, max_items)
        return [_single_value(text, start).encode()]
    except (BodyNotJSON, TooManyItems):
        raise
    except RecursionError:
        raise BodyNotJSON("body is not JSON: nested too deeply") from None
    except ValueError as exc:
        raise BodyNotJSON(f"body is not JSON: {exc}") from None


def _single_value(text: str, start: int) -> str:
    _, end = _DECODER.raw_decode(text, start)
    _expect_end(text, end)
    return text[start:end]


def _split_array(text: str, start: int, max_items: int) -> list[bytes]:
    items: list[bytes] = []
    pos = _skip_whitespace(text, start + 1)
    if text.startswith("]", pos):
        _expect_end(text, pos + 1)
        return items
    while True:
        _, end = _DECODER.raw_decode(text, pos)
        items.append(text[pos:end].encode())
        if len(items) > max_items:
            raise TooManyItems(f"body holds more than {max_items} events")
        pos = _skip_whitespace(text, end)
        if text.startswith("]", pos):
            _expect_end(text, pos + 1)
            return items
        if not text.startswith(",", pos):
            raise BodyNotJSON(f"body is not JSON: expected ',' or ']' at char {pos}")
        pos = _skip_whitespace(text, pos + 1)


def _expect_end(text: str, pos: int) -> None:
    end = _skip_whitespace(text, pos)
    if end != len(text):
        raise BodyNotJSON(f"body is not JSON: extra data at char {end}")


def _skip_whitespace(text: str, pos: int) -> int:
    match = _WHITESPACE.match(text, pos)
    return match.end() if match else pos
