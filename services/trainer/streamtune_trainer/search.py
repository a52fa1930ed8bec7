"""Hyper-parameter search with Optuna: each trial is a normal run of the pipeline; the best trial is published.

The study lives in Redis (Optuna's journal storage, one key prefix per request), so the trainer that takes a
search request over after a crash or a shutdown continues the same study: finished trials (complete or
pruned) are not run again, and a trial that was running is retried with the same values (resuming from its
checkpoint). One delivery works a study at a time: the consumer group hands the request to one trainer, and
its heartbeat keeps it claimed. Completed trials keep the best one's version files under the request's
checkpoint prefix (``search/trial-<n>/``), so the winner is published even when it ran before the crash.

optuna is imported inside the functions (it is slow to import): a run without ``search`` never pays it.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import UTC
from typing import Any

import structlog
from pydantic import ValidationError
from streamtune_shared.model_card import CARD_FILE, CardSearch, CardTrial, ModelCard
from streamtune_shared.model_registry import mismatched_files, version_name
from streamtune_shared.schemas import TrainRequest
from streamtune_shared.storage import ObjectNotFound, ObjectStore

from .artifacts import checkpoint_run_prefix, delete_prefix
from .checkpoint import RunState
from .domain import TrainingRejected
from .pipeline import RunContext, discard_checkpoints, publish_version, train_version
from .search_space import SearchPlan, plan_search, trial_request

log = structlog.get_logger(__name__)

# The median pruner compares a trial with finished ones only after this many have finished.
PRUNER_STARTUP_TRIALS = 2
STORAGE_PREFIX = "streamtune:trainer:optuna"
FINISHED = ("complete", "pruned")

TrainVersion = Callable[[TrainRequest, RunContext], tuple[ModelCard, dict[str, bytes]]]


def storage_prefix(request_id: str) -> str:
    """The Redis key prefix of one request's study."""
    return f"{STORAGE_PREFIX}:{request_id}"


def redis_storage(redis_url: str, request_id: str) -> Any:
    """Optuna's journal storage in Redis for one request's study."""
    from optuna.exceptions import ExperimentalWarning  # noqa: PLC0415
    from optuna.storages import JournalStorage  # noqa: PLC0415
    from optuna.storages.journal import JournalRedisBackend  # noqa: PLC0415

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExperimentalWarning)
        return JournalStorage(JournalRedisBackend(redis_url, prefix=storage_prefix(request_id)))


def drop_redis_storage(redis_url: str, request_id: str) -> int:
    """Delete a finished study's Redis keys; returns how many."""
    from redis import Redis  # noqa: PLC0415

    client = Redis.from_url(redis_url)
    try:
        keys = list(client.scan_iter(match=f"{storage_prefix(request_id)}:*"))
        return client.delete(*keys) if keys else 0
    finally:
        client.close()


def open_study(request: TrainRequest, storage: Any) -> Any:
    """The request's study, created on its first delivery and loaded on the next ones."""
    import optuna  # noqa: PLC0415

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    options = request.search
    pruner = (optuna.pruners.MedianPruner(n_startup_trials=PRUNER_STARTUP_TRIALS, n_warmup_steps=0)
              if options.pruning else optuna.pruners.NopPruner())
    return optuna.create_study(storage=storage, study_name=f"search-{request.request_id}", load_if_exists=True,
                               direction=options.direction, sampler=optuna.samplers.TPESampler(seed=request.seed),
                               pruner=pruner)


def retry_interrupted_trials(study: Any) -> int:
    """Trials left running by an earlier delivery (it died or stopped) fail, and their values are queued again."""
    from optuna.trial import TrialState  # noqa: PLC0415

    stale = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    for trial in stale:
        study.tell(trial.number, state=TrialState.FAIL, skip_if_finished=True)
        study.enqueue_trial(dict(trial.params))
        log.info("search.trial_retried", trial=trial.number)
    return len(stale)


def trial_state(trial: Any) -> str:
    """A trial's state as the card writes it."""
    return trial.state.name.lower()


