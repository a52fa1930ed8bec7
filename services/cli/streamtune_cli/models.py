"""``streamtune models list | show``: the model registry in the object store, read through ``model_registry``.

The rollout commands (promote, rollback, pin, unpin, canary, shadow) register on ``models_app`` too.
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table
from streamtune_shared.model_card import VersionRejected
from streamtune_shared.model_registry import RegistryLayout, fetch_card
from streamtune_shared.storage import ObjectStore

from .connection import load_settings, object_store
from .errors import CliError, reports_errors
from .model_rows import TABLE_COLUMNS, model_row, row_cells
from .output import console, pretty_json, print_json

models_app = typer.Typer(help="Model versions in the registry: list, show (and the rollout commands).",
                         no_args_is_help=True)
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON, for scripts.")]


def _registry() -> tuple[ObjectStore, RegistryLayout]:
    settings = load_settings()
    return object_store(settings), RegistryLayout(settings.models_prefix)


def registry_rows(store: ObjectStore, layout: RegistryLayout) -> list[dict]:
    """One row per model with a committed version, from one listing of the models prefix."""
    keys = store.list_keys(layout.models_prefix)
    rows = []
    for name in layout.model_names(keys):
        versions = layout.committed_versions(keys, name)
        try:
            rows.append(model_row(name, versions, fetch_card(store, layout, name, versions[-1])))
        except VersionRejected as exc:
            rows.append(model_row(name, versions, None, exc.reason))
    return rows


@models_app.command("list")
@reports_errors
def list_models(as_json: JsonOption = False) -> None:
    """Every model: versions, newest version, task, dataset, dev and test F1 of the newest version's card."""
    store, layout = _registry()
    rows = registry_rows(store, layout)
    if as_json:
        print_json(rows)
        return
    table = Table(*TABLE_COLUMNS, title=f"models under {layout.models_prefix}", title_justify="left")
    for row in rows:
        table.add_row(*row_cells(row))
    console.print(table)


@models_app.command("show")
@reports_errors
def show_model(
    model: Annotated[str, typer.Argument(help="The model name.")],
    version: Annotated[str | None, typer.Argument(help="A version (default: the newest).")] = None,
    as_json: JsonOption = False,
) -> None:
    """A version's model card (metrics, lineage, hyperparameters, checksums) and the model's versions."""
    store, layout = _registry()
    versions = layout.committed_versions(store.list_keys(layout.model_prefix(model)), model)
    if not versions:
        raise CliError(f"no committed version of model {model!r} under {layout.models_prefix}")
    version = version or versions[-1]
    if version not in versions:
        raise CliError(f"model {model!r} has no version {version!r}; versions: {', '.join(versions)}")
    try:
        card = fetch_card(store, layout, model, version)
    except VersionRejected as exc:
        raise CliError(f"the card of {model} {version} is refused: {exc.reason}") from None
    document = {"model": model, "version": version, "versions": versions, "card": card.model_dump(mode="json")}
    if as_json:
        print_json(document)
        return
    console.print(f"[bold]{model}[/bold] {version}  ({len(versions)} versions: {', '.join(versions)})")
    pretty_json(document["card"])
