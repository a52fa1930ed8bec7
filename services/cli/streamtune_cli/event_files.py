"""Event files as rows: JSONL (one object per line) or CSV (Event fields as columns). Pure: no Redis, no S3.

CSV columns are Event fields; ``readings.<sensor>`` columns hold numbers (an empty cell is a missing
reading, null); ``meta.<key>`` columns hold strings (an empty cell is left out); ``label`` is a class
name, an integer (``0``/``1`` for anomalies, a class index) or a JSON list of BIO tags.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import ValidationError
from streamtune_shared.schemas import Event, field_errors

FileFormat = Literal["jsonl", "csv"]
SUFFIXES: dict[str, FileFormat] = {".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv"}
READINGS_PREFIX = "readings."
META_PREFIX = "meta."
_INTEGER = re.compile(r"^-?[0-9]+$")


@dataclass(frozen=True)
class Row:
    """One record of a file: its line number, and either the document or why it could not be read."""

    line: int
    document: dict[str, Any] | None = None
    problem: str | None = None


def file_format(path: Path) -> FileFormat:
    """JSONL or CSV, by the file's suffix; ValueError for anything else."""
    found = SUFFIXES.get(path.suffix.lower())
    if found is None:
        raise ValueError(f"{path.name}: expected a .jsonl, .ndjson or .csv file")
    return found


def read_rows(path: Path) -> Iterator[Row]:
    """Every record of a JSONL or CSV file, in order, with its line number."""
    fmt = file_format(path)
    with path.open(encoding="utf-8", newline="" if fmt == "csv" else None) as handle:
        yield from (jsonl_rows(handle) if fmt == "jsonl" else csv_rows(handle))


def count_records(path: Path) -> int:
    """About how many records a file holds (non-blank lines, less a CSV header): a progress bar's total."""
    with path.open("rb") as handle:
        lines = sum(1 for line in handle if line.strip())
    return max(lines - 1, 0) if file_format(path) == "csv" else lines


def jsonl_rows(lines: Iterable[str]) -> Iterator[Row]:
    """One row per non-blank line; a line that is not a JSON object (or repeats a key) is a problem row."""
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            document = json.loads(line, object_pairs_hook=_unique_keys)
        except ValueError as exc:
            yield Row(number, problem=_json_problem(exc))
            continue
        if not isinstance(document, dict):
            yield Row(number, problem="not a JSON object")
            continue
        yield Row(number, document)


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # Ingestion rejects duplicate keys (which one wins differs between parsers): refuse them here too.
    document: dict[str, Any] = {}
    for key, value in pairs:
        if key in document:
            raise ValueError(f"duplicate key {key!r}")
        document[key] = value
    return document


def _json_problem(exc: ValueError) -> str:
    if isinstance(exc, json.JSONDecodeError):
        return f"not JSON ({exc.msg} at column {exc.colno})"
    return str(exc)


def csv_rows(handle: Iterable[str]) -> Iterator[Row]:
    """One row per CSV record after the header, its cells turned into an Event-shaped document."""
    reader = csv.DictReader(handle)
    for record in reader:
        try:
            yield Row(reader.line_num, csv_document(record))
        except ValueError as exc:
            yield Row(reader.line_num, problem=str(exc))


def csv_document(record: dict[str | None, Any]) -> dict[str, Any]:
    """An Event-shaped document from one CSV record; ValueError names the column at fault."""
    if None in record:
        raise ValueError("more cells than header columns")
    document: dict[str, Any] = {}
    readings: dict[str, float | None] = {}
    meta: dict[str, str] = {}
    for column, cell in record.items():
        column, cell = str(column), cell or ""
        if column.startswith(READINGS_PREFIX):
            readings[column.removeprefix(READINGS_PREFIX)] = _reading(column, cell)
        elif column.startswith(META_PREFIX):
            if cell:
                meta[column.removeprefix(META_PREFIX)] = cell
        elif cell:
            document[column] = _cell(column, cell)
    if readings:
        document["readings"] = readings
    if meta:
        document["meta"] = meta
    return document


def _reading(column: str, cell: str) -> float | None:
    if not cell.strip():
        return None
    try:
        return float(cell)
    except ValueError:
        raise ValueError(f"{column}: must be a number or empty") from None


def _cell(column: str, cell: str) -> Any:
    if column == "schema_version" and _INTEGER.match(cell):
        return int(cell)
    if column == "label":
        return parse_label(cell)
    return cell


def parse_label(cell: str) -> Any:
    """A CSV label cell: a JSON list of BIO tags, an integer, or a class name."""
    if cell.lstrip().startswith("["):
        try:
            return json.loads(cell)
        except ValueError:
            raise ValueError("label: a list of tags must be a JSON list, e.g. [\"O\", \"B-Disease\"]") from None
    return int(cell) if _INTEGER.match(cell) else cell


def validate_event(document: dict[str, Any]) -> Event:
    """The document as an Event; ValueError lists each invalid field (never its value)."""
    try:
        return Event.model_validate(document)
    except ValidationError as exc:
        raise ValueError("; ".join(f"{e.field}: {e.message}" for e in field_errors(exc, 5, model=Event))) from None
