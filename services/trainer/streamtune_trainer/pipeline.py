"""One training run as named phases: config -> data -> model -> train (with resume) -> evaluate -> publish.

Runs in a worker thread: blocking object-store calls are fine here, and progress goes out through
``RunContext.report`` (which hands it to the event loop).
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from datetime import datetime
from pathlib import Path
from typing import Any

import structlog
import torch
from streamtune_shared.datasets import read_dataset
from streamtune_shared.hf_loading import file_sha256
from streamtune_shared.model_card import LABELS_FILE, WEIGHTS_FILE, CardAdapter, ModelCard, pickle_files
from streamtune_shared.model_registry import DEFAULT_MODELS_PREFIX, RegistryLayout, version_name, write_version
from streamtune_shared.schemas import ShardManifest, TrainRequest
from streamtune_shared.storage import ObjectStore
from tqdm import tqdm

from .artifacts import (
    checkpoint_run_prefix,
    delete_prefix,
    load_latest_checkpoint,
    resolve_base_model,
    save_checkpoint,
)
from .augmentation import augment_training_split
from .card import build_card, lineage
from .checkpoint import Checkpoint, RunState, checkpoint_files
from .config import TrainerSettings
from .domain import TOKEN_CLASSIFICATION, DatasetSplits, LabelMap, TrainingRejected, split_dataset
from .encoding import encode_examples
from .evaluation import evaluate
from .methods import AdaptedModel, adapt_model, adapter_summary, dropout_overrides
from .regularization import regularization_status
from .report import attach_report
from .training import (
    Hyperparameters,
    TrainingData,
    TrainingHooks,
    TrainingOutcome,
    count_steps,
    load_model,
    load_tokenizer,
    pick_device,
    seed_everything,
    train_model,
)

log = structlog.get_logger(__name__)

Report = Callable[..., None]
# A dataset as read: its rows and the manifests of the shards they came from.
DatasetRows = tuple[list[dict[str, Any]], list[ShardManifest]]


@dataclass
class RunContext:
    """What a run needs from outside: storage, settings, a status sink, a clock, a stop flag, a test hook.

    ``on_epoch(state)`` sees each finished epoch's state after its checkpoint and status (a search prunes there).
    """

    store: ObjectStore
    settings: TrainerSettings
    report: Report
    clock: Callable[[], datetime]
    should_stop: Callable[[], bool] = lambda: False
    after_epoch: Callable[[int], None] | None = None
    on_epoch: Callable[[RunState], None] | None = None


@dataclass
class LoadedModel:
    """The model phase's result: the model as the method adapted it, and the base it came from."""

    tokenizer: Any
    model: torch.nn.Module
    adapted: AdaptedModel | None = None
    base_sha256: str | None = None

    @property
    def pad_token_id(self) -> int:
        """The id batches are padded with (0 when the tokenizer has none)."""
        return self.tokenizer.pad_token_id or 0


def configure(request: TrainRequest, settings: TrainerSettings) -> tuple[Hyperparameters, torch.device]:
    """Config phase: hyper-parameters from the request, torch threads, seeds and the device."""
    torch.set_num_threads(settings.num_threads)
    hp = Hyperparameters.from_request(request)
    seed_everything(hp.seed)
    return hp, pick_device()


def read_rows(request: TrainRequest, store: ObjectStore) -> DatasetRows:
    """Every row of the request's dataset (its shards sha256-checked); TrainingRejected when it cannot be read."""
    try:
        return read_dataset(store, request.dataset)
    except ValueError as exc:
        raise TrainingRejected(f"dataset {request.dataset!r} cannot be read: {str(exc)[:200]}") from exc


def load_data(request: TrainRequest, store: ObjectStore,
              dataset: DatasetRows | None = None) -> tuple[DatasetSplits, list[ShardManifest]]:
    """Data phase: every shard of the dataset (sha256-checked; read here unless ``dataset`` is the run's read),
    filtered for the task and split."""
    rows, manifests = dataset if dataset is not None else read_rows(request, store)
    splits = split_dataset(rows, request.task, request.dev_fraction, request.test_fraction)
    log.info("data.split", shards=len(manifests), skipped=splits.skipped, **splits.sizes())
    return splits, manifests


