"""Benchmark (not a test): every adaptation method on NCBI-disease, side by side in one run, with the same-run
references (``transformers.Trainer`` and the seed's fixed padding to 128).

    nice -n 5 .venv/bin/python tests/bench/bench_methods.py --max-train-sentences 600 --max-dev-sentences 200 \
        --epochs 2 --out bench-results/bench_methods.json

Each run is a child process of this script (so its peak RSS is its own): MiniLM with the method's defaults
(``TrainRequest`` fills the learning rate), trained through the trainer's own phases (``pipeline.load_base``,
``adapt_phase``, ``encode_splits``, ``training.train_model``); it reports dev entity F1 of the best epoch,
trainable parameters, training samples/s, peak RSS and the bytes of the version's files (what the object store
holds for it, card aside). Runs:

    full, lora, freeze, prefix, prompt   each method with its defaults (prefix is refused on BERT: reported)
    lora-dp1, lora-dp8                   LoRA with DP-SGD at target epsilon 1 and 8 (delta 1e-4)
    hf-trainer                           transformers.Trainer, full fine-tune, same model/data/batch/epochs/lr
    pad128                               the full run with every batch padded to 128 tokens (the seed's way)
    full-dapt                            masked-LM training of MiniLM on the train texts first (dapt defaults)

The ratios printed at the end compare samples/s of ``full`` with hf-trainer and pad128, measured in this run.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import streamtune_trainer  # noqa: F401 - sets HF_HUB_OFFLINE before transformers is imported
import torch
from bench_training import ncbi_parser, read_conll
from streamtune_shared.schemas import TrainRequest
from streamtune_shared.testing import InMemoryObjectStore
from streamtune_shared.word_labels import IGNORE_INDEX
from streamtune_trainer import training
from streamtune_trainer.artifacts import MINILM, resolve_base_model
from streamtune_trainer.card import library_versions
from streamtune_trainer.domain import TOKEN_CLASSIFICATION, DatasetSplits, TrainingRejected, build_label_map
from streamtune_trainer.evaluation import evaluate
from streamtune_trainer.pipeline import adapt_phase, describe, encode_splits, load_base, pretrained_files, version_files
from streamtune_trainer.training import Hyperparameters, TrainingHooks, pick_device, seed_everything, train_model
from benchlib import quiet_training_logs, write_result

REPO = Path(__file__).resolve().parents[2]
DELTA = 1e-4
RUNS: dict[str, dict[str, Any]] = {
    "full": {"method": "full"},
    "lora": {"method": "lora"},
    "freeze": {"method": "freeze"},
    "prefix": {"method": "prefix"},
    "prompt": {"method": "prompt"},
    "lora-dp1": {"method": "lora", "dp": {"target_epsilon": 1, "delta": DELTA}},
    "lora-dp8": {"method": "lora", "dp": {"target_epsilon": 8, "delta": DELTA}},
    "hf-trainer": {"method": "full"},
    "pad128": {"method": "full"},
    "full-dapt": {"method": "full", "dapt": {}},
}
FIXED_WIDTH = 128


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = ncbi_parser(__doc__, "bench_methods.json", epochs=2)
    parser.add_argument("--methods", nargs="*", default=list(RUNS), choices=list(RUNS), help="runs, in order")
    parser.add_argument("--child", choices=list(RUNS), help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def read_splits(args: argparse.Namespace) -> DatasetSplits:
    """NCBI-disease train and dev (first N sentences of each when asked)."""
    train = read_conll(args.data / "train.tsv", "train", args.max_train_sentences)
    dev = read_conll(args.data / "devel.tsv", "dev", args.max_dev_sentences)
    label_map = build_label_map(TOKEN_CLASSIFICATION, [*train, *dev])
    return DatasetSplits(train=tuple(train), dev=tuple(dev), test=(), label_map=label_map, skipped=0)


def peak_rss_mb() -> float:
    """This process's peak resident set size (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def fixed_padding(batches: Any):
    """Wrap ``iterate_batches`` so every batch is padded to 128 tokens, as the seed's code did."""

    def padded(examples, batch_size, pad_token_id, token_labels, generator=None):
        for batch in batches(examples, batch_size, pad_token_id, token_labels, generator):
            extra = FIXED_WIDTH - batch["input_ids"].shape[1]
            if extra > 0:
                pad = torch.nn.functional.pad
                batch = {"input_ids": pad(batch["input_ids"], (0, extra), value=pad_token_id),
                         "attention_mask": pad(batch["attention_mask"], (0, extra), value=0),
                         "labels": pad(batch["labels"], (0, extra), value=IGNORE_INDEX) if token_labels
                         else batch["labels"]}
            yield batch

    return padded


