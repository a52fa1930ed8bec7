"""Run-time rollout: which model version serves each dataset, and its canary and shadow candidates.

Per dataset, one small document in the registry, ``<models prefix>_rollout/<dataset>.json``
(``ServingState``), is the truth every predictor process serves from; a change is written there
with a higher ``revision`` and announced on ``models.control``. Every predictor applies it between
two batches and records the revision it applied, so operators can see that all of them did.

Transitions are pure functions: ``promote``, ``rollback``, ``pin``, ``unpin``, ``start_canary``,
``end_canary``, ``start_shadow``, ``stop_shadow`` and ``auto_promote`` (a newly published version of
an unpinned model). ``RolloutRefused`` says why a change cannot be made.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from .model_registry import RegistryLayout
from .schemas import SCHEMA_VERSION, DatasetName, ModelName, VersionName
from .storage import ObjectNotFound, ObjectStore

ROLLOUT_FOLDER = "_rollout/"  # "_" cannot start a model name, so it never collides with a model's folder
HISTORY_LIMIT = 20
Role = Literal["primary", "canary", "shadow"]
_DOCUMENT = ConfigDict(frozen=True, extra="forbid")


class RolloutRefused(ValueError):
    """A rollout change that cannot be made as asked (the message says why)."""


class Canary(BaseModel):
    """A candidate version serving a stable share of a dataset's events (by a hash of their event id)."""

    model_config = _DOCUMENT

    version: VersionName
    share: float = Field(gt=0, lt=1)


class Shadow(BaseModel):
    """A candidate version run on a copy of the traffic; its predictions go to ``predictions.shadow``."""

    model_config = _DOCUMENT

    version: VersionName


class ServingState(BaseModel):
    """What serves one dataset: the model, its primary version, pin, history, canary and shadow."""

    model_config = _DOCUMENT

    schema_version: Literal[1] = SCHEMA_VERSION
    dataset: DatasetName
    model: ModelName
    version: VersionName | None = Field(default=None, description="The primary version; None until one exists.")
    pinned: bool = Field(default=False, description="Newly published versions of the model do not auto-promote.")
    history: tuple[VersionName, ...] = Field(default=(), description="Earlier primaries, oldest first (rollback).")
    canary: Canary | None = None
    shadow: Shadow | None = None
    revision: int = Field(default=0, ge=0)
    updated_at: AwareDatetime
    changed_by: str = Field(default="", max_length=128)

    def versions(self) -> set[str]:
        """Every version this state needs loaded (primary, canary, shadow)."""
        found = {self.version} if self.version else set()
        found |= {c.version for c in (self.canary, self.shadow) if c is not None}
        return found


class RolloutChanged(BaseModel):
    """A dataset's serving state was written with a new revision (``models.control``)."""

    model_config = _DOCUMENT

    schema_version: Literal[1] = SCHEMA_VERSION
    dataset: DatasetName
    revision: int
    action: str
    at: AwareDatetime


def _changed(state: ServingState, now: datetime, action: str, **changes: object) -> ServingState:
    return state.model_copy(update={**changes, "revision": state.revision + 1, "updated_at": now,
                                    "changed_by": action})


def seed_state(dataset: str, model: str, version: str | None, pinned: bool, now: datetime) -> ServingState:
    """The first state of a dataset, from the predictor's start-up seeds (``PREDICTOR_MODELS`` / ``_PINNED``)."""
    return ServingState(dataset=dataset, model=model, version=version, pinned=pinned, revision=1, updated_at=now,
                        changed_by="seed")


def promote(state: ServingState, version: str, now: datetime, *, model: str | None = None) -> ServingState:
    """Serve ``version`` (of ``model``, which may replace the dataset's model) as primary; the old one goes to history."""
    model = model or state.model
    if model == state.model and version == state.version:
        raise RolloutRefused(f"{model} {version} already serves {state.dataset}")
    history = state.history
    if state.version is not None and model == state.model:
        history = (*history, state.version)[-HISTORY_LIMIT:]
    elif model != state.model:
        history = ()  # another model's versions cannot be rolled back to under this one
    canary = state.canary if state.canary is not None and state.canary.version != version else None
    shadow = state.shadow if state.shadow is not None and state.shadow.version != version else None
    if model != state.model:
        canary = shadow = None
    return _changed(state, now, "promote", model=model, version=version, history=history, canary=canary,
                    shadow=shadow)