def load_base(base_model: str, label_map: LabelMap, store: ObjectStore, workdir: Path,
              base_layers: int | None = None, config_overrides: dict[str, float] | None = None,
              models_prefix: str = DEFAULT_MODELS_PREFIX) -> LoadedModel:
    """Model phase: the base model's tokenizer and weights (its first ``base_layers``), with a head for the labels."""
    folder = resolve_base_model(base_model, store, workdir, models_prefix)
    try:
        tokenizer = load_tokenizer(folder)
        model = load_model(folder, label_map, base_layers, config_overrides)
    except (OSError, ValueError) as exc:
        detail = str(exc) if "base_layers" in str(exc) else type(exc).__name__
        raise TrainingRejected(f"base model {base_model!r} cannot be loaded ({detail})") from exc
    if label_map.task == TOKEN_CLASSIFICATION and not getattr(tokenizer, "is_fast", False):
        raise TrainingRejected(f"base model {base_model!r} has no fast tokenizer (needed for word alignment)")
    weights = folder / WEIGHTS_FILE
    return LoadedModel(tokenizer, model, base_sha256=file_sha256(weights) if weights.is_file() else None)


def adapt_phase(request: TrainRequest, loaded: LoadedModel) -> LoadedModel:
    """Apply the request's method (freeze layers, or add a peft adapter); log what trains."""
    adapted = adapt_model(loaded.model, request)
    log.info("model.adapted", method=adapted.method, trainable=adapted.trainable_parameters,
             total=adapted.total_parameters)
    return LoadedModel(loaded.tokenizer, adapted.model, adapted, loaded.base_sha256)


def encode_splits(splits: DatasetSplits, loaded: LoadedModel, hp: Hyperparameters) -> TrainingData:
    """Tokenize train and dev (dynamic padding happens per batch)."""
    label_map, tokenizer = splits.label_map, loaded.tokenizer
    return TrainingData(
        label_map=label_map,
        train=encode_examples(tokenizer, splits.train, label_map, hp.max_length),
        dev_examples=splits.dev,
        dev=encode_examples(tokenizer, splits.dev, label_map, hp.max_length),
        pad_token_id=loaded.pad_token_id,
    )


class ProgressReporter:
    """Training hooks that report: a tqdm bar on a terminal, 'running' at most every interval, checkpoints."""

    def __init__(self, request: TrainRequest, ctx: RunContext, hp: Hyperparameters, run_prefix: str,
                 total_steps: int, start_step: int) -> None:
        self.request, self.ctx, self.hp, self.total_steps = request, ctx, hp, total_steps
        self.run_prefix = run_prefix
        self.bar = tqdm(total=total_steps, initial=start_step, unit="step", desc=request.model_name,
                        disable=not sys.stderr.isatty())
        self._last_report: float | None = None

    def hooks(self) -> TrainingHooks:
        """The hooks to give the training loop."""
        return TrainingHooks(on_step=self.on_step, on_epoch_end=self.on_epoch_end, should_stop=self.ctx.should_stop)

    def on_step(self, epoch: int, step: int, total: int) -> None:
        """Advance the bar; publish 'running' on the first step and then at most every interval."""
        self.bar.update(1)
        now = time.monotonic()
        if self._last_report is None or now - self._last_report >= self.ctx.settings.status_interval_s:
            self._last_report = now
            self.ctx.report(state="running", epoch=epoch, epochs=self.hp.epochs, step=step, total_steps=total)

    def on_epoch_end(self, state: RunState, snapshot: Callable[[], Checkpoint]) -> None:
        """Checkpoint the epoch, publish its dev metrics, then run the test hook (a simulated crash)."""
        save_checkpoint(self.ctx.store, self.run_prefix, state.epoch, checkpoint_files(snapshot()))
        last = state.history[-1]
        log.info("epoch.finished", epoch=state.epoch, dev_f1=last["dev"]["f1"], best_epoch=state.best_epoch)
        self.ctx.report(state="epoch_end", epoch=state.epoch, epochs=self.hp.epochs, step=state.global_step,
                        total_steps=self.total_steps,
                        metrics={"dev": last["dev"], "train_loss": last["train_loss"],
                                 "samples_per_s": last["samples_per_s"], "best_epoch": state.best_epoch,
                                 **regularization_status(self.request),
                                 **({"privacy": last["privacy"]} if "privacy" in last else {})})
        if self.ctx.on_epoch is not None:
            self.ctx.on_epoch(state)
        if self.ctx.after_epoch is not None:
            self.ctx.after_epoch(state.epoch)

    def close(self) -> None:
        """Close the bar."""
        self.bar.close()


