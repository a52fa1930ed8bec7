"""Adversarial training on the word embeddings: FGM and PGD put the embedding back exactly and change the gradient."""

from __future__ import annotations

import pytest
import torch
from streamtune_shared.adaptation import AdversarialOptions, FreezeOptions
from streamtune_shared.schemas import TrainRequest
from streamtune_trainer.adversarial import EmbeddingAttack, input_embedding, project, unit
from streamtune_trainer.domain import TOKEN_CLASSIFICATION, Example, LabelMap, TrainingRejected
from streamtune_trainer.encoding import collate, encode_examples
from streamtune_trainer.methods import adapt_model
from streamtune_trainer.training import Hyperparameters, TrainingData, TrainingHooks, load_model, load_tokenizer, train_model

LABELS = LabelMap(TOKEN_CLASSIFICATION, ("O", "B-Disease", "I-Disease"))
EXAMPLES = [Example("e1", "patients with cystic fibrosis improved", ("O", "O", "B-Disease", "I-Disease", "O")),
            Example("e2", "asthma was frequent", ("B-Disease", "O", "O"))]
CPU = torch.device("cpu")


def _request(**fields) -> TrainRequest:
    return TrainRequest(model_name="ner", task=TOKEN_CLASSIFICATION, dataset="notes", **fields)


@pytest.fixture
def model_and_batch(tiny_base_model):
    torch.manual_seed(0)
    tokenizer = load_tokenizer(tiny_base_model)
    model = load_model(tiny_base_model, LABELS, config_overrides={"hidden_dropout_prob": 0.0,
                                                                  "attention_probs_dropout_prob": 0.0})
    batch = collate(encode_examples(tokenizer, EXAMPLES, LABELS, 16), tokenizer.pad_token_id, True)
    return model, batch


