"""Benchmark (not a test): choose the PII NER model: layers, max length, fp32 vs int8, with measured figures.

    .venv/bin/python tests/bench/bench_pii_model.py --runs 6:3000:2,3:3000:2,3:1500:2 --out bench-results/pii_model.json

Each run (``layers:synthetic_rows:epochs``) fine-tunes the first N layers of MiniLM with the trainer's own
code (pipeline.load_base, encode_splits, training.train_model; no Redis, no S3) on synthetic rows from
``streamtune_anonymizer.synthetic`` plus the training templates of presidio-research's dev.jsonl; the
epoch is picked on a dev split carved from that training data. The template-disjoint validation split
(template_id % 10 in 0, 3, 7) is only scored: token-level recall/precision per type over whitespace tokens,
fp32 and int8 dynamic quantization, at each --eval-lengths. Inference texts/s (batch 64, length-sorted,
dynamic padding, --threads torch threads) is measured round-robin for every variant in the same process,
reported also as a ratio to the first run's fp32 model. Writes JSON to --out.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import streamtune_trainer  # noqa: F401 - sets HF_HUB_OFFLINE before transformers is imported
import torch
from streamtune_anonymizer.detection.transformer_model import int8_dynamic
from streamtune_anonymizer.synthetic import from_presidio, generate
from streamtune_anonymizer.synthetic.presidio import NER_TYPES
from streamtune_anonymizer.synthetic.scoring import token_scores
from streamtune_shared.testing import InMemoryObjectStore
from streamtune_shared.word_labels import OUTSIDE, first_pieces, vocabulary_readable
from streamtune_trainer.artifacts import MINILM
from streamtune_trainer.card import library_versions
from streamtune_trainer.domain import TOKEN_CLASSIFICATION, DatasetSplits, Example, LabelMap, build_label_map
from streamtune_trainer.pipeline import LoadedModel, encode_splits, load_base, version_files
from streamtune_trainer.training import Hyperparameters, TrainingHooks, seed_everything, train_model
from benchlib import quiet_training_logs
from demo_privacy import clinical_negatives  # deploy/local: the demo's negatives

REPO = Path(__file__).resolve().parents[2]
DEV_FRACTION = 0.1


@dataclass(frozen=True)
class Run:
    """One training configuration."""

    layers: int
    synthetic_rows: int
    epochs: int

    @property
    def name(self) -> str:
        """A short label, e.g. ``L3-r1500-e2``."""
        return f"L{self.layers}-r{self.synthetic_rows}-e{self.epochs}"


def parse_runs(text: str) -> list[Run]:
    """``6:3000:2,3:1500:2`` -> runs."""
    return [Run(*(int(part) for part in item.split(":"))) for item in text.split(",") if item.strip()]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presidio", type=Path,
                        default=REPO.parent / "shared" / "data" / "pii_presidio_synth" / "dev.jsonl",
                        help="presidio-research dev.jsonl (training templates train, validation templates score)")
    parser.add_argument("--runs", type=parse_runs, default=parse_runs("6:3000:2,3:3000:2"),
                        help="comma-separated layers:synthetic_rows:epochs (the first is the speed reference)")
    parser.add_argument("--no-presidio-train", action="store_true", help="train on synthetic rows only")
    parser.add_argument("--clinical-negatives", action="store_true",
                        help="also train on the clinical-notes fixture's sentences, every word O (as make demo does)")
    parser.add_argument("--pattern-labels", action="store_true", help="also train on e-mail, phone, card... tags")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--lr", type=float, default=3e-4)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--train-max-length", type=int, default=128)
    parser.add_argument("--eval-lengths", default="64,128", help="inference max lengths to score and time")
    parser.add_argument("--threads", type=int, default=2, help="torch threads for training and inference")
    parser.add_argument("--speed-texts", type=int, default=512, help="validation texts (cycled) per timing")
    parser.add_argument("--speed-repeats", type=int, default=3, help="round-robin timing passes (best is kept)")
    parser.add_argument("--save-predictions", action="store_true",
                        help="also write each run's fp32 validation tags at the longest length (for error analysis)")
    parser.add_argument("--save-dir", type=Path, help="write each run's model as a version folder (config, "
                        "safetensors, tokenizer, labels.json) under DIR/<run name>, for bench_pii --model-folder")
    parser.add_argument("--out", type=Path, default=REPO / "bench-results" / "pii_model.json")
    return parser.parse_args(argv)


def as_examples(rows: list[dict[str, Any]]) -> list[Example]:
    """Generated or converted rows as the trainer's examples."""
    return [Example(row["event_id"], row["text"], tuple(row["label"])) for row in rows]


