"""Checkpoints as plain files: tensors in safetensors, everything else in JSON (never pickle).

    model.safetensors        weights after the epoch
    best_model.safetensors   weights of the best epoch, when it is not this one
    optimizer.safetensors    optimizer tensors, named state.<param index>.<key>
    optimizer.json           optimizer param groups and non-tensor state
    scheduler.json           learning-rate scheduler state
    trainer_state.json       RunState plus the sha256 of every other file: written last, the commit marker
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from safetensors.torch import load as load_tensors
from safetensors.torch import save as save_tensors
from streamtune_shared.model_registry import file_checksums, mismatched_files

STATE_FILE = "trainer_state.json"
FORMAT_VERSION = 1


class CheckpointCorrupt(ValueError):
    """A checkpoint's files do not match its commit marker."""


@dataclass
class RunState:
    """Where a training run is: the last finished epoch, the best one so far, the history of dev metrics."""

    seed: int
    labels: list[str] = field(default_factory=list)
    epoch: int = 0
    global_step: int = 0
    best_metric: float = float("-inf")
    best_epoch: int = 0
    epochs_without_improvement: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Checkpoint:
    """Everything needed to continue a run after its last finished epoch."""

    state: RunState
    model: dict[str, torch.Tensor]
    optimizer: dict[str, Any]
    scheduler: dict[str, Any]
    best_model: dict[str, torch.Tensor] | None = None


def tensors_to_bytes(tensors: Mapping[str, torch.Tensor]) -> bytes:
    """safetensors bytes of a state dict (copied to CPU and contiguous; shared storage is split)."""
    return save_tensors({name: t.detach().to("cpu").contiguous().clone() for name, t in tensors.items()})


def optimizer_files(state_dict: Mapping[str, Any]) -> tuple[bytes, bytes]:
    """An optimizer state dict as safetensors (its tensors) and JSON (groups and scalars)."""
    tensors, scalars = {}, {}
    for index, param_state in state_dict["state"].items():
        for key, value in param_state.items():
            if isinstance(value, torch.Tensor):
                tensors[f"state.{index}.{key}"] = value
            else:
                scalars[f"{index}.{key}"] = value
    document = {"param_groups": state_dict["param_groups"], "scalars": scalars}
    return tensors_to_bytes(tensors), json.dumps(document).encode()


def optimizer_state_dict(tensor_bytes: bytes, json_bytes: bytes) -> dict[str, Any]:
    """The optimizer state dict back from its two files."""
    document = json.loads(json_bytes)
    state: dict[int, dict[str, Any]] = {}
    for name, tensor in load_tensors(tensor_bytes).items():
        _, index, key = name.split(".", 2)
        state.setdefault(int(index), {})[key] = tensor
    for name, value in document["scalars"].items():
        index, key = name.split(".", 1)
        state.setdefault(int(index), {})[key] = value
    groups = [{**g, "betas": tuple(g["betas"])} if "betas" in g else g for g in document["param_groups"]]
    return {"state": state, "param_groups": groups}


def checkpoint_files(checkpoint: Checkpoint) -> dict[str, bytes]:
    """The files of a checkpoint, ``trainer_state.json`` last (write them in this order)."""
    optimizer_tensors, optimizer_json = optimizer_files(checkpoint.optimizer)
    files = {"model.safetensors": tensors_to_bytes(checkpoint.model)}
    if checkpoint.best_model is not None:
        files["best_model.safetensors"] = tensors_to_bytes(checkpoint.best_model)
    files["optimizer.safetensors"] = optimizer_tensors
    files["optimizer.json"] = optimizer_json
    files["scheduler.json"] = json.dumps(checkpoint.scheduler).encode()
    marker = {"format": FORMAT_VERSION, "state": asdict(checkpoint.state),
              "files": file_checksums(files)}
    files[STATE_FILE] = json.dumps(marker).encode()
    return files


def read_checkpoint(files: Mapping[str, bytes]) -> Checkpoint:
    """A checkpoint from its files; raises CheckpointCorrupt when a file is missing or does not match."""
    try:
        marker = json.loads(files[STATE_FILE])
    except (KeyError, ValueError) as exc:
        raise CheckpointCorrupt("no readable trainer_state.json") from exc
    if bad := mismatched_files(marker["files"], files):
        raise CheckpointCorrupt(f"checkpoint files missing or not matching their sha256: {', '.join(bad)}")
    best = files.get("best_model.safetensors") if "best_model.safetensors" in marker["files"] else None
    return Checkpoint(
        state=RunState(**marker["state"]),
        model=load_tensors(files["model.safetensors"]),
        optimizer=optimizer_state_dict(files["optimizer.safetensors"], files["optimizer.json"]),
        scheduler=json.loads(files["scheduler.json"]),
        best_model=load_tensors(best) if best is not None else None,
    )
