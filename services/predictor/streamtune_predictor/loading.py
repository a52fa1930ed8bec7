"""Loading one model version from the object store: download, verify every sha256, load safetensors only."""

from __future__ import annotations

import tempfile
from pathlib import Path

import transformers
from streamtune_shared.storage import ObjectNotFound, ObjectStore
from transformers import AutoModelForSequenceClassification, AutoModelForTokenClassification, AutoTokenizer

from .inference import TextModel
from .registry import ServingModel
from .versions import CARD, LABELS, VersionCard, VersionRejected, read_card, read_labels, verify_file, version_prefix

_MODEL_CLASSES = {
    "token-classification": AutoModelForTokenClassification,
    "sequence-classification": AutoModelForSequenceClassification,
}


def fetch_card(store: ObjectStore, model_name: str, version: str) -> VersionCard:
    """The verified card of a version; a missing or untrustworthy card is a ``VersionRejected``."""
    try:
        raw = store.get_bytes(version_prefix(model_name, version) + CARD)
    except ObjectNotFound:
        raise VersionRejected("no card.json") from None
    return read_card(raw, model_name, version)


def download_verified(store: ObjectStore, card: VersionCard, folder: Path) -> None:
    """Write every file the card lists into ``folder``, refusing the version at the first bad checksum."""
    prefix = version_prefix(card.model_name, card.version)
    for name, digest in card.files.items():
        try:
            data = store.get_bytes(prefix + name)
        except ObjectNotFound:
            raise VersionRejected(f"{name} listed in the card is missing") from None
        verify_file(name, data, digest)
        target = folder / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)


def load_version(store: ObjectStore, model_name: str, version: str, *, max_length: int,
                 batch_size: int) -> ServingModel:
    """Download, verify and load a version; blocking. ``VersionRejected`` when it must not serve.

    Other exceptions (object store unreachable) are transient: the caller tries again later.
    """
    card = fetch_card(store, model_name, version)
    with tempfile.TemporaryDirectory(prefix="streamtune-model-") as tmp:
        folder = Path(tmp)
        download_verified(store, card, folder)
        id2label = read_labels((folder / LABELS).read_bytes(), card.task)
        model, tokenizer = _from_pretrained(folder, card)
    if model.config.num_labels != len(id2label):
        raise VersionRejected(f"labels.json has {len(id2label)} labels, the model {model.config.num_labels}")
    text_model = TextModel(model, tokenizer, task=card.task, id2label=id2label, max_length=max_length,
                           batch_size=batch_size)
    return ServingModel(name=model_name, version=version, task=card.task, predict=text_model.predict)


def _from_pretrained(folder: Path, card: VersionCard):
    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    try:
        model = _MODEL_CLASSES[card.task].from_pretrained(folder, use_safetensors=True, local_files_only=True)
        tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    except (OSError, ValueError, KeyError, TypeError, RuntimeError) as exc:
        # The files are the ones the card vouches for, so this version itself is broken.
        raise VersionRejected(f"transformers cannot load it: {type(exc).__name__}") from exc
    return model, tokenizer
