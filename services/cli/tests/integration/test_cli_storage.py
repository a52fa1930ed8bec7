"""datasets import / list / show and models list / show against a real S3 server."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from streamtune_shared.datasets import read_dataset
from streamtune_shared.model_card import CardMetrics, ModelCard
from streamtune_shared.model_registry import RegistryLayout, file_checksums, write_version

from .conftest import Invoke


def test_import_then_list_and_show(invoke_s3: Invoke, object_store, tmp_path: Path) -> None:
    file = tmp_path / "synthetic.csv"
    file.write_text("text,label\n"
                    'Fever since Monday,"[""B-Symptom"", ""O"", ""O""]"\n'
                    'No complaints,"[""O"", ""O""]"\n'
                    'Mild cough,"[""O"", ""B-Symptom""]"\n')
    result = invoke_s3("datasets", "import", str(file), "--dataset", "notes", "--shard-rows", "2", "--json")
    assert result.exit_code == 0, result.output
    assert "bypasses ingestion and the anonymizer" in result.stderr
    assert json.loads(result.stdout)["rows"] == 3
    rows, manifests = read_dataset(object_store, "notes")
    assert sorted(r["text"] for r in rows) == ["Fever since Monday", "Mild cough", "No complaints"]
    assert {m.writer for m in manifests} == {"import:synthetic"}

    listed = json.loads(invoke_s3("datasets", "list", "--json").stdout)
    assert [(d["dataset"], d["shards"], d["rows"]) for d in listed] == [("notes", 2, 3)]
    shown = invoke_s3("datasets", "show", "notes", "--json")
    assert [s["rows"] for s in json.loads(shown.stdout)["shard_list"]] == [2, 1]
    missing = invoke_s3("datasets", "show", "nothing-here")
    assert missing.exit_code == 1 and missing.stderr.startswith("error: no dataset 'nothing-here'")


def _publish(store, layout: RegistryLayout, version: str, dev_f1: float) -> None:
    files = {"model.safetensors": b"weights " + version.encode(), "config.json": b"{}", "labels.json": b"{}"}
    card = ModelCard(model_name="ner", version=version, task="token-classification", dataset="notes",
                     request_id="r1", files=file_checksums(files), created_at=datetime.now(UTC),
                     metrics=CardMetrics(dev={"f1": dev_f1}, test={"f1": dev_f1 - 0.1}))
    write_version(store, layout, card, files)


def test_models_list_and_show_read_the_registry(invoke_s3: Invoke, object_store, infra_settings) -> None:
    layout = RegistryLayout(infra_settings.models_prefix)
    _publish(object_store, layout, "20260101T000000Z-r1", 0.6)
    _publish(object_store, layout, "20260102T000000Z-r2", 0.8)
    result = invoke_s3("models", "list", "--json")
    assert result.exit_code == 0, result.output
    [row] = json.loads(result.stdout)
    assert (row["model"], row["versions"], row["newest"], row["task"], row["dataset"]) == (
        "ner", 2, "20260102T000000Z-r2", "token-classification", "notes")
    assert (row["dev_f1"], round(row["test_f1"], 6)) == (0.8, 0.7)

    shown = json.loads(invoke_s3("models", "show", "ner", "20260101T000000Z-r1", "--json").stdout)
    assert shown["card"]["metrics"]["dev"] == {"f1": 0.6}
    assert shown["versions"] == ["20260101T000000Z-r1", "20260102T000000Z-r2"]
    missing = invoke_s3("models", "show", "ner", "v9")
    assert missing.exit_code == 1 and "has no version 'v9'" in missing.stderr
