"""Which regularizers a request turns on (the combinations that cannot work are refused by ``TrainRequest`` itself)."""

from __future__ import annotations

from typing import Any

from streamtune_shared.schemas import TrainRequest


def regularization_status(request: TrainRequest) -> dict[str, Any]:
    """The augmentation and adversarial options a run uses, for its train.status metrics (empty when off)."""
    chosen = {"augmentation": request.augmentation, "adversarial": request.adversarial}
    return {name: options.model_dump(mode="json") for name, options in chosen.items() if options is not None}