def run_child(name: str, args: argparse.Namespace) -> dict[str, Any]:
    """One run in this process: train, evaluate, measure."""
    splits = read_splits(args)
    request = TrainRequest(model_name="bench", task=TOKEN_CLASSIFICATION, dataset="ncbi-disease", **RUNS[name])
    hp = Hyperparameters(epochs=args.epochs, batch_size=args.batch_size, learning_rate=request.learning_rate,
                         weight_decay=0.01, seed=args.seed, max_length=128, early_stopping_patience=None,
                         dp=request.dp)
    seed_everything(hp.seed)
    result: dict[str, Any] = {"run": name, "method": request.method, "learning_rate": hp.learning_rate}
    with tempfile.TemporaryDirectory(prefix="bench-methods-") as tmp:
        base = MINILM
        if request.dapt is not None:
            base, result["dapt"] = adapted_base(request, splits, Path(tmp))
        try:
            loaded = adapt_phase(request, load_base(base, splits.label_map, InMemoryObjectStore(), Path(tmp)))
        except TrainingRejected as exc:
            return {**result, "refused": str(exc), "peak_rss_mb": peak_rss_mb()}
        data = encode_splits(splits, loaded, hp)
        device = pick_device()
        result["trainable_parameters"] = loaded.adapted.trainable_parameters
        if name == "hf-trainer":
            result.update(train_with_hf_trainer(loaded, data, hp, device))
        else:
            if name == "pad128":
                training.iterate_batches = fixed_padding(training.iterate_batches)
            outcome = train_model(loaded.model, data, hp, device, TrainingHooks())
            loaded.model.load_state_dict(outcome.best_weights)
            result.update(dev_f1=outcome.state.best_metric, best_epoch=outcome.state.best_epoch,
                          samples_per_s=outcome.samples_per_s,
                          epsilon=outcome.privacy.epsilon if outcome.privacy else None)
        files = version_files(loaded, splits.label_map, Path(tmp))
    return {**result, "version_bytes": sum(len(b) for b in files.values()), "peak_rss_mb": peak_rss_mb(),
            "device": describe(device)}


def adapted_base(request: TrainRequest, splits: DatasetSplits, workdir: Path) -> tuple[str, dict[str, Any]]:
    """The trainer's DAPT phase on the train texts: a MiniLM folder after masked-LM training, and its losses."""
    from streamtune_trainer.dapt import dev_batches, load_mlm, mlm_loss, train_mlm  # noqa: PLC0415
    from streamtune_trainer.training import load_tokenizer  # noqa: PLC0415

    folder = resolve_base_model(MINILM, InMemoryObjectStore(), workdir)
    tokenizer = load_tokenizer(folder)
    model, _ = load_mlm(folder, None)
    device = pick_device()
    texts, dev = [e.text for e in splits.train], [e.text for e in splits.dev]
    dev_masked = dev_batches(tokenizer, dev, 128, request.dapt)
    before = mlm_loss(model.to(device), dev_masked, device)
    started = time.perf_counter()
    history = train_mlm(model, tokenizer, texts, dev_masked, request.dapt, 128, request.seed, device)
    seconds = time.perf_counter() - started
    out = workdir / "adapted"
    pretrained_files(model, tokenizer, out)  # the files a published adapted base holds, here as a folder
    seed_everything(request.seed)
    return str(out), {"dev_mlm_loss_before": before, "dev_mlm_loss_after": history[-1]["dev"]["loss"],
                      "seconds": seconds, "options": request.dapt.model_dump()}


