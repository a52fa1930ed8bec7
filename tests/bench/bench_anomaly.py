"""Sensor anomaly detection on SKAB: streamtune's sensor-anomaly model vs Hotelling T² and gradient boosting.

    .venv/bin/python tests/bench/bench_anomaly.py [--skab ../shared/data/skab] [--folds 5] [--out bench-results/anomaly.json]
    .venv/bin/python tests/bench/bench_anomaly.py --threads 1 --seeds 42,1,2   # also the spread over seeds

SKAB's protocol: each recording (file) is one device; its first 400 rows calibrate (normalization, and
T²'s covariance) and the rest are scored. Recordings are split into folds by file: each fold's files are
scored by models trained on the other files (one more file of those picks the threshold: best F1 with
FAR <= the cap). The anomaly-free recording only feeds self-supervised pretraining. F1, FAR % and MAR %
are over every scored row of every fold, the same rows for the three detectors, in one run.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from datetime import datetime
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "services" / "trainer"))

from streamtune_shared.anomaly_net import AnomalyNet  # noqa: E402
from streamtune_shared.sensor_windows import Calibration, reading_matrix  # noqa: E402
from streamtune_trainer.anomaly_data import Recording, build_windows, sensors_of  # noqa: E402
from streamtune_trainer.anomaly_metrics import binary_metrics, choose_threshold  # noqa: E402
from streamtune_trainer.anomaly_training import AnomalyHyperparameters, finetune, pretrain, score_windows  # noqa: E402

SENSORS = ("Accelerometer1RMS", "Accelerometer2RMS", "Current", "Pressure", "Temperature", "Thermocouple",
           "Voltage", "Volume Flow RateRMS")


def read_skab(folder: Path) -> list[Recording]:
    """Every SKAB CSV under folder as one recording (device = its path); anomaly-free has no labels."""
    recordings = []
    for path in sorted(folder.rglob("*.csv")):
        lines = path.read_text().splitlines()
        header = lines[0].split(";")
        rows = [dict(zip(header, line.split(";"), strict=True)) for line in lines[1:] if line.strip()]
        rows.sort(key=lambda r: datetime.fromisoformat(r["datetime"]))
        readings = tuple({s: float(r[s]) for s in SENSORS} for r in rows)
        labels = np.array([int(float(r["anomaly"])) if "anomaly" in r else -1 for r in rows], np.int64)
        recordings.append(Recording(str(path.relative_to(folder)), readings, labels))
    return recordings


def folds_of(labeled: list[Recording], k: int) -> list[list[Recording]]:
    """k folds of whole files, dealt round-robin within each folder so every fault type is spread out."""
    ordered = sorted(labeled, key=lambda r: (r.device_id.split("/")[0], int(Path(r.device_id).stem)))
    return [ordered[i::k] for i in range(k)]


def window_features(x: np.ndarray) -> np.ndarray:
    """The baselines' features of normalized windows: last value, mean, std, min, max, last-minus-first."""
    return np.concatenate([x[:, -1], x.mean(1), x.std(1), x.min(1), x.max(1), x[:, -1] - x[:, 0]], axis=1)


def hotelling_scores(recordings: list[Recording], window: int, calibration: int) -> np.ndarray:
    """T² of each row's smoothed, normalized readings against its own file's calibration covariance."""
    out = []
    for r in recordings:
        rows = reading_matrix(r.readings, SENSORS)
        z = Calibration.of(rows[:calibration]).normalize(rows, 1e6).astype(np.float64)
        kernel = np.ones(min(window, 5)) / min(window, 5)  # a short moving average, as SKAB's T² notebook smooths
        z = np.stack([np.convolve(z[:, j], kernel, mode="full")[:len(z)] for j in range(z.shape[1])], axis=1)
        calib = z[:calibration]
        inverse = np.linalg.pinv(np.cov(calib, rowvar=False))
        centered = z - calib.mean(0)
        out.append(np.einsum("ij,jk,ik->i", centered, inverse, centered)[calibration:])
    return np.concatenate(out)


