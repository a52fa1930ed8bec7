"""``streamtune datasets list | show | import``: dataset shards in the object store (``streamtune_shared.datasets``)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import TypeAdapter, ValidationError
from rich.table import Table
from streamtune_shared.datasets import IMPORT_SHARD_ROWS, IMPORT_SOURCE, import_rows, imported_event
from streamtune_shared.schemas import DatasetName, ShardManifest
from streamtune_shared.storage import ObjectStore

from .connection import load_settings, object_store
from .dataset_rows import DATASETS_ROOT, dataset_summary, manifest_keys, manifest_row, manifests_prefix, source_from_path
from .errors import FAILED, USAGE, CliError, reports_errors
from .event_files import file_format, read_rows
from .output import console, note, print_json

datasets_app = typer.Typer(help="Datasets in the object store: list, show, import a trusted labeled file.",
                           no_args_is_help=True)
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON, for scripts.")]
BYPASS_NOTE = ("note: import bypasses ingestion and the anonymizer: rows are stored as given, with no cleaning "
               "and no PII redaction. Use it only for trusted data (public corpora, synthetic training sets).")
SHOWN_PROBLEMS = 20


def read_manifests(store: ObjectStore, dataset: str, keys: list[str] | None = None) -> list[ShardManifest]:
    """Every shard manifest of a dataset, oldest shard first (``keys``: its manifest keys, when already listed)."""
    return [ShardManifest.model_validate_json(store.get_bytes(key))
            for key in (store.list_keys(manifests_prefix(dataset)) if keys is None else keys)]


@datasets_app.command("list")
@reports_errors
def list_datasets(as_json: JsonOption = False) -> None:
    """Every dataset: shards, stored rows, size, time range, writers."""
    store = object_store(load_settings())
    # One listing of the root serves every dataset: no second listing per dataset.
    rows = [dataset_summary(name, read_manifests(store, name, keys))
            for name, keys in manifest_keys(store.list_keys(DATASETS_ROOT)).items()]
    if as_json:
        print_json(rows)
        return
    table = Table("dataset", "shards", "rows", "bytes", "first event", "last event", "writers",
                  title="datasets", title_justify="left")
    for row in rows:
        table.add_row(row["dataset"], str(row["shards"]), str(row["rows"]), str(row["size_bytes"]),
                      row["min_ts"] or "-", row["max_ts"] or "-", ", ".join(row["writers"]))
    console.print(table)


@datasets_app.command("show")
@reports_errors
def show_dataset(dataset: Annotated[str, typer.Argument(help="The dataset name.")], as_json: JsonOption = False) -> None:
    """A dataset's summary and its shards (rows, size, time range, writer, k-anonymity)."""
    manifests = read_manifests(object_store(load_settings()), dataset)
    if not manifests:
        raise CliError(f"no dataset {dataset!r} (no shard manifests under {manifests_prefix(dataset)})")
    document = {**dataset_summary(dataset, manifests), "shard_list": [manifest_row(m) for m in manifests]}
    if as_json:
        print_json(document)
        return
    console.print(f"[bold]{dataset}[/bold]: {document['shards']} shards, {document['rows']} rows stored, "
                  f"{document['min_ts']} .. {document['max_ts']}")
    table = Table("shard", "rows", "bytes", "first event", "last event", "writer", "k", title_justify="left")
    for row in document["shard_list"]:
        table.add_row(row["shard_key"], str(row["rows"]), str(row["size_bytes"]), row["min_ts"], row["max_ts"],
                      row["writer"], "-" if row["k"] is None else str(row["k"]))
    console.print(table)


def checked_rows(file: Path, dataset: str, source: str, now: datetime) -> list[dict[str, Any]]:
    """The file's rows, every one checked as the import will store it; CliError lists the bad lines."""
    documents, problems = [], []
    for row in read_rows(file):
        if row.document is None:
            problems.append(f"line {row.line}: {row.problem}")
            continue
        try:
            imported_event(row.document, len(documents), dataset, source, now)
        except ValueError as exc:
            problems.append(f"line {row.line}: {str(exc).split(': ', 1)[-1]}")
        documents.append(row.document)
    for problem in problems[:SHOWN_PROBLEMS]:
        note(problem)
    if problems:
        raise CliError(f"{len(problems)} bad lines in {file.name}; nothing imported", FAILED)
    if not documents:
        raise CliError(f"{file.name} holds no rows; nothing imported", FAILED)
    return documents


def _check_names(dataset: str, source: str) -> None:
    try:
        TypeAdapter(DatasetName).validate_python(dataset)
    except ValidationError:
        raise CliError("--dataset must be lower-case letters, digits, '.', '_' or '-' (at most 63)", USAGE) from None
    if not IMPORT_SOURCE.match(source):
        raise CliError("--source must be lower-case letters, digits, '.', '_' or '-' (at most 41)", USAGE)


@datasets_app.command("import")
@reports_errors
def import_dataset(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True,
                                         help="Labeled rows as JSONL or CSV (Event fields: text, label, ...).")],
    dataset: Annotated[str, typer.Option(help="The dataset to add the rows to.")],
    source: Annotated[str | None, typer.Option(help="Names the writer (import:<source>); default: the file name.")] = None,
    shard_rows: Annotated[int, typer.Option(min=1, help="Rows per Parquet shard.")] = IMPORT_SHARD_ROWS,
    as_json: JsonOption = False,
) -> None:
    """Store a trusted labeled file as shards of a dataset, straight into the object store (no anonymizer)."""
    source = source or source_from_path(file)
    _check_names(dataset, source)
    try:
        file_format(file)
    except ValueError as exc:
        raise CliError(str(exc), USAGE) from None
    note(BYPASS_NOTE)
    now = datetime.now(UTC)
    documents = checked_rows(file, dataset, source, now)
    manifests = import_rows(object_store(load_settings()), dataset, documents, source, shard_rows=shard_rows, now=now)
    if as_json:
        print_json({"dataset": dataset, "source": source, "rows": sum(m.rows for m in manifests),
                    "shards": [m.shard_key for m in manifests]})
        return
    typer.echo(f"imported {sum(m.rows for m in manifests)} rows into dataset {dataset} "
               f"as {len(manifests)} shards (writer import:{source})")
