"""Benchmark (not a test): what redaction costs the data's use. Disease NER on NCBI-disease, trained and
evaluated on the anonymizer's redacted sentences vs the same sentences un-redacted, same run, same seed.

    .venv/bin/python tests/bench/bench_pii_utility.py [--model-folder PII_MODEL] [--epochs 2] [--out ...]

The redaction is the anonymizer's own (`redaction.redact_texts` with the pattern recognizers and the entity
model: the spaCy fallback, or a pii-ner version folder given with --model-folder), default text policy (type
tags; token counts and so BIO labels are kept). Each model is evaluated on its own side's dev split (the
predictor sees clean text too); the drop in dev entity F1 is the figure (target: at most 1 point).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import streamtune_trainer  # noqa: F401 - sets HF_HUB_OFFLINE before transformers is imported
from bench_training import ncbi_parser, read_conll
from benchlib import quiet_training_logs, write_result
from streamtune_anonymizer.detection import PiiDetector, default_recognizers
from streamtune_anonymizer.detection.eponyms import WithoutEponyms
from streamtune_anonymizer.redaction import redact_texts
from streamtune_anonymizer.text_policy import TextPolicy
from streamtune_shared.testing import InMemoryObjectStore
from streamtune_trainer.artifacts import MINILM
from streamtune_trainer.domain import TOKEN_CLASSIFICATION, DatasetSplits, Example, build_label_map
from streamtune_trainer.pipeline import encode_splits, load_base
from streamtune_trainer.training import Hyperparameters, TrainingHooks, pick_device, seed_everything, train_model


def parse_args() -> argparse.Namespace:
    parser = ncbi_parser(__doc__, "pii_utility.json", epochs=2)
    parser.add_argument("--model-folder", type=Path, default=None, help="a pii-ner version folder (else spaCy)")
    parser.add_argument("--lr", type=float, default=3e-4)
    return parser.parse_args()


def entity_model(folder: Path | None):
    """The anonymizer's entity model: a pii-ner version folder, else the spaCy fallback."""
    if folder is not None:
        from streamtune_anonymizer.detection.transformer_model import TransformerEntityModel  # noqa: PLC0415

        return WithoutEponyms(TransformerEntityModel(folder, quantize=True))
    from streamtune_anonymizer.detection.spacy_model import SpacyEntityModel  # noqa: PLC0415

    return WithoutEponyms(SpacyEntityModel())


def redacted(examples: list[Example], detector: PiiDetector) -> tuple[list[Example], dict[str, int], int]:
    """The examples with their texts redacted; counts per PII type; tokens inside disease mentions redacted."""
    results = redact_texts([e.text for e in examples], detector, TextPolicy(), labeled=[True] * len(examples),
                           pseudonym_of=lambda pii_type, value: "0" * 6)
    counts: dict[str, int] = {}
    in_mentions = 0
    out = []
    for example, result in zip(examples, results, strict=True):
        for pii_type, n in result.counts.items():
            counts[pii_type] = counts.get(pii_type, 0) + n
        before, after = example.text.split(), (result.text or "").split()
        in_mentions += sum(b != a and tag != "O" for b, a, tag in zip(before, after, example.label, strict=True))
        out.append(Example(example.event_id, result.text or example.text, example.label))
    return out, counts, in_mentions


def train_and_score(train: list[Example], dev: list[Example], args: argparse.Namespace) -> dict:
    """Fine-tune MiniLM on train, the best dev entity F1 and its epoch."""
    label_map = build_label_map(TOKEN_CLASSIFICATION, [*train, *dev])
    splits = DatasetSplits(tuple(train), tuple(dev), (), label_map, 0)
    hp = Hyperparameters(epochs=args.epochs, batch_size=args.batch_size, learning_rate=args.lr, weight_decay=0.01,
                         seed=args.seed, max_length=128, early_stopping_patience=None)
    seed_everything(hp.seed)
    with tempfile.TemporaryDirectory(prefix="bench-utility-") as tmp:
        loaded = load_base(MINILM, label_map, InMemoryObjectStore(), Path(tmp))
    outcome = train_model(loaded.model, encode_splits(splits, loaded, hp), hp, pick_device(), TrainingHooks())
    best = next(h for h in outcome.state.history if h["epoch"] == outcome.state.best_epoch)
    return {"best_dev_f1": best["dev"]["f1"], "best_epoch": outcome.state.best_epoch,
            "dev_f1_by_epoch": [h["dev"]["f1"] for h in outcome.state.history],
            "train_samples_per_s": outcome.samples_per_s}


def main() -> int:
    args = parse_args()
    quiet_training_logs(args.threads)
    started = time.perf_counter()
    train = read_conll(args.data / "train.tsv", "train", args.max_train_sentences)
    dev = read_conll(args.data / "devel.tsv", "dev", args.max_dev_sentences)
    detector = PiiDetector(default_recognizers(), (entity_model(args.model_folder),))
    clean_train, train_counts, train_hits = redacted(train, detector)
    clean_dev, dev_counts, dev_hits = redacted(dev, detector)
    print(f"redacted: train {train_counts} ({train_hits} tokens inside disease mentions), "
          f"dev {dev_counts} ({dev_hits} inside mentions)", flush=True)
    raw = train_and_score(train, dev, args)
    print(f"raw notes: dev entity F1 {raw['best_dev_f1']:.4f}", flush=True)
    anonymized = train_and_score(clean_train, clean_dev, args)
    print(f"anonymized notes: dev entity F1 {anonymized['best_dev_f1']:.4f}", flush=True)
    drop = raw["best_dev_f1"] - anonymized["best_dev_f1"]
    result = {"arguments": sys.argv[1:], "entity_model": str(args.model_folder or "spacy en_core_web_sm"),
              "train_sentences": len(train), "dev_sentences": len(dev), "raw": raw, "anonymized": anonymized,
              "f1_drop_points": round(100 * drop, 2), "redactions": {"train": train_counts, "dev": dev_counts},
              "disease_tokens_redacted": {"train": train_hits, "dev": dev_hits},
              "wall_s": round(time.perf_counter() - started, 1)}
    write_result(args.out, result)
    print(f"F1 drop from redaction: {100 * drop:.2f} points (raw {raw['best_dev_f1']:.4f}, anonymized "
          f"{anonymized['best_dev_f1']:.4f}); wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
