"""Training requests from a file and flags, and following a run's statuses."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamtune_cli.train_request import RunView, build_request, read_request_file
from streamtune_shared.schemas import TrainStatus


def test_flags_override_the_file_and_a_request_id_is_made(tmp_path: Path) -> None:
    file = tmp_path / "request.yaml"
    file.write_text("model_name: ner\ntask: token-classification\ndataset: notes\nepochs: 5\n")
    request = build_request(read_request_file(file), {"epochs": 2, "learning_rate": None})
    assert (request.model_name, request.dataset, request.epochs) == ("ner", "notes", 2)
    assert request.learning_rate == 1e-4  # not given anywhere: the schema's default for method "full"
    other = build_request(read_request_file(file), {})
    assert request.request_id and other.request_id and request.request_id[:8] != other.request_id[:8]


def test_an_invalid_request_names_its_fields() -> None:
    with pytest.raises(ValueError) as caught:
        build_request({"model_name": "ner", "task": "summarize", "dataset": "notes", "colour": "red"}, {"epochs": 0})
    message = str(caught.value)
    assert "task:" in message and "epochs:" in message and "colour:" in message


def test_a_file_that_is_not_a_mapping_is_refused(tmp_path: Path) -> None:
    file = tmp_path / "request.yaml"
    file.write_text("- model_name: ner\n")
    with pytest.raises(ValueError, match="mapping"):
        read_request_file(file)


def _status(state: str, request_id: str = "r1", **fields) -> TrainStatus:
    return TrainStatus(request_id=request_id, model_name="ner", state=state, **fields)


def test_the_view_follows_one_request_until_it_is_published() -> None:
    view = RunView("r1")
    assert not view.apply(_status("running", request_id="other", epoch=9))
    view.apply(_status("accepted", epochs=2))
    view.apply(_status("running", epoch=1, epochs=2, step=3, total_steps=10))
    view.apply(_status("epoch_end", epoch=1, epochs=2, step=5, total_steps=10,
                       metrics={"dev": {"f1": 0.5, "precision": 0.4, "report": {}}, "train_loss": 1.2,
                                "samples_per_s": 80.0, "best_epoch": 1}))
    assert (view.epoch, view.step, view.total_steps, view.finished) == (1, 5, 10, False)
    view.apply(_status("epoch_end", epoch=2, epochs=2, step=10, total_steps=10, metrics={"dev": {"f1": 0.7}}))
    view.apply(_status("published", version="20260101T000000Z-r1", metrics={"test": {"f1": 0.66}}))
    assert view.finished and view.version == "20260101T000000Z-r1"
    assert [row["epoch"] for row in view.epochs_done] == [1, 2]
    assert view.epochs_done[0] == {"epoch": 1, "train_loss": 1.2, "dev_f1": 0.5, "dev_precision": 0.4,
                                   "samples_per_s": 80.0, "best_epoch": 1}


def test_a_failed_run_keeps_its_reason() -> None:
    view = RunView("r1")
    view.apply(_status("failed", message="dataset notes has no rows"))
    assert view.finished and view.state == "failed" and view.message == "dataset notes has no rows"