def train_phase(request: TrainRequest, ctx: RunContext, loaded: LoadedModel, data: TrainingData,
                hp: Hyperparameters, device: torch.device) -> TrainingOutcome:
    """Train phase: resume from the newest checkpoint of this request when there is one."""
    run_prefix = checkpoint_run_prefix(ctx.settings.checkpoint_prefix, request.request_id)
    resume = load_latest_checkpoint(ctx.store, run_prefix)
    if resume is not None and resume.state.labels != list(data.label_map.labels):
        # The dataset gained labels since the checkpoint: its head no longer fits, start over.
        log.warning("checkpoint.ignored", epoch=resume.state.epoch, reason="label set changed")
        resume = None
    total = count_steps(len(data.train), hp)
    if resume is not None:
        log.info("run.resumed", epoch=resume.state.epoch)
        ctx.report(state="running", epoch=resume.state.epoch, epochs=hp.epochs, step=resume.state.global_step,
                   total_steps=total, message=f"resumed from epoch {resume.state.epoch}")
    progress = ProgressReporter(request, ctx, hp, run_prefix, total, resume.state.global_step if resume else 0)
    try:
        return train_model(loaded.model, data, hp, device, progress.hooks(), resume)
    finally:
        progress.close()


def evaluate_phase(splits: DatasetSplits, loaded: LoadedModel, outcome: TrainingOutcome, hp: Hyperparameters,
                   device: torch.device) -> dict[str, Any]:
    """Evaluate phase: the best epoch's weights, scored on the test split."""
    loaded.model.load_state_dict(outcome.best_weights)
    encoded = encode_examples(loaded.tokenizer, splits.test, splits.label_map, hp.max_length)
    test = evaluate(loaded.model, splits.test, encoded, splits.label_map, hp.batch_size, loaded.pad_token_id, device)
    log.info("run.evaluated", best_epoch=outcome.state.best_epoch, test_f1=test["f1"])
    return test


def pretrained_files(model: Any, tokenizer: Any, out: Path) -> dict[str, bytes]:
    """``save_pretrained`` of a model and its tokenizer into ``out``, read back by relative path; refuses pickles."""
    model.save_pretrained(out)
    (out / "README.md").unlink(missing_ok=True)  # peft's template card; card.json is the version's card
    tokenizer.save_pretrained(out)
    files = {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}
    if pickled := pickle_files(files):
        raise RuntimeError(f"refusing to publish pickle-based files: {', '.join(pickled)}")
    return files


def version_files(loaded: LoadedModel, label_map: LabelMap, workdir: Path) -> dict[str, bytes]:
    """The files of a version but its card: weights (or the adapter and head), config, tokenizer, labels.json."""
    adapter = loaded.adapted is not None and loaded.adapted.is_adapter
    files = pretrained_files(loaded.adapted.peft_model() if adapter else loaded.model, loaded.tokenizer,
                             workdir / "version")
    files[LABELS_FILE] = json.dumps(label_map.to_json(), indent=2).encode()
    return files


def version_card(request: TrainRequest, ctx: RunContext, files: dict[str, bytes],
                 card_info: dict[str, Any]) -> ModelCard:
    """The card of a run's version, named now."""
    now = ctx.clock()
    return build_card(request=request, version_id=version_name(now, request.request_id), files=files,
                      created_at=now, **card_info)


