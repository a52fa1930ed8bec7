"""Checkpoints round-trip through safetensors and JSON only, and continue training exactly."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load as load_safetensors
from streamtune_trainer.checkpoint import Checkpoint, CheckpointCorrupt, RunState, checkpoint_files, read_checkpoint
from streamtune_trainer.training import Hyperparameters, build_optimizer

HP = Hyperparameters(epochs=2, batch_size=4, learning_rate=1e-2, weight_decay=0.01, seed=1, max_length=16,
                     early_stopping_patience=None)


def _step(model: torch.nn.Module, optimizer, scheduler) -> None:
    torch.manual_seed(0)
    loss = model(torch.randn(4, 3)).pow(2).sum()
    loss.backward()
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad()


def _model() -> torch.nn.Module:
    torch.manual_seed(3)
    return torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.LayerNorm(4), torch.nn.Linear(4, 2))


def _trained_checkpoint() -> tuple[torch.nn.Module, object, object, Checkpoint]:
    model = _model()
    optimizer, scheduler = build_optimizer(model, HP, total_steps=10)
    for _ in range(3):
        _step(model, optimizer, scheduler)
    state = RunState(seed=1, epoch=1, global_step=3, best_metric=0.5, best_epoch=1,
                     history=[{"epoch": 1, "dev": {"f1": 0.5}}])
    best = {k: v.clone() + 1 for k, v in model.state_dict().items()}
    checkpoint = Checkpoint(state, model.state_dict(), optimizer.state_dict(), scheduler.state_dict(), best)
    return model, optimizer, scheduler, checkpoint


def test_checkpoint_files_hold_no_pickle():
    *_, checkpoint = _trained_checkpoint()
    files = checkpoint_files(checkpoint)
    assert list(files)[-1] == "trainer_state.json"
    for name, data in files.items():
        # Every file must parse as what its name says. A raw pickle (0x80...) fails both parsers; torch.save
        # writes a zip archive of a pickle, which the magic check names outright. (No 0x80 check on
        # safetensors: its first byte is the low byte of the header length and may legitimately be 0x80.)
        assert not data.startswith(b"PK\x03\x04"), f"{name} is a zip archive (torch.save)"
        if name.endswith(".json"):
            json.loads(data)
        else:
            assert name.endswith(".safetensors"), f"{name} is neither JSON nor safetensors"
            load_safetensors(data)  # raises unless the bytes are a safetensors file


def test_a_restored_checkpoint_continues_exactly_like_the_original():
    model, optimizer, scheduler, checkpoint = _trained_checkpoint()
    restored = read_checkpoint(checkpoint_files(checkpoint))
    assert restored.state == checkpoint.state
    assert set(restored.best_model) == set(checkpoint.best_model)
    for name, tensor in checkpoint.best_model.items():
        assert torch.equal(restored.best_model[name], tensor), name
    # The fixture's best weights differ from the current ones, so storing the current weights as best fails above.
    assert not all(torch.equal(restored.best_model[k], restored.model[k]) for k in restored.model)
    twin = _model()
    twin_optimizer, twin_scheduler = build_optimizer(twin, HP, total_steps=10)
    twin.load_state_dict(restored.model)
    twin_optimizer.load_state_dict(restored.optimizer)
    twin_scheduler.load_state_dict(restored.scheduler)
    _step(model, optimizer, scheduler)
    _step(twin, twin_optimizer, twin_scheduler)
    assert twin_scheduler.get_last_lr() == scheduler.get_last_lr()
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, twin.state_dict()[name]), name


def test_a_checkpoint_with_a_changed_file_is_refused():
    *_, checkpoint = _trained_checkpoint()
    files = checkpoint_files(checkpoint)
    files["optimizer.json"] = files["optimizer.json"].replace(b"0.01", b"0.02")
    with pytest.raises(CheckpointCorrupt, match="optimizer.json"):
        read_checkpoint(files)
    with pytest.raises(CheckpointCorrupt):
        read_checkpoint({k: v for k, v in files.items() if k != "trainer_state.json"})
    with pytest.raises(CheckpointCorrupt, match="scheduler.json"):
        read_checkpoint({k: v for k, v in checkpoint_files(checkpoint).items() if k != "scheduler.json"})
