"""``streamtune status``: every stream's length; every group's lag, pending, consumers and dead consumers."""

from __future__ import annotations

from typing import Annotated

import typer
from redis import Redis
from redis.exceptions import ResponseError
from rich.table import Table

from .connection import connect_redis
from .errors import CliError, reports_errors
from .output import console, print_json
from .stream_catalog import known_streams
from .stream_health import (
    DEFAULT_DEAD_AFTER_S,
    StreamHealth,
    consumer_health,
    format_duration,
    group_health,
    group_rows,
    status_document,
    stream_health,
)


def read_health(client: Redis, stream: str, dead_after_ms: int) -> StreamHealth:
    """XINFO STREAM, GROUPS and CONSUMERS of one stream."""
    try:
        info = client.xinfo_stream(stream)
    except ResponseError as exc:
        if "no such key" not in str(exc).lower():
            raise
        return stream_health(stream, None, [])
    groups = []
    for group in client.xinfo_groups(stream):
        consumers = client.xinfo_consumers(stream, group["name"])
        groups.append(group_health(group, [consumer_health(c, dead_after_ms) for c in consumers]))
    return stream_health(stream, info, groups)


def _groups_table(health: list[StreamHealth]) -> Table:
    table = Table(title="streams and consumer groups", title_justify="left")
    for column in ("stream", "length", "group", "lag", "pending", "consumers"):
        table.add_column(column, justify="right" if column in ("length", "lag", "pending", "consumers") else "left",
                         no_wrap=column in ("stream", "group", "consumers"))
    table.add_column("dead", style="red", overflow="fold")
    for row in group_rows(health):
        table.add_row(*row)
    return table


def _consumers_table(health: list[StreamHealth]) -> Table | None:
    table = Table(title="consumers", title_justify="left")
    for column in ("stream", "group", "consumer", "pending", "idle", "state"):
        table.add_column(column, justify="right" if column in ("pending", "idle") else "left")
    for stream in health:
        for group in stream.groups:
            for consumer in group.consumers:
                state = "[red]dead[/red]" if consumer.dead else "ok"
                table.add_row(stream.stream, group.group, consumer.name, str(consumer.pending),
                              format_duration(consumer.idle_ms), state)
    return table if table.row_count else None


@reports_errors
def status(
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON document, for scripts.")] = False,
    dead_after: Annotated[int, typer.Option(
        min=1, help="Seconds a consumer with pending entries may stay idle before it counts as dead.")
    ] = DEFAULT_DEAD_AFTER_S,
) -> None:
    """Per stream: length; per consumer group: lag, pending, consumers and their idle time, dead consumers."""
    _, client = connect_redis()
    health = [read_health(client, stream, dead_after * 1_000) for stream in known_streams()]
    rollout = _rollout_or_none()
    if as_json:
        print_json({**status_document(health, dead_after), "rollout": rollout})
        return
    console.print(_groups_table(health))
    consumers = _consumers_table(health)
    if consumers is not None:
        console.print(consumers)
    if rollout:
        from .rollout import rollout_cells  # noqa: PLC0415

        table = Table("dataset", "model", "version", "rev", "pinned", "canary", "shadow (agreement)", "predictors",
                      title="rollout (which revision every live predictor applied)", title_justify="left")
        for document in rollout:
            table.add_row(*rollout_cells(document))
        console.print(table)


def _rollout_or_none() -> list[dict] | None:
    """The rollout state of every dataset, when the object store is configured (None otherwise)."""
    try:
        from .rollout import RolloutContext, rollout_documents  # noqa: PLC0415 - imports the object-store client

        ctx = RolloutContext()
    except CliError:
        return None
    import asyncio  # noqa: PLC0415

    from streamtune_shared.rollout import list_datasets  # noqa: PLC0415

    return asyncio.run(rollout_documents(ctx, list_datasets(ctx.store, ctx.layout)))