def _grads(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def _normal_grads(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    model.zero_grad(set_to_none=True)
    model(**batch).loss.backward()
    return _grads(model)


@pytest.mark.parametrize("method", ["fgm", "pgd"])
def test_the_attack_restores_the_embedding_exactly_and_adds_the_adversarial_gradient(model_and_batch, method):
    model, batch = model_and_batch
    model.eval()  # no dropout: the normal gradient is reproducible
    normal = _normal_grads(model, batch)
    weight = input_embedding(model)
    before = weight.detach().clone()
    attack = EmbeddingAttack(model, AdversarialOptions(method=method, epsilon=1.0))
    adversarial_loss = attack.backward(lambda: model(**batch).loss)
    assert adversarial_loss is not None and adversarial_loss > 0
    assert torch.equal(weight.detach(), before)
    after = _grads(model)
    assert set(after) == set(normal)
    assert not torch.allclose(after["classifier.weight"], normal["classifier.weight"])
    # The added gradient is the adversarial loss's, not a second copy of the normal one.
    assert not torch.allclose(after["classifier.weight"], 2 * normal["classifier.weight"])


def test_fgm_moves_the_embedding_by_exactly_epsilon_along_the_gradient(model_and_batch):
    model, batch = model_and_batch
    model.eval()
    _normal_grads(model, batch)
    weight = input_embedding(model)
    seen: list[torch.Tensor] = []
    attack = EmbeddingAttack(model, AdversarialOptions(method="fgm", epsilon=0.5))
    attack.backward(lambda: (seen.append(weight.detach().clone()), model(**batch).loss)[1])
    moved = seen[0] - weight.detach()
    assert torch.linalg.vector_norm(moved).item() == pytest.approx(0.5, rel=1e-4)
    assert attack.delta_norms == [pytest.approx(0.5, rel=1e-4)]


def test_pgd_stays_within_epsilon_on_every_step(model_and_batch):
    model, batch = model_and_batch
    model.eval()
    _normal_grads(model, batch)
    weight = input_embedding(model)
    before = weight.detach().clone()
    norms: list[float] = []

    def loss() -> torch.Tensor:
        norms.append(torch.linalg.vector_norm(weight.detach() - before).item())
        return model(**batch).loss

    attack = EmbeddingAttack(model, AdversarialOptions(method="pgd", epsilon=0.4, steps=4, step_size=0.5))
    attack.backward(loss)
    assert len(norms) == 4 and all(norm <= 0.4 + 1e-5 for norm in norms)
    assert norms[0] == pytest.approx(0.2, rel=1e-4) and norms[-1] == pytest.approx(0.4, rel=1e-4)  # projected
    assert torch.equal(weight.detach(), before)


def test_projection_and_unit_direction():
    assert torch.linalg.vector_norm(project(torch.tensor([3.0, 4.0]), 1.0)).item() == pytest.approx(1.0)
    assert torch.equal(project(torch.tensor([0.3, 0.4]), 1.0), torch.tensor([0.3, 0.4]))
    assert unit(torch.zeros(3)) is None and unit(torch.tensor([float("nan")])) is None


def test_with_lora_the_frozen_embedding_is_attacked_but_never_trained(tiny_base_model):
    torch.manual_seed(1)
    tokenizer = load_tokenizer(tiny_base_model)
    request = _request(method="lora", adversarial=AdversarialOptions())
    adapted = adapt_model(load_model(tiny_base_model, LABELS), request)
    weight = input_embedding(adapted.model)
    assert not weight.requires_grad
    before = {n: p.detach().clone() for n, p in adapted.model.named_parameters()}
    encoded = encode_examples(tokenizer, EXAMPLES * 4, LABELS, 16)
    data = TrainingData(LABELS, encoded, EXAMPLES, encoded[:2], tokenizer.pad_token_id)
    hp = Hyperparameters(epochs=1, batch_size=4, learning_rate=1e-2, weight_decay=0.0, seed=2, max_length=16,
                         early_stopping_patience=None, adversarial=request.adversarial)
    outcome = train_model(adapted.model, data, hp, CPU, TrainingHooks())
    changed = {n for n, p in adapted.model.named_parameters() if not torch.equal(p.detach(), before[n])}
    assert any("lora_" in n for n in changed)
    assert not any("word_embeddings" in n for n in changed)
    assert not weight.requires_grad and weight.grad is None
    assert outcome.state.history[0]["adversarial_loss"] > 0


@pytest.mark.parametrize(("method", "trains"), [("full", "word_embeddings"), ("freeze", "classifier"),
                                               ("lora", "lora_"), ("prompt", "prompt_encoder")])
def test_every_method_trains_with_fgm_and_a_frozen_embedding_stays_frozen(train_one_epoch, method, trains):
    options = {"freeze": FreezeOptions(layers=1)} if method == "freeze" else {}  # the tiny base has 2 layers
    adapted, changed, outcome = train_one_epoch(_request(method=method, adversarial=AdversarialOptions(), **options))
    assert any(trains in name for name in changed)
    embedding_changed = any("word_embeddings" in name for name in changed)
    assert embedding_changed == (method == "full")
    assert input_embedding(adapted.model).requires_grad == (method == "full")
    assert outcome.state.history[0]["adversarial_loss"] > 0


def test_a_full_fine_tune_with_fgm_records_the_adversarial_loss_per_epoch(tiny_base_model):
    torch.manual_seed(1)
    tokenizer = load_tokenizer(tiny_base_model)
    model = load_model(tiny_base_model, LABELS)
    encoded = encode_examples(tokenizer, EXAMPLES * 4, LABELS, 16)
    data = TrainingData(LABELS, encoded, EXAMPLES, encoded[:2], tokenizer.pad_token_id)
    hp = Hyperparameters(epochs=2, batch_size=4, learning_rate=1e-3, weight_decay=0.0, seed=2, max_length=16,
                         early_stopping_patience=None, adversarial=AdversarialOptions(epsilon=0.5))
    outcome = train_model(model, data, hp, CPU, TrainingHooks())
    assert [h["epoch"] for h in outcome.state.history] == [1, 2]
    assert all(h["adversarial_loss"] > 0 for h in outcome.state.history)
    assert input_embedding(model).requires_grad


def test_a_model_without_word_embeddings_is_refused():
    with pytest.raises(TrainingRejected, match="word-embedding"):
        input_embedding(torch.nn.Linear(3, 3))
