"""`make gpu-check` (not a test): a few training steps of each adaptation method on CUDA, bf16 against fp32.

    .venv/bin/python tests/bench/gpu_check.py [--out bench-results/gpu_check.json]
    .venv/bin/python tests/bench/gpu_check.py --device cpu --rows 32   # the script's own dry run, fp32 only

For each method (full, freeze, lora, prompt, and lora with DP-SGD) it trains MiniLM for two short
epochs on the committed clinical-notes fixture with bf16 autocast and again in fp32, prints training
samples/s of each and their ratio, and checks checkpoint resume: a run restored from its epoch-1
checkpoint must end on the same dev loss as the uninterrupted run (within bf16 tolerance). On a machine
without CUDA it says so and exits 0.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import streamtune_trainer  # noqa: F401 - sets HF_HUB_OFFLINE before transformers is imported
import torch
from streamtune_shared.schemas import TrainRequest
from streamtune_shared.testing import InMemoryObjectStore
from streamtune_trainer.artifacts import MINILM
from streamtune_trainer.checkpoint import Checkpoint, RunState, checkpoint_files, read_checkpoint
from streamtune_trainer.domain import TOKEN_CLASSIFICATION, DatasetSplits, Example, build_label_map
from streamtune_trainer.pipeline import adapt_phase, describe, encode_splits, load_base
from streamtune_trainer.training import Hyperparameters, TrainingHooks, seed_everything, train_model
from transformers.utils import logging as transformers_logging

REPO = Path(__file__).resolve().parents[2]
FIXTURE = REPO / "tests" / "fixtures" / "clinical_notes.jsonl"
RUNS: dict[str, dict[str, Any]] = {
    "full": {"method": "full"},
    "freeze": {"method": "freeze", "freeze": {"layers": 4}},
    "lora": {"method": "lora"},
    "prompt": {"method": "prompt"},
    "lora+dp": {"method": "lora", "dp": {"target_epsilon": 8, "delta": 1e-4}},
}
RESUME_TOLERANCE = 0.05  # dev loss, bf16 kernels are not bitwise deterministic


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda", help="cuda (default), or cpu for a dry run of the script")
    parser.add_argument("--rows", type=int, default=320, help="fixture notes used for training")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--methods", nargs="*", default=list(RUNS), choices=list(RUNS))
    parser.add_argument("--out", type=Path, default=REPO / "bench-results" / "gpu_check.json")
    return parser.parse_args(argv)


def read_splits(rows: int) -> DatasetSplits:
    """The fixture's notes: the first ``rows`` for training, the next 64 for dev."""
    notes = [json.loads(line) for line in FIXTURE.read_text().splitlines()]
    examples = [Example(n["event_id"], n["text"], tuple(n["label"])) for n in notes]
    train, dev = examples[:rows], examples[rows:rows + 64] or examples[-64:]
    label_map = build_label_map(TOKEN_CLASSIFICATION, examples)
    return DatasetSplits(tuple(train), tuple(dev), (), label_map, 0)


def train_once(fields: dict[str, Any], splits: DatasetSplits, device: torch.device, bf16: bool, batch_size: int,
               resume: Checkpoint | None = None, keep: list[Checkpoint] | None = None) -> dict[str, Any]:
    """Two epochs of one method; ``keep`` collects the epoch-1 checkpoint, ``resume`` starts from one."""
    request = TrainRequest(model_name="gpu-check", task=TOKEN_CLASSIFICATION, dataset="fixture", **fields)
    hp = Hyperparameters(epochs=2, batch_size=batch_size, learning_rate=request.learning_rate, weight_decay=0.01,
                         seed=7, max_length=128, early_stopping_patience=None, dp=request.dp, bf16=bf16)
    seed_everything(hp.seed)
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as tmp:
        loaded = adapt_phase(request, load_base(MINILM, splits.label_map, InMemoryObjectStore(), Path(tmp)))
    data = encode_splits(splits, loaded, hp)

    def on_epoch_end(state: RunState, snapshot: Any) -> None:
        if keep is not None and state.epoch == 1:
            keep.append(read_checkpoint(checkpoint_files(snapshot())))

    outcome = train_model(loaded.model, data, hp, device, TrainingHooks(on_epoch_end=on_epoch_end), resume)
    last = outcome.state.history[-1]
    return {"samples_per_s": outcome.samples_per_s, "dev_loss": last["dev"]["loss"], "dev_f1": last["dev"]["f1"],
            "epsilon": outcome.privacy.epsilon if outcome.privacy else None}


def check_method(name: str, splits: DatasetSplits, device: torch.device, batch_size: int) -> dict[str, Any]:
    """bf16 and fp32 throughput of one method, and a resume from its bf16 epoch-1 checkpoint."""
    fields = RUNS[name]
    precisions = ["bf16", "fp32"] if device.type == "cuda" else ["fp32"]
    result: dict[str, Any] = {"method": name}
    kept: list[Checkpoint] = []
    for precision in precisions:
        run = train_once(fields, splits, device, precision == "bf16", batch_size, keep=kept if not kept else None)
        result[precision] = run
    resumed = train_once(fields, splits, device, precisions[0] == "bf16", batch_size, resume=kept[0])
    straight = result[precisions[0]]["dev_loss"]
    result["resume"] = {"dev_loss": resumed["dev_loss"], "matches": abs(resumed["dev_loss"] - straight) <= max(
        RESUME_TOLERANCE * abs(straight), 1e-6) or "dp" in fields}  # DP noise differs after a resume
    if "bf16" in result:
        result["bf16_over_fp32"] = result["bf16"]["samples_per_s"] / result["fp32"]["samples_per_s"]
    print(summary_line(result), flush=True)
    return result


def summary_line(result: dict[str, Any]) -> str:
    """One printed line per method."""
    parts = [f"{result['method']:>8}"]
    for precision in ("bf16", "fp32"):
        if precision in result:
            run = result[precision]
            parts.append(f"{precision} {run['samples_per_s']:8.1f} samples/s (dev F1 {run['dev_f1']:.3f})")
    if "bf16_over_fp32" in result:
        parts.append(f"bf16/fp32 {result['bf16_over_fp32']:.2f}x")
    parts.append("resume ok" if result["resume"]["matches"] else "RESUME MISMATCH")
    return " | ".join(parts)


def main(argv: list[str] | None = None) -> int:
    """Run the check; 0 when every resume matched (or when there is no CUDA device)."""
    args = parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        print("gpu-check: no CUDA device on this machine; nothing to check (CPU training is fp32)")
        return 0
    transformers_logging.set_verbosity_error()
    transformers_logging.disable_progress_bar()
    device = torch.device(args.device)
    splits = read_splits(args.rows)
    print(f"gpu-check on {describe(device)}: {len(splits.train)} train / {len(splits.dev)} dev notes", flush=True)
    results = [check_method(name, splits, device, args.batch_size) for name in args.methods]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"device": describe(device), "results": results}, indent=2))
    return 0 if all(r["resume"]["matches"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
