"""Loading one model version from the object store: download, verify every sha256, load safetensors only.

An adapter version (LoRA, prompt tuning) loads on its base, which the card names and pins by sha256
(``streamtune_shared.hf_loading``); LoRA is merged into the base weights, so it serves as fast as a full model.
A sensor-anomaly version is the shared ``AnomalyNet`` (config.json + model.safetensors) and its card's threshold.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from streamtune_shared.batching import DEFAULT_TOKENS_PER_FORWARD
from streamtune_shared.anomaly_net import load_network
from streamtune_shared.hf_loading import load_verified_version
from streamtune_shared.model_card import CONFIG_FILE, LABELS_FILE, WEIGHTS_FILE, ModelCard, VersionRejected, read_labels
from streamtune_shared.model_registry import RegistryLayout, download_verified, fetch_card
from streamtune_shared.storage import ObjectStore

from .anomaly import AnomalyModel
from .inference import TextModel
from .registry import ServingModel


def load_version(store: ObjectStore, layout: RegistryLayout, model_name: str, version: str, *, max_length: int,
                 batch_size: int, tokens_per_forward: int | None = DEFAULT_TOKENS_PER_FORWARD) -> ServingModel:
    """Download, verify and load a version; blocking. ``VersionRejected`` when it must not serve.

    Other exceptions (object store unreachable) are transient: the caller tries again later.
    """
    card = fetch_card(store, layout, model_name, version)
    if card.task == "sensor-anomaly":
        return load_anomaly_version(store, layout, card)
    with tempfile.TemporaryDirectory(prefix="streamtune-model-") as tmp:
        model, tokenizer = load_verified_version(store, layout, card, Path(tmp))
        id2label = read_labels((Path(tmp) / "version" / LABELS_FILE).read_bytes(), card.task)
    if model.config.num_labels != len(id2label):
        raise VersionRejected(f"labels.json has {len(id2label)} labels, the model {model.config.num_labels}")
    text_model = TextModel(model, tokenizer, task=card.task, id2label=id2label, max_length=max_length,
                           batch_size=batch_size, tokens_per_forward=tokens_per_forward)
    return ServingModel(name=model_name, version=version, task=card.task, predict=text_model.predict)


def load_anomaly_version(store: ObjectStore, layout: RegistryLayout, card: ModelCard) -> ServingModel:
    """A sensor-anomaly version: verified config and safetensors weights, and the card's threshold."""
    if card.anomaly is None:
        raise VersionRejected("a sensor-anomaly card needs its anomaly block (the threshold)")
    with tempfile.TemporaryDirectory(prefix="streamtune-model-") as tmp:
        folder = Path(tmp)
        download_verified(store, layout, card, folder)
        read_labels((folder / LABELS_FILE).read_bytes(), card.task)
        net = load_network((folder / CONFIG_FILE).read_bytes(), (folder / WEIGHTS_FILE).read_bytes())
    model = AnomalyModel(net, card.anomaly.threshold)
    return ServingModel(name=card.model_name, version=card.version, task=card.task, predict=_no_text,
                        anomaly=model)


def _no_text(texts: object) -> list:
    raise ValueError("a sensor-anomaly model predicts from device readings, not text")
