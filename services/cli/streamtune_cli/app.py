"""The ``streamtune`` typer app: top-level commands and the models, datasets and dlq groups."""

from __future__ import annotations

import typer

from . import rollout  # noqa: F401 - registers promote, rollback, pin, unpin, canary, shadow, rollout
from .datasets import datasets_app
from .dlq import dlq_app
from .models import models_app
from .produce import produce
from .status import status
from .tail import tail
from .train import train

app = typer.Typer(
    name="streamtune",
    help="Operate streamtune: produce and tail events, train and list models, datasets, dead letters, stream status."
         " Connection settings: STREAMTUNE_* environment variables, then .stack/env of the current folder.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,  # every command reports its own failures in one line (errors.reports_errors)
)
app.command("produce")(produce)
app.command("tail")(tail)
app.command("train")(train)
app.command("status")(status)
app.add_typer(models_app, name="models")
app.add_typer(datasets_app, name="datasets")
app.add_typer(dlq_app, name="dlq")


def main() -> None:
    """The ``streamtune`` console script."""
    app()
