"""The hyper-parameter search with a fake training run: space -> Optuna, pruning, the winner, the card, resuming."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from streamtune_shared.model_card import CardMetrics, ModelCard
from streamtune_shared.model_registry import file_checksums, version_name
from streamtune_shared.schemas import TrainRequest
from streamtune_shared.settings import InfraSettings
from streamtune_shared.testing import InMemoryObjectStore
from streamtune_trainer.checkpoint import RunState
from streamtune_trainer.config import TrainerSettings
from streamtune_trainer.domain import TrainingRejected
from streamtune_trainer.pipeline import RunContext
from streamtune_trainer.search import run_search
from streamtune_trainer.search_space import plan_search, trial_request

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def search_request(space: dict, **fields) -> TrainRequest:
    search = {"space": space, "trials": 3, **fields.pop("search", {})}
    return TrainRequest(request_id="search-1", model_name="ner", task="token-classification", dataset="notes",
                        search=search, **fields)


class FakeTraining:
    """A training run whose dev F1 per epoch is ``curve(learning_rate)``; records the epochs it ran."""

    def __init__(self, curve, crash_on_call: int | None = None) -> None:
        self.curve, self.crash_on_call = curve, crash_on_call
        self.epochs_run: list[tuple[float, int]] = []
        self.requests: list[TrainRequest] = []

    def __call__(self, request: TrainRequest, ctx: RunContext):
        self.requests.append(request)
        if self.crash_on_call is not None and len(self.requests) == self.crash_on_call:
            raise RuntimeError("simulated crash")
        state = RunState(seed=request.seed)
        for epoch, f1 in enumerate(self.curve(request.learning_rate), start=1):
            state.epoch = epoch
            state.history.append({"epoch": epoch, "train_loss": 1.0, "dev": {"f1": f1, "loss": 1 - f1}})
            if f1 > state.best_metric:
                state.best_metric, state.best_epoch = f1, epoch
            self.epochs_run.append((request.learning_rate, epoch))
            ctx.report(state="epoch_end", epoch=epoch, metrics={"dev": state.history[-1]["dev"]})
            if ctx.on_epoch is not None:
                ctx.on_epoch(state)
        best = state.history[state.best_epoch - 1]
        files = {"model.safetensors": f"weights lr={request.learning_rate}".encode(), "config.json": b"{}",
                 "labels.json": b"{}"}
        card = ModelCard(model_name=request.model_name, version=version_name(ctx.clock(), request.request_id),
                         task=request.task, dataset=request.dataset, request_id=request.request_id,
                         hyperparameters=request.model_dump(mode="json"),
                         metrics=CardMetrics(dev_by_epoch=state.history, best_epoch=state.best_epoch,
                                             dev=best["dev"]),
                         files=file_checksums(files), created_at=ctx.clock())
        return card, files


@pytest.fixture
def ctx():
    statuses: list[dict] = []
    settings = TrainerSettings(infra=InfraSettings(s3_access_key="k", s3_secret_key="s"))
    context = RunContext(store=InMemoryObjectStore(), settings=settings, report=lambda **f: statuses.append(f),
                         clock=lambda: NOW)
    context.statuses = statuses  # type: ignore[attr-defined]
    return context


def enqueued_study(storage, request: TrainRequest, learning_rates: list[float]) -> None:
    """Fix the trials' values (the sampler's choice is not what these tests are about)."""
    study = optuna.create_study(storage=storage, study_name=f"search-{request.request_id}",
                                direction=request.search.direction)
    for lr in learning_rates:
        study.enqueue_trial({"learning_rate": lr})


def published_card(store: InMemoryObjectStore, card: ModelCard) -> dict:
    return json.loads(store.get_bytes(f"models/ner/{card.version}/card.json"))


def test_the_space_becomes_optuna_distributions_and_lora_values_go_into_the_lora_block():
    request = search_request({"learning_rate": {"low": 1e-4, "high": 1e-2, "log": True},
                              "lora.r": {"low": 4, "high": 16}, "lora.dropout": {"choices": [0.0, 0.1]}},
                             method="lora", lora={"alpha": 32})
    plan = plan_search(request)
    assert plan.distributions == {"learning_rate": FloatDistribution(1e-4, 1e-2, log=True),
                                  "lora.r": IntDistribution(4, 16), "lora.dropout": CategoricalDistribution([0.0, 0.1])}
    trial = trial_request(request, {"learning_rate": 2e-3, "lora.r": 12, "lora.dropout": 0.0})
    assert (trial.learning_rate, trial.lora.r, trial.lora.dropout, trial.lora.alpha) == (2e-3, 12, 0.0, 32)
    assert trial.search is None and trial.request_id.startswith("search-1.trial-")
    assert trial_request(request, {"learning_rate": 2e-3, "lora.r": 12, "lora.dropout": 0.0}).request_id == \
        trial.request_id


@pytest.mark.parametrize(("space", "fields", "reason"), [
    ({"learning_rate": {"low": 1e-4, "high": 1e-2}}, {"search": {"metric": "dev_bleu"}}, "unknown search metric"),
    ({"learning_rate": {"low": 1e-4, "high": 1e-2}}, {"search": {"metric": "dev_accuracy"}}, "use one of dev_f1"),
    ({"freeze.layers": {"low": 1, "high": 9}}, {"method": "freeze"}, None),
])
def test_a_search_that_cannot_run_is_rejected_with_its_reason(space, fields, reason):
    request = search_request(space, **fields)
    if reason is None:
        plan_search(request)  # freeze.layers beyond the base's layers is the trial's rejection, not the plan's
        return
    with pytest.raises(TrainingRejected, match=reason):
        plan_search(request)


def test_a_trial_the_pruner_finds_hopeless_stops_after_its_first_epoch(ctx):
    storage = optuna.storages.InMemoryStorage()
    request = search_request({"learning_rate": {"low": 1e-5, "high": 1e-1, "log": True}}, epochs=3)
    enqueued_study(storage, request, [1e-3, 2e-3, 1e-1])
    curves = {1e-3: [0.5, 0.6, 0.7], 2e-3: [0.55, 0.65, 0.75], 1e-1: [0.1, 0.9, 0.95]}
    training = FakeTraining(lambda lr: curves[lr])

    card = run_search(request, ctx, storage=storage, train=training)

    assert [epoch for lr, epoch in training.epochs_run if lr == 1e-1] == [1]
    trials = published_card(ctx.store, card)["search"]["trials"]
    assert [t["state"] for t in trials] == ["complete", "complete", "pruned"]
    assert trials[2]["value"] == pytest.approx(0.1)


@pytest.mark.parametrize(("metric", "direction", "winner"), [("dev_f1", "maximize", 2e-3),
                                                             ("dev_loss", "minimize", 2e-3),
                                                             ("dev_f1", "minimize", 1e-4)])
def test_the_best_trial_by_the_search_direction_is_the_one_published(ctx, metric, direction, winner):
    storage = optuna.storages.InMemoryStorage()
    request = search_request({"learning_rate": {"low": 1e-5, "high": 1e-1, "log": True}}, epochs=2,
                             search={"metric": metric, "direction": direction, "pruning": False})
    enqueued_study(storage, request, [1e-3, 2e-3, 1e-4])
    curves = {1e-3: [0.5, 0.6], 2e-3: [0.7, 0.8], 1e-4: [0.2, 0.3]}

    card = run_search(request, ctx, storage=storage, train=FakeTraining(lambda lr: curves[lr]))

    stored = published_card(ctx.store, card)
    assert stored["hyperparameters"]["learning_rate"] == winner
    assert ctx.store.get_bytes(f"models/ner/{card.version}/model.safetensors") == f"weights lr={winner}".encode()
    assert stored["request_id"] == "search-1" and card.version == version_name(NOW, "search-1")
    assert stored["search"]["trials"][stored["search"]["best_trial"]]["params"] == {"learning_rate": winner}
    # Only the winner was published, and nothing of the trials is left behind.
    assert [k for k in ctx.store.list_keys("models/") if k.endswith("card.json")] == \
        [f"models/ner/{card.version}/card.json"]
    assert ctx.store.list_keys("checkpoints/") == []


def test_the_card_lists_every_trial_and_the_status_names_each_trial(ctx):
    storage = optuna.storages.InMemoryStorage()
    request = search_request({"learning_rate": {"low": 1e-4, "high": 1e-2, "log": True},
                              "weight_decay": {"choices": [0.0, 0.01]}}, epochs=2, search={"pruning": False})
    training = FakeTraining(lambda lr: [0.3, 0.4 + lr])

    card = run_search(request, ctx, storage=storage, train=training)

    trials = published_card(ctx.store, card)["search"]["trials"]
    assert [t["number"] for t in trials] == [0, 1, 2] and {t["state"] for t in trials} == {"complete"}
    for trial, run in zip(trials, training.requests, strict=True):
        assert trial["params"] == {"learning_rate": run.learning_rate, "weight_decay": run.weight_decay}
        assert trial["value"] == pytest.approx(0.4 + run.learning_rate)
    epoch_ends = [s for s in ctx.statuses if s["state"] == "epoch_end"]
    assert [s["metrics"]["trial"]["number"] for s in epoch_ends] == [0, 0, 1, 1, 2, 2]
    assert epoch_ends[0]["metrics"]["trial"]["params"] == trials[0]["params"]


def test_a_search_taken_over_after_a_crash_does_not_repeat_finished_trials(ctx):
    storage = optuna.storages.InMemoryStorage()
    request = search_request({"learning_rate": {"low": 1e-5, "high": 1e-1, "log": True}}, epochs=2,
                             search={"pruning": False})
    enqueued_study(storage, request, [1e-3, 2e-3, 3e-3])
    curves = {1e-3: [0.5, 0.6], 2e-3: [0.7, 0.8], 3e-3: [0.1, 0.2]}
    first = FakeTraining(lambda lr: curves[lr], crash_on_call=2)
    with pytest.raises(RuntimeError, match="simulated crash"):
        run_search(request, ctx, storage=storage, train=first)

    second = FakeTraining(lambda lr: curves[lr])
    card = run_search(request, ctx, storage=storage, train=second)

    # Trial 0 is not run again; the crashed trial's values are queued after the ones already waiting.
    assert [r.learning_rate for r in second.requests] == [3e-3, 2e-3]
    assert second.requests[1].request_id == first.requests[1].request_id  # the retry resumes its checkpoint
    trials = published_card(ctx.store, card)["search"]["trials"]
    assert [(t["params"]["learning_rate"], t["state"]) for t in trials] == [
        (1e-3, "complete"), (2e-3, "fail"), (3e-3, "complete"), (2e-3, "complete")]
    assert card.hyperparameters["learning_rate"] == 2e-3


def test_a_trial_left_running_by_a_dead_trainer_is_retried_with_its_values(ctx):
    storage = optuna.storages.InMemoryStorage()
    request = search_request({"learning_rate": {"low": 1e-5, "high": 1e-1, "log": True}}, epochs=1,
                             search={"pruning": False, "trials": 2})
    enqueued_study(storage, request, [1e-3, 2e-3])
    study = optuna.load_study(study_name="search-search-1", storage=storage)
    # The dead trainer's trial: running forever unless the next delivery retries it.
    study.ask({"learning_rate": FloatDistribution(1e-5, 1e-1, log=True)})

    training = FakeTraining(lambda lr: [lr * 100])
    card = run_search(request, ctx, storage=storage, train=training)

    assert [r.learning_rate for r in training.requests] == [2e-3, 1e-3]
    assert [t.state for t in card.search.trials] == ["fail", "complete", "complete"]


def test_a_search_where_no_trial_completes_is_rejected(ctx):
    storage = optuna.storages.InMemoryStorage()
    request = search_request({"freeze.layers": {"low": 10, "high": 12}}, method="freeze")

    def rejecting(request, ctx):
        raise TrainingRejected("freeze.layers 11 is more than the base model's 6 layers")

    with pytest.raises(TrainingRejected, match="search trial 0 .*more than the base model"):
        run_search(request, ctx, storage=storage, train=rejecting)
