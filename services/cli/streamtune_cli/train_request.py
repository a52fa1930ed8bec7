"""A training request from a YAML file and flags, and what ``train.status`` says about its run. Pure."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError
from streamtune_shared.schemas import TrainRequest, TrainStatus, field_errors

FINAL_STATES = ("published", "failed")


def new_request_id() -> str:
    """A fresh request id; random from its first character, since versions are named by the first 8."""
    return uuid.uuid4().hex


def read_request_file(path: Path) -> dict[str, Any]:
    """The fields of a YAML (or JSON) request file; ValueError when it is not a mapping."""
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ValueError(f"{path.name} is not valid YAML ({type(exc).__name__})") from None
    if document is None:
        return {}
    if not isinstance(document, dict):
        raise ValueError(f"{path.name} must hold a mapping of TrainRequest fields")
    return document


def build_request(from_file: Mapping[str, Any], flags: Mapping[str, Any]) -> TrainRequest:
    """The request: the file's fields, then every flag given (None: not given); a request id when none is set."""
    document = {**from_file, **{name: value for name, value in flags.items() if value is not None}}
    if not document.get("request_id"):
        document["request_id"] = new_request_id()
    try:
        return TrainRequest.model_validate(document)
    except ValidationError as exc:
        reasons = "; ".join(f"{e.field}: {e.message}" for e in field_errors(exc, 8, root="request", model=TrainRequest))
        raise ValueError(f"invalid training request: {reasons}") from None


def epoch_row(status: TrainStatus) -> dict[str, Any]:
    """An ``epoch_end`` status as a row of the epoch table: train loss, dev metrics, throughput."""
    metrics = status.metrics
    dev = metrics.get("dev") if isinstance(metrics.get("dev"), dict) else {}
    row: dict[str, Any] = {"epoch": status.epoch, "train_loss": metrics.get("train_loss")}
    for key in ("f1", "precision", "recall", "accuracy"):
        if key in dev:
            row[f"dev_{key}"] = dev[key]
    row["samples_per_s"] = metrics.get("samples_per_s")
    row["best_epoch"] = metrics.get("best_epoch")
    return row


@dataclass
class RunView:
    """What the follower knows about one run, updated status by status."""

    request_id: str
    state: str = "sent"
    epoch: int | None = None
    epochs: int | None = None
    step: int = 0
    total_steps: int | None = None
    epochs_done: list[dict[str, Any]] = field(default_factory=list)
    version: str | None = None
    message: str | None = None
    final_metrics: dict[str, Any] = field(default_factory=dict)

    @property
    def finished(self) -> bool:
        """Whether the run has published a version or failed."""
        return self.state in FINAL_STATES

    def apply(self, status: TrainStatus) -> bool:
        """Take one status in; False when it is about another request."""
        if status.request_id != self.request_id:
            return False
        self.state = status.state
        self.epoch, self.epochs = status.epoch or self.epoch, status.epochs or self.epochs
        self.step = status.step if status.step is not None else self.step
        self.total_steps = status.total_steps or self.total_steps
        self.message = status.message or self.message
        if status.state == "epoch_end":
            self.epochs_done = [row for row in self.epochs_done if row["epoch"] != status.epoch] + [epoch_row(status)]
        if status.state == "published":
            self.version, self.final_metrics = status.version, dict(status.metrics)
        return True