def run_fold(train: list[Recording], dev: list[Recording], test: list[Recording], free: list[Recording],
             hp: AnomalyHyperparameters, device: torch.device) -> dict[str, np.ndarray]:
    """Scores of the three detectors on the test files' scored rows, thresholds chosen on dev."""
    from sklearn.ensemble import HistGradientBoostingClassifier  # noqa: PLC0415

    spec = hp.net_config(SENSORS).spec()
    train_w, dev_w = build_windows(train, spec, hp.stride), build_windows(dev, spec).labeled_scored()
    test_w = build_windows(test, spec).labeled_scored()
    torch.manual_seed(hp.seed)
    net = AnomalyNet(hp.net_config(SENSORS))
    started = time.perf_counter()
    pretrain(net, build_windows([*train, *free], spec, 2 * hp.stride).x, hp, device)
    result = finetune(net, train_w, dev_w, hp, device)
    train_seconds = time.perf_counter() - started
    model_scores = score_windows(net, test_w.x, device)
    model_pred = model_scores >= result.threshold

    labeled = train_w.y >= 0
    gbm = HistGradientBoostingClassifier(max_iter=200, random_state=hp.seed)
    gbm.fit(window_features(train_w.x[labeled]), train_w.y[labeled])
    gbm_threshold, _ = choose_threshold(gbm.predict_proba(window_features(dev_w.x))[:, 1], dev_w.y, hp.false_alarm_cap)
    gbm_pred = gbm.predict_proba(window_features(test_w.x))[:, 1] >= gbm_threshold

    t2_threshold, _ = choose_threshold(hotelling_scores(dev, hp.window, spec.calibration_events), dev_w.y,
                                       hp.false_alarm_cap)
    t2_pred = hotelling_scores(test, hp.window, spec.calibration_events) >= t2_threshold
    return {"labels": test_w.y, "model": model_pred, "gradient_boosting": gbm_pred, "hotelling_t2": t2_pred,
            "model_threshold": np.array([result.threshold]), "model_best_epoch": np.array([result.best_epoch]),
            "model_train_seconds": np.array([train_seconds]),
            "model_scores": model_scores, "model_dev_scores": score_windows(net, dev_w.x, device), "dev_labels": dev_w.y}


