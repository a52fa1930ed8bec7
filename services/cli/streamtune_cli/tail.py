"""``streamtune tail STREAM``: follow a stream, pretty-printed or as raw lines, filtered by dataset or device."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Annotated

import typer
from redis import Redis

from .connection import connect_redis
from .entries import entry_document, entry_line, matches, text_id
from .errors import USAGE, CliError, reports_errors
from .output import console, pretty_json
from .stream_catalog import known_streams

READ_COUNT = 200
BLOCK_MS = 1_000  # short blocking reads, so Ctrl-C is answered within a second


def last_entry_id(client: Redis, stream: str) -> str:
    """The id of the newest entry ("0-0" for an empty or missing stream): where following "from now" starts.

    Resolving ``$`` once, instead of passing it to every read, keeps entries written between two reads.
    """
    newest = client.xrevrange(stream, count=1)
    return text_id(newest[0][0]) if newest else "0-0"


def follow(client: Redis, stream: str, after: str,
           stop_at: float | None = None) -> Iterator[tuple[str, dict[bytes, bytes]]]:
    """Every entry after ``after``, in order, forever or until the monotonic clock passes ``stop_at``."""
    while stop_at is None or time.monotonic() < stop_at:
        for _, entries in client.xread({stream: after}, count=READ_COUNT, block=BLOCK_MS) or []:
            for entry_id, fields in entries:
                after = text_id(entry_id)
                yield after, fields


def check_stream(stream: str) -> None:
    """Refuse a stream name the contract does not know (a typo would otherwise wait forever)."""
    names = known_streams()
    if stream not in names:
        raise CliError(f"unknown stream {stream!r}; one of: {', '.join(names)}", USAGE)


@reports_errors
def tail(
    stream: Annotated[str, typer.Argument(help="A stream name, e.g. events.raw, events.dlq, predictions.")],
    from_start: Annotated[bool, typer.Option("--from-start", help="Start at the oldest entry, not at new ones.")] = False,
    dataset: Annotated[str | None, typer.Option(help="Only entries whose payload names this dataset.")] = None,
    device: Annotated[str | None, typer.Option(help="Only entries of this device_id (pseudonymized after the anonymizer).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One raw payload per line, for scripts.")] = False,
    count: Annotated[int | None, typer.Option(min=1, help="Stop after this many matching entries.")] = None,
) -> None:
    """Follow a stream and print its entries as they arrive (Ctrl-C stops)."""
    check_stream(stream)
    _, client = connect_redis()
    shown = 0
    try:
        for entry_id, fields in follow(client, stream, "0-0" if from_start else last_entry_id(client, stream)):
            document = entry_document(fields)
            if not matches(document, dataset=dataset, device=device):
                continue
            if as_json:
                typer.echo(entry_line(fields))
            else:
                console.print(f"[dim]{stream} {entry_id}[/dim]")
                pretty_json(document)
            shown += 1
            if count is not None and shown >= count:
                return
    except KeyboardInterrupt:
        return
