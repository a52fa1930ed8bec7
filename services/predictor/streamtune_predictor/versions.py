"""Model versions in the object store: where they live, which one to serve, whether a card can be trusted.

A version is ``models/<model_name>/<version>/``; its ``card.json`` is written last (the commit
marker) and lists the sha256 of every other file. Pure: the caller fetches the bytes.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, get_args

from streamtune_shared.schemas import Task

CARD = "card.json"
LABELS = "labels.json"
WEIGHTS = "model.safetensors"
REQUIRED_FILES = (WEIGHTS, "config.json", LABELS)
# Formats that unpickle on load, i.e. run code from the file: never loaded.
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt")
TASKS: tuple[str, ...] = get_args(Task)

_VERSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_FILE_PART = re.compile(r"^[A-Za-z0-9_.-]+$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class VersionRejected(Exception):
    """A version that must not be served; ``reason`` says why, for the ``model.rejected`` log line."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class VersionCard:
    """What the predictor needs from a verified card."""

    model_name: str
    version: str
    task: Task
    files: Mapping[str, str]


def model_prefix(model_name: str) -> str:
    """Object-store prefix holding every version of a model."""
    return f"models/{model_name}/"


def version_prefix(model_name: str, version: str) -> str:
    """Object-store prefix of one version."""
    return f"{model_prefix(model_name)}{version}/"


def is_version(value: str) -> bool:
    """Whether a string can be a version (one safe path segment)."""
    return bool(_VERSION.match(value))


def committed_versions(keys: Iterable[str], model_name: str) -> list[str]:
    """Versions of a model that have a card.json, oldest first (versions sort by time)."""
    prefix = model_prefix(model_name)
    found = set()
    for key in keys:
        version, _, rest = key.removeprefix(prefix).partition("/")
        if key.startswith(prefix) and rest == CARD and is_version(version):
            found.add(version)
    return sorted(found)


def startup_candidates(committed: Iterable[str], pinned: str | None, refused: Collection[str] = ()) -> list[str]:
    """Versions to try at startup, best first: the pinned one only, else every committed one newest first."""
    available = [v for v in committed if v not in refused]
    if pinned is not None:
        return [pinned] if pinned in available else []
    return sorted(available, reverse=True)


ReloadDecision = Literal["load", "pinned", "not_newer"]


def reload_decision(announced: str, serving: str | None, pinned: str | None) -> ReloadDecision:
    """Whether an announced version replaces the one serving: only newer ones, and never past a pin."""
    if pinned is not None and announced != pinned:
        return "pinned"
    if serving is not None and announced <= serving:
        return "not_newer"
    return "load"


def read_card(raw: bytes, model_name: str, version: str) -> VersionCard:
    """Parse and check a card: it names this version, lists safetensors weights and no pickle, names safe files."""
    try:
        card = json.loads(raw)
    except ValueError:
        raise VersionRejected("card.json is not valid JSON") from None
    if not isinstance(card, dict):
        raise VersionRejected("card.json is not a JSON object")
    if card.get("model_name") != model_name or card.get("version") != version:
        raise VersionRejected("card.json names another model or version")
    if card.get("task") not in TASKS:
        raise VersionRejected(f"unknown task {str(card.get('task'))[:64]!r}")
    files = _checked_files(card.get("files"))
    return VersionCard(model_name=model_name, version=version, task=card["task"], files=files)


def _checked_files(files: Any) -> dict[str, str]:
    if not isinstance(files, dict) or not files:
        raise VersionRejected("card.json lists no files")
    for name, digest in files.items():
        if not _is_safe_file_name(name):
            raise VersionRejected(f"unsafe file name in card: {str(name)[:80]!r}")
        if not isinstance(digest, str) or not _SHA256.match(digest):
            raise VersionRejected(f"no sha256 for {name}")
        if name.lower().endswith(PICKLE_SUFFIXES):
            raise VersionRejected(f"pickle-based weights listed: {name}")
    if CARD in files:
        raise VersionRejected("card.json lists itself")
    for required in REQUIRED_FILES:
        if required not in files:
            raise VersionRejected(f"card lists no {required}")
    return dict(files)


def _is_safe_file_name(name: Any) -> bool:
    # Relative, no "..": a tampered card must not write outside the download folder.
    if not isinstance(name, str) or len(name) > 200:
        return False
    parts = name.split("/")
    return all(_FILE_PART.match(p) and p not in (".", "..") for p in parts)


def verify_file(name: str, data: bytes, expected_sha256: str) -> None:
    """Refuse a file whose bytes do not hash to what the card says."""
    if hashlib.sha256(data).hexdigest() != expected_sha256:
        raise VersionRejected(f"sha256 mismatch for {name}")


def read_labels(raw: bytes, task: str) -> dict[int, str]:
    """``id2label`` from labels.json, for the card's task, with ids 0..n-1."""
    try:
        labels = json.loads(raw)
        id2label = {int(i): str(label) for i, label in labels["id2label"].items()}
    except (ValueError, KeyError, TypeError, AttributeError):
        raise VersionRejected("labels.json has no valid id2label") from None
    if labels.get("task") != task:
        raise VersionRejected("labels.json names another task than the card")
    if sorted(id2label) != list(range(len(id2label))) or len(id2label) < 2:
        raise VersionRejected("labels.json ids are not 0..n-1 with at least two labels")
    return id2label
