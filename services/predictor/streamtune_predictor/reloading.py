"""Keeping the routes current: serving states from the registry, versions loaded, changes applied live.

At startup every seeded or stated dataset gets its serving state (created from ``PREDICTOR_MODELS`` /
``PREDICTOR_PINNED`` when it has none) and the versions it names are loaded. Then the follower reads
``models.published`` (a newer version of an unpinned model is loaded and, once it loads, promoted for
every dataset it serves) and ``models.control`` (a state changed: load what it names, swap the route,
acknowledge the revision). A rescan every ``rescan_s`` catches what a missed message would have said.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Callable
from typing import Literal, Protocol

import structlog
from pydantic import ValidationError
from streamtune_shared import streams
from streamtune_shared.announcements import ControlFeed, follow, parse_announcement
from streamtune_shared.model_card import VersionRejected
from streamtune_shared.model_registry import RegistryLayout, is_version
from streamtune_shared.rollout import RolloutChanged, ServingState, auto_promote, list_datasets, read_state, seed_state
from streamtune_shared.storage import ObjectStore

from .metrics import RELOADS, serving_changed
from .registry import ModelRegistry, Route, ServingModel
from .versions import startup_candidates

log = structlog.get_logger(__name__)

LoadVersion = Callable[[str, str], ServingModel]
LoadOutcome = Literal["loaded", "rejected", "failed"]
RETRY_PAUSE_S = 1.0


class RolloutControl(Protocol):
    """Changing and acknowledging serving states (Redis in production, in memory in tests)."""

    async def change(self, dataset: str, change: Callable) -> ServingState | None: ...

    async def applied(self, dataset: str, revision: int) -> None: ...

    async def heartbeat(self) -> None: ...

    async def leave(self, datasets: list[str]) -> None: ...


class RolloutFollower:
    """Applies serving states to the registry; a version that is refused never replaces a serving one."""

    def __init__(self, registry: ModelRegistry, *, layout: RegistryLayout, store: Callable[[], ObjectStore],
                 control: Callable[[], RolloutControl], load: LoadVersion, rescan_s: float) -> None:
        self.registry, self._layout, self._store, self._control = registry, layout, store, control
        self._load_version, self._rescan_s = load, rescan_s
        self._loaded: dict[tuple[str, str], ServingModel] = {}
        self._refused: dict[str, set[str]] = defaultdict(set)

    async def run(self, feed: ControlFeed, block_ms: int) -> None:
        """Sync, then follow announcements and changes until cancelled; rescan every ``rescan_s``."""
        await follow(feed, block_ms, self._on_entry, self.sync, self._rescan_s, RETRY_PAUSE_S)

    async def _on_entry(self, stream: str, payload: bytes) -> None:
        if stream == streams.MODELS_CONTROL:
            await self.on_control(payload)
        else:
            await self.on_announcement(payload)

    async def sync(self) -> None:
        """Every seeded or stated dataset: create a missing state, apply a newer one, retry what did not load."""
        try:
            stated = await asyncio.to_thread(list_datasets, self._store(), self._layout)
            await self._control().heartbeat()
        except Exception as exc:  # noqa: BLE001 - store or Redis unavailable: next scan
            log.warning("rollout.sync_failed", error=type(exc).__name__)
            return
        for dataset in sorted(set(stated) | set(self.registry.seeds)):
            try:
                state = await asyncio.to_thread(read_state, self._store(), self._layout, dataset)
                if state is None:
                    state = await self._seed(dataset)
            except Exception as exc:  # noqa: BLE001 - one dataset's trouble must not stop the others
                log.warning("rollout.state_unreadable", dataset=dataset, error=type(exc).__name__)
                continue
            if state is not None:
                await self.apply(await self._catch_up(state))

    async def _catch_up(self, state: ServingState) -> ServingState:
        """An unpinned state behind the newest committed version (an announcement missed while down) moves up."""
        if state.pinned:
            return state
        keys = await asyncio.to_thread(self._store().list_keys, self._layout.model_prefix(state.model))
        newer = [v for v in self._layout.committed_versions(keys, state.model)
                 if (state.version is None or v > state.version) and v not in self._refused[state.model]]
        for version in reversed(newer):
            if await self._ensure_loaded(state.model, version) == "loaded":
                changed = await self._control().change(state.dataset, lambda current, now: None if current is None
                                                       else auto_promote(current, state.model, version, now))
                return changed or state
        return state

    async def _seed(self, dataset: str) -> ServingState | None:
        """A first state from the seeds: the pinned version, else the newest committed one that loads."""
        model = self.registry.seeds[dataset]
        pin = self.registry.pins.get(model)
        keys = await asyncio.to_thread(self._store().list_keys, self._layout.model_prefix(model))
        version = None
        for candidate in startup_candidates(self._layout.committed_versions(keys, model), pin, self._refused[model]):
            if await self._ensure_loaded(model, candidate) == "loaded":
                version = candidate
                break

        def create(current: ServingState | None, now) -> ServingState | None:
            return None if current is not None else seed_state(dataset, model, version, pin is not None, now)

        return await self._control().change(dataset, create) or await asyncio.to_thread(
            read_state, self._store(), self._layout, dataset)

    async def on_announcement(self, payload: bytes) -> None:
        """A version was published: when it would auto-promote somewhere, load it, then promote it."""
        announced = parse_announcement(payload)
        if announced is None:
            return
        name, version = announced.model_name, announced.version
        targets = [route.state.dataset for route in self.registry.snapshot().values()
                   if auto_promote(route.state, name, version, route.state.updated_at) is not None]
        if not targets:
            log.info("model.reload_skipped", model=name, version=version, reason="pinned, not newer or not served")
            return
        if await self._ensure_loaded(name, version) != "loaded":
            return
        for dataset in targets:
            changed = await self._control().change(
                dataset, lambda current, now: None if current is None else auto_promote(current, name, version, now))
            if changed is not None:
                await self.apply(changed)

    async def on_control(self, payload: bytes) -> None:
        """A serving state changed: read it and apply it when it is newer than the route."""
        try:
            notice = RolloutChanged.model_validate_json(payload)
        except ValidationError:
            log.warning("rollout.notice_invalid")
            return
        route = self.registry.route(notice.dataset)
        if route is not None and route.state.revision >= notice.revision:
            return
        try:
            state = await asyncio.to_thread(read_state, self._store(), self._layout, notice.dataset)
        except Exception as exc:  # noqa: BLE001 - the rescan applies it later
            log.warning("rollout.state_unreadable", dataset=notice.dataset, error=type(exc).__name__)
            return
        if state is not None:
            await self.apply(state)

    async def apply(self, state: ServingState) -> None:
        """Load what a state names and swap the dataset's route; acknowledge it once everything it names serves."""
        route = self.registry.route(state.dataset)
        if route is not None and route.state.revision > state.revision:
            return
        outcomes = {v: await self._ensure_loaded(state.model, v) for v in sorted(state.versions())}
        if state.version is not None and outcomes[state.version] != "loaded" and route is not None:
            log.error("rollout.not_applied", dataset=state.dataset, revision=state.revision, version=state.version)
            return  # the route in place keeps serving; the rescan tries a transient failure again
        new = Route(state=state, primary=self._model(state.model, state.version),
                    canary=self._model(state.model, state.canary.version if state.canary else None),
                    shadow=self._model(state.model, state.shadow.version if state.shadow else None))
        if route is None or new != route:
            previous = self.registry.install(new)
            self._loaded = {key: model for key, model in self._loaded.items() if key in self.registry.loaded()}
            _log_swap(state, previous)
        if all(outcome == "loaded" for outcome in outcomes.values()):
            await self._acknowledge(state)  # again on every sync: an acknowledgement lost to Redis comes back

    async def _acknowledge(self, state: ServingState) -> None:
        try:
            await self._control().applied(state.dataset, state.revision)
        except Exception as exc:  # noqa: BLE001 - serving already changed; the next sync acknowledges again
            log.warning("rollout.ack_failed", dataset=state.dataset, error=type(exc).__name__)

    async def leave(self) -> None:
        """Stop hook: this process no longer serves, so its acknowledgements go."""
        try:
            await self._control().leave(self.registry.datasets())
        except Exception as exc:  # noqa: BLE001 - best effort at shutdown
            log.warning("rollout.leave_failed", error=type(exc).__name__)

    def _model(self, name: str, version: str | None) -> ServingModel | None:
        return self._loaded.get((name, version)) if version is not None else None

    async def _ensure_loaded(self, name: str, version: str) -> LoadOutcome:
        """Load one version in a thread unless it is loaded already; a refused version is never tried again."""
        if (name, version) in self._loaded:
            return "loaded"
        if version in self._refused[name]:
            return "rejected"
        log.info("model.loading", model=name, version=version)
        try:
            if not is_version(version):
                raise VersionRejected("not a valid version name")
            model = await asyncio.to_thread(self._load_version, name, version)
        except VersionRejected as exc:
            self._refused[name].add(version)
            RELOADS.labels("rejected").inc()
            log.error("model.rejected", model=name, version=version, reason=exc.reason)
            return "rejected"
        except Exception as exc:  # noqa: BLE001 - object store unavailable: retried on the next sync
            log.warning("model.load_failed", model=name, version=version, error=type(exc).__name__,
                        detail=str(exc)[:200])
            return "failed"
        self._loaded[(name, version)] = model
        RELOADS.labels("loaded").inc()
        log.info("model.loaded", model=name, version=version, task=model.task)
        return "loaded"


def _log_swap(state: ServingState, previous: Route | None) -> None:
    before = previous.state.version if previous is not None else None
    serving_changed(state.dataset, state.model, state.version, before)
    log.info("rollout.applied", dataset=state.dataset, revision=state.revision, model=state.model,
             version=state.version, replaced=before, pinned=state.pinned,
             canary=state.canary.version if state.canary else None,
             shadow=state.shadow.version if state.shadow else None)
