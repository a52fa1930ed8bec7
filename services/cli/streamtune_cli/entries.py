"""Reading stream entries for people and scripts: decode the payload, filter by dataset or device. Pure."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from streamtune_shared import streams

_PAYLOAD = streams.PAYLOAD_FIELD.encode()


def payload_bytes(fields: Mapping[bytes, bytes]) -> bytes | None:
    """The entry's ``payload`` field, or None when it has none."""
    return fields.get(_PAYLOAD)


def entry_document(fields: Mapping[bytes, bytes]) -> Any:
    """The payload as JSON; an entry without valid JSON shows its fields as text instead."""
    raw = payload_bytes(fields)
    if raw is not None:
        try:
            return json.loads(raw)
        except ValueError:
            return {"payload (not JSON)": raw.decode("utf-8", errors="replace")}
    return {key.decode("utf-8", errors="replace"): value.decode("utf-8", errors="replace")
            for key, value in fields.items()}


def entry_line(fields: Mapping[bytes, bytes]) -> str:
    """One line for scripts: the payload exactly as stored (or the document of an entry without one)."""
    raw = payload_bytes(fields)
    if raw is not None:
        return raw.decode("utf-8", errors="replace").replace("\n", " ")
    return json.dumps(entry_document(fields), ensure_ascii=False)


def matches(document: Any, *, dataset: str | None = None, device: str | None = None) -> bool:
    """Whether a decoded entry is about the dataset and the device asked for (None: any)."""
    if dataset is None and device is None:
        return True
    if not isinstance(document, dict):
        return False
    if dataset is not None and document.get("dataset") != dataset:
        return False
    return device is None or document.get("device_id") == device


def text_id(entry_id: bytes | str) -> str:
    """A stream entry id as text."""
    return entry_id.decode() if isinstance(entry_id, bytes) else entry_id
