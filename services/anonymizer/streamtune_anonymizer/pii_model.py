"""The entity model the PII detector uses: the newest published ``pii-ner`` version, else spaCy's NER.

Text is protected from the first event: until a version of the PII model is in the registry (a fresh
deployment) the spaCy ``en_core_web_sm`` fallback finds names, organisations and places. A version
is served only after its card and every file's sha256 check out; a newer one announced on
``models.published`` replaces it between two batches (a batch takes ``current()`` once), and a
refused or broken version never replaces the one in use.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import structlog
from streamtune_shared.announcements import ControlFeed, follow, parse_announcement
from streamtune_shared.model_card import VersionRejected
from streamtune_shared.hf_loading import merged_version_folder
from streamtune_shared.model_registry import RegistryLayout, fetch_card, is_version
from streamtune_shared.storage import ObjectStore

from . import metrics
from .detection import EntityModel

log = structlog.get_logger(__name__)

TOKEN_CLASSIFICATION = "token-classification"
RETRY_PAUSE_S = 1.0
LoadModel = Callable[[str], EntityModel]  # version -> model


@dataclass(frozen=True)
class InUse:
    """The entity model in use and where it comes from (a version of the PII model, or the fallback)."""

    model: EntityModel | None
    version: str | None
    source: str  # "registry" | "fallback" | "none"


class EntityModelSlot:
    """Holds the entity model in use; swapped whole, so a batch keeps the one it started with."""

    def __init__(self, fallback: Callable[[], EntityModel | None]) -> None:
        self._fallback = fallback
        self._in_use: InUse | None = None

    def current(self) -> InUse:
        """The model a batch should use now (the fallback is built at first use)."""
        if self._in_use is None:
            fallback = self._fallback()
            self._in_use = InUse(fallback, None, "fallback" if fallback is not None else "none")
        return self._in_use

    def install(self, model: EntityModel, version: str) -> None:
        """Use a published version from now on."""
        self._in_use = InUse(model, version, "registry")
        metrics.PII_MODEL_INFO.clear()
        metrics.PII_MODEL_INFO.labels(version).set(1)


def load_pii_version(store: ObjectStore, layout: RegistryLayout, model_name: str, version: str,
                     build: Callable[[Path], EntityModel]) -> EntityModel:
    """Download a version, check its card and every sha256, and build the entity model from the folder.

    A LoRA version is merged into its (sha256-checked) base first, so ``build`` always sees full weights.
    """
    card = fetch_card(store, layout, model_name, version)
    if card.task != TOKEN_CLASSIFICATION:
        raise VersionRejected(f"{model_name} {version} is a {card.task} model, not token-classification")
    with tempfile.TemporaryDirectory(prefix="streamtune-pii-model-") as tmp:
        folder = merged_version_folder(store, layout, card, Path(tmp))
        try:
            return build(folder)
        except (OSError, ValueError, KeyError, TypeError, RuntimeError) as exc:
            raise VersionRejected(f"the model cannot be loaded: {type(exc).__name__}") from exc


class PiiModelFollower:
    """Loads the newest committed version of the PII model at startup, then each newer announced one."""

    def __init__(self, slot: EntityModelSlot, *, model_name: str, layout: RegistryLayout,
                 store: Callable[[], ObjectStore], load: LoadModel, rescan_s: float) -> None:
        self.slot, self.model_name, self._layout, self._store = slot, model_name, layout, store
        self._load, self._rescan_s = load, rescan_s
        self._refused: set[str] = set()

    async def run(self, feed: ControlFeed, block_ms: int) -> None:
        """Scan the registry, then follow announcements until cancelled; rescan every ``rescan_s``."""
        await follow(feed, block_ms, lambda _, payload: self.on_announcement(payload), self.scan, self._rescan_s,
                     RETRY_PAUSE_S)

    async def scan(self) -> None:
        """Use the newest committed version that loads, when it is newer than the one in use."""
        try:
            keys = await asyncio.to_thread(self._store().list_keys, self._layout.model_prefix(self.model_name))
        except Exception as exc:  # noqa: BLE001 - store unavailable: next scan
            log.warning("pii_model.scan_failed", error=type(exc).__name__)
            return
        for version in reversed(self._layout.committed_versions(keys, self.model_name)):
            if not self._is_newer(version) or await self.load(version) != "rejected":
                return

    async def on_announcement(self, payload: bytes) -> None:
        """Load an announced version of the PII model when it is newer than the one in use."""
        announced = parse_announcement(payload)
        if announced is None:
            return
        if announced.model_name == self.model_name and self._is_newer(announced.version):
            await self.load(announced.version)

    def _is_newer(self, version: str) -> bool:
        current = self.slot.current().version
        return version not in self._refused and (current is None or version > current)

    async def load(self, version: str) -> str:
        """Load a version in a thread and use it; a refused or failed one leaves the model in use alone."""
        log.info("pii_model.loading", model=self.model_name, version=version)
        try:
            if not is_version(version):
                raise VersionRejected("not a valid version name")
            model = await asyncio.to_thread(self._load, version)
        except VersionRejected as exc:
            self._refused.add(version)
            metrics.PII_MODEL_LOADS.labels("rejected").inc()
            log.error("pii_model.rejected", model=self.model_name, version=version, reason=exc.reason)
            return "rejected"
        except Exception as exc:  # noqa: BLE001 - object store unavailable: retried on the next scan
            log.warning("pii_model.load_failed", model=self.model_name, version=version, error=type(exc).__name__)
            return "failed"
        previous = self.slot.current()
        self.slot.install(model, version)
        metrics.PII_MODEL_LOADS.labels("loaded").inc()
        log.info("pii_model.loaded", model=self.model_name, version=version, replaced=previous.version or
                 previous.source)
        return "loaded"
