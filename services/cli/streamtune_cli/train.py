"""``streamtune train``: send a TrainRequest, then follow its run on ``train.status`` until published or failed."""

from __future__ import annotations

import time
from contextlib import nullcontext
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError
from redis import Redis
from rich.console import Group
from rich.live import Live
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from streamtune_shared import streams
from streamtune_shared.schemas import TrainRequest, TrainStatus

from .connection import connect_redis
from .entries import payload_bytes
from .errors import USAGE, CliError, reports_errors
from .output import err_console, note, print_json
from .tail import follow, last_entry_id
from .train_request import RunView, build_request, read_request_file

INTERRUPTED = 130
COLUMN_LABELS = {"train_loss": "train loss", "dev_f1": "dev F1", "dev_precision": "dev P", "dev_recall": "dev R",
                 "dev_accuracy": "dev acc", "samples_per_s": "samples/s", "best_epoch": "best"}


def _epoch_table(view: RunView) -> Table:
    table = Table(title="dev metrics by epoch", title_justify="left", min_width=40)
    columns = list(dict.fromkeys(key for row in view.epochs_done for key in row))
    for column in columns or ["epoch"]:
        table.add_column(COLUMN_LABELS.get(column, column), justify="right")
    for row in view.epochs_done:
        table.add_row(*("-" if row.get(c) is None else f"{row[c]:.4g}" if isinstance(row[c], float) else str(row[c])
                        for c in columns))
    return table


def _statuses(client: Redis, after: str, stop_at: float | None):
    for _, fields in follow(client, streams.TRAIN_STATUS, after, stop_at):
        try:
            yield TrainStatus.model_validate_json(payload_bytes(fields) or b"")
        except ValidationError:
            continue  # another writer's entry: not ours to judge here


def watch_run(client: Redis, view: RunView, after: str, *, as_json: bool, stop_at: float | None) -> RunView:
    """Follow ``train.status`` after ``after`` for the view's request until the run ends (or ``stop_at``)."""
    progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                        console=err_console)
    task = progress.add_task("waiting for a trainer", total=None)
    live = Live(Group(progress, _epoch_table(view)), console=err_console,
                refresh_per_second=4, transient=False) if err_console.is_terminal and not as_json else None
    with live or nullcontext():
        for status in _statuses(client, after, stop_at):
            if not view.apply(status):
                continue
            if as_json:
                print_json(status.model_dump(mode="json"))
            progress.update(task, description=f"{view.state} epoch {view.epoch or '-'}/{view.epochs or '-'}",
                            completed=view.step, total=view.total_steps)
            if live is not None:
                live.update(Group(progress, _epoch_table(view)))
            if view.finished:
                break
    return view


def send_request(client: Redis, request: TrainRequest) -> str:
    """XADD the request to ``train.requests``; returns the newest ``train.status`` id from just before."""
    after = last_entry_id(client, streams.TRAIN_STATUS)
    client.xadd(streams.TRAIN_REQUESTS, {streams.PAYLOAD_FIELD: request.model_dump_json().encode()})
    return after


def _finish(view: RunView, as_json: bool) -> None:
    if not as_json and not err_console.is_terminal and view.epochs_done:
        err_console.print(_epoch_table(view))  # without a terminal there was no live table
    if not view.finished:
        raise CliError(f"gave up waiting for run {view.request_id} (last state: {view.state}); it may still be running")
    if view.state == "failed":
        raise CliError(f"run {view.request_id} failed: {view.message or 'no reason given'}")
    if not as_json:
        test = view.final_metrics.get("test", {})
        f1 = f", test F1 {test['f1']:.4f}" if isinstance(test.get("f1"), int | float) else ""
        typer.echo(f"published {view.version} (request {view.request_id}{f1})")


@reports_errors
def train(
    file: Annotated[Path | None, typer.Option("--file", exists=True, dir_okay=False,
                                              help="A YAML file of TrainRequest fields; flags override it.")] = None,
    model_name: Annotated[str | None, typer.Option("--model", help="Name of the model to publish.")] = None,
    task: Annotated[str | None, typer.Option(help="token-classification or sequence-classification.")] = None,
    dataset: Annotated[str | None, typer.Option(help="The dataset to train on.")] = None,
    base_model: Annotated[str | None, typer.Option(help="minilm, a local model folder or s3://bucket/prefix/.")] = None,
    epochs: Annotated[int | None, typer.Option()] = None,
    batch_size: Annotated[int | None, typer.Option()] = None,
    learning_rate: Annotated[float | None, typer.Option()] = None,
    weight_decay: Annotated[float | None, typer.Option()] = None,
    seed: Annotated[int | None, typer.Option()] = None,
    max_length: Annotated[int | None, typer.Option(help="Tokens per example.")] = None,
    dev_fraction: Annotated[float | None, typer.Option()] = None,
    test_fraction: Annotated[float | None, typer.Option()] = None,
    early_stopping_patience: Annotated[int | None, typer.Option(help="Epochs without a better dev F1 before stopping.")] = None,
    base_layers: Annotated[int | None, typer.Option(help="Keep only the first N layers of the base model.")] = None,
    request_id: Annotated[str | None, typer.Option(help="Names the run (default: a new random id).")] = None,
    detach: Annotated[bool, typer.Option("--detach", help="Send the request, print its id and return.")] = False,
    timeout: Annotated[float | None, typer.Option(min=1, help="Stop following after this many seconds (exit 1).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print each status as a JSON line (or the id with --detach).")] = False,
) -> None:
    """Ask the trainer for a fine-tune and follow it: live progress and an epoch table; exit 1 when it fails."""
    flags = {"model_name": model_name, "task": task, "dataset": dataset, "base_model": base_model, "epochs": epochs,
             "batch_size": batch_size, "learning_rate": learning_rate, "weight_decay": weight_decay, "seed": seed,
             "max_length": max_length, "dev_fraction": dev_fraction, "test_fraction": test_fraction,
             "early_stopping_patience": early_stopping_patience, "base_layers": base_layers, "request_id": request_id}
    try:
        request = build_request(read_request_file(file) if file else {}, flags)
    except ValueError as exc:
        raise CliError(str(exc), USAGE) from None
    _, client = connect_redis()
    after = send_request(client, request)
    if detach:
        print_json({"request_id": request.request_id}) if as_json else typer.echo(request.request_id)
        return
    note(f"sent request {request.request_id} ({request.model_name} on {request.dataset}); following {streams.TRAIN_STATUS}")
    stop_at = time.monotonic() + timeout if timeout else None
    try:
        view = watch_run(client, RunView(request.request_id), after, as_json=as_json, stop_at=stop_at)
    except KeyboardInterrupt:
        note(f"stopped following; the run goes on (request {request.request_id})")
        raise typer.Exit(INTERRUPTED) from None
    _finish(view, as_json)
