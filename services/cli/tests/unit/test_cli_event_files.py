"""Event files: JSONL and CSV rows become Event-shaped documents, and bad lines are named by their line number."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from streamtune_cli.event_files import (
    count_records,
    csv_rows,
    file_format,
    jsonl_rows,
    parse_label,
    read_rows,
    validate_event,
)

EVENT = ('{"schema_version": 1, "event_id": "e1", "device_id": "pump-7", "dataset": "pumps",'
         ' "ts": "2026-01-01T00:00:00Z", "readings": {"temp": 21.5}}')


def test_jsonl_skips_blank_lines_and_numbers_lines_as_in_the_file() -> None:
    rows = list(jsonl_rows([EVENT + "\n", "\n", "not json\n", "[1, 2]\n", EVENT]))
    assert [(r.line, r.problem is None) for r in rows] == [(1, True), (3, False), (4, False), (5, True)]
    assert rows[1].problem.startswith("not JSON")
    assert rows[2].problem == "not a JSON object"
    assert rows[0].document["readings"] == {"temp": 21.5}


def test_jsonl_refuses_a_repeated_key_as_ingestion_does() -> None:
    [row] = jsonl_rows(['{"event_id": "a", "event_id": "b"}'])
    assert row.document is None
    assert "duplicate key 'event_id'" in row.problem


def test_csv_columns_become_readings_meta_and_typed_fields() -> None:
    text = ("schema_version,event_id,device_id,dataset,ts,readings.Pressure,readings.Temp,meta.site,meta.note,label\n"
            "1,e1,pump-7,pumps,2026-01-01T00:00:00Z,2.5,,north,,1\n")
    [row] = csv_rows(io.StringIO(text))
    assert row.line == 2
    assert row.document == {"schema_version": 1, "event_id": "e1", "device_id": "pump-7", "dataset": "pumps",
                            "ts": "2026-01-01T00:00:00Z", "readings": {"Pressure": 2.5, "Temp": None},
                            "meta": {"site": "north"}, "label": 1}
    event = validate_event(row.document)
    assert event.readings == {"Pressure": 2.5, "Temp": None}
    assert event.label == 1


def test_csv_names_the_column_of_a_reading_that_is_not_a_number() -> None:
    text = "event_id,readings.temp\ne1,21.0\ne2,warm\n"
    rows = list(csv_rows(io.StringIO(text)))
    assert rows[0].problem is None
    assert (rows[1].line, rows[1].problem) == (3, "readings.temp: must be a number or empty")


def test_csv_refuses_more_cells_than_columns() -> None:
    [row] = csv_rows(io.StringIO("event_id,text\ne1,hello,extra\n"))
    assert row.problem == "more cells than header columns"


@pytest.mark.parametrize(("cell", "label"), [
    ('["O", "B-Disease"]', ["O", "B-Disease"]), ("0", 0), ("12", 12), ("bearing-fault", "bearing-fault"),
])
def test_a_label_cell_is_tags_an_integer_or_a_class(cell: str, label: object) -> None:
    assert parse_label(cell) == label


def test_validation_names_each_bad_field_without_its_value() -> None:
    with pytest.raises(ValueError) as caught:
        validate_event({"schema_version": 1, "event_id": "e1", "device_id": "d", "dataset": "Bad Name",
                        "ts": "2026-01-01T00:00:00", "readings": {"temp": "secret-value"}})
    message = str(caught.value)
    assert "dataset:" in message and "ts:" in message and "readings.temp:" in message
    assert "secret-value" not in message and "Bad Name" not in message


def test_the_format_follows_the_suffix(tmp_path: Path) -> None:
    assert file_format(Path("a.JSONL")) == "jsonl"
    assert file_format(Path("a.csv")) == "csv"
    with pytest.raises(ValueError, match="expected a .jsonl"):
        file_format(Path("events.txt"))
    csv_file = tmp_path / "e.csv"
    csv_file.write_text("event_id,text\ne1,a\n\ne2,b\n")
    assert count_records(csv_file) == 2
    assert [r.document["event_id"] for r in read_rows(csv_file)] == ["e1", "e2"]