def rollback(state: ServingState, now: datetime) -> ServingState:
    """Serve the previous primary again, and pin it so the next published version does not undo the rollback."""
    if not state.history:
        raise RolloutRefused(f"{state.dataset} has no earlier version of {state.model} to roll back to")
    *rest, previous = state.history
    return _changed(state, now, "rollback", version=previous, history=tuple(rest), pinned=True, canary=None)


def pin(state: ServingState, now: datetime) -> ServingState:
    """Keep the primary: newly published versions no longer auto-promote."""
    if state.pinned:
        raise RolloutRefused(f"{state.dataset} is already pinned to {state.version}")
    return _changed(state, now, "pin", pinned=True)


def unpin(state: ServingState, now: datetime, newest: str | None) -> ServingState:
    """Follow published versions again; the newest committed version is promoted when it is newer."""
    if not state.pinned:
        raise RolloutRefused(f"{state.dataset} is not pinned")
    unpinned = _changed(state, now, "unpin", pinned=False)
    if newest is not None and (state.version is None or newest > state.version):
        return promote(unpinned, newest, now).model_copy(update={"revision": unpinned.revision,
                                                                 "changed_by": "unpin"})
    return unpinned


def auto_promote(state: ServingState, model: str, version: str, now: datetime) -> ServingState | None:
    """The state after ``version`` of ``model`` was published, or None when it does not change what serves."""
    if model != state.model or state.pinned or (state.version is not None and version <= state.version):
        return None
    return promote(state, version, now).model_copy(update={"changed_by": "auto-promote"})


def start_canary(state: ServingState, version: str, share: float, now: datetime) -> ServingState:
    """Send a stable ``share`` of the dataset's events to ``version``."""
    if state.version is None:
        raise RolloutRefused(f"{state.dataset} has no primary version to canary against")
    if version == state.version:
        raise RolloutRefused(f"{version} is already the primary of {state.dataset}")
    return _changed(state, now, "canary", canary=Canary(version=version, share=share))


def end_canary(state: ServingState, now: datetime, *, promote_it: bool) -> ServingState:
    """Promote the canary to primary, or abort it."""
    if state.canary is None:
        raise RolloutRefused(f"{state.dataset} has no canary")
    if promote_it:
        return promote(state, state.canary.version, now).model_copy(update={"changed_by": "canary-promote"})
    return _changed(state, now, "canary-abort", canary=None)


def start_shadow(state: ServingState, version: str, now: datetime) -> ServingState:
    """Run ``version`` on a copy of the dataset's traffic."""
    if version == state.version:
        raise RolloutRefused(f"{version} is already the primary of {state.dataset}")
    return _changed(state, now, "shadow", shadow=Shadow(version=version))


def stop_shadow(state: ServingState, now: datetime) -> ServingState:
    """Stop the shadow run."""
    if state.shadow is None:
        raise RolloutRefused(f"{state.dataset} has no shadow")
    return _changed(state, now, "shadow-stop", shadow=None)


def canary_bucket(event_id: str) -> float:
    """A stable number in [0, 1) per event id: the same event always takes the same side of a canary split."""
    digest = hashlib.sha256(f"canary\x00{event_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def role_for(state_canary: Canary | None, event_id: str) -> Role:
    """Whether an event goes to the canary or stays with the primary."""
    if state_canary is not None and canary_bucket(event_id) < state_canary.share:
        return "canary"
    return "primary"


def rollout_key(layout: RegistryLayout, dataset: str) -> str:
    """Where a dataset's serving state lives."""
    return f"{layout.models_prefix}{ROLLOUT_FOLDER}{dataset}.json"


def read_state(store: ObjectStore, layout: RegistryLayout, dataset: str) -> ServingState | None:
    """A dataset's serving state, or None when it has none; a corrupt document raises ValueError."""
    try:
        raw = store.get_bytes(rollout_key(layout, dataset))
    except ObjectNotFound:
        return None
    try:
        return ServingState.model_validate_json(raw)
    except ValidationError as exc:
        raise ValueError(f"the serving state of {dataset} is not valid: {exc.error_count()} error(s)") from None


def write_state(store: ObjectStore, layout: RegistryLayout, state: ServingState) -> None:
    """Store a dataset's serving state."""
    store.put_bytes(rollout_key(layout, state.dataset), state.model_dump_json(indent=2).encode(),
                    content_type="application/json")


def list_datasets(store: ObjectStore, layout: RegistryLayout) -> list[str]:
    """Datasets that have a serving state, sorted."""
    prefix = f"{layout.models_prefix}{ROLLOUT_FOLDER}"
    return sorted(key[len(prefix):-len(".json")] for key in store.list_keys(prefix) if key.endswith(".json"))
