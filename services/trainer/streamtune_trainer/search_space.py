"""A search's plan (pure): the dev metric it optimizes, Optuna's distribution per parameter, each trial's request."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError
from streamtune_shared.adaptation import INTEGER_SEARCH_PARAMETERS, SearchDimension, SearchOptions
from streamtune_shared.schemas import TrainRequest, field_errors

from .domain import SEQUENCE_CLASSIFICATION, TOKEN_CLASSIFICATION, TrainingRejected

# The dev metrics each task's evaluation reports (streamtune_trainer.evaluation), named as on train.status.
DEV_METRICS: dict[str, tuple[str, ...]] = {
    TOKEN_CLASSIFICATION: ("f1", "precision", "recall", "loss"),
    SEQUENCE_CLASSIFICATION: ("f1", "macro_f1", "accuracy", "loss"),
}


@dataclass(frozen=True)
class SearchPlan:
    """A checked search: the options, the dev metric's key and Optuna's distribution per parameter."""

    options: SearchOptions
    metric_key: str
    distributions: dict[str, Any]


def plan_search(request: TrainRequest) -> SearchPlan:
    """Check the search's metric against what the task's evaluation reports; TrainingRejected if wrong.

    The request's shape (each parameter's method, its range) is ``TrainRequest``'s to refuse.
    """
    options = request.search
    if options is None:
        raise TrainingRejected("the request has no search")
    known = DEV_METRICS.get(request.task)
    if known is None:
        raise TrainingRejected(f"hyper-parameter search is not available for task {request.task!r}")
    key = options.metric.removeprefix("dev_")
    if not options.metric.startswith("dev_") or key not in known:
        raise TrainingRejected(f"unknown search metric {options.metric!r}; for {request.task} use one of "
                               + ", ".join(f"dev_{k}" for k in known))
    return SearchPlan(options, key, {name: distribution(name, dim) for name, dim in options.space.items()})


def distribution(name: str, dim: SearchDimension) -> Any:
    """Optuna's distribution for one searched parameter (integer for counts, log-scaled when asked); ``dim`` is
    one ``SearchOptions`` accepted."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution  # noqa: PLC0415

    if dim.choices is not None:
        return CategoricalDistribution(list(dim.choices))
    if dim.integer or name in INTEGER_SEARCH_PARAMETERS:
        return IntDistribution(int(dim.low), int(dim.high), log=dim.log)
    return FloatDistribution(dim.low, dim.high, log=dim.log)


def trial_request(request: TrainRequest, params: Mapping[str, Any]) -> TrainRequest:
    """The request of one trial: the searched values applied ('lora.r' into the lora block), no search, and a
    request id of its own derived from the values (so a retried trial resumes from its checkpoint)."""
    fields = request.model_dump(mode="json")
    for name, value in params.items():
        block, _, option = name.rpartition(".")
        if block:
            fields[block] = {**(fields.get(block) or {}), option: value}
        else:
            fields[name] = value
    digest = hashlib.sha256(json.dumps(dict(params), sort_keys=True).encode()).hexdigest()[:10]
    fields.update(search=None, request_id=f"{request.request_id[:100]}.trial-{digest}")
    try:
        return TrainRequest.model_validate(fields)
    except ValidationError as exc:
        errors = "; ".join(f"{e.field}: {e.message}" for e in field_errors(exc, limit=3))
        raise TrainingRejected(f"search values {dict(params)} make an invalid request ({errors})") from None
