"""The sensor-anomaly network, its config file and its safetensors weights: one definition the trainer trains
and the predictor loads (import only where torch is installed: the ``anomaly`` extra).

    config = AnomalyNetConfig(sensors=("Current", "Pressure"), window=32, calibration_events=400)
    net = AnomalyNet(config)
    logits = net(windows)                       # (B, window, S) z-scores -> (B,) anomaly logits
    recon = net.reconstruct(windows, mask)      # self-supervised pretraining: (B, members, window, S)
    files = version_files(net)                  # {"config.json": ..., "model.safetensors": ...}

A residual stack of dilated 1-D convolutions over time encodes a window; a 1x1 convolution reconstructs
masked steps (pretraining on every window, labeled or not) and a linear head on the pooled encoding
classifies the window's last event. With ``smoothing`` k > 1 the score is the mean logit of the windows ending
at the last k events (one encoding of ``window + k - 1`` events): SKAB-style anomalies are persistent, so a
score that averages its recent past stays high through the anomaly and flickers less in normal operation.
"""

from __future__ import annotations

import json
from typing import Literal

import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors
from torch import nn

from .model_card import CONFIG_FILE, LABELS_FILE, WEIGHTS_FILE, VersionRejected
from .sensor_windows import WindowSpec

ARCHITECTURE = "streamtune-anomaly-cnn"


