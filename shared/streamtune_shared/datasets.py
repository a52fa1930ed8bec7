"""The dataset shard contract between the anonymizer (writer) and the trainer (reader).

Layout in the bucket, one shard = one Parquet file plus its JSON manifest:

    datasets/<dataset>/shards/<shard_id>.parquet
    datasets/<dataset>/manifests/<shard_id>.json      (ShardManifest)

Columns: event_id, device_id (pseudonym), ts (UTC), text (redacted), label (JSON), readings (JSON),
meta (JSON). A crash between storing a shard and acknowledging its entries can store the same
event twice, so readers deduplicate by event_id (``read_dataset`` does).
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from .schemas import CleanEvent, ShardManifest, field_errors
from .storage import ObjectStore, sha256_hex

if TYPE_CHECKING:
    import pyarrow as pa

DATASETS_ROOT = "datasets/"
PARQUET_TYPE = "application/vnd.apache.parquet"
JSON_TYPE = "application/json"
IMPORT_SHARD_ROWS = 5_000
# An import's source names its writer ("import:<source>") and its shard ids.
IMPORT_SOURCE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,40}$")

COLUMNS = {
    "event_id": "string",
    "device_id": "string",
    "ts": "timestamp[us, tz=UTC]",
    "text": "string",
    "label": "string (JSON)",
    "readings": "string (JSON)",
    "meta": "string (JSON)",
}


def shard_key(dataset: str, shard_id: str) -> str:
    """Where a shard's Parquet file lives."""
    return f"{DATASETS_ROOT}{dataset}/shards/{shard_id}.parquet"


def manifests_prefix(dataset: str) -> str:
    """The prefix holding every manifest of a dataset."""
    return f"{DATASETS_ROOT}{dataset}/manifests/"


def manifest_key(dataset: str, shard_id: str) -> str:
    """Where a shard's manifest lives."""
    return f"{manifests_prefix(dataset)}{shard_id}.json"


def new_shard_id(first_entry_id: str, writer: str, at: datetime | None = None) -> str:
    """Sortable by time, unique per writer: ``20261128T120000Z-<entry id>-<writer>``, stamped ``at`` (default: now)."""
    stamp = (at or datetime.now(UTC)).astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}-{first_entry_id}-{writer}".replace("/", "_")


def events_to_parquet(events: Sequence[CleanEvent]) -> bytes:
    """Parquet bytes of clean events, in the shard columns."""
    import pyarrow as pa  # noqa: PLC0415 - only the writer and the reader need pyarrow
    import pyarrow.parquet as pq  # noqa: PLC0415

    table = pa.table({
        "event_id": pa.array([e.event_id for e in events], pa.string()),
        "device_id": pa.array([e.device_id for e in events], pa.string()),
        "ts": pa.array([e.ts.astimezone(UTC) for e in events], pa.timestamp("us", tz="UTC")),
        "text": pa.array([e.text for e in events], pa.string()),
        "label": pa.array([json.dumps(e.label) for e in events], pa.string()),
        "readings": pa.array([json.dumps(e.readings) for e in events], pa.string()),
        "meta": pa.array([json.dumps(e.meta) for e in events], pa.string()),
    })
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="zstd")
    return sink.getvalue()


def build_manifest(dataset: str, shard_id: str, events: Sequence[CleanEvent], data: bytes,
                   writer: str) -> ShardManifest:
    """The manifest of a shard: rows, sha256, size, time range, columns."""
    return ShardManifest(
        dataset=dataset,
        shard_key=shard_key(dataset, shard_id),
        rows=len(events),
        size_bytes=len(data),
        sha256=sha256_hex(data),
        min_ts=min(e.ts for e in events),
        max_ts=max(e.ts for e in events),
        columns=COLUMNS,
        writer=writer,
    )


