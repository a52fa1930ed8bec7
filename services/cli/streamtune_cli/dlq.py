"""``streamtune dlq list | show | replay``: read dead letters and put their original bytes back after a fix."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Annotated

import typer
from redis import Redis
from rich.table import Table
from streamtune_shared import streams

from .connection import connect_redis
from .dead_letters import Replay, StoredLetter, is_selected, letter_summary, parse_letter, plan_replay
from .entries import text_id
from .errors import USAGE, CliError, reports_errors
from .output import console, note, pretty_json, print_json
from .stream_catalog import known_streams

dlq_app = typer.Typer(help="Dead letters (events.dlq): list, show, replay their original bytes.", no_args_is_help=True)
PAGE = 500

StageOption = Annotated[str | None, typer.Option(help="Only letters of this stage, e.g. ingestion.")]
ReasonOption = Annotated[str | None, typer.Option(help="Only letters whose reason contains this text (any case).")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON, for scripts.")]


def read_letters(client: Redis, *, newest_first: bool = False) -> Iterator[StoredLetter]:
    """Every entry of the DLQ, oldest first (or newest first), read in pages."""
    bound = "+" if newest_first else "-"
    while True:
        if newest_first:
            page = client.xrevrange(streams.DLQ, max=bound, min="-", count=PAGE)
        else:
            page = client.xrange(streams.DLQ, min=bound, max="+", count=PAGE)
        for entry_id, fields in page:
            yield parse_letter(text_id(entry_id), fields)
        if len(page) < PAGE:
            return
        # An exclusive bound: the next page starts after the last entry read.
        bound = "(" + text_id(page[-1][0])


@dlq_app.command("list")
@reports_errors
def list_letters(stage: StageOption = None, reason: ReasonOption = None,
                 limit: Annotated[int, typer.Option(min=1, help="Show at most this many, newest first.")] = 50,
                 as_json: JsonOption = False) -> None:
    """The newest dead letters: when, which stage, why, which fields."""
    _, client = connect_redis()
    rows = []
    for stored in read_letters(client, newest_first=True):
        if is_selected(stored, stage=stage, reason=reason):
            rows.append(letter_summary(stored))
        if len(rows) >= limit:
            break
    if as_json:
        print_json(rows)
        return
    table = Table("entry id", "failed at", "stage", "source", "event id", "reason", "fields",
                  title=f"{streams.DLQ}: {client.xlen(streams.DLQ)} letters", title_justify="left")
    for row in rows:
        table.add_row(row["entry_id"], row.get("failed_at", ""), row["stage"] or "", row.get("source_stream") or "",
                      row.get("event_id") or "", row["reason"], ", ".join(row.get("fields", [])))
    console.print(table)


@dlq_app.command("show")
@reports_errors
def show_letter(entry_id: Annotated[str, typer.Argument(help="The DLQ entry id, as `dlq list` shows it.")],
                as_json: JsonOption = False) -> None:
    """One dead letter in full, with its field errors and original bytes."""
    _, client = connect_redis()
    found = client.xrange(streams.DLQ, min=entry_id, max=entry_id, count=1)
    if not found:
        raise CliError(f"no entry {entry_id} in {streams.DLQ}")
    stored = parse_letter(entry_id, found[0][1])
    if stored.letter is None:
        raise CliError(f"entry {entry_id} of {streams.DLQ} is not a dead letter")
    document = stored.letter.model_dump(mode="json")
    print_json(document) if as_json else pretty_json(document)


@dlq_app.command("replay")
@reports_errors
def replay(
    stage: StageOption = None,
    reason: ReasonOption = None,
    entry: Annotated[list[str] | None, typer.Option("--id", help="Only this DLQ entry id (repeatable).")] = None,
    to: Annotated[str | None, typer.Option(help="Replay to this stream instead of the letter's source stream.")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Say what would be replayed; write nothing.")] = False,
    delete: Annotated[bool, typer.Option("--delete", help="Delete replayed letters from the DLQ (same transaction).")] = False,
    as_json: JsonOption = False,
) -> None:
    """Append the original bytes of dead letters to their source stream again (events.raw for ingestion's)."""
    if to is not None and to not in known_streams():
        raise CliError(f"unknown stream {to!r}; one of: {', '.join(known_streams())}", USAGE)
    _, client = connect_redis()
    replays, skips = plan_replay(read_letters(client), stage=stage, reason=reason, ids=set(entry or ()), to=to)
    if not dry_run:
        _write_replays(client, replays, delete=delete)
    targets = Counter(r.target for r in replays)
    if as_json:
        print_json({"dry_run": dry_run, "replayed": len(replays), "deleted": len(replays) if delete and not dry_run else 0,
                    "targets": dict(targets), "replays": [{"entry_id": r.entry_id, "target": r.target} for r in replays],
                    "skipped": [{"entry_id": s.entry_id, "why": s.why} for s in skips]})
        return
    for skip in skips:
        note(f"skipped {skip.entry_id}: {skip.why}")
    verb = "would replay" if dry_run else "replayed"
    where = ", ".join(f"{n} to {target}" for target, n in sorted(targets.items())) or "nothing"
    deleted = f"; deleted {len(replays)} from {streams.DLQ}" if delete and not dry_run and replays else ""
    typer.echo(f"{verb} {len(replays)} dead letters ({where}){deleted}; skipped {len(skips)}")


def _write_replays(client: Redis, replays: list[Replay], *, delete: bool) -> None:
    # One MULTI per page: a letter is deleted only together with its replay, never without it.
    for start in range(0, len(replays), PAGE):
        pipe = client.pipeline(transaction=True)
        for item in replays[start:start + PAGE]:
            pipe.xadd(item.target, {streams.PAYLOAD_FIELD: item.payload})
            if delete:
                pipe.xdel(streams.DLQ, item.entry_id)
        pipe.execute()
