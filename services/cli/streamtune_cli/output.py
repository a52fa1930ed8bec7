"""Where the CLI writes: results to stdout (tables, or JSON for scripts), progress and notes to stderr."""

from __future__ import annotations

import json
from typing import Any

import typer
from rich.console import Console

# Progress bars and notes go to stderr, so `--json` output on stdout stays parseable.
console = Console()
err_console = Console(stderr=True)


def print_json(document: Any) -> None:
    """One JSON document on stdout, exactly (no colours, no wrapping): what scripts read."""
    typer.echo(json.dumps(document, default=str, ensure_ascii=False))


def pretty_json(document: Any) -> None:
    """A JSON document for people: indented and coloured on a terminal."""
    console.print_json(json.dumps(document, default=str, ensure_ascii=False))


def note(message: str) -> None:
    """A note for the operator on stderr (never on stdout, which scripts read)."""
    err_console.print(message, highlight=False, markup=False, soft_wrap=True)
