"""A ``sensor-anomaly`` run as named phases: config -> data -> model -> pretrain -> fine-tune -> evaluate -> publish.

Published like any version (safetensors weights, ``config.json``, ``labels.json``, a card with every sha256),
with the dev-calibrated decision threshold in the card's ``anomaly`` block. The network is small enough that
a run takes minutes on a CPU, so it does not checkpoint per epoch: a crashed run starts over.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import structlog
import torch
from streamtune_shared.adaptation import AugmentationOptions
from streamtune_shared.anomaly_net import ID2LABEL, AnomalyNet, published_files
from streamtune_shared.datasets import read_dataset
from streamtune_shared.model_card import CardAnomaly, ModelCard
from streamtune_shared.model_registry import version_name
from streamtune_shared.schemas import ShardManifest, TrainRequest

from .anomaly_data import RecordingSplits, WindowSet, build_windows, recordings_from_rows, sensors_of, split_recordings
from .anomaly_metrics import binary_metrics
from .anomaly_training import AnomalyHyperparameters, FinetuneResult, finetune, pretrain, score_windows
from .augmentation import augment_window_set
from .card import build_card, lineage
from .checkpoint import RunState
from .domain import TrainingRejected
from .pipeline import RunContext, describe, publish_version
from .training import pick_device, seed_everything

log = structlog.get_logger(__name__)


def load_recordings(request: TrainRequest, store: Any) -> tuple[RecordingSplits, tuple[str, ...], list[ShardManifest]]:
    """Data phase: the dataset's rows as one recording per device, split by device; the sensors they have."""
    try:
        rows, manifests = read_dataset(store, request.dataset)
    except ValueError as exc:
        raise TrainingRejected(f"dataset {request.dataset!r} cannot be read: {str(exc)[:200]}") from exc
    recordings = recordings_from_rows(rows)
    sensors = sensors_of(recordings)
    if not sensors:
        raise TrainingRejected(f"dataset {request.dataset!r} has no events with readings")
    splits = split_recordings(recordings, request.dev_fraction, request.test_fraction)
    log.info("data.split", devices={k: len(getattr(splits, k)) for k in ("train", "dev", "test")},
             sensors=len(sensors), **splits.sizes())
    return splits, sensors, manifests


def train_network(hp: AnomalyHyperparameters, sensors: tuple[str, ...], splits: RecordingSplits,
                  ctx: RunContext, device: torch.device,
                  augmentation: AugmentationOptions | None = None) -> tuple[AnomalyNet, FinetuneResult]:
    """Model, pretrain and fine-tune phases (``augmentation`` on the labeled train windows); reports each epoch's
    dev metrics on train.status."""
    net = AnomalyNet(hp.net_config(sensors))
    spec = net.config.spec()
    losses = pretrain(net, build_windows(splits.train, spec, 2 * hp.stride).x, hp, device)
    log.info("pretrain.finished", epochs=len(losses), loss=losses[-1] if losses else None)
    train, dev = build_windows(splits.train, spec, hp.stride), build_windows(splits.dev, spec)
    if augmentation is not None:
        train = augment_window_set(train, augmentation, hp.seed)
    if not (train.y == 1).any() or not (dev.labeled_scored().y == 1).any():
        raise TrainingRejected("sensor-anomaly needs anomalous events (label 1) in train and dev recordings")

    def on_epoch(epoch: int, record: dict[str, Any]) -> None:
        ctx.report(state="epoch_end", epoch=epoch, epochs=hp.epochs,
                   metrics={"dev": record["dev"], "train_loss": record["train_loss"], "threshold": record["threshold"]})

    return net, finetune(net, train, dev, hp, device, on_epoch, ctx.should_stop)


def evaluate_test(net: AnomalyNet, result: FinetuneResult, test: WindowSet, device: torch.device) -> dict[str, Any]:
    """Evaluate phase: the threshold's decisions on the test recordings' scored windows."""
    test = test.labeled_scored()
    metrics = binary_metrics(score_windows(net, test.x, device) >= result.threshold, test.y)
    log.info("run.evaluated", best_epoch=result.best_epoch, test_f1=metrics["f1"], test_far=metrics["far"])
    return metrics


def run_anomaly_training(request: TrainRequest, ctx: RunContext) -> ModelCard:
    """The whole sensor-anomaly run; returns the card of the published version."""
    torch.set_num_threads(ctx.settings.num_threads)
    hp = AnomalyHyperparameters.from_request(request)
    seed_everything(hp.seed)
    device = pick_device()
    splits, sensors, manifests = load_recordings(request, ctx.store)
    net, result = train_network(hp, sensors, splits, ctx, device, request.augmentation)
    test = evaluate_test(net, result, build_windows(splits.test, net.config.spec()), device)
    files = published_files(net)
    state = RunState(seed=hp.seed, labels=list(ID2LABEL.values()), epoch=len(result.history),
                     best_metric=result.dev["f1"], best_epoch=result.best_epoch, history=result.history)
    now = ctx.clock()
    card = build_card(request=request, version_id=version_name(now, request.request_id), state=state, test=test,
                      samples_per_s=result.samples_per_s, device=describe(device),
                      lineage_info=lineage(manifests, splits.sizes()), files=files, created_at=now)
    card = card.model_copy(update={"hyperparameters": {**card.hyperparameters, **hp.__dict__}, "anomaly": CardAnomaly(
        threshold=float(np.clip(result.threshold, 0, 1)), false_alarm_cap=hp.false_alarm_cap,
        dev_f1=result.dev["f1"], dev_far=result.dev["far"])})
    log.info("anomaly.threshold", version=card.version, threshold=card.anomaly.threshold)
    return publish_version(ctx, card, files)
