"""Dev and test metrics: seqeval entity scores for NER, accuracy and macro-F1 for classification."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from seqeval.metrics import classification_report, f1_score, precision_score, recall_score

from .domain import OUTSIDE, TOKEN_CLASSIFICATION, Example, LabelMap
from .encoding import IGNORE_INDEX, EncodedExample, iterate_batches


def ner_metrics(y_true: Sequence[Sequence[str]], y_pred: Sequence[Sequence[str]]) -> dict[str, Any]:
    """Entity-level micro precision/recall/F1 (seqeval) and a per-entity report."""
    true, pred = [list(s) for s in y_true], [list(s) for s in y_pred]
    report = classification_report(true, pred, output_dict=True, zero_division=0)
    per_entity = {name: _plain(scores) for name, scores in report.items() if not name.endswith(" avg")}
    return {
        "precision": float(precision_score(true, pred, zero_division=0)),
        "recall": float(recall_score(true, pred, zero_division=0)),
        "f1": float(f1_score(true, pred, zero_division=0)),
        "report": per_entity,
    }


def classification_metrics(y_true: Sequence[str], y_pred: Sequence[str], labels: Sequence[str]) -> dict[str, Any]:
    """Accuracy, macro-F1 over the label set (also as ``f1``) and a per-class report."""
    report = {}
    for label in labels:
        tp = sum(t == label and p == label for t, p in zip(y_true, y_pred, strict=True))
        predicted = sum(p == label for p in y_pred)
        support = sum(t == label for t in y_true)
        precision = tp / predicted if predicted else 0.0
        recall = tp / support if support else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        report[label] = {"precision": precision, "recall": recall, "f1-score": f1, "support": support}
    macro_f1 = sum(r["f1-score"] for r in report.values()) / len(report) if report else 0.0
    correct = sum(t == p for t, p in zip(y_true, y_pred, strict=True))
    accuracy = correct / len(y_true) if y_true else 0.0
    return {"accuracy": accuracy, "macro_f1": macro_f1, "f1": macro_f1, "report": report}


def _plain(scores: dict[str, Any]) -> dict[str, float | int]:
    return {key: (int(value) if key == "support" else float(value)) for key, value in scores.items()}


def word_tags(token_predictions: Sequence[int], encoded: EncodedExample, id2label: dict[int, str]) -> list[str]:
    """Word-level tags from predictions at the labeled tokens; words cut by truncation count as "O"."""
    tags = [OUTSIDE] * encoded.word_count
    for word, label_id in zip(encoded.word_indices, token_predictions, strict=True):
        tags[word] = id2label[label_id]
    return tags


@torch.no_grad()
def predict(model: torch.nn.Module, encoded: Sequence[EncodedExample], batch_size: int, pad_token_id: int,
            token_labels: bool, device: torch.device) -> tuple[list[list[int]], float]:
    """Predicted label ids per example (at labeled tokens for NER) and the mean loss."""
    model.eval()
    predictions: list[list[int]] = []
    loss_sum, batches = 0.0, 0
    for batch in iterate_batches(encoded, batch_size, pad_token_id, token_labels):
        batch = {k: v.to(device) for k, v in batch.items()}
        with autocast(device):
            output = model(**batch)
        loss_sum += float(output.loss)
        batches += 1
        best = output.logits.argmax(dim=-1).cpu()
        labels = batch["labels"].cpu()
        if token_labels:
            predictions.extend(row[mask].tolist() for row, mask in zip(best, labels != IGNORE_INDEX, strict=True))
        else:
            predictions.extend([int(p)] for p in best)
    return predictions, loss_sum / max(batches, 1)


def evaluate(model: torch.nn.Module, examples: Sequence[Example], encoded: Sequence[EncodedExample],
             label_map: LabelMap, batch_size: int, pad_token_id: int, device: torch.device) -> dict[str, Any]:
    """The metrics of the model on a split (dev or test), with its mean loss."""
    token_labels = label_map.task == TOKEN_CLASSIFICATION
    predictions, loss = predict(model, encoded, batch_size, pad_token_id, token_labels, device)
    id2label = label_map.id2label
    if token_labels:
        y_pred = [word_tags(p, e, id2label) for p, e in zip(predictions, encoded, strict=True)]
        metrics = ner_metrics([list(e.label) for e in examples], y_pred)
    else:
        y_pred = [id2label[p[0]] for p in predictions]
        metrics = classification_metrics([str(e.label) for e in examples], y_pred, label_map.labels)
    return {**metrics, "loss": loss, "rows": len(examples)}


def autocast(device: torch.device, enabled: bool = True) -> torch.autocast:
    """bf16 autocast on CUDA (unless disabled, e.g. to measure fp32); a no-op context on CPU."""
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=enabled and device.type == "cuda")
