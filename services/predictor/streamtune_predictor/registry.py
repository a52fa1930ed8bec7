"""Which model version serves which dataset right now."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

from streamtune_shared.schemas import PredictionOutputs, Task

Predict = Callable[[Sequence[str]], list[PredictionOutputs]]


@dataclass(frozen=True)
class ServingModel:
    """A loaded model version: ``predict`` is blocking (run it in a thread)."""

    name: str
    version: str
    task: Task
    predict: Predict


class ModelRegistry:
    """Configured models (dataset -> model name, pins) and the version loaded for each.

    Swaps replace one dict entry on the event loop; a batch takes ``snapshot()`` at its start,
    so every event of a batch is predicted by one version and none is lost in a swap.
    """

    def __init__(self, models: Mapping[str, str], pinned: Mapping[str, str]) -> None:
        self._datasets = dict(models)
        self._pinned = dict(pinned)
        self._serving: dict[str, ServingModel] = {}

    @property
    def names(self) -> list[str]:
        """Every configured model name, sorted."""
        return sorted(set(self._datasets.values()))

    def model_for(self, dataset: str) -> str | None:
        """The model configured for a dataset, or None when the dataset has none."""
        return self._datasets.get(dataset)

    def pinned(self, name: str) -> str | None:
        """The version a model is pinned to, if any."""
        return self._pinned.get(name)

    def get(self, name: str) -> ServingModel | None:
        """The version serving a model, or None while none is loaded."""
        return self._serving.get(name)

    def snapshot(self) -> Mapping[str, ServingModel]:
        """A read-only copy of what serves now; later swaps do not change it."""
        return MappingProxyType(dict(self._serving))

    def install(self, model: ServingModel) -> ServingModel | None:
        """Serve ``model`` from now on; returns the version it replaced."""
        previous = self._serving.get(model.name)
        self._serving[model.name] = model
        return previous

    def missing(self) -> list[str]:
        """Configured models with no version loaded."""
        return [name for name in self.names if name not in self._serving]

    def ready(self) -> bool:
        """Every configured model is loaded."""
        return not self.missing()
