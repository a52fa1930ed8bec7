"""The published PII model: a fine-tuned token-classification transformer, from a local version folder.

The folder holds what the trainer publishes (config.json, model.safetensors, tokenizer files, labels.json);
downloading and verifying it is the registry's job. The model labels whitespace words, read at each
word's first word piece (``streamtune_shared.word_labels``), as the trainer taught it. A long text is
cut into windows of whole words that each fit ``max_length``, so no word past the first window escapes
detection (truncating would leave a long text's tail unredacted).
"""

from __future__ import annotations

import json
import threading
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import structlog
from streamtune_shared.batching import DEFAULT_TOKENS_PER_FORWARD, token_budget_chunks
from streamtune_shared.word_labels import (
    OUTSIDE,
    decode_entities,
    first_pieces,
    vocabulary_readable,
    whitespace_words,
    word_tags,
)

from .spans import PiiSpan

log = structlog.get_logger(__name__)
SOURCE = "transformer"
LABELS_FILE = "labels.json"


@dataclass(frozen=True, slots=True)
class Window:
    """Words ``[first, stop)`` of text ``text``: one model input."""

    text: int
    first: int
    stop: int


def read_id2label(folder: Path) -> dict[int, str]:
    """The BIO tag of each class id, from the version's ``labels.json`` (``{"task", "id2label", "label2id"}``)."""
    labels = json.loads((folder / LABELS_FILE).read_text())
    return {int(index): str(tag) for index, tag in labels["id2label"].items()}


def word_windows(piece_counts: Sequence[Sequence[int]], budget: int) -> list[Window]:
    """Consecutive word ranges of each text whose pieces add up to at most ``budget``.

    A single word with more pieces than the budget gets a window of its own: its first piece, where
    its tag is read, still fits. A text without words gets no window.
    """
    windows: list[Window] = []
    for text, counts in enumerate(piece_counts):
        first, used = 0, 0
        for word, count in enumerate(counts):
            if word > first and used + count > budget:
                windows.append(Window(text, first, word))
                first, used = word, 0
            used += count
        if counts:
            windows.append(Window(text, first, len(counts)))
    return windows