def finished_trials(study: Any) -> int:
    """Trials that count towards the search's number: complete or pruned."""
    return sum(trial_state(t) in FINISHED for t in study.get_trials(deepcopy=False))


def search_prefix(ctx: RunContext, request_id: str) -> str:
    """Where a search keeps its best trial's version files (under the request's checkpoints)."""
    return f"{checkpoint_run_prefix(ctx.settings.checkpoint_prefix, request_id)}search/"


def candidate_prefix(ctx: RunContext, request_id: str, number: int) -> str:
    """Where one trial's version files are kept."""
    return f"{search_prefix(ctx, request_id)}trial-{number:04d}/"


def store_candidate(store: ObjectStore, prefix: str, card: ModelCard, files: Mapping[str, bytes]) -> None:
    """A trial's version files, its card last (the marker that they are complete)."""
    for name, data in files.items():
        store.put_bytes(prefix + name, data)
    store.put_bytes(prefix + CARD_FILE, card.to_bytes(), content_type="application/json")


def load_candidate(store: ObjectStore, prefix: str) -> tuple[ModelCard, dict[str, bytes]] | None:
    """A kept trial's card and files, every sha256 checked; None when incomplete or damaged."""
    try:
        card = ModelCard.model_validate_json(store.get_bytes(prefix + CARD_FILE))
        files = {name: store.get_bytes(prefix + name) for name in card.files}
    except (ObjectNotFound, ValidationError):
        return None
    return None if mismatched_files(card.files, files) else (card, files)


def better(value: float, best: float | None, direction: str) -> bool:
    """Whether a value beats the best so far in the search's direction."""
    return best is None or (value > best if direction == "maximize" else value < best)


def best_value(study: Any) -> float | None:
    """The best complete trial's value, or None before one completes."""
    return study.best_value if any(trial_state(t) == "complete" for t in study.get_trials(deepcopy=False)) else None


def with_trial(report: Callable[..., None], trial: Mapping[str, Any]) -> Callable[..., None]:
    """A status sink that names the trial (number and values) in every status of its run."""

    def report_trial(**fields: Any) -> None:
        metrics = {**(fields.pop("metrics", None) or {}), "trial": dict(trial)}
        message = fields.pop("message", None) or f"search trial {trial['number']}"
        report(**fields, metrics=metrics, message=message)

    return report_trial


def pruning_hook(trial: Any, metric_key: str) -> Callable[[RunState], None]:
    """Report each epoch's dev metric to Optuna; stop the trial there when the pruner says it is hopeless."""
    import optuna  # noqa: PLC0415

    def on_epoch(state: RunState) -> None:
        trial.report(float(state.history[-1]["dev"][metric_key]), state.epoch)
        if trial.should_prune():
            raise optuna.TrialPruned(f"pruned after epoch {state.epoch}")

    return on_epoch


def run_search(request: TrainRequest, ctx: RunContext, *, storage: Any = None,
               train: TrainVersion = train_version) -> ModelCard:
    """Run the search's remaining trials, then publish the best one's version with every trial on its card."""
    plan = plan_search(request)
    redis_url = ctx.settings.infra.redis_url.get_secret_value()
    study = open_study(request, storage if storage is not None else redis_storage(redis_url, request.request_id))
    retried = retry_interrupted_trials(study)
    done = finished_trials(study)
    log.info("search.started", trials=plan.options.trials, finished=done, retried=retried)
    started = time.monotonic()
    while done < plan.options.trials:
        if plan.options.timeout_s is not None and time.monotonic() - started > plan.options.timeout_s:
            log.info("search.timed_out", finished=done)
            break
        run_trial(request, ctx, study, plan, train)
        done = finished_trials(study)
    card = publish_best(request, ctx, study, plan, train)
    if storage is None:
        drop_redis_storage(redis_url, request.request_id)
    return card


