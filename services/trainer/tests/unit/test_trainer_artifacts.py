"""The newest usable checkpoint is found from one listing."""

from __future__ import annotations

import torch
from streamtune_shared.testing import InMemoryObjectStore
from streamtune_trainer.artifacts import checkpoint_folder, load_latest_checkpoint
from streamtune_trainer.checkpoint import STATE_FILE, Checkpoint, RunState, checkpoint_files

class CountingStore(InMemoryObjectStore):
    """Records which objects were read."""

    def __init__(self) -> None:
        super().__init__()
        self.read: list[str] = []
        self.listed: list[str] = []

    def get_bytes(self, key: str) -> bytes:
        self.read.append(key)
        return super().get_bytes(key)

    def list_keys(self, prefix: str) -> list[str]:
        self.listed.append(prefix)
        return super().list_keys(prefix)


def _put_checkpoint(store: InMemoryObjectStore, run_prefix: str, epoch: int, *, committed: bool = True) -> None:
    weights = {"w": torch.full((2,), float(epoch))}
    checkpoint = Checkpoint(RunState(seed=1, epoch=epoch, global_step=epoch), weights,
                            {"state": {}, "param_groups": []}, {})
    folder = checkpoint_folder(run_prefix, epoch)
    for name, data in checkpoint_files(checkpoint).items():
        if committed or name != STATE_FILE:
            store.put_bytes(folder + name, data)


def test_the_newest_usable_checkpoint_is_loaded_from_one_listing():
    store, run = CountingStore(), "checkpoints/req-1/"
    _put_checkpoint(store, run, 1)
    _put_checkpoint(store, run, 2)
    store.put_bytes(checkpoint_folder(run, 2) + "scheduler.json", b'{"changed": true}')  # epoch 2 is corrupt
    _put_checkpoint(store, run, 3, committed=False)  # epoch 3 never got its marker

    checkpoint = load_latest_checkpoint(store, run)

    assert checkpoint is not None and checkpoint.state.epoch == 1
    assert torch.equal(checkpoint.model["w"], torch.full((2,), 1.0))
    assert store.listed == [run]
    assert not any(key.startswith(checkpoint_folder(run, 3)) for key in store.read)


def test_no_committed_checkpoint_means_none():
    store, run = CountingStore(), "checkpoints/req-1/"
    _put_checkpoint(store, run, 1, committed=False)

    assert load_latest_checkpoint(store, run) is None
    assert store.read == []
