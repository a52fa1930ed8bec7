"""Adaptation methods on a tiny model: what trains, what stays frozen, what a request's regularization sets."""

from __future__ import annotations

import pytest
import torch
from streamtune_shared.schemas import TrainRequest
from streamtune_trainer.domain import TOKEN_CLASSIFICATION, LabelMap, TrainingRejected
from streamtune_trainer.methods import dropout_overrides
from streamtune_trainer.training import Hyperparameters, build_optimizer, load_model, load_tokenizer

LABELS = LabelMap(TOKEN_CLASSIFICATION, ("O", "B-Disease", "I-Disease"))


def train_request(method: str, **fields) -> TrainRequest:
    """A token-classification request for ``method``."""
    return TrainRequest(model_name="m", task=TOKEN_CLASSIFICATION, dataset="d", method=method, **fields)


def test_freeze_keeps_the_lower_layers_and_embeddings_exactly_as_they_were(train_one_epoch):
    adapted, changed, _ = train_one_epoch(train_request("freeze", freeze={"layers": 1}))
    assert not [n for n in changed if ".layer.0." in n or "embeddings" in n]
    assert any(".layer.1." in n for n in changed) and any("classifier" in n for n in changed)
    assert adapted.trainable_parameters < adapted.total_parameters


def test_freeze_without_embeddings_trains_them(train_one_epoch):
    _, changed, _ = train_one_epoch(train_request("freeze", freeze={"layers": 2, "embeddings": False}))
    assert any("word_embeddings" in n for n in changed)
    assert not [n for n in changed if ".layer." in n]


def test_freezing_more_layers_than_the_base_has_is_rejected(train_one_epoch):
    with pytest.raises(TrainingRejected, match="freeze.layers 5 is more than the base model's 2 layers"):
        train_one_epoch(train_request("freeze", freeze={"layers": 5}))


def test_lora_trains_only_the_adapter_and_the_head(train_one_epoch):
    adapted, changed, _ = train_one_epoch(train_request("lora", lora={"r": 2}))
    assert changed and all("lora_" in n or "classifier" in n for n in changed)
    assert any("lora_B" in n for n in changed)
    trainable = {n for n, p in adapted.model.named_parameters() if p.requires_grad}
    assert all("lora_" in n or "classifier" in n for n in trainable)
    assert adapted.trainable_parameters < adapted.total_parameters / 10


def test_prompt_tuning_trains_the_virtual_tokens_and_head_with_word_aligned_logits(train_one_epoch, tiny_base_model):
    adapted, changed, _ = train_one_epoch(train_request("prompt", prompt={"num_virtual_tokens": 4}))
    assert changed and all("prompt_encoder" in n or "classifier" in n for n in changed)
    assert any("prompt_encoder" in n for n in changed)
    batch = load_tokenizer(tiny_base_model)(["asthma was frequent"], return_tensors="pt")
    adapted.model.eval()
    assert adapted.model(**batch).logits.shape[1] == batch["input_ids"].shape[1]


def test_prefix_tuning_on_a_base_without_past_key_values_is_rejected_with_the_reason(train_one_epoch):
    with pytest.raises(TrainingRejected, match="prefix tuning needs a base that takes past key values"):
        train_one_epoch(train_request("prefix"))


def test_request_dropouts_reach_the_model_config(tiny_base_model):
    request = train_request("full", hidden_dropout=0.3, attention_dropout=0.2, classifier_dropout=0.4)
    model = load_model(tiny_base_model, LABELS, config_overrides=dropout_overrides(request))
    assert (model.config.hidden_dropout_prob, model.config.attention_probs_dropout_prob) == (0.3, 0.2)
    assert model.dropout.p == 0.4  # the classifier dropout, before the head


@pytest.mark.parametrize("schedule", ["linear", "cosine", "constant"])
def test_the_learning_rate_warms_up_then_follows_the_schedule(schedule):
    model = torch.nn.Linear(2, 2)
    hp = Hyperparameters(epochs=1, batch_size=1, learning_rate=1.0, weight_decay=0.0, seed=1, max_length=8,
                         early_stopping_patience=None, lr_schedule=schedule, warmup_ratio=0.2)
    optimizer, scheduler = build_optimizer(model, hp, total_steps=10)
    rates = []
    for _ in range(10):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert rates[0] == 0.0 and rates[1] == pytest.approx(0.5) and rates[2] == pytest.approx(1.0)
    expected_mid = {"linear": 0.5, "cosine": 0.5, "constant": 1.0}[schedule]
    assert rates[6] == pytest.approx(expected_mid)
    if schedule == "cosine":
        assert rates[4] > 1 - (4 - 2) / 8  # cosine stays above the linear ramp in the first half


@pytest.mark.parametrize("method", ["lora", "prompt"])
def test_an_adapter_run_resumed_from_its_checkpoint_ends_with_the_same_weights(tiny_base_model, method):
    from streamtune_trainer.checkpoint import checkpoint_files, read_checkpoint
    from streamtune_trainer.domain import Example
    from streamtune_trainer.encoding import encode_examples
    from streamtune_trainer.methods import adapt_model
    from streamtune_trainer.training import TrainingData, TrainingHooks, seed_everything, train_model

    tokenizer = load_tokenizer(tiny_base_model)
    examples = [Example(f"e{i}", "asthma was frequent", ("B-Disease", "O", "O")) for i in range(8)]
    encoded = encode_examples(tokenizer, examples, LABELS, 16)
    data = TrainingData(LABELS, encoded, examples[:2], encoded[:2], tokenizer.pad_token_id)
    hp = Hyperparameters(epochs=2, batch_size=4, learning_rate=1e-2, weight_decay=0.01, seed=5, max_length=16,
                         early_stopping_patience=None)

    def fresh():
        seed_everything(hp.seed)
        return adapt_model(load_model(tiny_base_model, LABELS), train_request(method)).model

    saved = []
    straight = fresh()
    train_model(straight, data, hp, torch.device("cpu"), TrainingHooks(
        on_epoch_end=lambda state, snap: saved.append(checkpoint_files(snap())) if state.epoch == 1 else None))
    resumed = fresh()
    outcome = train_model(resumed, data, hp, torch.device("cpu"), TrainingHooks(), read_checkpoint(saved[0]))
    assert outcome.resumed_from_epoch == 1
    expected = straight.state_dict()
    for name, tensor in resumed.state_dict().items():
        assert torch.allclose(tensor, expected[name], atol=1e-6), name
