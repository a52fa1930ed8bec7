"""``streamtune models promote | rollback | pin | unpin | canary | shadow | rollout``: run-time rollout.

Each change goes through ``streamtune_shared.rollout_control.change_state`` (a per-dataset lock, a
higher revision, an announcement on ``models.control``); every predictor process applies it between
two batches and acknowledges it. ``--wait`` returns once every live predictor serves the new revision.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any

import typer
from redis.asyncio import Redis
from rich.table import Table
from streamtune_shared.model_card import VersionRejected
from streamtune_shared.model_registry import RegistryLayout, fetch_card, list_versions
from streamtune_shared.rollout import (
    RolloutRefused,
    ServingState,
    end_canary,
    list_datasets,
    pin,
    promote,
    read_state,
    rollback,
    start_canary,
    start_shadow,
    stop_shadow,
    unpin,
)
from streamtune_shared.rollout_control import applied_revisions, change_state, live_predictors, shadow_agreement
from streamtune_shared.storage import ObjectStore

from .connection import load_settings, object_store
from .errors import CliError, reports_errors
from .models import models_app
from .output import console, note, print_json

LIVE_WITHIN_S = 60.0
WAIT_POLL_S = 0.2
DatasetOption = Annotated[str | None, typer.Option("--dataset", "-d", help="The dataset (default: the one the "
                                                                              "model serves, else its card's).")]
WaitOption = Annotated[float, typer.Option("--wait", min=0, help="Seconds to wait until every live predictor "
                                                                   "serves the change (0: do not wait).")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON, for scripts.")]
Transition = Callable[[ServingState, datetime], ServingState]


class RolloutContext:
    """The store, the registry layout and a Redis URL, read once per command."""

    def __init__(self) -> None:
        settings = load_settings()
        self.store: ObjectStore = object_store(settings)
        self.layout = RegistryLayout(settings.models_prefix)
        self.redis_url = settings.redis_url.get_secret_value()

    def redis(self) -> Redis:
        return Redis.from_url(self.redis_url, socket_connect_timeout=5.0)


def _dataset_for(ctx: RolloutContext, model: str, dataset: str | None, version: str | None) -> str:
    """The dataset a command is about: given, or the single one the model serves, or the version card's."""
    if dataset is not None:
        return dataset
    serving = [d for d in list_datasets(ctx.store, ctx.layout)
               if (s := read_state(ctx.store, ctx.layout, d)) is not None and s.model == model]
    if len(serving) == 1:
        return serving[0]
    if len(serving) > 1:
        raise CliError(f"{model} serves several datasets ({', '.join(serving)}): name one with --dataset")
    versions = list_versions(ctx.store, ctx.layout, model)
    if not versions:
        raise CliError(f"model {model!r} has no committed version and serves no dataset")
    return _card(ctx, model, version or versions[-1]).dataset


def _card(ctx: RolloutContext, model: str, version: str):
    try:
        return fetch_card(ctx.store, ctx.layout, model, version)
    except VersionRejected as exc:
        raise CliError(f"{model} {version} cannot serve: {exc.reason}") from None


def _apply(ctx: RolloutContext, dataset: str, model: str, transition: Transition, wait_s: float,
           *, creates: bool = False) -> ServingState:
    """Run one transition on the dataset's state; optionally wait for every live predictor to apply it."""

    def change(current: ServingState | None, now: datetime) -> ServingState:
        if current is None:
            if not creates:
                raise RolloutRefused(f"{dataset} has no serving state yet (promote a version first)")
            current = ServingState(dataset=dataset, model=model, updated_at=now)
        if current.model != model and not creates:
            raise RolloutRefused(f"{dataset} is served by {current.model}, not {model}")
        return transition(current, now)

    async def run() -> ServingState:
        redis = ctx.redis()
        try:
            changed = await change_state(redis, ctx.store, ctx.layout, dataset, change)
            assert changed is not None  # noqa: S101 - every transition here returns a state or raises
            if wait_s > 0:
                await _wait_applied(redis, dataset, changed.revision, wait_s)
            return changed
        finally:
            await redis.aclose()

    try:
        return asyncio.run(run())
    except RolloutRefused as exc:
        raise CliError(str(exc)) from None


