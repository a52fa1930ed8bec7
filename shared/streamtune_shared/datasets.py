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
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from .schemas import CleanEvent, ShardManifest
from .storage import ObjectStore, sha256_hex

if TYPE_CHECKING:
    import pyarrow as pa

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
    return f"datasets/{dataset}/shards/{shard_id}.parquet"


def manifest_key(dataset: str, shard_id: str) -> str:
    """Where a shard's manifest lives."""
    return f"datasets/{dataset}/manifests/{shard_id}.json"


def new_shard_id(first_entry_id: str, writer: str) -> str:
    """Sortable by time, unique per writer: ``20261128T120000Z-<entry id>-<writer>``."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
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
    for key in store.list_keys(f"datasets/{dataset}/manifests/"):
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
