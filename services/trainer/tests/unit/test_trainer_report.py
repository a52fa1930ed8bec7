"""The training report of a version: its JSON, its PNG, its place in the card's files, and the HTTP routes."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime

import httpx
import pytest
from PIL import Image
from streamtune_shared.adaptation import AdversarialOptions, AugmentationOptions
from streamtune_shared.model_card import CardSearch, CardTrial, VersionRejected
from streamtune_shared.model_registry import RegistryLayout, write_version
from streamtune_shared.schemas import TrainRequest
from streamtune_shared.storage import sha256_hex
from streamtune_shared.testing import InMemoryObjectStore
from streamtune_trainer.card import build_card, lineage
from streamtune_trainer.checkpoint import RunState
from streamtune_trainer.http_api import create_http_app
from streamtune_trainer.report import (
    PNG_SIGNATURE,
    REPORT_FILE,
    REPORT_PNG,
    attach_report,
    build_report,
    read_report_file,
    render_curves,
    search_trials,
)

REQUEST = TrainRequest(request_id="0123456789abcdef", model_name="ner", task="token-classification",
                       dataset="clinical-notes", epochs=2, augmentation=AugmentationOptions(copies=2),
                       adversarial=AdversarialOptions(method="pgd", epsilon=0.5))
DISEASE = {"precision": 0.5, "recall": 0.4, "f1-score": 0.44, "support": 10}
FILES = {"model.safetensors": b"weights", "config.json": b"{}", "labels.json": b'{"task": "x"}'}
LAYOUT = RegistryLayout()


def _card():
    dev1 = {"f1": 0.4, "precision": 0.5, "recall": 0.33, "loss": 0.9, "report": {"Disease": DISEASE}, "rows": 5}
    dev2 = {"f1": 0.3, "precision": 0.3, "recall": 0.3, "loss": 0.8, "report": {"Disease": DISEASE}, "rows": 5}
    state = RunState(seed=42, epoch=2, global_step=20, best_metric=0.4, best_epoch=1, epochs_without_improvement=1,
                     history=[{"epoch": 1, "train_loss": 1.2, "adversarial_loss": 1.4, "train_samples": 30,
                               "samples_per_s": 10.0, "dev": dev1},
                              {"epoch": 2, "train_loss": 0.7, "adversarial_loss": 0.9, "train_samples": 30,
                               "samples_per_s": 12.0, "dev": dev2}])
    return build_card(request=REQUEST, version_id="v1", state=state, test={"f1": 0.35, "report": {"Disease": DISEASE}},
                      samples_per_s=11.0, device="cpu", lineage_info=lineage([], {"train": 10, "dev": 5, "test": 5}),
                      files=FILES, created_at=datetime(2026, 11, 28, 12, 0, tzinfo=UTC))


def test_the_report_holds_the_curves_data_the_classification_report_and_the_hyperparameters():
    report = build_report(_card())
    assert [row["epoch"] for row in report["epochs"]] == [1, 2]
    assert report["epochs"][0] == {"epoch": 1, "train_loss": 1.2, "adversarial_loss": 1.4, "train_samples": 30,
                                   "samples_per_s": 10.0, "dev_f1": 0.4, "dev_precision": 0.5, "dev_recall": 0.33,
                                   "dev_loss": 0.9}
    assert report["best_epoch"] == 1 and report["dev"]["f1"] == 0.4 and report["test"] == {"f1": 0.35}
    assert report["classification_report"] == {"dev": {"Disease": DISEASE}, "test": {"Disease": DISEASE}}
    assert report["hyperparameters"]["epochs"] == 2
    assert report["regularization"]["augmentation"]["copies"] == 2
    assert report["regularization"]["adversarial"] == {"method": "pgd", "epsilon": 0.5, "steps": 3, "step_size": 0.3}
    assert "trials" not in report and "privacy" not in report
    json.dumps(report)  # JSON-ready as built


def test_a_searched_version_gets_its_trials_table():
    trials = [CardTrial(number=0, params={"learning_rate": 1e-4}, value=0.4, state="complete"),
              CardTrial(number=1, params={"learning_rate": 1e-2}, value=None, state="pruned")]
    card = _card().model_copy(update={"search": CardSearch(metric="dev_f1", direction="maximize", best_trial=0,
                                                           trials=trials)})
    report = build_report(card)
    assert report["search"] == {"metric": "dev_f1", "direction": "maximize", "best_trial": 0}
    assert report["trials"] == [{"number": 0, "params": {"learning_rate": 1e-4}, "value": 0.4, "state": "complete"},
                                {"number": 1, "params": {"learning_rate": 1e-2}, "value": None, "state": "pruned"}]
    assert search_trials(_card()) is None


def test_the_curves_are_a_valid_png():
    png = render_curves(build_report(_card()))
    assert png.startswith(PNG_SIGNATURE)
    image = Image.open(io.BytesIO(png))
    image.verify()
    assert image.format == "PNG" and image.size == (1000, 400)


def test_attached_reports_are_listed_in_the_card_with_their_sha256():
    card, files = attach_report(_card(), FILES)
    assert set(files) == {*FILES, REPORT_FILE, REPORT_PNG}
    assert card.files == {name: sha256_hex(data) for name, data in files.items()}
    assert json.loads(files[REPORT_FILE])["version"] == "v1"


def _published() -> InMemoryObjectStore:
    store = InMemoryObjectStore()
    card, files = attach_report(_card(), FILES)
    write_version(store, LAYOUT, card, files)
    return store


def test_a_stored_report_reads_back_checked_and_an_unknown_one_is_none():
    store = _published()
    assert json.loads(read_report_file(store, LAYOUT, "ner", "v1", REPORT_FILE))["model_name"] == "ner"
    assert read_report_file(store, LAYOUT, "ner", "v1", REPORT_PNG).startswith(PNG_SIGNATURE)
    assert read_report_file(store, LAYOUT, "ner", "v2", REPORT_FILE) is None
    assert read_report_file(store, LAYOUT, "other", "v1", REPORT_FILE) is None
    assert read_report_file(store, LAYOUT, "../ner", "v1", REPORT_FILE) is None
    assert read_report_file(store, LAYOUT, "ner", "v1", "model.safetensors.missing") is None
    store.put_bytes("models/ner/v1/report.json", b"{}")
    with pytest.raises(VersionRejected, match="sha256"):
        read_report_file(store, LAYOUT, "ner", "v1", REPORT_FILE)


async def test_the_http_routes_serve_the_report_and_404_for_an_unknown_version():
    store = _published()
    app = create_http_app(lambda: store, LAYOUT)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://trainer") as http:
        report = await http.get("/models/ner/v1/report")
        png = await http.get("/models/ner/v1/report.png")
        missing = await http.get("/models/ner/nope/report")
        store.put_bytes("models/ner/v1/report.png", b"\x89PNG altered")
        altered = await http.get("/models/ner/v1/report.png")
    assert report.status_code == 200 and report.headers["content-type"] == "application/json"
    assert report.json()["epochs"][1]["dev_f1"] == 0.3
    assert png.status_code == 200 and png.headers["content-type"] == "image/png"
    assert png.content.startswith(PNG_SIGNATURE)
    assert missing.status_code == 404 and "nope" in missing.json()["detail"]
    assert altered.status_code == 409


async def test_the_routes_answer_503_before_the_object_store_is_open():
    def not_open():
        raise RuntimeError("the object store is used before startup")

    app = create_http_app(not_open, LAYOUT)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://trainer") as http:
        assert (await http.get("/models/ner/v1/report")).status_code == 503
