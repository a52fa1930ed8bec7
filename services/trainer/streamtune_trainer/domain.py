"""The trainer's pure logic: which rows fit a task, a deterministic split, the label set, a request's id and
the status of a request the schema refused.

No Redis, no object store, no torch: rows are the dicts ``streamtune_shared.datasets.read_dataset`` returns.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import ValidationError
from streamtune_shared.schemas import BIO_TAG, FieldError, TrainStatus

TOKEN_CLASSIFICATION = "token-classification"
SEQUENCE_CLASSIFICATION = "sequence-classification"
OUTSIDE = "O"
MIN_TRAIN_ROWS = 10

Split = Literal["train", "dev", "test"]


class TrainingRejected(Exception):
    """A request that cannot train for a data or configuration reason; retrying would not help.

    The message is shown to the user on ``train.status``: it never holds row contents.
    """


@dataclass(frozen=True, slots=True)
class Example:
    """One labeled row, reduced to what training needs."""

    event_id: str
    text: str
    label: str | tuple[str, ...]

    @property
    def words(self) -> list[str]:
        """The whitespace tokens of the text (the units BIO tags label)."""
        return self.text.split()


@dataclass(frozen=True, slots=True)
class LabelMap:
    """The label set of a run, and its two directions."""

    task: str
    labels: tuple[str, ...]

    @property
    def id2label(self) -> dict[int, str]:
        """Index -> label name."""
        return dict(enumerate(self.labels))

    @property
    def label2id(self) -> dict[str, int]:
        """Label name -> index."""
        return {label: i for i, label in enumerate(self.labels)}

    def to_json(self) -> dict[str, Any]:
        """The ``labels.json`` document of a model version."""
        return {"task": self.task, "id2label": {str(i): n for i, n in self.id2label.items()},
                "label2id": self.label2id}


@dataclass(frozen=True, slots=True)
class DatasetSplits:
    """Train, dev and test examples plus the label set built from all of them."""

    train: tuple[Example, ...]
    dev: tuple[Example, ...]
    test: tuple[Example, ...]
    label_map: LabelMap
    skipped: int

    def sizes(self) -> dict[str, int]:
        """Row counts per split (the card's lineage)."""
        return {"train": len(self.train), "dev": len(self.dev), "test": len(self.test)}


def example_for_task(row: dict[str, Any], task: str) -> Example | None:
    """The row as an example of ``task``, or None when its text or label does not fit the task."""
    text, label = row.get("text"), row.get("label")
    if not isinstance(text, str) or not text.strip():
        return None
    if task == TOKEN_CLASSIFICATION:
        if not isinstance(label, list) or len(label) != len(text.split()):
            return None
        if not all(isinstance(tag, str) and BIO_TAG.match(tag) for tag in label):
            return None
        return Example(str(row["event_id"]), text, tuple(label))
    if isinstance(label, bool) or not isinstance(label, str | int) or label == "":
        return None
    return Example(str(row["event_id"]), text, str(label))


def stable_request_id(entry_id: str) -> str:
    """A request id for a request that names none: the same on every delivery of its stream entry."""
    return hashlib.sha256(f"train.requests/{entry_id}".encode()).hexdigest()[:32]


def refusal_status(payload: bytes, entry_id: str, errors: Sequence[FieldError]) -> TrainStatus | None:
    """The failed train.status of a request the schema refused, when its payload names a valid model (and id):
    the requester reads why there, as for a run the trainer rejects. None when it names no valid model."""
    try:
        document = json.loads(payload)
    except ValueError:
        return None
    if not isinstance(document, dict):
        return None
    reasons = "; ".join(f"{error.field}: {error.message}" for error in errors)
    try:
        return TrainStatus(request_id=document.get("request_id") or stable_request_id(entry_id),
                           model_name=document.get("model_name"), state="failed",
                           message=f"invalid train request: {reasons}")
    except ValidationError:
        return None


def split_of(event_id: str, dev_fraction: float, test_fraction: float) -> Split:
    """The split of one row, from a hash of its event id alone (stable when rows are added or reordered)."""
    digest = hashlib.sha256(event_id.encode()).digest()
    bucket = int.from_bytes(digest[:8], "big") / 2**64
    if bucket < test_fraction:
        return "test"
    if bucket < test_fraction + dev_fraction:
        return "dev"
    return "train"


def build_label_map(task: str, examples: Iterable[Example]) -> LabelMap:
    """NER: the BIO tags seen, sorted, with "O" first; classification: the class names seen, sorted."""
    seen: set[str] = set()
    for example in examples:
        if isinstance(example.label, tuple):
            seen.update(example.label)
        else:
            seen.add(example.label)
    if task == TOKEN_CLASSIFICATION:
        return LabelMap(task, (OUTSIDE, *sorted(seen - {OUTSIDE})))
    return LabelMap(task, tuple(sorted(seen)))


def split_dataset(rows: Sequence[dict[str, Any]], task: str, dev_fraction: float,
                  test_fraction: float) -> DatasetSplits:
    """Keep the rows that fit the task, split them by event id, build the label set.

    Raises TrainingRejected when there is too little data to train and evaluate.
    """
    parts: dict[Split, list[Example]] = {"train": [], "dev": [], "test": []}
    skipped = 0
    for row in sorted(rows, key=lambda r: str(r["event_id"])):
        example = example_for_task(row, task)
        if example is None:
            skipped += 1
            continue
        parts[split_of(example.event_id, dev_fraction, test_fraction)].append(example)
    check_split_sizes(len(rows), skipped, {name: len(items) for name, items in parts.items()})
    label_map = build_label_map(task, [*parts["train"], *parts["dev"], *parts["test"]])
    if len(label_map.labels) < 2:
        raise TrainingRejected(f"the dataset has a single label ({label_map.labels[0]!r}); at least 2 are needed")
    return DatasetSplits(tuple(parts["train"]), tuple(parts["dev"]), tuple(parts["test"]), label_map, skipped)


def check_split_sizes(total: int, skipped: int, sizes: dict[str, int]) -> None:
    """Refuse to train on fewer than MIN_TRAIN_ROWS train rows, or with no dev or no test rows."""
    usable = total - skipped
    if sizes["train"] < MIN_TRAIN_ROWS:
        raise TrainingRejected(
            f"too little data: {sizes['train']} train rows (need {MIN_TRAIN_ROWS}); "
            f"{usable} of {total} rows fit the task"
        )
    for name in ("dev", "test"):
        if sizes[name] == 0:
            raise TrainingRejected(f"the {name} split is empty ({usable} rows fit the task); add data or raise the fraction")
