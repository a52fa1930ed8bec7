"""Domain-adaptive pretraining (DAPT): masked-LM training of the base on the dataset's own text, before fine-tuning.

The adapted base is published as a registry version of its own (task ``fill-mask``: a base to fine-tune from,
which no service serves and which is not announced on ``models.published``); the fine-tune then starts from
it, and a later request can name it as its ``base_model`` ('<model>/<version>'). A redelivered request reuses
the version its first delivery published.

Text: the training split's texts (dev and test stay unseen, so their metrics stay honest) and any unlabeled
row of the dataset. The anonymizer stores labeled events only (it acknowledges unlabeled ones without
storing them), so today the text is the labeled training texts'. A base without a masked-LM head (the
packaged MiniLM is a bare ``BertModel``) gets a freshly initialised one; the card says so.
"""

from __future__ import annotations

import math
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog
import torch
from streamtune_shared.adaptation import DaptOptions, adapted_base_name
from streamtune_shared.model_card import BASE_MODEL_TASK, CardMetrics, CardTraining, ModelCard
from streamtune_shared.model_registry import RegistryLayout, file_checksums, find_card_for_request, version_name
from streamtune_shared.schemas import TrainRequest

from .artifacts import resolve_base_model
from .card import library_versions, lineage
from .domain import TrainingRejected, split_dataset
from .evaluation import autocast
from .pipeline import DatasetRows, RunContext, describe, pretrained_files, publish_version
from .training import TrainingInterrupted, load_tokenizer, pick_device, seed_everything

log = structlog.get_logger(__name__)

MLM_BATCH_SIZE = 16
WARMUP_RATIO = 0.1


@dataclass
class MlmRun:
    """What masked-LM training did: loss per epoch on train, dev loss before and after, throughput."""

    epochs: list[dict[str, float]]
    dev_loss_before: float
    dev_loss_after: float
    samples_per_s: float
    head_initialized: bool


def dapt_texts(rows: Sequence[dict[str, Any]], train_texts: Sequence[str], limit: int | None) -> list[str]:
    """The training split's texts, then the dataset's unlabeled texts, at most ``limit`` in all."""
    unlabeled = [row["text"] for row in rows if row.get("label") is None and row.get("text")]
    texts = [t for t in [*train_texts, *unlabeled] if t and t.strip()]
    return texts[:limit] if limit is not None else texts


def load_mlm(folder: Path, base_layers: int | None) -> tuple[torch.nn.Module, bool]:
    """The base with a masked-LM head (safetensors, local files); True when the head had to be initialised."""
    from transformers import AutoModelForMaskedLM  # noqa: PLC0415

    overrides = {"num_hidden_layers": base_layers} if base_layers is not None else {}
    try:
        model, info = AutoModelForMaskedLM.from_pretrained(folder, local_files_only=True, use_safetensors=True,
                                                           output_loading_info=True, **overrides)
    except (OSError, ValueError) as exc:
        raise TrainingRejected(f"the base has no masked-LM form ({type(exc).__name__})") from exc
    return model, any(key.startswith("cls.") or "lm_head" in key for key in info.get("missing_keys", ()))


def mlm_batches(tokenizer: Any, texts: Sequence[str], max_length: int, mlm_probability: float,
                generator: torch.Generator | None) -> list[dict[str, torch.Tensor]]:
    """Masked batches (DataCollatorForLanguageModeling), shuffled when a generator is given."""
    from transformers import DataCollatorForLanguageModeling  # noqa: PLC0415

    encoded = tokenizer(list(texts), truncation=True, max_length=max_length)["input_ids"]
    collator = DataCollatorForLanguageModeling(tokenizer, mlm=True, mlm_probability=mlm_probability)
    order = torch.randperm(len(encoded), generator=generator).tolist() if generator else list(range(len(encoded)))
    return [collator([{"input_ids": encoded[i]} for i in order[s:s + MLM_BATCH_SIZE]])
            for s in range(0, len(order), MLM_BATCH_SIZE)]


def mlm_loss(model: torch.nn.Module, batches: Sequence[dict[str, torch.Tensor]], device: torch.device) -> float:
    """Mean masked-LM loss over batches."""
    model.eval()
    with torch.no_grad(), autocast(device):
        losses = [float(model(**{k: v.to(device) for k, v in b.items()}).loss) for b in batches]
    return sum(losses) / max(len(losses), 1)


def train_mlm(model: torch.nn.Module, tokenizer: Any, texts: Sequence[str], dev: Sequence[dict[str, torch.Tensor]],
              options: DaptOptions, max_length: int, seed: int, device: torch.device,
              should_stop: Callable[[], bool] = lambda: False) -> list[dict[str, float]]:
    """Masked-LM epochs over ``texts`` (fresh masks each epoch); returns train loss and the loss on the fixed
    ``dev`` batches (``dev_batches``) per epoch."""
    from transformers import get_scheduler  # noqa: PLC0415

    model.to(device)
    total = math.ceil(len(texts) / MLM_BATCH_SIZE) * options.epochs
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=options.learning_rate)
    scheduler = get_scheduler("linear", optimizer, num_warmup_steps=math.ceil(WARMUP_RATIO * total),
                              num_training_steps=total)
    history = []
    for epoch in range(1, options.epochs + 1):
        torch.manual_seed(seed * 1_000_003 + epoch)
        batches = mlm_batches(tokenizer, texts, max_length, options.mlm_probability,
                              torch.Generator().manual_seed(seed + epoch))
        model.train()
        started, loss_sum = time.perf_counter(), 0.0
        for batch in batches:
            if should_stop():
                raise TrainingInterrupted(f"stopped during masked-LM epoch {epoch}")
            with autocast(device):
                loss = model(**{k: v.to(device) for k, v in batch.items()}).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            loss_sum += float(loss.detach())
        seconds = time.perf_counter() - started
        history.append({"epoch": epoch, "train_loss": loss_sum / max(len(batches), 1), "train_samples": len(texts),
                        "train_seconds": seconds, "samples_per_s": len(texts) / seconds if seconds > 0 else 0.0,
                        "dev": {"loss": mlm_loss(model, dev, device)}})
    return history