class TransformerEntityModel:
    """Entity spans from a fine-tuned token classifier; batched, windowed, one forward at a time."""

    def __init__(self, folder: str | Path, *, max_length: int = 128, batch_size: int = 64,
                 tokens_per_forward: int | None = DEFAULT_TOKENS_PER_FORWARD, quantize: bool = False,
                 num_threads: int | None = None, device: str = "cpu", outside_threshold: float | None = None,
                 runtime: str = "torch", trace: bool = True) -> None:
        import torch  # noqa: PLC0415  (seconds of import; only a service that loads a model pays)
        from transformers import AutoModelForTokenClassification, AutoTokenizer  # noqa: PLC0415

        folder = Path(folder)
        self.id2label = read_id2label(folder)
        self.tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True, use_fast=True)
        if not self.tokenizer.is_fast:
            raise ValueError(f"{folder.name}: a fast tokenizer is needed for word ids")
        # Eager attention: on a CPU, torch's fused attention with a padding mask ran these short windows about
        # 12 % slower end to end than the plain softmax(QK^T)V (3 layers, int8, 2 threads, profiled).
        model = AutoModelForTokenClassification.from_pretrained(folder, use_safetensors=True, local_files_only=True,
                                                                attn_implementation="eager")
        if num_threads:
            torch.set_num_threads(num_threads)
        self._onnx = None
        if runtime == "onnx" and device == "cpu":
            self._onnx = _onnx_or_none(model, quantize=quantize, num_threads=num_threads)
        if self._onnx is None and quantize:  # int8 dynamic quantization is a CPU kernel
            model = int8_dynamic(model)
        elif self._onnx is None:
            model = model.to(device)
        # Under ONNX Runtime the session holds its own copy of the weights: the torch model is not kept.
        self.model = model.eval() if self._onnx is None else None
        self.runtime = "onnx" if self._onnx is not None else "torch"
        self.device = "cpu" if quantize or self._onnx is not None else device
        self.max_length = max_length
        self.batch_size = batch_size
        # Padded pieces per forward (None: batch_size windows whatever their length). On a CPU, a forward whose
        # activations stay in cache beats a wide one: 256 pieces ran about 2.8x as fast as 64 windows.
        self.tokens_per_forward = tokens_per_forward
        # None: each word takes its most probable tag. A threshold t: a word is an entity (its most probable
        # entity tag) unless the model gives "O" a probability of at least t, trading precision for recall.
        self.outside_threshold = outside_threshold
        # Where each word's tag is read (word_labels, as the trainer labels it): its first piece with a letter or
        # digit, so ">Ella" is read at "ella", not at ">".
        self._readable = vocabulary_readable(self.tokenizer)
        self._outside_id = next((i for i, tag in self.id2label.items() if tag == OUTSIDE), None)
        self._torch = torch
        self._specials = _special_wrapping(self.tokenizer)
        self._backend = _untruncated_backend(self.tokenizer)
        self._pad_id = self.tokenizer.pad_token_id or 0
        self._torch_forward = None
        if self.model is not None:
            self._torch_forward = self._traced_or_none(trace) or self._module_forward
        # One forward at a time: torch already uses every core, and a fast tokenizer is not re-entrant.
        self._lock = threading.Lock()

    def find_batch(self, texts: Sequence[str]) -> list[list[PiiSpan]]:
        """Entity spans for each text, in order; offsets index the given texts."""
        words = [whitespace_words(text) for text in texts]
        pieces = [[text[s:e] for s, e in spans] for text, spans in zip(texts, words, strict=True)]
        with self._lock, self._torch.inference_mode():
            ids, counts = self._encode_words(pieces)
            windows = word_windows(counts, self._budget())
            tags = [[OUTSIDE] * len(w) for w in words]
            scores = [[0.0] * len(w) for w in words]
            for chunk in self._length_sorted_chunks(windows, counts):
                self._tag_chunk(chunk, ids, counts, tags, scores)
        return [self._spans(text, w, t, s) for text, w, t, s in zip(texts, words, tags, scores, strict=True)]

    def _encode_words(self, pieces: list[list[str]]) -> tuple[list[list[int]], list[list[int]]]:
        """Each text's piece ids (no special tokens) and pieces per word: the batch's only tokenizer call."""
        rows = [i for i, words in enumerate(pieces) if words]
        ids: list[list[int]] = [[] for _ in pieces]
        counts: list[list[int]] = [[] for _ in pieces]
        if rows:
            # The Rust tokenizer itself: transformers' wrapper would convert every encoding to Python dicts
            # first, which took longer than the tokenizing (12 % of a detector pass, profiled).
            encodings = self._backend.encode_batch([pieces[i] for i in rows], is_pretokenized=True,
                                                   add_special_tokens=False)
            for encoding, i in zip(encodings, rows, strict=True):
                ids[i] = encoding.ids
                counts[i] = _count_per_word(encoding.word_ids, len(pieces[i]))
        return ids, counts

    def _budget(self) -> int:
        """Word pieces a window may hold once its special tokens are added."""
        return self.max_length - len(self._specials[0]) - len(self._specials[1])

    def _length_sorted_chunks(self, windows: list[Window], counts: list[list[int]]) -> list[list[Window]]:
        """The windows, shortest first, in forwards of at most ``batch_size`` windows and ``tokens_per_forward``
        padded pieces."""
        wrapping = len(self._specials[0]) + len(self._specials[1])
        lengths = [min(sum(counts[w.text][w.first:w.stop]), self._budget()) + wrapping for w in windows]
        chunks = token_budget_chunks(lengths, max_rows=self.batch_size, max_tokens=self.tokens_per_forward)
        return [[windows[i] for i in chunk] for chunk in chunks]

    def _tag_chunk(self, chunk: list[Window], ids: list[list[int]], counts: list[list[int]],
                   tags: list[list[str]], scores: list[list[float]]) -> None:
        rows = [self._window_input(ids[w.text], counts[w.text], w) for w in chunk]
        input_ids, attention_mask = self._padded([row_ids for row_ids, _ in rows])
        if self._onnx is not None:
            logits = self._torch.from_numpy(self._onnx(input_ids.numpy(), attention_mask.numpy())).float()
        else:
            logits = self._torch_forward(input_ids.to(self.device), attention_mask.to(self.device)).float()
        best_scores, best_ids = (t.tolist() for t in self._best_tags(self._torch.softmax(logits, dim=-1)))
        for row, ((row_ids, word_ids), window) in enumerate(zip(rows, chunk, strict=True)):
            firsts = first_pieces(word_ids, [self._readable[token] for token in row_ids])
            window_tags, window_scores = word_tags(firsts, window.stop - window.first, best_ids[row], best_scores[row],
                                                   self.id2label)
            tags[window.text][window.first:window.stop] = window_tags
            scores[window.text][window.first:window.stop] = window_scores

    def _module_forward(self, input_ids, attention_mask):
        return self.model(input_ids=input_ids, attention_mask=attention_mask).logits

    @staticmethod
    def _traced_forward(traced):
        def forward(input_ids, attention_mask):
            return traced(input_ids=input_ids, attention_mask=attention_mask)["logits"]
        return forward

    def _traced_or_none(self, trace: bool):
        """The CPU model as a TorchScript trace, or None (the module serves it) when not asked, on a GPU, or when
        tracing fails. A trace skips the Python of every module call: on the 3-layer int8 model that overhead
        was about a quarter of a detector pass (profiled; 1211 -> 1596 texts/s, the same spans). The trace reads
        shapes from its inputs and shares the module's weights; its example has a padded row, so the
        padding-mask path is the one recorded."""
        if not trace or self.device != "cpu":
            return None
        prefix, suffix = self._specials
        body = self.tokenizer("streamtune traces this model", add_special_tokens=False)["input_ids"]
        input_ids, attention_mask = self._padded([prefix + body + suffix, prefix + body[:1] + suffix])
        try:
            with self._torch.inference_mode(), warnings.catch_warnings():
                # Its tracer warning: the mask is padded when it is narrower than the ids, never the case here;
                # and transformers' deprecated properties warn when the tracer reads every attribute.
                warnings.simplefilter("ignore", self._torch.jit.TracerWarning)
                warnings.simplefilter("ignore", FutureWarning)
                traced = self._torch.jit.trace(self.model, strict=False, check_trace=False, example_kwarg_inputs={
                    "input_ids": input_ids, "attention_mask": attention_mask})
            return self._traced_forward(traced)
        except Exception as exc:  # noqa: BLE001 - any tracing failure leaves the module serving, said so
            log.warning("pii_model_trace_failed", error=type(exc).__name__, reason=str(exc)[:200])
            return None

    def _padded(self, rows: list[list[int]]):
        """Right-padded ``input_ids`` and their ``attention_mask``, as int64 tensors."""
        width = max(len(row) for row in rows)
        ids = [row + [self._pad_id] * (width - len(row)) for row in rows]
        mask = [[1] * len(row) + [0] * (width - len(row)) for row in rows]
        return self._torch.tensor(ids, dtype=self._torch.long), self._torch.tensor(mask, dtype=self._torch.long)

    def _best_tags(self, probabilities):
        """Each piece's (score, tag id): the most probable tag, or with a threshold, "O" only when that sure."""
        if self.outside_threshold is None or self._outside_id is None:
            return probabilities.max(dim=-1)
        outside = probabilities[..., self._outside_id]
        entity_scores, entity_ids = probabilities.index_fill(-1, self._torch.tensor([self._outside_id]), 0.0).max(dim=-1)
        is_entity = outside < self.outside_threshold
        return (self._torch.where(is_entity, entity_scores, outside),
                self._torch.where(is_entity, entity_ids, self._torch.full_like(entity_ids, self._outside_id)))

    def _window_input(self, text_ids: list[int], text_counts: list[int], window: Window) -> tuple[list[int], list]:
        """A window's model input ids, sliced from its text's encoding, and each id's window-relative word."""
        start = sum(text_counts[:window.first])
        word_ids = [word for word, count in enumerate(text_counts[window.first:window.stop]) for _ in range(count)]
        # Only a lone word longer than the budget is cut; its first piece, where its tag is read, stays.
        body = text_ids[start:start + len(word_ids)][:self._budget()]
        word_ids = word_ids[:self._budget()]
        prefix, suffix = self._specials
        return prefix + body + suffix, [None] * len(prefix) + word_ids + [None] * len(suffix)

    @staticmethod
    def _spans(text: str, words: list[tuple[int, int]], tags: list[str], scores: list[float]) -> list[PiiSpan]:
        entities = decode_entities(text, words, tags, scores)
        return [PiiSpan(e.start, e.end, e.label, source=SOURCE, score=e.score) for e in entities]


