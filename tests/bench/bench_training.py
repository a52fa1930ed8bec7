"""Benchmark (not a test): fine-tune MiniLM for disease NER on NCBI-disease with the trainer's own code.

    .venv/bin/python tests/bench/bench_training.py --epochs 1 --out bench-results/training.json

Reads train.tsv and devel.tsv (CoNLL: token<TAB>tag, blank line between sentences) from --data,
trains through the trainer service's own model and encoding phases (pipeline.load_base,
pipeline.encode_splits) and its training and evaluation functions (no Redis, no S3),
prints dev entity precision/recall/F1 per epoch and training samples/s, and writes the figures as
JSON to --out.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import streamtune_trainer  # noqa: F401 - sets HF_HUB_OFFLINE before transformers is imported
from streamtune_shared.testing import InMemoryObjectStore
from streamtune_trainer.artifacts import MINILM
from streamtune_trainer.card import library_versions
from streamtune_trainer.checkpoint import RunState
from streamtune_trainer.domain import TOKEN_CLASSIFICATION, DatasetSplits, Example, build_label_map
from streamtune_shared.schemas import TrainRequest
from streamtune_trainer.pipeline import adapt_phase, describe, encode_splits, load_base
from streamtune_trainer.training import (
    Hyperparameters,
    TrainingHooks,
    count_steps,
    pick_device,
    seed_everything,
    train_model,
)
from tqdm import tqdm

from benchlib import quiet_training_logs

REPO = Path(__file__).resolve().parents[2]


def ncbi_parser(description: str | None, out_name: str, *, epochs: int, max_train: int | None = None
                ) -> argparse.ArgumentParser:
    """The options every NCBI-disease training benchmark takes: data, output, epochs, subset sizes, batch,
    seed and torch threads."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "ncbi_disease",
                        help="folder with train.tsv and devel.tsv")
    parser.add_argument("--out", type=Path, default=REPO / "bench-results" / out_name,
                        help="where to write the JSON result")
    parser.add_argument("--epochs", type=int, default=epochs)
    parser.add_argument("--max-train-sentences", type=int, default=max_train, help="first N train sentences only")
    parser.add_argument("--max-dev-sentences", type=int, default=None, help="first N dev sentences only")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    return parser


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = ncbi_parser(__doc__, "bench_training.json", epochs=1)
    parser.add_argument("--lr", type=float, default=None, help="default: the method's default learning rate")
    parser.add_argument("--method", choices=["full", "lora", "freeze", "prefix", "prompt"], default="full",
                        help="adaptation method, with its default options (issue 8)")
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--lora-r", type=int, default=None, help="LoRA rank (default: LoraOptions')")
    parser.add_argument("--lora-alpha", type=int, default=None, help="LoRA alpha (default: LoraOptions')")
    parser.add_argument("--lora-targets", type=lambda text: tuple(text.split(",")), default=None,
                        help="comma-separated LoRA target modules, e.g. query,key,value,dense")
    parser.add_argument("--freeze-layers", type=int, default=None, help="frozen lower layers (default: "
                                                                         "FreezeOptions')")
    return parser.parse_args(argv)


def method_options(args: argparse.Namespace) -> dict[str, Any]:
    """The request's option block for the method, from the options given (none given: the method's defaults)."""
    given = {"lora": {"r": args.lora_r, "alpha": args.lora_alpha, "target_modules": args.lora_targets},
             "freeze": {"layers": args.freeze_layers}}.get(args.method, {})
    block = {name: value for name, value in given.items() if value is not None}
    return {args.method: block} if block else {}


def read_conll(path: Path, prefix: str, limit: int | None) -> list[Example]:
    """Sentences of a token<TAB>tag file as examples (text = tokens joined by spaces)."""
    examples, tokens, tags = [], [], []
    for line in [*path.read_text(encoding="utf-8").splitlines(), ""]:
        if line.strip():
            token, tag = line.split("\t")[:2]
            tokens.append(token)
            tags.append(tag.strip())
        elif tokens:
            examples.append(Example(f"{prefix}-{len(examples)}", " ".join(tokens), tuple(tags)))
            tokens, tags = [], []
        if limit is not None and len(examples) >= limit:
            break
    return examples


def print_epoch(state: RunState, _snapshot: Any) -> None:
    """One line per finished epoch: dev entity scores and throughput."""
    last = state.history[-1]
    dev = last["dev"]
    print(f"epoch {last['epoch']}: dev P={dev['precision']:.4f} R={dev['recall']:.4f} F1={dev['f1']:.4f} "
          f"loss={dev['loss']:.4f} | train {last['samples_per_s']:.1f} samples/s, {last['train_seconds']:.0f}s",
          flush=True)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; returns the exit status."""
    args = parse_args(argv)
    quiet_training_logs(args.threads)
    started = time.perf_counter()
    train = read_conll(args.data / "train.tsv", "train", args.max_train_sentences)
    dev = read_conll(args.data / "devel.tsv", "dev", args.max_dev_sentences)
    label_map = build_label_map(TOKEN_CLASSIFICATION, [*train, *dev])
    splits = DatasetSplits(train=tuple(train), dev=tuple(dev), test=(), label_map=label_map, skipped=0)
    request = TrainRequest(model_name="bench", task=TOKEN_CLASSIFICATION, dataset="ncbi-disease", method=args.method,
                           learning_rate=args.lr, **method_options(args))
    hp = Hyperparameters(epochs=args.epochs, batch_size=args.batch_size, learning_rate=request.learning_rate,
                         weight_decay=0.01, seed=args.seed, max_length=args.max_length, early_stopping_patience=None)
    seed_everything(hp.seed)
    # MiniLM is packaged: neither the (empty) store nor the folder is read or written.
    with tempfile.TemporaryDirectory(prefix="bench-training-") as tmp:
        loaded = adapt_phase(request, load_base(MINILM, label_map, InMemoryObjectStore(), Path(tmp)))
    data = encode_splits(splits, loaded, hp)
    device = pick_device()
    print(f"{len(train)} train / {len(dev)} dev sentences, labels {label_map.labels}, {describe(device)}", flush=True)
    bar = tqdm(total=count_steps(len(train), hp), unit="step", disable=not sys.stderr.isatty())
    hooks = TrainingHooks(on_step=lambda epoch, step, total: bar.update(1), on_epoch_end=print_epoch)
    outcome = train_model(loaded.model, data, hp, device, hooks)
    bar.close()
    result = {
        "arguments": sys.argv[1:] if argv is None else argv,
        "train_sentences": len(train), "dev_sentences": len(dev), "hyperparameters": asdict(hp),
        "method": args.method, "trainable_parameters": loaded.adapted.trainable_parameters if loaded.adapted else None,
        "device": describe(device), "train_samples_per_s": outcome.samples_per_s,
        "best_epoch": outcome.state.best_epoch, "best_dev_f1": outcome.state.best_metric,
        "epochs": [{k: v for k, v in h.items() if k != "dev"} | {"dev": _scores(h["dev"])}
                   for h in outcome.state.history],
        "wall_s": time.perf_counter() - started, "libraries": library_versions(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(f"best dev F1 {outcome.state.best_metric:.4f} (epoch {outcome.state.best_epoch}), "
          f"{outcome.samples_per_s:.1f} train samples/s; wrote {args.out}", flush=True)
    return 0


def _scores(dev: dict[str, Any]) -> dict[str, Any]:
    return {k: dev[k] for k in ("precision", "recall", "f1", "loss", "report")}


if __name__ == "__main__":
    sys.exit(main())
