"""The train phase on a tiny local model: learning happens, resume equals an uninterrupted run, early stopping."""

from __future__ import annotations

import pytest
import torch
from streamtune_trainer.checkpoint import Checkpoint, RunState, checkpoint_files, read_checkpoint
from streamtune_trainer.domain import TOKEN_CLASSIFICATION, Example, LabelMap
from streamtune_trainer.encoding import encode_examples
from streamtune_trainer.training import (
    Hyperparameters,
    TrainingData,
    TrainingHooks,
    load_model,
    load_tokenizer,
    parameter_groups,
    record_epoch,
    seed_everything,
    should_stop_early,
    train_model,
)

LABELS = LabelMap(TOKEN_CLASSIFICATION, ("O", "B-Disease", "I-Disease"))
CPU = torch.device("cpu")


def _examples(n: int) -> list[Example]:
    sentences = [("patients with cystic fibrosis improved", ("O", "O", "B-Disease", "I-Disease", "O")),
                 ("asthma was frequent", ("B-Disease", "O", "O")),
                 ("the trial ended early", ("O", "O", "O", "O"))]
    return [Example(f"e{i}", *sentences[i % 3]) for i in range(n)]


def _setup(tiny_base_model, epochs: int = 2) -> tuple[torch.nn.Module, TrainingData, Hyperparameters]:
    hp = Hyperparameters(epochs=epochs, batch_size=4, learning_rate=5e-3, weight_decay=0.01, seed=11,
                         max_length=16, early_stopping_patience=None)
    seed_everything(hp.seed)
    tokenizer = load_tokenizer(tiny_base_model)
    model = load_model(tiny_base_model, LABELS)
    train, dev = _examples(24), _examples(6)
    data = TrainingData(LABELS, encode_examples(tokenizer, train, LABELS, 16), dev,
                        encode_examples(tokenizer, dev, LABELS, 16), tokenizer.pad_token_id)
    return model, data, hp


def test_training_reaches_the_easy_entities_and_reports_each_epoch(tiny_base_model):
    model, data, hp = _setup(tiny_base_model, epochs=4)
    steps, epochs_seen = [], []
    hooks = TrainingHooks(on_step=lambda e, s, t: steps.append((s, t)),
                          on_epoch_end=lambda state, snap: epochs_seen.append(state.epoch))
    outcome = train_model(model, data, hp, CPU, hooks)
    assert epochs_seen == [1, 2, 3, 4]
    assert steps[-1] == (24, 24)
    assert outcome.state.best_metric > 0.5
    assert outcome.samples_per_s > 0


def test_resuming_from_an_epoch_checkpoint_gives_the_same_weights_as_an_uninterrupted_run(tiny_base_model):
    model, data, hp = _setup(tiny_base_model)
    straight = train_model(model, data, hp, CPU, TrainingHooks())
    final_straight = {k: v.clone() for k, v in model.state_dict().items()}

    saved: list[dict[str, bytes]] = []

    def keep_first_epoch(state: RunState, snapshot) -> None:
        if state.epoch == 1:
            saved.append(checkpoint_files(snapshot()))

    model, data, hp = _setup(tiny_base_model)
    train_model(model, data, hp, CPU, TrainingHooks(on_epoch_end=keep_first_epoch))
    checkpoint: Checkpoint = read_checkpoint(saved[0])
    fresh, data, hp = _setup(tiny_base_model)
    resumed = train_model(fresh, data, hp, CPU, TrainingHooks(), resume=checkpoint)

    assert resumed.resumed_from_epoch == 1
    assert [h["epoch"] for h in resumed.state.history] == [1, 2]
    assert resumed.state.best_metric == pytest.approx(straight.state.best_metric)
    for name, tensor in fresh.state_dict().items():
        assert torch.allclose(tensor, final_straight[name], atol=1e-5), name


def test_early_stopping_after_patience_epochs_without_improvement():
    state = RunState(seed=1)
    assert record_epoch(state, 1, {"f1": 0.5}, {}) is True
    assert record_epoch(state, 2, {"f1": 0.4}, {}) is False
    assert not should_stop_early(state, 2)
    assert record_epoch(state, 3, {"f1": 0.5}, {}) is False
    assert should_stop_early(state, 2) and not should_stop_early(state, None)
    assert state.best_epoch == 1


def test_no_weight_decay_on_biases_and_layer_norms(tiny_base_model):
    model = load_model(tiny_base_model, LABELS)
    decay, no_decay = parameter_groups(model, 0.01)
    names = {id(p): n for n, p in model.named_parameters()}
    assert decay["weight_decay"] == 0.01 and no_decay["weight_decay"] == 0.0
    assert all(not names[id(p)].endswith("bias") and "LayerNorm" not in names[id(p)] for p in decay["params"])
    assert any("LayerNorm.weight" in names[id(p)] for p in no_decay["params"])
    assert len(decay["params"]) + len(no_decay["params"]) == len(names)


def test_base_layers_keeps_the_first_layers_with_their_pretrained_weights(tiny_base_model):
    full, cut = load_model(tiny_base_model, LABELS), load_model(tiny_base_model, LABELS, base_layers=1)
    assert len(cut.bert.encoder.layer) == 1 and len(full.bert.encoder.layer) == 2
    first = "bert.encoder.layer.0.attention.self.query.weight"
    assert torch.equal(cut.state_dict()[first], full.state_dict()[first])


def test_more_base_layers_than_the_model_has_is_refused(tiny_base_model, tmp_path):
    from streamtune_shared.testing import InMemoryObjectStore
    from streamtune_trainer.domain import TrainingRejected
    from streamtune_trainer.pipeline import load_base

    with pytest.raises(TrainingRejected, match="base_layers 3 is more than"):
        load_base(str(tiny_base_model), LABELS, InMemoryObjectStore(), tmp_path, base_layers=3)
