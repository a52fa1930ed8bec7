"""DP-SGD: the noise meets the target, the accountant agrees with Opacus step by step, unmeetable targets fail."""

from __future__ import annotations

import pytest
import torch
from opacus.accountants import RDPAccountant
from streamtune_shared.adaptation import DPOptions
from streamtune_shared.schemas import TrainRequest
from streamtune_trainer.domain import TOKEN_CLASSIFICATION, TrainingRejected
from streamtune_trainer.privacy import plan_dp, spent_epsilon, steps_for



def test_the_calibrated_noise_spends_close_to_but_not_over_the_target():
    plan = plan_dp(DPOptions(target_epsilon=8, delta=1e-5), train_rows=5000, batch_size=32, steps=400)
    assert plan.sample_rate == pytest.approx(32 / 5000)
    assert 7.8 <= plan.spent(plan.steps) <= 8.0
    assert plan.spent(plan.steps // 2) < plan.spent(plan.steps)  # fewer steps (early stop) spend less


def test_the_spent_epsilon_matches_opacus_accountant_stepped_once_per_optimizer_step():
    plan = plan_dp(DPOptions(target_epsilon=3, delta=1e-5), train_rows=2000, batch_size=20, steps=250)
    accountant = RDPAccountant()
    for _ in range(137):
        accountant.step(noise_multiplier=plan.noise_multiplier, sample_rate=plan.sample_rate)
    assert spent_epsilon(plan.noise_multiplier, plan.sample_rate, 137, plan.delta) == pytest.approx(
        accountant.get_epsilon(plan.delta), rel=1e-9)


def test_a_target_that_cannot_be_met_is_rejected_with_the_reason():
    with pytest.raises(TrainingRejected, match="dp.target_epsilon 0.01 cannot be met over 3000 steps"):
        plan_dp(DPOptions(target_epsilon=0.01, delta=1e-5), train_rows=200, batch_size=100, steps=3000)


def test_a_delta_above_one_over_the_rows_is_rejected():
    with pytest.raises(TrainingRejected, match="dp.delta 0.01 must be below 1 / train rows"):
        plan_dp(DPOptions(target_epsilon=8, delta=0.01), train_rows=200, batch_size=10, steps=20)


def test_steps_count_every_batch_of_every_epoch():
    assert steps_for(train_rows=101, batch_size=10, epochs=3) == 33


def test_dp_sgd_with_lora_trains_the_adapter_and_reports_the_epsilon_spent(train_one_epoch):
    request = TrainRequest(model_name="m", task=TOKEN_CLASSIFICATION, dataset="d", method="lora",
                           dp={"target_epsilon": 8, "delta": 1e-3, "max_grad_norm": 0.5})
    _, changed, outcome = train_one_epoch(request)
    assert changed and all("lora_" in n or "classifier" in n for n in changed)
    privacy = outcome.privacy
    assert privacy is not None and privacy.steps == 3 and 0 < privacy.epsilon <= 8
    assert outcome.state.history[-1]["privacy"] == {"epsilon": privacy.epsilon, "delta": 1e-3}
    assert privacy.noise_multiplier > 0 and privacy.max_grad_norm == 0.5


def test_dp_sgd_noise_changes_the_update(train_one_epoch):
    plain = TrainRequest(model_name="m", task=TOKEN_CLASSIFICATION, dataset="d", method="freeze",
                         freeze={"layers": 2})
    private = plain.model_copy(update={"dp": DPOptions(target_epsilon=1, delta=1e-3)})
    first, _, _ = train_one_epoch(plain)
    second, _, _ = train_one_epoch(private)
    head = [name for name, _ in first.model.named_parameters() if "classifier.weight" in name][0]
    assert not torch.allclose(dict(first.model.named_parameters())[head], dict(second.model.named_parameters())[head])


def test_dp_sgd_full_fine_tune_trains_all_but_the_embeddings_shared_across_the_batch(train_one_epoch):
    request = TrainRequest(model_name="m", task=TOKEN_CLASSIFICATION, dataset="d",
                           dp={"target_epsilon": 8, "delta": 1e-3})
    _, changed, outcome = train_one_epoch(request)
    assert outcome.privacy is not None
    assert any("word_embeddings" in n for n in changed) and any(".layer.0." in n for n in changed)
    assert not [n for n in changed if "position_embeddings" in n or "token_type_embeddings" in n]
