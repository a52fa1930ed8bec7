"""Loading one model version from the object store: download, verify every sha256, load safetensors only."""

from __future__ import annotations

import tempfile
from pathlib import Path

import transformers
from streamtune_shared.model_card import LABELS_FILE, ModelCard, VersionRejected, read_labels
from streamtune_shared.model_registry import RegistryLayout, download_verified, fetch_card
from streamtune_shared.storage import ObjectStore
from transformers import AutoModelForSequenceClassification, AutoModelForTokenClassification, AutoTokenizer

from .inference import TextModel
from .registry import ServingModel

_MODEL_CLASSES = {
    "token-classification": AutoModelForTokenClassification,
    "sequence-classification": AutoModelForSequenceClassification,
}


def load_version(store: ObjectStore, layout: RegistryLayout, model_name: str, version: str, *, max_length: int,
                 batch_size: int) -> ServingModel:
    """Download, verify and load a version; blocking. ``VersionRejected`` when it must not serve.

    Other exceptions (object store unreachable) are transient: the caller tries again later.
    """
    card = fetch_card(store, layout, model_name, version)
    with tempfile.TemporaryDirectory(prefix="streamtune-model-") as tmp:
        folder = Path(tmp)
        download_verified(store, layout, card, folder)
        id2label = read_labels((folder / LABELS_FILE).read_bytes(), card.task)
        model, tokenizer = _from_pretrained(folder, card)
    if model.config.num_labels != len(id2label):
        raise VersionRejected(f"labels.json has {len(id2label)} labels, the model {model.config.num_labels}")
    text_model = TextModel(model, tokenizer, task=card.task, id2label=id2label, max_length=max_length,
                           batch_size=batch_size)
    return ServingModel(name=model_name, version=version, task=card.task, predict=text_model.predict)


def _from_pretrained(folder: Path, card: ModelCard):
    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    try:
        model = _MODEL_CLASSES[card.task].from_pretrained(folder, use_safetensors=True, local_files_only=True)
        tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    except (OSError, ValueError, KeyError, TypeError, RuntimeError) as exc:
        # The files are the ones the card vouches for, so this version itself is broken.
        raise VersionRejected(f"transformers cannot load it: {type(exc).__name__}") from exc
    return model, tokenizer