def dev_batches(tokenizer: Any, texts: Sequence[str], max_length: int,
                options: DaptOptions) -> list[dict[str, torch.Tensor]]:
    """The dev texts masked the same way every time (a fixed seed), so losses compare across epochs."""
    state = torch.random.get_rng_state()
    torch.manual_seed(0)
    try:
        return mlm_batches(tokenizer, texts, max_length, options.mlm_probability, None)
    finally:
        torch.random.set_rng_state(state)


def adapt_base(request: TrainRequest, ctx: RunContext, dataset: DatasetRows) -> ModelCard:
    """Masked-LM training of the request's base on its dataset's text (``dataset``, the run's read of it);
    publishes and returns the version."""
    options = request.dapt
    torch.set_num_threads(ctx.settings.num_threads)
    seed_everything(request.seed)
    rows, manifests = dataset
    splits = split_dataset(rows, request.task, request.dev_fraction, request.test_fraction)
    texts = dapt_texts(rows, [e.text for e in splits.train], options.max_texts)
    if not texts:
        raise TrainingRejected(f"dataset {request.dataset!r} has no text for masked-LM training")
    dev_texts = [e.text for e in splits.dev if e.text.strip()]
    device = pick_device()
    with tempfile.TemporaryDirectory(prefix="streamtune-dapt-") as tmp:
        folder = resolve_base_model(request.base_model, ctx.store, Path(tmp), ctx.settings.infra.models_prefix)
        tokenizer = load_tokenizer(folder)
        model, head_initialized = load_mlm(folder, request.base_layers)
        dev = dev_batches(tokenizer, dev_texts, request.max_length, options)  # fixed masks: before and each epoch
        before = mlm_loss(model.to(device), dev, device)
        log.info("dapt.started", texts=len(texts), head_initialized=head_initialized, dev_loss=before)
        history = train_mlm(model, tokenizer, texts, dev, options, request.max_length, request.seed, device,
                            ctx.should_stop)
        files = pretrained_files(model, tokenizer, Path(tmp) / "dapt")
    run = MlmRun(history, before, history[-1]["dev"]["loss"],
                 sum(h["train_samples"] for h in history) / max(sum(h["train_seconds"] for h in history), 1e-9),
                 head_initialized)
    card = dapt_card(request, ctx, run, files, lineage(manifests, {"texts": len(texts), "dev": len(dev_texts)}),
                     describe(device))
    return publish_version(ctx, card, files)


def dapt_card(request: TrainRequest, ctx: RunContext, run: MlmRun, files: dict[str, bytes], lineage_info: Any,
              device: str) -> ModelCard:
    """The adapted base's card: task fill-mask, its base, the masked-LM losses, every file's sha256."""
    now = ctx.clock()
    return ModelCard(
        model_name=adapted_base_name(request.model_name, request.dapt),
        version=version_name(now, request.request_id), task=BASE_MODEL_TASK,
        dataset=request.dataset, base_model=request.base_model, request_id=request.request_id,
        hyperparameters={"dapt": request.dapt.model_dump(mode="json"), "base_model": request.base_model,
                         "base_layers": request.base_layers, "max_length": request.max_length, "seed": request.seed,
                         "batch_size": MLM_BATCH_SIZE, "mlm_head": "initialized" if run.head_initialized
                         else "from the base"},
        device=device,
        metrics=CardMetrics(dev_by_epoch=run.epochs, best_epoch=len(run.epochs),
                            dev={"loss": run.dev_loss_after, "loss_before": run.dev_loss_before}),
        training=CardTraining(samples_per_s=run.samples_per_s, epochs_run=len(run.epochs)),
        lineage=lineage_info, files=file_checksums(files), created_at=now, libraries=library_versions())


def with_adapted_base(request: TrainRequest, ctx: RunContext, dataset: DatasetRows) -> TrainRequest:
    """The request to fine-tune from its adapted base: the one this request published already, or a new one
    adapted on ``dataset`` (the run's read of the request's dataset)."""
    name = adapted_base_name(request.model_name, request.dapt)
    layout = RegistryLayout(ctx.settings.infra.models_prefix)
    card = find_card_for_request(ctx.store, layout, name, request.request_id)
    if card is None:
        card = adapt_base(request, ctx, dataset)
        outcome = "published"
    else:
        outcome = "reused"
    reference = f"{card.model_name}/{card.version}"
    log.info("dapt.base_ready", base=reference, outcome=outcome)
    ctx.report(state="running", message=f"domain-adapted base {outcome}: {reference}",
               metrics={"dapt": {"base": reference, "dev_mlm_loss": card.metrics.dev.get("loss"),
                                 "dev_mlm_loss_before": card.metrics.dev.get("loss_before")}})
    return request.model_copy(update={"base_model": reference, "dapt": None})
