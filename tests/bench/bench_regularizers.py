"""Benchmark (not a test): dev entity F1 of MiniLM on an NCBI-disease subset with augmentation and FGM on and off.

    .venv/bin/python tests/bench/bench_regularizers.py --max-train-sentences 600 --epochs 2 \
        --out bench-results/bench_regularizers.json

Each configuration trains the same base, on the same sentences, with the same seed and the full method's
defaults (TrainRequest -> Hyperparameters.from_request), through the trainer's own phases: augmentation of
the training split (augment_training_split), encoding, train_model (FGM inside its steps) and the dev
evaluation after each epoch. Only the regularizer differs, so the F1 differences are theirs (and the
seed's: one seed per configuration, a 600-sentence subset moves by a point or two between seeds).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import streamtune_trainer  # noqa: F401 - sets HF_HUB_OFFLINE before transformers is imported
from bench_training import ncbi_parser, read_conll
from benchlib import quiet_training_logs, write_result
from streamtune_shared.adaptation import AdversarialOptions, AugmentationOptions
from streamtune_shared.schemas import TrainRequest
from streamtune_shared.testing import InMemoryObjectStore
from streamtune_trainer.artifacts import MINILM
from streamtune_trainer.augmentation import augment_training_split
from streamtune_trainer.card import library_versions
from streamtune_trainer.domain import TOKEN_CLASSIFICATION, DatasetSplits, build_label_map
from streamtune_trainer.pipeline import adapt_phase, describe, encode_splits, load_base
from streamtune_trainer.training import Hyperparameters, TrainingHooks, pick_device, seed_everything, train_model

REPO = Path(__file__).resolve().parents[2]
CONFIGS: dict[str, dict[str, Any]] = {
    "off": {},
    "augmentation": {"augmentation": AugmentationOptions()},
    "fgm": {"adversarial": AdversarialOptions(method="fgm")},
    "augmentation+fgm": {"augmentation": AugmentationOptions(), "adversarial": AdversarialOptions(method="fgm")},
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = ncbi_parser(__doc__, "bench_regularizers.json", epochs=2, max_train=600)
    parser.add_argument("--configs", nargs="+", choices=list(CONFIGS), default=["off", "augmentation", "fgm"],
                        help="which configurations (augmentation+fgm is opt-in: it costs about 4 baselines)")
    parser.add_argument("--fgm-epsilon", type=float, default=AdversarialOptions().epsilon,
                        help="FGM's epsilon (the request's default unless given)")
    return parser.parse_args(argv)


def run_config(name: str, splits: DatasetSplits, args: argparse.Namespace) -> dict[str, Any]:
    """Train one configuration from the base; its dev F1 per epoch, samples/s and wall time."""
    options = {key: value.model_copy(update={"epsilon": args.fgm_epsilon}) if key == "adversarial" else value
               for key, value in CONFIGS[name].items()}
    request = TrainRequest(model_name="bench", task=TOKEN_CLASSIFICATION, dataset="ncbi-disease", epochs=args.epochs,
                           batch_size=args.batch_size, seed=args.seed, early_stopping_patience=None, **options)
    hp = Hyperparameters.from_request(request)
    seed_everything(hp.seed)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-regularizers-") as tmp:  # MiniLM is packaged: nothing is read
        loaded = adapt_phase(request, load_base(MINILM, splits.label_map, InMemoryObjectStore(), Path(tmp)))
    train_splits = augment_training_split(splits, request.augmentation, loaded.tokenizer, hp.seed)
    data = encode_splits(train_splits, loaded, hp)
    outcome = train_model(loaded.model, data, hp, pick_device(), TrainingHooks())
    epochs = [{"epoch": h["epoch"], "dev_f1": h["dev"]["f1"], "dev_precision": h["dev"]["precision"],
               "dev_recall": h["dev"]["recall"], "train_loss": h["train_loss"],
               **({"adversarial_loss": h["adversarial_loss"]} if "adversarial_loss" in h else {})}
              for h in outcome.state.history]
    result = {"config": name, "train_examples": len(data.train), "best_dev_f1": outcome.state.best_metric,
              "best_epoch": outcome.state.best_epoch, "epochs": epochs, "train_samples_per_s": outcome.samples_per_s,
              "wall_s": time.perf_counter() - started,
              "options": {key: value.model_dump(mode="json") for key, value in options.items()}}
    print(f"{name:>18}: dev F1 {result['best_dev_f1']:.4f} (epoch {result['best_epoch']}), "
          f"{len(data.train)} train examples, {outcome.samples_per_s:.1f} samples/s, {result['wall_s']:.0f}s",
          flush=True)
    return result


def main(argv: list[str] | None = None) -> int:
    """Run every configuration; returns the exit status."""
    args = parse_args(argv)
    quiet_training_logs(args.threads)
    train = read_conll(args.data / "train.tsv", "train", args.max_train_sentences)
    dev = read_conll(args.data / "devel.tsv", "dev", args.max_dev_sentences)
    label_map = build_label_map(TOKEN_CLASSIFICATION, [*train, *dev])
    splits = DatasetSplits(train=tuple(train), dev=tuple(dev), test=(), label_map=label_map, skipped=0)
    print(f"{len(train)} train / {len(dev)} dev sentences, {args.epochs} epochs, {describe(pick_device())}", flush=True)
    runs: list[dict[str, Any]] = []
    for name in args.configs:
        runs.append(run_config(name, splits, args))
        reference = next((r["best_dev_f1"] for r in runs if r["config"] == "off"), None)
        for run in runs:
            if reference is not None:
                run["dev_f1_vs_off"] = run["best_dev_f1"] - reference
        # Written after every configuration, so a long run stopped midway keeps what it measured.
        write_result(args.out, {"arguments": sys.argv[1:] if argv is None else argv, "train_sentences": len(train),
                                "dev_sentences": len(dev), "device": describe(pick_device()), "runs": runs,
                                "complete": len(runs) == len(args.configs), "libraries": library_versions()})
    print(f"wrote {args.out}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
