"""``POST /predict``: synchronous predictions for systems that call an API.

Text sent here has not been through the anonymizer: it is never logged.
"""

from __future__ import annotations

import asyncio
from typing import Annotated

import structlog
from fastapi import FastAPI, HTTPException
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator
from streamtune_shared.schemas import MAX_TEXT_CHARS, DatasetName, ModelName, PredictionOutputs, Task

from .metrics import HTTP_TEXTS
from .registry import ModelRegistry, ServingModel

log = structlog.get_logger(__name__)

MAX_TEXTS = 64
Text = Annotated[str, StringConstraints(max_length=MAX_TEXT_CHARS)]


class PredictRequest(BaseModel):
    """Which model (by name or by the dataset it serves) and the text(s) to predict."""

    model_config = ConfigDict(extra="forbid")

    dataset: DatasetName | None = None
    model: ModelName | None = None
    text: Text | None = None
    texts: list[Text] | None = Field(default=None, min_length=1, max_length=MAX_TEXTS)

    @model_validator(mode="after")
    def _exactly_one_of_each(self) -> PredictRequest:
        if (self.dataset is None) == (self.model is None):
            raise ValueError("give exactly one of 'dataset' or 'model'")
        if (self.text is None) == (self.texts is None):
            raise ValueError("give exactly one of 'text' or 'texts'")
        return self


class PredictResponse(BaseModel):
    """The version that answered and one output per text, in order."""

    model: str
    version: str
    task: Task
    outputs: list[PredictionOutputs]


def create_http_app(registry: ModelRegistry) -> FastAPI:
    """The predictor's HTTP routes (probes and metrics are added by the service runtime)."""
    api = FastAPI(title="streamtune predictor", version="1")

    @api.post("/predict", response_model=PredictResponse)
    async def predict(request: PredictRequest) -> PredictResponse:
        """Predict one text or up to 64; 404 for an unknown model or dataset, 503 while it is not loaded."""
        serving = _serving(registry, request)
        if serving.anomaly is not None:  # its outputs depend on the device's stream, which one call does not carry
            raise HTTPException(status_code=422, detail="a sensor-anomaly model predicts from the event stream "
                                                        "(per-device windows), not from POST /predict texts")
        name = serving.name
        texts = request.texts if request.texts is not None else [request.text or ""]
        outputs = await asyncio.to_thread(serving.predict, texts)
        HTTP_TEXTS.labels(name).inc(len(texts))
        log.info("predict.served", model=name, version=serving.version, texts=len(texts))
        return PredictResponse(model=name, version=serving.version, task=serving.task, outputs=outputs)

    return api


def _serving(registry: ModelRegistry, request: PredictRequest) -> ServingModel:
    """The primary version that answers: by model name, or the one serving the dataset (404 / 503 otherwise)."""
    if request.model is not None:
        if request.model not in registry.model_names():
            raise HTTPException(status_code=404, detail=f"no model is configured for model {request.model!r}")
        serving = registry.by_model(request.model)
        what = f"model {request.model!r}"
    else:
        dataset = request.dataset or ""
        if not registry.serves(dataset):
            raise HTTPException(status_code=404, detail=f"no model is configured for dataset {dataset!r}")
        route = registry.route(dataset)
        serving = route.primary if route is not None else None
        what = f"the model of dataset {dataset!r}"
    if serving is None:
        raise HTTPException(status_code=503, detail=f"{what} is not loaded yet")
    return serving