def publish_version(ctx: RunContext, card: ModelCard, files: dict[str, bytes]) -> ModelCard:
    """Write a version (its training report beside it), then its card; returns the card."""
    card, files = attach_report(card, files)
    write_version(ctx.store, RegistryLayout(ctx.settings.infra.models_prefix), card, files)
    log.info("version.written", version=card.version, files=len(files))
    return card


def run_training(request: TrainRequest, ctx: RunContext) -> ModelCard:
    """The whole run, phase by phase; returns the card of the published version.

    The dataset is read once: with ``dapt`` the base is first adapted to its text (and published); with
    ``search`` every trial runs the phases below on it and the best one is published. Raises TrainingRejected
    for data or configuration problems; anything else is transient.
    """
    if request.task == "sensor-anomaly":
        from .anomaly_pipeline import run_anomaly_training  # noqa: PLC0415 - it builds on this module

        return run_anomaly_training(request, ctx)
    dataset = read_rows(request, ctx.store)
    if request.dapt is not None:
        from .dapt import with_adapted_base  # noqa: PLC0415 - masked-LM pieces only when asked

        request = with_adapted_base(request, ctx, dataset)
    if request.search is not None:
        from .search import run_search  # noqa: PLC0415 - optuna only when asked

        return run_search(request, ctx, train=partial(train_version, dataset=dataset))
    return publish_version(ctx, *train_version(request, ctx, dataset))


def train_version(request: TrainRequest, ctx: RunContext,
                  dataset: DatasetRows | None = None) -> tuple[ModelCard, dict[str, bytes]]:
    """Every phase but publishing: the card (its version named) and files of the run's version."""
    hp, device = configure(request, ctx.settings)
    splits, manifests = load_data(request, ctx.store, dataset)
    with tempfile.TemporaryDirectory(prefix="streamtune-trainer-") as tmp:
        workdir = Path(tmp)
        loaded = load_base(request.base_model, splits.label_map, ctx.store, workdir, request.base_layers,
                           dropout_overrides(request), ctx.settings.infra.models_prefix)
        loaded = adapt_phase(request, loaded)
        data = encode_splits(augment_training_split(splits, request.augmentation, loaded.tokenizer, hp.seed), loaded, hp)
        outcome = train_phase(request, ctx, loaded, data, hp, device)
        test = evaluate_phase(splits, loaded, outcome, hp, device)
        files = version_files(loaded, splits.label_map, workdir)
    card_info = {"state": outcome.state, "test": test, "samples_per_s": outcome.samples_per_s,
                 "device": describe(device), "lineage_info": lineage(manifests, splits.sizes()),
                 "resumed_from_epoch": outcome.resumed_from_epoch, "adapter": card_adapter(request, loaded),
                 "privacy": outcome.privacy}
    return version_card(request, ctx, files, card_info), files


def card_adapter(request: TrainRequest, loaded: LoadedModel) -> CardAdapter | None:
    """The card's adapter block of an adapter version (None for full-weight versions)."""
    adapted = loaded.adapted
    if adapted is None or not adapted.is_adapter:
        return None
    return CardAdapter(method=adapted.method, peft_config=adapter_summary(adapted), base=request.base_model,
                       base_sha256=loaded.base_sha256, base_layers=request.base_layers,
                       trainable_parameters=adapted.trainable_parameters, total_parameters=adapted.total_parameters)


def discard_checkpoints(store: ObjectStore, settings: TrainerSettings, request_id: str) -> int:
    """Delete a request's checkpoints (after its version is published)."""
    return delete_prefix(store, checkpoint_run_prefix(settings.checkpoint_prefix, request_id))


def describe(device: torch.device) -> str:
    """The device as the card names it."""
    if device.type == "cuda":
        return f"cuda:{torch.cuda.get_device_name(device)}"
    return f"cpu ({torch.get_num_threads()} threads)"

