"""The training report of a version: per-epoch curves (a PNG), the classification report, the hyper-parameters.

Stored beside the version's other files (``report.json``, ``report.png``, both in the card's checksums)::

    card, files = attach_report(card, files)          # before write_version
    raw = read_report_file(store, layout, name, version, REPORT_FILE)   # what GET /models/{name}/{version}/report serves

Built from the card alone, so every version gets the same report whether it trained, resumed or searched.
matplotlib is imported inside ``render_curves`` (the Agg canvas, no pyplot: safe in the training thread).
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping
from typing import Any

from pydantic import TypeAdapter, ValidationError
from streamtune_shared.model_card import ModelCard, VersionRejected, metric_summary
from streamtune_shared.model_registry import RegistryLayout, fetch_card, file_checksums, verify_file
from streamtune_shared.schemas import ModelName
from streamtune_shared.storage import ObjectNotFound, ObjectStore

REPORT_FILE = "report.json"
REPORT_PNG = "report.png"
REPORT_FILES = (REPORT_FILE, REPORT_PNG)
REPORT_FORMAT = 1
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_MODEL_NAME = TypeAdapter(ModelName)
# The per-epoch dev metrics drawn when present (NER and classification share f1; anomaly adds the false-alarm rate).
CURVE_METRICS = ("f1", "precision", "recall", "accuracy", "far")
REGULARIZERS = ("augmentation", "adversarial", "dp", "weight_decay", "hidden_dropout", "attention_dropout",
                "classifier_dropout", "max_grad_norm", "early_stopping_patience")


def epoch_rows(card: ModelCard) -> list[dict[str, Any]]:
    """One row per epoch: train loss (and adversarial loss), dev loss and the dev headline metrics."""
    rows = []
    for record in card.metrics.dev_by_epoch:
        dev = record.get("dev", {})
        row = {"epoch": record.get("epoch"), "train_loss": record.get("train_loss")}
        for key in ("adversarial_loss", "train_samples", "samples_per_s"):
            if key in record:
                row[key] = record[key]
        row.update({f"dev_{name}": float(value) for name, value in dev.items()
                    if name == "loss" or name in CURVE_METRICS})
        rows.append(row)
    return rows


def search_trials(card: ModelCard) -> list[dict[str, Any]] | None:
    """The card's hyper-parameter search trials as plain rows (number, params, value, state); None unsearched."""
    if card.search is None or not card.search.trials:
        return None
    return [trial.model_dump(mode="json") for trial in card.search.trials]


def build_report(card: ModelCard) -> dict[str, Any]:
    """The report document of a version (JSON-ready): curves' data, classification reports, hyper-parameters."""
    hyperparameters = dict(card.hyperparameters)
    report: dict[str, Any] = {
        "report_format": REPORT_FORMAT, "model_name": card.model_name, "version": card.version, "task": card.task,
        "dataset": card.dataset, "base_model": card.base_model, "created_at": card.created_at.isoformat(),
        "best_epoch": card.metrics.best_epoch, "epochs": epoch_rows(card),
        "dev": metric_summary(card.metrics.dev), "test": metric_summary(card.metrics.test),
        "classification_report": {"dev": card.metrics.dev.get("report", {}), "test": card.metrics.test.get("report", {})},
        "hyperparameters": hyperparameters,
        "regularization": {name: hyperparameters.get(name) for name in REGULARIZERS if name in hyperparameters},
        "training": card.training.model_dump(mode="json"),
    }
    if card.privacy is not None:
        report["privacy"] = card.privacy.model_dump(mode="json")
    if card.search is not None and (trials := search_trials(card)) is not None:
        report["search"] = card.search.model_dump(mode="json", exclude={"trials"})
        report["trials"] = trials
    return report


def render_curves(report: Mapping[str, Any]) -> bytes:
    """A PNG of the losses (train, adversarial, dev) and the dev metrics per epoch."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    rows = report["epochs"]
    epochs = [row["epoch"] for row in rows]
    figure = Figure(figsize=(10, 4), dpi=100)
    FigureCanvasAgg(figure)
    losses, metrics = figure.subplots(1, 2)
    for key, label in (("train_loss", "train loss"), ("adversarial_loss", "adversarial loss"), ("dev_loss", "dev loss")):
        _plot(losses, epochs, rows, key, label)
    for name in CURVE_METRICS:
        _plot(metrics, epochs, rows, f"dev_{name}", f"dev {name}")
    best = report.get("best_epoch")
    if best:
        metrics.axvline(best, color="grey", linestyle=":", label=f"best epoch {best}")
    for axes, title in ((losses, "loss"), (metrics, "dev metrics")):
        axes.set_title(title)
        axes.set_xlabel("epoch")
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        axes.grid(alpha=0.3)
        if axes.get_legend_handles_labels()[0]:
            axes.legend(fontsize="small")
    figure.suptitle(f"{report['model_name']} {report['version']}", fontsize="medium")
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def _plot(axes: Any, epochs: list[Any], rows: list[dict[str, Any]], key: str, label: str) -> None:
    points = [(epoch, row[key]) for epoch, row in zip(epochs, rows, strict=True) if row.get(key) is not None]
    if points:
        axes.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=label)


def report_files(card: ModelCard) -> dict[str, bytes]:
    """``report.json`` and ``report.png`` of a version."""
    report = build_report(card)
    return {REPORT_FILE: json.dumps(report, indent=2, default=_scalar).encode(), REPORT_PNG: render_curves(report)}


def _scalar(value: Any) -> Any:
    """numpy scalars (an anomaly run's counts) as plain numbers."""
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def attach_report(card: ModelCard, files: Mapping[str, bytes]) -> tuple[ModelCard, dict[str, bytes]]:
    """The version's files with its report added, and its card listing their checksums too."""
    with_report = {**files, **report_files(card)}
    return card.model_copy(update={"files": file_checksums(with_report)}), with_report


def read_report_file(store: ObjectStore, layout: RegistryLayout, model_name: str, version: str,
                     name: str) -> bytes | None:
    """A committed version's report file, checked against its card's sha256; None when there is none.

    Raises VersionRejected when the stored file does not match the card (it was altered).
    """
    try:
        card = fetch_card(store, layout, _MODEL_NAME.validate_python(model_name), version)
    except (ValidationError, VersionRejected):
        return None
    digest = card.files.get(name)
    if digest is None:
        return None
    try:
        data = store.get_bytes(layout.version_prefix(model_name, version) + name)
    except ObjectNotFound:
        return None
    verify_file(name, data, digest)
    return data