async def _wait_applied(redis: Redis, dataset: str, revision: int, wait_s: float) -> None:
    deadline = time.monotonic() + wait_s
    while True:
        live = await live_predictors(redis, LIVE_WITHIN_S)
        applied = await applied_revisions(redis, dataset)
        behind = sorted(name for name in live if applied.get(name, 0) < revision)
        if live and not behind:
            return
        if time.monotonic() > deadline:
            who = ", ".join(behind) if live else "no live predictor"
            raise CliError(f"revision {revision} of {dataset} not applied after {wait_s:g} s by: {who}")
        await asyncio.sleep(WAIT_POLL_S)


def _report(state: ServingState, as_json: bool) -> None:
    if as_json:
        print_json(state.model_dump(mode="json"))
        return
    extra = [f"canary {state.canary.version} ({state.canary.share:.0%})" if state.canary else "",
             f"shadow {state.shadow.version}" if state.shadow else "", "pinned" if state.pinned else ""]
    note(f"{state.dataset}: {state.model} {state.version} revision {state.revision} ({state.changed_by})"
         + "".join(f", {e}" for e in extra if e))


@models_app.command("promote")
@reports_errors
def promote_version(model: Annotated[str, typer.Argument(help="The model name.")],
                    version: Annotated[str, typer.Argument(help="The version to serve.")],
                    dataset: DatasetOption = None, wait: WaitOption = 0.0, as_json: JsonOption = False) -> None:
    """Serve VERSION of MODEL for the dataset now; the version it replaces can be rolled back to."""
    ctx = RolloutContext()
    _card(ctx, model, version)
    target = _dataset_for(ctx, model, dataset, version)
    _report(_apply(ctx, target, model, lambda s, now: promote(s, version, now, model=model), wait, creates=True),
            as_json)


@models_app.command("rollback")
@reports_errors
def rollback_version(model: Annotated[str, typer.Argument(help="The model name.")], dataset: DatasetOption = None,
                     wait: WaitOption = 0.0, as_json: JsonOption = False) -> None:
    """Serve the previous version again, pinned (a newly published version does not undo the rollback)."""
    ctx = RolloutContext()
    _report(_apply(ctx, _dataset_for(ctx, model, dataset, None), model, rollback, wait), as_json)


@models_app.command("pin")
@reports_errors
def pin_version(model: Annotated[str, typer.Argument(help="The model name.")], dataset: DatasetOption = None,
                wait: WaitOption = 0.0, as_json: JsonOption = False) -> None:
    """Keep the version serving: newly published versions of MODEL no longer auto-promote."""
    ctx = RolloutContext()
    _report(_apply(ctx, _dataset_for(ctx, model, dataset, None), model, pin, wait), as_json)


@models_app.command("unpin")
@reports_errors
def unpin_version(model: Annotated[str, typer.Argument(help="The model name.")], dataset: DatasetOption = None,
                  wait: WaitOption = 0.0, as_json: JsonOption = False) -> None:
    """Follow published versions again (the newest committed one serves when it is newer)."""
    ctx = RolloutContext()
    versions = list_versions(ctx.store, ctx.layout, model)
    newest = versions[-1] if versions else None
    _report(_apply(ctx, _dataset_for(ctx, model, dataset, None), model,
                   lambda s, now: unpin(s, now, newest), wait), as_json)


@models_app.command("canary")
@reports_errors
def canary(model: Annotated[str, typer.Argument(help="The model name.")],
           version: Annotated[str | None, typer.Argument(help="The candidate version.")] = None,
           share: Annotated[float, typer.Option(min=0.001, max=0.999, help="Share of events for it.")] = 0.1,
           promote_it: Annotated[bool, typer.Option("--promote", help="Promote the running canary.")] = False,
           abort: Annotated[bool, typer.Option("--abort", help="Stop the running canary.")] = False,
           dataset: DatasetOption = None, wait: WaitOption = 0.0, as_json: JsonOption = False) -> None:
    """Send a stable share of events (by event id) to VERSION; then --promote or --abort it."""
    ctx = RolloutContext()
    target = _dataset_for(ctx, model, dataset, version)
    if promote_it or abort:
        if promote_it and abort:
            raise CliError("give --promote or --abort, not both", 2)
        transition: Transition = lambda s, now: end_canary(s, now, promote_it=promote_it)  # noqa: E731
    elif version is None:
        raise CliError("name the candidate VERSION, or give --promote / --abort", 2)
    else:
        _card(ctx, model, version)
        transition = lambda s, now: start_canary(s, version, share, now)  # noqa: E731
    _report(_apply(ctx, target, model, transition, wait), as_json)


