"""``streamtune produce FILE``: events from a JSONL or CSV file to ``events.raw``, validated first, pipelined."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

import typer
from redis import Redis
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from streamtune_shared import streams
from streamtune_shared.schemas import Event

from .connection import connect_redis
from .errors import FAILED, CliError, reports_errors
from .event_files import Row, count_records, file_format, read_rows, validate_event
from .output import err_console, note, print_json
from .pacing import MAX_BATCH, batch_size, seconds_to_wait

SHOWN_PROBLEMS = 20  # more rejected lines than this are counted, not printed one by one


@dataclass
class ProduceResult:
    """What a produce run wrote and which lines it refused."""

    written: int = 0
    rejected: list[tuple[int, str]] = field(default_factory=list)


def write_events(client: Redis, rows: Iterable[Row], *, stream: str, rate: float | None, batch: int,
                 on_progress: Callable[[int], None] = lambda n: None) -> ProduceResult:
    """Validate each row as an Event and XADD the valid ones in pipelined batches, paced to ``rate``."""
    result, pending = ProduceResult(), []
    size, start = batch_size(rate, batch), time.monotonic()
    for row in rows:
        event, problem = _event_of(row)
        if event is None:
            result.rejected.append((row.line, problem))
            on_progress(1)
            continue
        pending.append(event)
        if len(pending) >= size:
            result.written += _flush(client, stream, pending)
            on_progress(len(pending))
            pending.clear()
            time.sleep(seconds_to_wait(result.written, rate, time.monotonic() - start))
    if pending:
        result.written += _flush(client, stream, pending)
        on_progress(len(pending))
    return result


def _event_of(row: Row) -> tuple[Event | None, str]:
    if row.document is None:
        return None, row.problem or "unreadable"
    try:
        return validate_event(row.document), ""
    except ValueError as exc:
        return None, str(exc)


def _flush(client: Redis, stream: str, events: list[Event]) -> int:
    pipe = client.pipeline(transaction=False)
    for event in events:
        pipe.xadd(stream, {streams.PAYLOAD_FIELD: event.model_dump_json().encode()})
    return len(pipe.execute())


@reports_errors
def produce(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True,
                                         help="Events as JSONL (one Event per line) or CSV (Event fields as columns).")],
    rate: Annotated[float | None, typer.Option(min=0.01, help="Events per second (default: as fast as Redis takes them).")] = None,
    batch: Annotated[int, typer.Option(min=1, max=10_000, help="Events per pipelined round trip.")] = MAX_BATCH,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as one JSON object.")] = False,
) -> None:
    """Validate events from a file and write them to events.raw; bad lines are reported and not written (exit 1)."""
    try:
        file_format(file)
    except ValueError as exc:
        raise CliError(str(exc), 2) from None
    _, client = connect_redis()
    client.ping()
    columns = (TextColumn("[progress.description]{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn())
    with Progress(*columns, console=err_console, disable=not err_console.is_terminal) as progress:
        task = progress.add_task(f"producing to {streams.RAW}", total=count_records(file))
        result = write_events(client, read_rows(file), stream=streams.RAW, rate=rate, batch=batch,
                              on_progress=lambda n: progress.advance(task, n))
    _report(result, as_json)
    if result.rejected:
        raise typer.Exit(FAILED)


def _report(result: ProduceResult, as_json: bool) -> None:
    if as_json:
        print_json({"stream": streams.RAW, "written": result.written,
                    "rejected": [{"line": line, "problem": problem} for line, problem in result.rejected]})
        return
    for line, problem in result.rejected[:SHOWN_PROBLEMS]:
        note(f"line {line}: {problem}")
    if len(result.rejected) > SHOWN_PROBLEMS:
        note(f"... and {len(result.rejected) - SHOWN_PROBLEMS} more rejected lines")
    rejected = f"; {len(result.rejected)} lines rejected (not written)" if result.rejected else ""
    typer.echo(f"wrote {result.written} events to {streams.RAW}{rejected}")