def summary(predicted: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """F1, FAR % and MAR % (SKAB's outlier-detection figures)."""
    m = binary_metrics(predicted, labels)
    return {"f1": round(m["f1"], 4), "far_pct": round(100 * m["far"], 2), "mar_pct": round(100 * m["mar"], 2)}


def _override(item: str) -> tuple[str, object]:
    name, _, value = item.partition("=")
    kind = type(getattr(AnomalyHyperparameters(), name))
    if kind is bool:
        return name, value.lower() in ("1", "true", "yes")
    return name, kind(float(value)) if kind is int else kind(value)


def run_protocol(folds: list[list[Recording]], free: list[Recording], hp: AnomalyHyperparameters,
                 only: set[int]) -> dict[str, list[np.ndarray]]:
    """Every fold (or only those in ``only``) with one set of hyperparameters: each fold's arrays by name."""
    parts: dict[str, list[np.ndarray]] = {}
    for i, test in enumerate(folds):
        if only and i not in only:
            continue
        rest = [r for j, fold in enumerate(folds) if j != i for r in fold]
        dev = rest[i::max(len(rest) // 4, 1)][:4]  # about a fifth of the other files pick the thresholds
        train = [r for r in rest if r not in dev]
        result = run_fold(train, dev, test, free, hp, torch.device("cpu"))
        for key, value in result.items():
            parts.setdefault(key, []).append(value)
        print(f"seed {hp.seed} fold {i + 1}/{len(folds)}: model {summary(result['model'], result['labels'])}, "
              f"trained in {result['model_train_seconds'][0]:.1f} s", flush=True)
    return parts


def figures_of(parts: dict[str, list[np.ndarray]]) -> dict[str, dict[str, float]]:
    """The three detectors' F1, FAR % and MAR % over every scored row of the folds run."""
    labels = np.concatenate(parts["labels"])
    return {name: summary(np.concatenate(parts[name]), labels) for name in ("model", "hotelling_t2", "gradient_boosting")}


def seed_spread(per_seed: list[dict[str, object]]) -> dict[str, dict[str, float]]:
    """Mean, min and max of each detector's F1 over the seeds run (one seed's figure moves by about 0.01)."""
    out = {}
    for name in ("model", "hotelling_t2", "gradient_boosting"):
        f1 = np.array([run[name]["f1"] for run in per_seed])
        out[name] = {"f1_mean": round(float(f1.mean()), 4), "f1_min": float(f1.min()), "f1_max": float(f1.max())}
    return out


def main() -> None:
    """Run every fold (for each seed), print the side-by-side table and write the JSON result."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--skab", type=Path, default=ROOT.parent / "shared" / "data" / "skab")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=ROOT / "bench-results" / "anomaly.json")
    parser.add_argument("--only-folds", type=str, default="",
                        help="quick look: run only these folds (e.g. '0,2'); the reported figure is every fold")
    parser.add_argument("--seeds", type=str, default="",
                        help="also run the whole protocol with these seeds (e.g. '42,1,2') and report the spread; "
                             "the headline figures stay the first seed's (the default: the hyperparameters' seed)")
    parser.add_argument("--scores", type=Path, default=None, help="also save every fold's raw scores (.npz)")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                        help="override a hyperparameter default (for comparisons; the figure uses the defaults)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    hp = dataclasses.replace(AnomalyHyperparameters(), **dict(_override(item) for item in args.set))
    recordings = read_skab(args.skab)
    assert sensors_of(recordings) == tuple(sorted(SENSORS))
    labeled = [r for r in recordings if r.labeled]
    free = [r for r in recordings if not r.labeled]
    folds = folds_of(labeled, args.folds)
    started = time.perf_counter()
    only = {int(i) for i in args.only_folds.split(",") if i}
    seeds = [int(s) for s in args.seeds.split(",") if s] or [hp.seed]
    runs = [run_protocol(folds, free, dataclasses.replace(hp, seed=seed), only) for seed in seeds]
    parts, figures = runs[0], figures_of(runs[0])
    per_seed = [{"seed": seed, **figures_of(run)} for seed, run in zip(seeds, runs, strict=True)]
    labels = np.concatenate(parts["labels"])
    out = {"benchmark": "anomaly", "dataset": "SKAB v0.9 developer portion (24 labeled files + anomaly-free)",
           "protocol": "first 400 rows of each file calibrate; folds by file; thresholds on dev files "
                       f"(best F1 with FAR <= {hp.false_alarm_cap:.0%})",
           "folds": args.folds, "only_folds": sorted(only), "scored_rows": int(len(labels)), "anomalous_rows": int(labels.sum()),
           "hyperparameters": {**hp.__dict__, "seed": seeds[0]}, "seconds": round(time.perf_counter() - started, 1),
           "thresholds": [float(t[0]) for t in parts["model_threshold"]],
           "model_train_seconds": [round(float(t[0]), 1) for t in parts["model_train_seconds"]], **figures}
    if len(seeds) > 1:
        out |= {"per_seed": per_seed, "seed_spread": seed_spread(per_seed)}
    print(json.dumps(figures, indent=2))
    if len(seeds) > 1:
        print(json.dumps(out["seed_spread"], indent=2))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    if args.scores is not None:
        np.savez_compressed(args.scores, **{f"{key}_{i}": v for key, values in parts.items() for i, v in enumerate(values)})


if __name__ == "__main__":
    main()