def train_with_hf_trainer(loaded: Any, data: Any, hp: Hyperparameters, device: torch.device) -> dict[str, Any]:
    """The same model, data, batch size, epochs, learning rate and schedule through ``transformers.Trainer``."""
    from transformers import DataCollatorForTokenClassification, Trainer, TrainingArguments  # noqa: PLC0415

    rows = [{"input_ids": list(e.input_ids), "attention_mask": [1] * len(e.input_ids), "labels": list(e.labels)}
            for e in data.train]
    with tempfile.TemporaryDirectory(prefix="bench-hf-trainer-") as out:
        arguments = TrainingArguments(
            output_dir=out, per_device_train_batch_size=hp.batch_size, num_train_epochs=hp.epochs,
            learning_rate=hp.learning_rate, weight_decay=hp.weight_decay, warmup_steps=hp.warmup_ratio,
            lr_scheduler_type="linear", max_grad_norm=hp.max_grad_norm, seed=hp.seed, save_strategy="no",
            eval_strategy="no", report_to=[], logging_strategy="no", disable_tqdm=True,
            use_cpu=device.type == "cpu", dataloader_num_workers=0)
        collator = DataCollatorForTokenClassification(loaded.tokenizer, label_pad_token_id=IGNORE_INDEX)
        trainer = Trainer(model=loaded.model, args=arguments, train_dataset=rows, data_collator=collator)
        metrics = trainer.train().metrics
    dev = evaluate(loaded.model, data.dev_examples, data.dev, data.label_map, hp.batch_size, data.pad_token_id,
                   device)
    return {"dev_f1": dev["f1"], "best_epoch": hp.epochs, "samples_per_s": metrics["train_samples_per_second"]}


def run_in_child(name: str, argv: list[str]) -> dict[str, Any]:
    """Run one configuration in a fresh interpreter; its JSON result is the last line it prints."""
    started = time.perf_counter()
    done = subprocess.run([sys.executable, __file__, *argv, "--child", name], capture_output=True, text=True,
                          check=False)
    if done.returncode != 0:
        return {"run": name, "error": done.stderr.strip().splitlines()[-1:] or [f"exit {done.returncode}"]}
    return {**json.loads(done.stdout.strip().splitlines()[-1]), "wall_s": time.perf_counter() - started}


def child_arguments(args: argparse.Namespace) -> list[str]:
    """The options a child run needs (the data and the training shape)."""
    out = ["--data", str(args.data), "--epochs", str(args.epochs), "--batch-size", str(args.batch_size),
           "--seed", str(args.seed)] + (["--threads", str(args.threads)] if args.threads else [])
    for flag, value in (("--max-train-sentences", args.max_train_sentences),
                        ("--max-dev-sentences", args.max_dev_sentences)):
        if value is not None:
            out += [flag, str(value)]
    return out


def table_line(r: dict[str, Any]) -> str:
    """One printed row."""
    if "refused" in r or "error" in r:
        return f"{r['run']:>10} | {'REFUSED: ' + r['refused'] if 'refused' in r else 'ERROR: ' + str(r['error'])}"
    eps = f" eps={r['epsilon']:.2f}" if r.get("epsilon") is not None else ""
    if "dapt" in r:
        eps += f" dev MLM loss {r['dapt']['dev_mlm_loss_before']:.3f} -> {r['dapt']['dev_mlm_loss_after']:.3f}"
    return (f"{r['run']:>10} | dev F1 {r['dev_f1']:.4f} | trainable {r['trainable_parameters']:>10,} | "
            f"{r['samples_per_s']:7.1f} samples/s | peak RSS {r['peak_rss_mb']:6.0f} MB | "
            f"version {r['version_bytes'] / 1e6:7.2f} MB{eps}")


def ratios(results: dict[str, dict[str, Any]]) -> dict[str, float]:
    """samples/s of the trainer's full run over each same-run reference."""
    full = results.get("full", {}).get("samples_per_s")
    out = {}
    for reference in ("hf-trainer", "pad128"):
        other = results.get(reference, {}).get("samples_per_s")
        if full and other:
            out[f"full_over_{reference}"] = full / other
    return out


def main(argv: list[str] | None = None) -> int:
    """Run the chosen configurations one by one; print the table and the ratios; write JSON."""
    args = parse_args(argv)
    quiet_training_logs(args.threads if args.child else None)
    if args.child:
        print(json.dumps(run_child(args.child, args)))
        return 0
    passed = sys.argv[1:] if argv is None else argv
    splits = read_splits(args)
    print(f"{len(splits.train)} train / {len(splits.dev)} dev sentences, {args.epochs} epochs, "
          f"batch {args.batch_size}", flush=True)
    results: dict[str, dict[str, Any]] = {}
    for name in args.methods:
        results[name] = run_in_child(name, child_arguments(args))
        print(table_line(results[name]), flush=True)
    found = ratios(results)
    for key, value in found.items():
        print(f"{key}: {value:.2f}x", flush=True)
    write_result(args.out, {"arguments": passed, "train_sentences": len(splits.train), "dev_sentences": len(splits.dev),
                            "epochs": args.epochs, "results": list(results.values()), "ratios": found,
                            "libraries": library_versions()})
    print(f"wrote {args.out}", flush=True)
    return 0 if not any("error" in r for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