def read_table(data: bytes) -> pa.Table:
    """A Parquet shard as an Arrow table."""
    import pyarrow.parquet as pq  # noqa: PLC0415

    return pq.read_table(io.BytesIO(data))


def read_dataset(store: ObjectStore, dataset: str) -> tuple[list[dict[str, Any]], list[ShardManifest]]:
    """Every row of a dataset (deduplicated by event_id, first shard wins) and the manifests read.

    Each shard is checked against its manifest's sha256; a mismatch raises ValueError.
    """
    rows: dict[str, dict[str, Any]] = {}
    manifests = []
    for key in store.list_keys(manifests_prefix(dataset)):
        manifest = ShardManifest.model_validate_json(store.get_bytes(key))
        data = store.get_bytes(manifest.shard_key)
        if sha256_hex(data) != manifest.sha256:
            raise ValueError(f"shard {manifest.shard_key} does not match its manifest sha256")
        manifests.append(manifest)
        for row in read_table(data).to_pylist():
            row["label"] = json.loads(row["label"])
            row["readings"] = json.loads(row["readings"])
            row["meta"] = json.loads(row["meta"])
            rows.setdefault(row["event_id"], row)
    return list(rows.values()), manifests


def imported_event(row: Mapping[str, Any], index: int, dataset: str, source: str, now: datetime) -> CleanEvent:
    """One imported row as a clean event of ``dataset``; missing ids and times are filled in.

    Raises ValueError naming the row and its invalid fields (never their values).
    """
    document = {"schema_version": 1, "event_id": f"{source}-{index}", "device_id": f"import-{source}", "ts": now,
                **row, "dataset": dataset, "ingested_at": now, "anonymized_at": now,
                "notes": (f"imported from {source}",)}
    try:
        return CleanEvent.model_validate(document)
    except ValidationError as exc:
        reasons = "; ".join(f"{e.field}: {e.message}" for e in field_errors(exc, 5, model=CleanEvent))
        raise ValueError(f"row {index}: {reasons}") from exc


def import_rows(store: ObjectStore, dataset: str, rows: Iterable[Mapping[str, Any]], source: str, *,
                shard_rows: int = IMPORT_SHARD_ROWS, now: datetime | None = None) -> list[ShardManifest]:
    """Store labeled rows as shards of ``dataset`` in the anonymizer's format; returns their manifests.

    This bypasses ingestion and the anonymizer on purpose: it is for trusted data that holds no real PII
    (the synthetic PII set, a public corpus), never for producer events. Rows are Event-shaped dicts (text,
    label, optional event_id, device_id, ts, meta); all are validated before anything is stored. Manifests
    name the writer ``import:<source>``; each shard is stored before its manifest, so readers never see a
    manifest without its shard, and ``read_dataset`` deduplicates a re-import by event_id.
    """
    if not IMPORT_SOURCE.match(source):
        raise ValueError("source must be lower-case letters, digits, '.', '_' or '-' (at most 41)")
    if shard_rows < 1:
        raise ValueError("shard_rows must be at least 1")
    now = now or datetime.now(UTC)
    events = [imported_event(row, i, dataset, source, now) for i, row in enumerate(rows)]
    manifests = []
    for part, start in enumerate(range(0, len(events), shard_rows)):
        chunk = events[start:start + shard_rows]
        data = events_to_parquet(chunk)
        # Stamped with the import's time, not the clock's: the same rows imported at the same ``now`` get the
        # same key however long the import takes; the content hash keeps two imports within one second apart.
        shard_id = new_shard_id(f"{part:05d}-{sha256_hex(data)[:12]}", f"import-{source}", now)
        manifest = build_manifest(dataset, shard_id, chunk, data, f"import:{source}")
        store.put_bytes(manifest.shard_key, data, PARQUET_TYPE)
        store.put_bytes(manifest_key(dataset, shard_id), manifest.model_dump_json(indent=2).encode(), JSON_TYPE)
        manifests.append(manifest)
    return manifests