def in_dev(event_id: str) -> bool:
    """A stable ~10% of the training rows, used to pick the epoch (never the validation split)."""
    return hashlib.sha256(event_id.encode()).digest()[0] < 256 * DEV_FRACTION


def build_splits(args: argparse.Namespace, run: Run, records: list[dict]) -> tuple[DatasetSplits, list[Example]]:
    """Train/dev splits of one run, and the validation examples.

    Validation always carries the pattern tags too, so that a card number tagged PERSON counts as PII found
    (for precision) whether or not the model was trained on pattern tags; the label set is the training one.
    """
    rows = generate(run.synthetic_rows, args.seed, pattern_labels=args.pattern_labels)
    if not args.no_presidio_train:
        rows += from_presidio(records, "train", pattern_labels=args.pattern_labels)
    if args.clinical_negatives:
        rows += clinical_negatives()
    pool = as_examples(rows)
    validation = as_examples(from_presidio(records, "validation", pattern_labels=True))
    train = tuple(e for e in pool if not in_dev(e.event_id))
    dev = tuple(e for e in pool if in_dev(e.event_id))
    label_map = build_label_map(TOKEN_CLASSIFICATION, pool)
    return DatasetSplits(train=train, dev=dev, test=(), label_map=label_map, skipped=0), validation


def train_run(args: argparse.Namespace, run: Run, records: list[dict]) -> tuple[LoadedModel, LabelMap,
                                                                               list[Example], dict]:
    """Fine-tune one configuration; returns the best epoch's model, its labels, the validation set, figures."""
    splits, validation = build_splits(args, run, records)
    hp = Hyperparameters(epochs=run.epochs, batch_size=args.batch_size, learning_rate=args.lr, weight_decay=0.01,
                         seed=args.seed, max_length=args.train_max_length, early_stopping_patience=None)
    seed_everything(hp.seed)
    with tempfile.TemporaryDirectory(prefix="bench-pii-") as tmp:
        loaded = load_base(MINILM, splits.label_map, InMemoryObjectStore(), Path(tmp), base_layers=run.layers)
    data = encode_splits(splits, loaded, hp)
    started = time.perf_counter()
    outcome = train_model(loaded.model, data, hp, torch.device("cpu"), TrainingHooks())
    train_s = time.perf_counter() - started
    loaded.model.load_state_dict(outcome.best_weights)
    figures = {"run": asdict(run), "train_rows": len(splits.train), "dev_rows": len(splits.dev),
               "validation_rows": len(validation), "hyperparameters": asdict(hp), "train_seconds": train_s,
               "train_samples_per_s": outcome.samples_per_s, "best_epoch": outcome.state.best_epoch,
               "dev_entity_f1_per_epoch": [h["dev"]["f1"] for h in outcome.state.history]}
    print(f"{run.name}: trained {len(splits.train)} rows in {train_s:.0f}s, dev F1 "
          f"{figures['dev_entity_f1_per_epoch']}", flush=True)
    return loaded, splits.label_map, validation, figures


def save_version_folder(loaded: LoadedModel, label_map: LabelMap, folder: Path) -> None:
    """The files the trainer would publish for this model (no card: not a registry version)."""
    with tempfile.TemporaryDirectory(prefix="bench-pii-save-") as tmp:
        files = version_files(loaded, label_map, Path(tmp))
    for name, data in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
    print(f"saved {folder}", flush=True)


@torch.no_grad()
def tag_texts(model: torch.nn.Module, tokenizer: Any, texts: list[str], id2label: dict[int, str],
              max_length: int, batch_size: int = 64) -> list[list[str]]:
    """Word tags for texts: batches of length-sorted texts, padded to their longest (how a detector serves)."""
    model.eval()
    words = [text.split() for text in texts]
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    tags: list[list[str]] = [[] for _ in texts]
    readable = vocabulary_readable(tokenizer)
    for start in range(0, len(order), batch_size):
        batch = order[start:start + batch_size]
        encoded = tokenizer([words[i] for i in batch], is_split_into_words=True, truncation=True,
                            max_length=max_length, padding=True, return_tensors="pt")
        best = model(input_ids=encoded["input_ids"], attention_mask=encoded["attention_mask"]).logits.argmax(-1)
        for row, i in enumerate(batch):
            firsts = first_pieces(encoded.word_ids(row), [readable[t] for t in encoded["input_ids"][row].tolist()])
            tags[i] = [id2label[int(best[row, firsts[w]])] if w in firsts else OUTSIDE for w in range(len(words[i]))]
    return tags


