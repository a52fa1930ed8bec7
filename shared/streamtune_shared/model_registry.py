"""The model registry in the object store: where versions live, their names, and writing and reading them.

    <models prefix><model_name>/<version>/model.safetensors, config.json, tokenizer files, labels.json
    <models prefix><model_name>/<version>/card.json     written last: a version without it is incomplete

The prefix is one setting (``STREAMTUNE_MODELS_PREFIX``) that the trainer, the predictor, the
anonymizer and the CLI all read, so they cannot disagree about where versions are. Every service
that writes or reads versions goes through this module. Blocking calls: async callers use threads.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from .model_card import CARD_FILE, ModelCard, VersionRejected, parse_card, pickle_files
from .schemas import ModelPublished
from .storage import ObjectNotFound, ObjectStore, sha256_hex

DEFAULT_MODELS_PREFIX = "models/"
_VERSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_PREFIX = re.compile(r"^(?:[A-Za-z0-9][A-Za-z0-9._-]*/)+$")


def is_version(value: str) -> bool:
    """Whether a string can be a version name (one safe path segment)."""
    return bool(_VERSION.match(value))


def version_name(now: datetime, request_id: str) -> str:
    """A sortable version name: UTC time of publishing, then the request id's first 8 characters."""
    return f"{now.astimezone(UTC):%Y%m%dT%H%M%SZ}{version_suffix(request_id)}"


def version_suffix(request_id: str) -> str:
    """How the names of the versions trained for a request end."""
    return f"-{request_id[:8]}"


def file_checksums(files: Mapping[str, bytes]) -> dict[str, str]:
    """sha256 hex of every file, by relative name (a card's or a checkpoint marker's ``files``)."""
    return {name: sha256_hex(data) for name, data in sorted(files.items())}


def mismatched_files(checksums: Mapping[str, str], files: Mapping[str, bytes]) -> list[str]:
    """Names in ``checksums`` whose file is missing or does not match its sha256 (empty when all match)."""
    return [name for name, digest in checksums.items()
            if name not in files or sha256_hex(files[name]) != digest]


def verify_file(name: str, data: bytes, expected_sha256: str) -> None:
    """Refuse a file whose bytes do not hash to what the card says."""
    if sha256_hex(data) != expected_sha256:
        raise VersionRejected(f"sha256 mismatch for {name}")


@dataclass(frozen=True)
class RegistryLayout:
    """Object keys of model versions under one prefix."""

    models_prefix: str = DEFAULT_MODELS_PREFIX

    def __post_init__(self) -> None:
        if not _PREFIX.match(self.models_prefix):
            raise ValueError("the models prefix must be path segments ending in '/', e.g. 'models/'")

    def model_prefix(self, model_name: str) -> str:
        """Prefix holding every version of a model."""
        return f"{self.models_prefix}{model_name}/"

    def version_prefix(self, model_name: str, version: str) -> str:
        """Prefix of one version."""
        return f"{self.model_prefix(model_name)}{version}/"

    def card_key(self, model_name: str, version: str) -> str:
        """Key of a version's card."""
        return f"{self.version_prefix(model_name, version)}{CARD_FILE}"

    def committed_versions(self, keys: Iterable[str], model_name: str) -> list[str]:
        """Versions of a model that have a card, oldest first (version names sort by time)."""
        prefix = self.model_prefix(model_name)
        found = set()
        for key in keys:
            version, _, rest = key.removeprefix(prefix).partition("/")
            if key.startswith(prefix) and rest == CARD_FILE and is_version(version):
                found.add(version)
        return sorted(found)

    def model_names(self, keys: Iterable[str]) -> list[str]:
        """Models with at least one committed version, sorted."""
        names = set()
        for key in keys:
            name, _, rest = key.removeprefix(self.models_prefix).partition("/")
            version, _, file = rest.partition("/")
            if key.startswith(self.models_prefix) and file == CARD_FILE and is_version(version):
                names.add(name)
        return sorted(names)

    def announcement(self, card: ModelCard) -> ModelPublished:
        """The ``models.published`` message of a complete version."""
        return ModelPublished(
            model_name=card.model_name, version=card.version, task=card.task, dataset=card.dataset,
            prefix=self.version_prefix(card.model_name, card.version),
            card_key=self.card_key(card.model_name, card.version), request_id=card.request_id,
            metrics=card.summary(),
        )


def write_version(store: ObjectStore, layout: RegistryLayout, card: ModelCard, files: Mapping[str, bytes]) -> None:
    """Store a version's files, then its card (the commit marker); on failure remove what was written.

    Refuses pickled formats and files that do not match the card's checksums before writing anything.
    """
    if pickled := pickle_files(files):
        raise VersionRejected(f"refusing to publish pickle-based files: {', '.join(pickled)}")
    if bad := mismatched_files(card.files, files) or sorted(set(files) - set(card.files)):
        raise VersionRejected(f"files do not match the card: {', '.join(bad)}")
    prefix = layout.version_prefix(card.model_name, card.version)
    written: list[str] = []
    try:
        for name, data in files.items():
            store.put_bytes(prefix + name, data)
            written.append(prefix + name)
        store.put_bytes(prefix + CARD_FILE, card.to_bytes(), content_type="application/json")
    except Exception:
        _remove_quietly(store, written)
        raise


def _remove_quietly(store: ObjectStore, keys: list[str]) -> None:
    for key in keys:
        try:
            store.delete(key)
        except Exception:  # noqa: BLE001, S112 - best effort: a version without its card is never served anyway
            continue


def fetch_card(store: ObjectStore, layout: RegistryLayout, model_name: str, version: str) -> ModelCard:
    """The checked card of a version; a missing or untrustworthy card is a ``VersionRejected``."""
    if not is_version(version):
        raise VersionRejected("not a valid version name")
    try:
        raw = store.get_bytes(layout.card_key(model_name, version))
    except ObjectNotFound:
        raise VersionRejected("no card.json") from None
    return parse_card(raw, model_name, version)


def download_verified(store: ObjectStore, layout: RegistryLayout, card: ModelCard, folder: Path) -> None:
    """Write every file the card lists into ``folder``, refusing the version at the first bad checksum."""
    prefix = layout.version_prefix(card.model_name, card.version)
    for name, digest in card.files.items():
        try:
            data = store.get_bytes(prefix + name)
        except ObjectNotFound:
            raise VersionRejected(f"{name} listed in the card is missing") from None
        verify_file(name, data, digest)
        target = folder / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)


def list_versions(store: ObjectStore, layout: RegistryLayout, model_name: str) -> list[str]:
    """Committed versions of a model, oldest first."""
    return layout.committed_versions(store.list_keys(layout.model_prefix(model_name)), model_name)


def find_card_for_request(store: ObjectStore, layout: RegistryLayout, model_name: str,
                          request_id: str) -> ModelCard | None:
    """The card of a complete version of ``model_name`` trained for ``request_id``, if one exists.

    Only the cards of versions named for this request are read, not every version's.
    """
    suffix = version_suffix(request_id)
    for version in reversed(list_versions(store, layout, model_name)):
        if not version.endswith(suffix):
            continue
        try:
            card = fetch_card(store, layout, model_name, version)
        except VersionRejected:
            continue
        if card.request_id == request_id:
            return card
    return None
