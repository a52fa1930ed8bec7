"""Buffering labeled clean events per dataset until a shard is due, and building the shard's files.

Pure: the buffer takes the time as an argument, and building a shard only computes bytes.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from itertools import islice

from streamtune_shared.datasets import build_manifest, events_to_parquet, manifest_key, shard_key
from streamtune_shared.schemas import CleanEvent, DatasetShardWritten, ShardManifest

from .generalization import DatasetGeneralization
from .kanonymity import KAnonymityRule, enforce_k_anonymity


@dataclass(frozen=True, slots=True)
class BufferedEvent:
    """A clean event waiting for its shard, with the stream entry to acknowledge once stored."""

    entry_id: str
    event: CleanEvent
    buffered_at: float


@dataclass
class ShardBuffer:
    """Labeled events per dataset, in arrival order, idempotent by entry id.

    A dataset is due when it holds ``max_rows`` events or its oldest event is ``max_age_s`` old.
    """

    max_rows: int
    max_age_s: float
    _datasets: dict[str, dict[str, BufferedEvent]] = field(default_factory=dict)

    def add(self, entry_id: str, event: CleanEvent, now: float) -> bool:
        """Buffer an event; False when this entry is already buffered (a reclaimed redelivery)."""
        rows = self._datasets.setdefault(event.dataset, {})
        if entry_id in rows:
            return False
        rows[entry_id] = BufferedEvent(entry_id, event, now)
        return True

    def holds(self, entry_id: str, dataset: str) -> bool:
        """Whether this entry is buffered for the dataset."""
        return entry_id in self._datasets.get(dataset, {})

    @property
    def total_rows(self) -> int:
        """Events buffered across all datasets."""
        return sum(len(rows) for rows in self._datasets.values())

    def datasets(self) -> list[str]:
        """Datasets holding at least one event."""
        return [name for name, rows in self._datasets.items() if rows]

    def full(self) -> list[str]:
        """Datasets holding a whole shard's worth of events."""
        return [name for name, rows in self._datasets.items() if len(rows) >= self.max_rows]

    def due(self, now: float) -> list[str]:
        """Datasets that are full or whose oldest event has waited ``max_age_s``."""
        return [name for name, rows in self._datasets.items()
                if rows and (len(rows) >= self.max_rows or now - _oldest(rows) >= self.max_age_s)]

    def next_shard(self, dataset: str) -> list[BufferedEvent]:
        """The oldest events of a dataset, at most ``max_rows``; they stay buffered until removed."""
        rows = self._datasets.get(dataset, {})
        return list(islice(rows.values(), self.max_rows))

    def remove(self, dataset: str, entry_ids: Iterable[str]) -> None:
        """Forget events once their shard is stored and their entries acknowledged."""
        rows = self._datasets.get(dataset, {})
        for entry_id in entry_ids:
            rows.pop(entry_id, None)
        if not rows:
            self._datasets.pop(dataset, None)


def _oldest(rows: dict[str, BufferedEvent]) -> float:
    return min(row.buffered_at for row in rows.values())


@dataclass(frozen=True)
class ShardFiles:
    """What one flush writes: the Parquet bytes, the manifest, and the announcement."""

    shard_key: str
    manifest_key: str
    parquet: bytes
    manifest: ShardManifest

    def manifest_json(self) -> bytes:
        """The manifest as stored beside the shard."""
        return self.manifest.model_dump_json(indent=2).encode()

    def announcement(self) -> DatasetShardWritten:
        """The ``datasets.shards`` message for this shard."""
        m = self.manifest
        return DatasetShardWritten(dataset=m.dataset, shard_key=self.shard_key, manifest_key=self.manifest_key,
                                   rows=m.rows, sha256=m.sha256, min_ts=m.min_ts, max_ts=m.max_ts)


def build_shard(dataset: str, shard_id: str, events: Sequence[CleanEvent], writer: str,
                k_anonymity: KAnonymityRule | None = None,
                generalization: DatasetGeneralization | None = None) -> ShardFiles:
    """The Parquet file and manifest of one shard (the shared dataset contract).

    With a k-anonymity rule, the rows are generalized further or suppressed first, and the manifest
    reports how; a shard whose rows were all suppressed is stored empty, so its entries are still acked.
    """
    manifest_events, report = events, None
    if k_anonymity is not None:
        anonymous = enforce_k_anonymity(events, k_anonymity, generalization)
        events, report = anonymous.events, anonymous.report
        # An empty shard keeps its input's time range (build_manifest needs one); rows is set below.
        manifest_events = events or manifest_events
    data = events_to_parquet(events)
    manifest = build_manifest(dataset, shard_id, manifest_events, data, writer)
    if report is not None:
        manifest = manifest.model_copy(update={"rows": len(events), "k_anonymity": report})
    return ShardFiles(
        shard_key=shard_key(dataset, shard_id),
        manifest_key=manifest_key(dataset, shard_id),
        parquet=data,
        manifest=manifest,
    )
