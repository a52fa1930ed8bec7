"""A ``sensor-anomaly`` run as named phases: config -> data -> model -> pretrain -> fine-tune -> calibrate -> evaluate
-> publish.

Published like any version (safetensors weights, ``config.json``, ``labels.json``, a card with every sha256),
with the calibrated decision threshold in the card's ``anomaly`` block. With fewer than ``CALIBRATION_FOLDS`` dev
recordings the threshold is cross-fitted: held-out scores of the train recordings too, each group scored by a
network trained without it. The network is small enough that a run takes minutes on a CPU, so it does not
checkpoint per epoch: a crashed run starts over.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import structlog
import torch
from streamtune_shared.adaptation import AugmentationOptions
from streamtune_shared.anomaly_net import ID2LABEL, AnomalyNet, published_files
from streamtune_shared.model_card import CardAnomaly, ModelCard
from streamtune_shared.model_registry import version_name
from streamtune_shared.schemas import ShardManifest, TrainRequest

from .anomaly_data import (
    RecordingSplits,
    WindowSet,
    build_windows,
    cross_fit_splits,
    recordings_from_rows,
    sensors_of,
    split_recordings,
)
from .anomaly_metrics import binary_metrics, choose_threshold
from .anomaly_training import AnomalyHyperparameters, FinetuneResult, finetune, pretrain, score_windows
from .augmentation import augment_window_set
from .card import build_card, lineage
from .checkpoint import RunState
from .domain import TrainingRejected
from .pipeline import RunContext, describe, publish_version, read_rows
from .training import pick_device, seed_everything

log = structlog.get_logger(__name__)
CALIBRATION_FOLDS = 5  # one dev recording's threshold swung the demo's FAR from 4 % to 46 % over pseudonym keys


def load_recordings(request: TrainRequest, store: Any) -> tuple[RecordingSplits, tuple[str, ...], list[ShardManifest]]:
    """Data phase: the dataset's rows as one recording per device, split by device; the sensors they have."""
    rows, manifests = read_rows(request, store)
    recordings = recordings_from_rows(rows)
    sensors = sensors_of(recordings)
    if not sensors:
        raise TrainingRejected(f"dataset {request.dataset!r} has no events with readings")
    splits = split_recordings(recordings, request.dev_fraction, request.test_fraction)
    log.info("data.split", devices={k: len(getattr(splits, k)) for k in ("train", "dev", "test")},
             sensors=len(sensors), **splits.sizes())
    return splits, sensors, manifests


def train_network(hp: AnomalyHyperparameters, sensors: tuple[str, ...], splits: RecordingSplits,
                  ctx: RunContext, device: torch.device, augmentation: AugmentationOptions | None = None,
                  report: bool = True) -> tuple[AnomalyNet, FinetuneResult]:
    """Model, pretrain and fine-tune phases (``augmentation`` on the labeled train windows); reports each epoch's
    dev metrics on train.status when ``report``."""
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

    return net, finetune(net, train, dev, hp, device, on_epoch if report else None, ctx.should_stop)


def calibrate_threshold(hp: AnomalyHyperparameters, sensors: tuple[str, ...], splits: RecordingSplits,
                        net: AnomalyNet, ctx: RunContext, device: torch.device,
                        augmentation: AugmentationOptions | None = None) -> tuple[float, dict[str, float]]:
    """Calibrate phase: the best F1 under the FAR cap on held-out scores, the dev split's by ``net``; with fewer than
    ``CALIBRATION_FOLDS`` dev recordings, also each other fold's (``cross_fit_splits``) by a network trained without
    it, so that no single recording sets the threshold."""
    spec = net.config.spec()
    dev = build_windows(splits.dev, spec).labeled_scored()
    scores, labels = [score_windows(net, dev.x, device)], [dev.y]
    folds = cross_fit_splits(splits, CALIBRATION_FOLDS) if len(splits.dev) < CALIBRATION_FOLDS else []
    for fold in folds:
        held = build_windows(fold.dev, spec).labeled_scored()
        if ctx.should_stop() or not (held.y == 1).any():  # a fold without anomalies cannot pick its epoch
            continue
        seed_everything(hp.seed)
        fold_net, _ = train_network(hp, sensors, fold, ctx, device, augmentation, report=False)
        scores.append(score_windows(fold_net, held.x, device))
        labels.append(held.y)
    threshold, metrics = choose_threshold(np.concatenate(scores), np.concatenate(labels), hp.false_alarm_cap)
    log.info("anomaly.calibrated", folds=len(scores), threshold=threshold, dev_f1=metrics["f1"], dev_far=metrics["far"])
    return threshold, metrics


def evaluate_test(net: AnomalyNet, threshold: float, test: WindowSet, device: torch.device) -> dict[str, Any]:
    """Evaluate phase: the threshold's decisions on the test recordings' scored windows."""
    test = test.labeled_scored()
    metrics = binary_metrics(score_windows(net, test.x, device) >= threshold, test.y)
    log.info("run.evaluated", test_f1=metrics["f1"], test_far=metrics["far"])
    return metrics


def run_anomaly_training(request: TrainRequest, ctx: RunContext) -> ModelCard:
    """The whole sensor-anomaly run; returns the card of the published version."""
    torch.set_num_threads(ctx.settings.num_threads)
    hp = AnomalyHyperparameters.from_request(request)
    seed_everything(hp.seed)
    device = pick_device()
    splits, sensors, manifests = load_recordings(request, ctx.store)
    net, result = train_network(hp, sensors, splits, ctx, device, request.augmentation)
    log.info("finetune.finished", best_epoch=result.best_epoch, dev_f1=result.dev["f1"])
    threshold, calibrated = calibrate_threshold(hp, sensors, splits, net, ctx, device, request.augmentation)
    test = evaluate_test(net, threshold, build_windows(splits.test, net.config.spec()), device)
    files = published_files(net)
    state = RunState(seed=hp.seed, labels=list(ID2LABEL.values()), epoch=len(result.history),
                     best_metric=result.dev["f1"], best_epoch=result.best_epoch, history=result.history)
    now = ctx.clock()
    card = build_card(request=request, version_id=version_name(now, request.request_id), state=state, test=test,
                      samples_per_s=result.samples_per_s, device=describe(device),
                      lineage_info=lineage(manifests, splits.sizes()), files=files, created_at=now)
    card = card.model_copy(update={"hyperparameters": {**card.hyperparameters, **hp.__dict__}, "anomaly": CardAnomaly(
        threshold=float(np.clip(threshold, 0, 1)), false_alarm_cap=hp.false_alarm_cap,
        dev_f1=calibrated["f1"], dev_far=calibrated["far"])})
    log.info("anomaly.threshold", version=card.version, threshold=card.anomaly.threshold)
    return publish_version(ctx, card, files)