def run_trial(request: TrainRequest, ctx: RunContext, study: Any, plan: SearchPlan, train: TrainVersion) -> None:
    """One trial: train with its values, tell Optuna how it ended, keep its version if it is the best so far."""
    import optuna  # noqa: PLC0415
    from optuna.trial import TrialState  # noqa: PLC0415

    trial = study.ask(plan.distributions)
    params = dict(trial.params)
    info = {"number": trial.number, "params": params}
    try:
        run = trial_request(request, params)
    except TrainingRejected:
        study.tell(trial, state=TrialState.FAIL)
        raise
    ctx.report(state="running", message=f"search trial {trial.number} started", metrics={"trial": info})
    trial_ctx = replace(ctx, report=with_trial(ctx.report, info), on_epoch=pruning_hook(trial, plan.metric_key))
    try:
        card, files = train(run, trial_ctx)
    except optuna.TrialPruned:
        study.tell(trial, state=TrialState.PRUNED)
        finish_trial(ctx, study, trial.number, request.request_id, run.request_id)
        return
    except TrainingRejected as exc:
        study.tell(trial, state=TrialState.FAIL)
        raise TrainingRejected(f"search trial {trial.number} {params}: {exc}") from exc
    except BaseException:
        study.tell(trial, state=TrialState.FAIL, skip_if_finished=True)
        study.enqueue_trial(params)  # the next delivery retries these values
        raise
    value = float(card.metrics.dev[plan.metric_key])
    if better(value, best_value(study), plan.options.direction):
        store_candidate(ctx.store, candidate_prefix(ctx, request.request_id, trial.number), card, files)
    study.tell(trial, value)
    finish_trial(ctx, study, trial.number, request.request_id, run.request_id)


def finish_trial(ctx: RunContext, study: Any, number: int, request_id: str, trial_request_id: str) -> None:
    """Report a finished trial, drop its checkpoints and every kept version but the best trial's."""
    trial = study.get_trials(deepcopy=False)[number]
    info = {"number": number, "params": dict(trial.params), "value": trial.value, "state": trial_state(trial)}
    log.info("search.trial_finished", **info)
    ctx.report(state="running", message=f"search trial {number} {info['state']}", metrics={"trial": info})
    discard_checkpoints(ctx.store, ctx.settings, trial_request_id)
    keep = study.best_trial.number if best_value(study) is not None else None
    for key in ctx.store.list_keys(search_prefix(ctx, request_id)):
        if keep is None or not key.startswith(candidate_prefix(ctx, request_id, keep)):
            ctx.store.delete(key)


def card_search(study: Any, plan: SearchPlan, best: int) -> CardSearch:
    """The card's record of the search: every trial with its values, value and state."""
    trials = [CardTrial(number=t.number, params=dict(t.params), value=t.value, state=trial_state(t))
              for t in study.get_trials(deepcopy=False)]
    return CardSearch(metric=plan.options.metric, direction=plan.options.direction, best_trial=best, trials=trials)


def publish_best(request: TrainRequest, ctx: RunContext, study: Any, plan: SearchPlan,
                 train: TrainVersion) -> ModelCard:
    """Publish the best complete trial's version under the search request's id, its card listing every trial."""
    if best_value(study) is None:
        raise TrainingRejected(f"no search trial completed ({finished_trials(study)} pruned or failed)")
    best = study.best_trial
    kept = load_candidate(ctx.store, candidate_prefix(ctx, request.request_id, best.number))
    if kept is None:  # its files were lost: train the winning values once more
        log.warning("search.best_retrained", trial=best.number)
        kept = train(trial_request(request, best.params), ctx)
    card, files = kept
    now = ctx.clock()
    hyperparameters = {**card.hyperparameters, "request_id": request.request_id,
                       "search": plan.options.model_dump(mode="json")}
    final = card.model_copy(update={
        "version": version_name(now, request.request_id), "request_id": request.request_id,
        "created_at": now.astimezone(UTC), "hyperparameters": hyperparameters,
        "search": card_search(study, plan, best.number)})
    log.info("search.best", trial=best.number, value=best.value, params=best.params)
    published = publish_version(ctx, final, files)
    delete_prefix(ctx.store, search_prefix(ctx, request.request_id))
    return published
