"""Which regularizers a request turns on, and the combinations the trainer refuses (checked before any data is read)."""

from __future__ import annotations

from typing import Any

from streamtune_shared.schemas import TrainRequest

from .adversarial import check_adversarial
from .domain import TrainingRejected


def check_regularizers(request: TrainRequest) -> None:
    """Refuse augmentation or adversarial training where they cannot work or would void a guarantee."""
    check_adversarial(request)
    if request.augmentation is not None and request.dp is not None:
        raise TrainingRejected("augmentation cannot be combined with dp: an augmented copy (and a replaced "
                               "mention) carries a row into other examples, so the epsilon would not hold per row")


def regularization_status(request: TrainRequest) -> dict[str, Any]:
    """The augmentation and adversarial options a run uses, for its train.status metrics (empty when off)."""
    chosen = {"augmentation": request.augmentation, "adversarial": request.adversarial}
    return {name: options.model_dump(mode="json") for name, options in chosen.items() if options is not None}
