"""Which loaded model versions serve which dataset right now: routes built from the rollout states."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

from typing import TYPE_CHECKING

from streamtune_shared.rollout import Role, ServingState, role_for
from streamtune_shared.schemas import PredictionOutputs, Task

if TYPE_CHECKING:
    from .anomaly import AnomalyModel

Predict = Callable[[Sequence[str]], list[PredictionOutputs]]


@dataclass(frozen=True)
class ServingModel:
    """A loaded model version: ``predict`` is blocking (run it in a thread).

    A sensor-anomaly version predicts from device windows, not text: its ``anomaly`` scores them.
    """

    name: str
    version: str
    task: Task
    predict: Predict
    anomaly: AnomalyModel | None = None


@dataclass(frozen=True)
class Route:
    """What serves one dataset: its applied state and the loaded versions it names."""

    state: ServingState
    primary: ServingModel | None
    canary: ServingModel | None = None
    shadow: ServingModel | None = None

    def ready(self) -> bool:
        """Every version an event of this dataset may be sent to is loaded (a shadow is optional)."""
        return self.primary is not None and (self.state.canary is None or self.canary is not None)

    def model_for(self, event_id: str) -> tuple[ServingModel, Role]:
        """The version that predicts an event, and its role; call only when ``ready()``."""
        if self.canary is not None and role_for(self.state.canary, event_id) == "canary":
            return self.canary, "canary"
        assert self.primary is not None  # noqa: S101 - ready() was checked by the caller
        return self.primary, "primary"


class ModelRegistry:
    """The start-up seeds (dataset -> model name, pins) and the route serving each dataset.

    A route is replaced whole on the event loop; a batch takes ``snapshot()`` at its start, so every
    event of a batch is predicted by the versions of one revision and none is lost in a swap.
    """

    def __init__(self, models: Mapping[str, str], pinned: Mapping[str, str]) -> None:
        self.seeds = dict(models)
        self.pins = dict(pinned)
        self._routes: dict[str, Route] = {}

    def snapshot(self) -> Mapping[str, Route]:
        """A read-only copy of the routes now; later swaps do not change it."""
        return MappingProxyType(dict(self._routes))

    def route(self, dataset: str) -> Route | None:
        """The route of a dataset, or None when it has no serving state yet."""
        return self._routes.get(dataset)

    def install(self, route: Route) -> Route | None:
        """Serve a dataset by ``route`` from now on; returns the route it replaced."""
        previous = self._routes.get(route.state.dataset)
        self._routes[route.state.dataset] = route
        return previous

    def datasets(self) -> list[str]:
        """Datasets with a route or a seed, sorted."""
        return sorted(set(self._routes) | set(self.seeds))

    def serves(self, dataset: str) -> bool:
        """Whether events of this dataset are this predictor's to predict."""
        return dataset in self._routes or dataset in self.seeds

    def by_model(self, name: str) -> ServingModel | None:
        """The primary serving a model for some dataset (``POST /predict`` by model name)."""
        for route in self._routes.values():
            if route.state.model == name and route.primary is not None:
                return route.primary
        return None

    def model_names(self) -> set[str]:
        """Every model named by a route or a seed."""
        return {r.state.model for r in self._routes.values()} | set(self.seeds.values())

    def loaded(self) -> dict[tuple[str, str], ServingModel]:
        """Every loaded version, by (model, version)."""
        found: dict[tuple[str, str], ServingModel] = {}
        for route in self._routes.values():
            for model in (route.primary, route.canary, route.shadow):
                if model is not None:
                    found[(model.name, model.version)] = model
        return found

    def missing(self) -> list[str]:
        """Datasets whose events cannot be predicted yet (no state, or a version not loaded)."""
        return [name for name in self.datasets() if (r := self._routes.get(name)) is None or not r.ready()]

    def ready(self) -> bool:
        """Every seeded and routed dataset can be predicted."""
        return not self.missing()