class AnomalyNetConfig(BaseModel):
    """``config.json`` of a sensor-anomaly version: the window contract and the network's shape."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    architecture: Literal["streamtune-anomaly-cnn"] = ARCHITECTURE
    sensors: tuple[str, ...] = Field(min_length=1, max_length=256)
    window: int = Field(default=32, ge=2, le=1024)
    calibration_events: int = Field(default=400, ge=1)
    clip: float = Field(default=10.0, gt=0)
    channels: int = Field(default=32, ge=4, le=512)
    layers: int = Field(default=3, ge=1, le=10)
    kernel: int = Field(default=5, ge=1, le=15)
    dropout: float = Field(default=0.1, ge=0, lt=1)
    smoothing: int = Field(default=1, ge=1, le=256,
                           description="The score is the mean logit of the last `smoothing` windows (causal).")
    members: int = Field(default=1, ge=1, le=16, description="Independent networks whose mean logit is the score.")
    compress: bool = Field(default=False, description="asinh of the z-scores: large deviations stay distinct "
                                                      "(under a high clip) without dominating small ones.")

    @property
    def context(self) -> int:
        """Events the network reads per score: ``window`` plus ``smoothing - 1`` older ends."""
        return self.window + self.smoothing - 1

    def spec(self) -> WindowSpec:
        """The window contract (sensor order, events per input, calibration) of this config."""
        return WindowSpec(self.sensors, self.context, self.calibration_events, self.clip)


class _Block(nn.Module):
    def __init__(self, channels: int, kernel: int, dilation: int, dropout: float, groups: int) -> None:
        super().__init__()
        self.conv = nn.Conv1d(channels, channels, kernel, dilation=dilation, padding=dilation * (kernel - 1) // 2,
                              groups=groups)
        self.norm = nn.BatchNorm1d(channels)
        self.drop = nn.Dropout(dropout)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return h + self.drop(nn.functional.gelu(self.norm(self.conv(h))))


class AnomalyNet(nn.Module):
    """Dilated 1-D CNN encoder with a reconstruction head (pretraining) and a classification head.

    ``members`` > 1 is an ensemble of independent networks run as one: grouped convolutions keep each member's
    channels apart, each member has its own head, and the score is the mean of the members' logits. With one
    member the parameters are those of a plain network (configs written before ensembles load unchanged).
    """

    def __init__(self, config: AnomalyNetConfig) -> None:
        super().__init__()
        self.config = config
        sensors, members, channels = len(config.sensors), config.members, config.channels * config.members
        self.embed = nn.Conv1d(sensors + 1, channels, 1)  # +1: the mask-indicator channel
        kernel = config.kernel if config.kernel % 2 else config.kernel + 1  # odd: 'same' padding keeps the length
        self.blocks = nn.Sequential(*(_Block(channels, kernel, 2 ** i, config.dropout, members)
                                      for i in range(config.layers)))
        self.reconstruction = nn.Conv1d(channels, sensors * members, 1, groups=members)
        self.classifier = nn.Linear(2 * config.channels, members)  # row m: member m's head

    def inputs(self, x: torch.Tensor) -> torch.Tensor:
        """The z-scores as the network reads them (and reconstructs them): asinh-compressed where configured."""
        return torch.asinh(x) if self.config.compress else x

    def encode(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """(B, W, S) z-scores -> (B, members * C, W); masked time steps (B, W) are zeroed and flagged."""
        x = self.inputs(x)
        flag = torch.zeros(x.shape[:2], dtype=x.dtype, device=x.device) if mask is None else mask.to(x.dtype)
        x = x * (1 - flag).unsqueeze(-1)
        h = torch.cat([x, flag.unsqueeze(-1)], dim=-1).transpose(1, 2)
        return self.blocks(self.embed(h))

    def reconstruct(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Each member's fill-in of the window's ``inputs`` from its unmasked steps, (B, members, W, S)."""
        out = self.reconstruction(self.encode(x, mask))
        return out.view(x.shape[0], self.config.members, len(self.config.sensors), -1).transpose(2, 3)

    def member_logits(self, x: torch.Tensor) -> torch.Tensor:
        """Each member's logit of each input (its last event), (B, members): the mean of the logits of the windows
        ending at the last ``smoothing`` events, all pooled (mean, last step) from one encoding of ``x`` (B, context, S).
        """
        h = self.encode(x)
        window, k = min(self.config.window, h.shape[-1]), min(self.config.smoothing, h.shape[-1])
        sums = torch.nn.functional.pad(h.cumsum(dim=-1), (1, 0))  # sums[..., t] = h[..., :t].sum(-1)
        ends = torch.arange(h.shape[-1] - k + 1, h.shape[-1] + 1, device=h.device)  # exclusive ends of the windows
        starts = (ends - window).clamp(min=0)
        means = (sums[..., ends] - sums[..., starts]) / (ends - starts).to(h.dtype)
        pooled = torch.cat([means, h[..., ends - 1]], dim=1)  # (B, 2 * members * C, k): means first, then lasts
        pooled = pooled.view(x.shape[0], 2, self.config.members, self.config.channels, k).transpose(1, 2)
        pooled = pooled.reshape(x.shape[0], self.config.members, 2 * self.config.channels, k)
        logits = torch.einsum("bmck,mc->bmk", pooled, self.classifier.weight) + self.classifier.bias[:, None]
        return logits.mean(dim=-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """One anomaly logit per input (its last event), (B,): the members' mean."""
        return self.member_logits(x).mean(dim=-1)


def version_files(net: AnomalyNet) -> dict[str, bytes]:
    """The config and safetensors weights of a trained network (tensors made contiguous, on the CPU)."""
    weights = {name: t.detach().cpu().contiguous() for name, t in net.state_dict().items()}
    return {CONFIG_FILE: net.config.model_dump_json(indent=2).encode(), WEIGHTS_FILE: save_safetensors(weights)}


ID2LABEL = {0: "normal", 1: "anomaly"}


def published_files(net: AnomalyNet) -> dict[str, bytes]:
    """Every file of a sensor-anomaly version but its card: config.json, model.safetensors, labels.json."""
    labels = {"task": "sensor-anomaly", "id2label": {str(i): n for i, n in ID2LABEL.items()},
              "label2id": {n: i for i, n in ID2LABEL.items()}}
    return {**version_files(net), LABELS_FILE: json.dumps(labels, indent=2).encode()}


def load_network(config_bytes: bytes, weights_bytes: bytes) -> AnomalyNet:
    """The network of a version's files, in eval mode; ``VersionRejected`` when they do not fit together."""
    try:
        config = AnomalyNetConfig.model_validate(json.loads(config_bytes))
    except (ValueError, ValidationError):
        raise VersionRejected("config.json is not a sensor-anomaly config") from None
    net = AnomalyNet(config)
    try:
        net.load_state_dict(load_safetensors(weights_bytes), strict=True)
    except (RuntimeError, ValueError) as exc:
        raise VersionRejected(f"model.safetensors does not fit config.json ({type(exc).__name__})") from None
    return net.eval()
