"""Train requests pick an adaptation method with its own typed options; the rest gets the method's defaults."""

from __future__ import annotations

import re

import pytest
from pydantic import ValidationError
from streamtune_shared.adaptation import DEFAULT_LEARNING_RATES, LoraOptions
from streamtune_shared.schemas import TrainRequest, field_errors

BASE = {"model_name": "disease-ner", "task": "token-classification", "dataset": "clinical-notes"}


def _error_fields(**fields) -> list[str]:
    with pytest.raises(ValidationError) as caught:
        TrainRequest(**BASE, **fields)
    return [error.field for error in field_errors(caught.value, limit=5, root="", model=TrainRequest)]


@pytest.mark.parametrize("method", ["full", "lora", "freeze", "prefix", "prompt"])
def test_a_request_naming_only_the_method_gets_that_methods_learning_rate(method):
    request = TrainRequest(**BASE, method=method)
    assert request.learning_rate == DEFAULT_LEARNING_RATES[method]


def test_the_default_method_is_a_full_fine_tune_at_a_rate_that_learns():
    request = TrainRequest(**BASE)
    assert request.method == "full" and request.learning_rate == 1e-4


def test_lora_defaults_update_every_linear_layer_of_a_bert_encoder_at_the_measured_rate():
    options = LoraOptions()
    assert (options.r, options.alpha, options.target_modules) == (16, 32, ("query", "key", "value", "dense"))
    assert TrainRequest(**BASE, method="lora").learning_rate == 2e-3


def test_an_explicit_or_null_learning_rate():
    assert TrainRequest(**BASE, method="lora", learning_rate=5e-4).learning_rate == 5e-4
    assert TrainRequest(**BASE, method="lora", learning_rate=None).learning_rate == DEFAULT_LEARNING_RATES["lora"]


def test_option_blocks_are_typed_with_defaults():
    request = TrainRequest(**BASE, method="lora", lora={"r": 4, "target_modules": ["query", "key", "value"]})
    assert request.lora is not None and (request.lora.r, request.lora.alpha) == (4, 32)
    assert request.lora.target_modules == ("query", "key", "value")
    assert TrainRequest(**BASE, method="freeze", freeze={"layers": 2}).freeze.embeddings is True


def test_an_option_block_for_another_method_is_an_error_naming_the_field():
    assert "freeze" in _error_fields(method="lora", freeze={"layers": 2})
    assert "lora" in _error_fields(lora={"r": 4})  # method defaults to full


def test_unknown_options_and_methods_are_refused():
    assert any(f.startswith("lora") for f in _error_fields(method="lora", lora={"rank": 4}))
    assert "method" in _error_fields(method="adapter")


def test_dp_takes_a_target_and_is_refused_for_soft_prompts():
    request = TrainRequest(**BASE, method="lora", dp={"target_epsilon": 8})
    assert request.dp is not None and (request.dp.delta, request.dp.max_grad_norm) == (1e-5, 1.0)
    assert "dp" in _error_fields(method="prompt", dp={"target_epsilon": 8})
    assert any(f.startswith("dp") for f in _error_fields(dp={"target_epsilon": 0}))


def test_regularization_fields_have_defaults_and_bounds():
    request = TrainRequest(**BASE, hidden_dropout=0.2, lr_schedule="cosine")
    assert (request.max_grad_norm, request.warmup_ratio, request.lr_schedule) == (1.0, 0.1, "cosine")
    assert "hidden_dropout" in _error_fields(hidden_dropout=1.5)
    assert "lr_schedule" in _error_fields(lr_schedule="step")


def test_a_request_survives_its_own_json():
    request = TrainRequest(**BASE, method="prompt", prompt={"num_virtual_tokens": 8, "init": "vocab"})
    assert TrainRequest.model_validate_json(request.model_dump_json()) == request


@pytest.mark.parametrize(("fields", "field", "reason"), [
    ({"base_model": "s3://bases/"}, "base_model", "needs a bucket and a prefix"),
    ({"base_model": "s3:///ner/"}, "base_model", "needs a bucket and a prefix"),
    ({"augmentation": {}, "dp": {"target_epsilon": 8}}, "augmentation", "augmentation cannot be combined with dp"),
    ({"adversarial": {}, "dp": {"target_epsilon": 8}}, "adversarial", "adversarial cannot be combined with dp"),
    ({"task": "sensor-anomaly", "adversarial": {}}, "adversarial", "adversarial is for the text tasks"),
    ({"task": "sensor-anomaly", "method": "lora"}, "method", "method is for the text tasks"),
    ({"task": "sensor-anomaly", "dp": {"target_epsilon": 8}}, "dp", "dp is for the text tasks"),
    ({"task": "sensor-anomaly", "search": {"space": {"learning_rate": {"low": 1e-4, "high": 1e-2}}}}, "search",
     "search is for the text tasks"),
    ({"task": "sensor-anomaly", "dapt": {}}, "dapt", "dapt is for the text tasks"),
    ({"model_name": "n" * 63, "dapt": {}}, "dapt", "adapted base's name 'n{63}-dapt' is too long"),
    ({"search": {"space": {"lora.r": {"low": 4, "high": 16}}}}, "search", "'lora.r' needs method 'lora', not 'full'"),
    ({"search": {"space": {"learning_rate": {"low": 1e-2, "high": 1e-4}}}}, "search", "needs low <= high"),
    ({"search": {"space": {"epochs": {"low": 1.5, "high": 3}}}}, "search", "'epochs' takes whole numbers"),
    ({"search": {"space": {"weight_decay": {"low": 0, "high": 0.1, "log": True}}}}, "search", "log scale needs low > 0"),
    ({"search": {"space": {"batch_size": {"low": 8, "choices": [8, 16]}}}}, "search", "choices or low/high, not both"),
])
def test_a_request_the_trainer_cannot_run_is_refused_naming_its_field(fields, field, reason):
    with pytest.raises(ValidationError) as caught:
        TrainRequest(**{**BASE, **fields})
    [error] = field_errors(caught.value, root="", model=TrainRequest)
    assert error.field == field and re.search(reason, error.message)


def test_the_refused_options_pass_one_at_a_time():
    assert TrainRequest(**BASE, augmentation={}, adversarial={}).dp is None
    assert TrainRequest(**BASE, base_model="s3://bases/ner/").base_model == "s3://bases/ner/"
    assert TrainRequest(**{**BASE, "task": "sensor-anomaly"}, augmentation={}).augmentation is not None
    assert TrainRequest(**{**BASE, "task": "sensor-anomaly"}, method="full").method == "full"
    assert TrainRequest(**BASE, method="lora", dp={"target_epsilon": 8},
                        search={"space": {"lora.r": {"low": 4, "high": 16}}}).search is not None
    assert TrainRequest(**{**BASE, "model_name": "n" * 63}, dapt={"model_name": "short-dapt"}).dapt is not None