def int8_dynamic(model):
    """``model`` with its Linear layers int8 dynamic-quantized, each output channel's weights on its own scale.

    One scale per weight matrix (torch's default) cost the 3-layer PII model 10.3 points of ORGANIZATION and 1.7
    of LOCATION token recall on the validation split against fp32 (0.578 / 0.835 vs 0.681 / 0.852); per channel,
    0.655 / 0.870, for about 2 % of the throughput (side by side, 2 threads, throw-away script)."""
    import torch  # noqa: PLC0415
    from torch.ao.quantization import per_channel_dynamic_qconfig  # noqa: PLC0415

    return torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear: per_channel_dynamic_qconfig})


def _onnx_or_none(model, *, quantize: bool, num_threads: int | None):
    """The model under ONNX Runtime, or None (torch serves it) when onnxruntime is missing or the export fails."""
    from .onnx_runtime import OnnxTokenClassifier, onnx_runtime_available  # noqa: PLC0415

    if not onnx_runtime_available():
        log.warning("pii_model_onnx_unavailable", reason="onnxruntime is not installed; serving with torch")
        return None
    try:
        return OnnxTokenClassifier(model, quantize=quantize, num_threads=num_threads)
    except Exception as exc:  # noqa: BLE001 - any export failure falls back to the torch model, said so
        log.warning("pii_model_onnx_failed", error=type(exc).__name__, reason=str(exc)[:200])
        return None


def _untruncated_backend(tokenizer):
    """A copy of the fast tokenizer's Rust tokenizer with no truncation or padding of its own: a saved
    tokenizer.json may carry the trainer's ``max_length`` truncation, which would cut a long text's tail."""
    from tokenizers import Tokenizer  # noqa: PLC0415  (comes with transformers)

    backend = Tokenizer.from_str(tokenizer.backend_tokenizer.to_str())
    backend.no_truncation()
    backend.no_padding()
    return backend


def _special_wrapping(tokenizer) -> tuple[list[int], list[int]]:
    """The special token ids the tokenizer puts before and after a single sequence (e.g. [CLS] / [SEP])."""
    plain = tokenizer("a", add_special_tokens=False)["input_ids"]
    wrapped = tokenizer("a")["input_ids"]
    at = next(i for i in range(len(wrapped)) if wrapped[i:i + len(plain)] == plain)
    return wrapped[:at], wrapped[at + len(plain):]


def _count_per_word(word_ids: Sequence[int | None], n_words: int) -> list[int]:
    """Word pieces per word; a word the tokenizer drops entirely (a zero-width character) counts 0."""
    counts = [0] * n_words
    for word in word_ids:
        if word is not None:
            counts[word] += 1
    return counts