@models_app.command("shadow")
@reports_errors
def shadow(model: Annotated[str, typer.Argument(help="The model name.")],
           version: Annotated[str | None, typer.Argument(help="The candidate version.")] = None,
           stop: Annotated[bool, typer.Option("--stop", help="Stop the running shadow.")] = False,
           dataset: DatasetOption = None, wait: WaitOption = 0.0, as_json: JsonOption = False) -> None:
    """Run VERSION on a copy of the traffic (predictions.shadow); agreement shows in `models rollout`."""
    ctx = RolloutContext()
    target = _dataset_for(ctx, model, dataset, version)
    if stop:
        transition: Transition = stop_shadow
    elif version is None:
        raise CliError("name the candidate VERSION, or give --stop", 2)
    else:
        _card(ctx, model, version)
        transition = lambda s, now: start_shadow(s, version, now)  # noqa: E731
    _report(_apply(ctx, target, model, transition, wait), as_json)


@models_app.command("rollout")
@reports_errors
def rollout_status(dataset: DatasetOption = None, as_json: JsonOption = False) -> None:
    """Per dataset: what serves, canary and shadow (with its agreement), and which revision each predictor applied."""
    ctx = RolloutContext()
    datasets = [dataset] if dataset else list_datasets(ctx.store, ctx.layout)
    documents = asyncio.run(rollout_documents(ctx, datasets))
    if as_json:
        print_json(documents)
        return
    table = Table("dataset", "model", "version", "rev", "pinned", "canary", "shadow (agreement)", "predictors",
                  title="rollout", title_justify="left")
    for doc in documents:
        table.add_row(*rollout_cells(doc))
    console.print(table)


async def rollout_documents(ctx: RolloutContext, datasets: list[str]) -> list[dict[str, Any]]:
    redis = ctx.redis()
    try:
        live = await live_predictors(redis, LIVE_WITHIN_S)
        documents = []
        for name in datasets:
            state = read_state(ctx.store, ctx.layout, name)
            if state is None:
                continue
            document = rollout_document(state, live, await applied_revisions(redis, name))
            if state.shadow is not None:
                compared, mean = await shadow_agreement(redis, name, state.shadow.version)
                document["shadow_agreement"] = {"compared": compared, "mean": mean}
            documents.append(document)
        return documents
    finally:
        await redis.aclose()


def rollout_document(state: ServingState, live: dict[str, float], applied: dict[str, int]) -> dict[str, Any]:
    """A dataset's state with, for every live predictor process, the revision it serves and whether it is current."""
    predictors = {name: {"applied_revision": applied.get(name), "current": applied.get(name) == state.revision}
                  for name in sorted(live)}
    return {**state.model_dump(mode="json"), "predictors": predictors,
            "all_applied": bool(predictors) and all(p["current"] for p in predictors.values())}


def rollout_cells(doc: dict[str, Any]) -> list[str]:
    """One table row of ``rollout_document``."""
    canary = f"{doc['canary']['version']} ({doc['canary']['share']:.0%})" if doc.get("canary") else ""
    shadow_text = ""
    if doc.get("shadow"):
        agreement = doc.get("shadow_agreement", {})
        mean = agreement.get("mean")
        shadow_text = f"{doc['shadow']['version']} ({'-' if mean is None else f'{mean:.2f}'}, " \
                      f"{agreement.get('compared', 0)} events)"
    predictors = doc["predictors"]
    current = sum(p["current"] for p in predictors.values())
    return [doc["dataset"], doc["model"], str(doc["version"]), str(doc["revision"]), "yes" if doc["pinned"] else "",
            canary, shadow_text, f"{current}/{len(predictors)} applied"]