def quantized(model: torch.nn.Module) -> torch.nn.Module:
    """An int8 dynamic-quantized copy (Linear layers) of a model, as the anonymizer quantizes it."""
    return int8_dynamic(copy.deepcopy(model).eval())


def score_variant(model: torch.nn.Module, tokenizer: Any, label_map: LabelMap, validation: list[Example],
                  max_length: int) -> dict[str, Any]:
    """Token scores of one model variant on the validation split: the NER types, and every type (patterns too)."""
    predicted = tag_texts(model, tokenizer, [e.text for e in validation], label_map.id2label, max_length)
    gold = [e.label for e in validation]
    every_type = sorted({tag[2:] for tags in gold for tag in tags if tag != OUTSIDE})
    return {**token_scores(gold, predicted, NER_TYPES), "all_types": token_scores(gold, predicted, every_type)}


def texts_per_s(model: torch.nn.Module, tokenizer: Any, texts: list[str], id2label: dict[int, str],
                max_length: int) -> float:
    """Inference throughput over texts (tokenization and decoding included)."""
    started = time.perf_counter()
    tag_texts(model, tokenizer, texts, id2label, max_length)
    return len(texts) / (time.perf_counter() - started)


def measure_speed(variants: dict[str, tuple], texts: list[str], lengths: list[int], repeats: int) -> dict[str, float]:
    """Best texts/s of every variant and length, measured round-robin so machine noise hits all alike."""
    best: dict[str, float] = {}
    for _ in range(repeats):
        for name, (model, tokenizer, id2label) in variants.items():
            for length in lengths:
                key = f"{name}@{length}"
                best[key] = max(best.get(key, 0.0), texts_per_s(model, tokenizer, texts, id2label, length))
    return best


def print_scores(key: str, scores: dict[str, Any]) -> None:
    """One line: recall/precision/found-as-any-PII per type."""
    per_type = " ".join(f"{t}={s['recall']:.3f}/{s['precision']:.3f}/{s['found']:.3f}"
                        for t, s in scores["types"].items())
    print(f"{key}: any R={scores['any']['recall']:.3f} P={scores['any']['precision']:.3f} | {per_type}", flush=True)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; returns the exit status."""
    args = parse_args(argv)
    quiet_training_logs(args.threads)
    lengths = [int(x) for x in args.eval_lengths.split(",")]
    records = [json.loads(line) for line in args.presidio.read_text(encoding="utf-8").splitlines() if line.strip()]
    started = time.perf_counter()
    runs, variants, scores = [], {}, {}
    for run in args.runs:
        loaded, label_map, validation, figures = train_run(args, run, records)
        if args.save_predictions:
            figures["validation_tags"] = tag_texts(loaded.model, loaded.tokenizer, [e.text for e in validation],
                                                   label_map.id2label, lengths[-1])
        runs.append(figures)
        if args.save_dir is not None:
            save_version_folder(loaded, label_map, args.save_dir / run.name)
        for precision, model in (("fp32", loaded.model), ("int8", quantized(loaded.model))):
            name = f"{run.name}-{precision}"
            variants[name] = (model, loaded.tokenizer, label_map.id2label)
            for length in lengths:
                scores[f"{name}@{length}"] = score_variant(model, loaded.tokenizer, label_map, validation, length)
                print_scores(f"{name}@{length}", scores[f"{name}@{length}"])
    texts = [e.text for e in validation]
    texts = (texts * (args.speed_texts // len(texts) + 1))[:args.speed_texts]
    speed = measure_speed(variants, texts, lengths, args.speed_repeats)
    reference = speed[f"{args.runs[0].name}-fp32@{lengths[-1]}"]
    for key, value in speed.items():
        print(f"{key}: {value:.1f} texts/s ({value / reference:.2f}x)", flush=True)
    result = {"arguments": sys.argv[1:] if argv is None else argv, "threads": args.threads, "runs": runs,
              "validation_scores": scores, "texts_per_s": speed,
              "speed_ratio_to_reference": {k: v / reference for k, v in speed.items()},
              "speed_reference": f"{args.runs[0].name}-fp32@{lengths[-1]}",
              "wall_s": time.perf_counter() - started, "libraries": library_versions()}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(f"wrote {args.out}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
