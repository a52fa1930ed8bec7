"""The PII model run by ONNX Runtime: exported from the loaded transformer, int8-quantized, kept in memory.

ONNX Runtime's dynamic int8 kernels run this small BERT faster on a CPU than torch's dynamic quantization
(tests/bench/bench_pii.py measures both), and torch deprecates its ``quantize_dynamic``. The model is exported
from the verified version folder at load time, in a temporary directory removed once the session holds it:
nothing new is read from the object store, and no file outside the version is trusted.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import structlog

log = structlog.get_logger(__name__)
OPSET = 17
INPUTS = ("input_ids", "attention_mask")


def onnx_runtime_available() -> bool:
    """Whether onnxruntime (and onnx, for quantization) can be imported."""
    try:
        import onnx  # noqa: F401, PLC0415
        import onnxruntime  # noqa: F401, PLC0415
    except ImportError:
        return False
    return True


class OnnxTokenClassifier:
    """``logits = classifier(input_ids, attention_mask)`` on numpy arrays, through an ONNX Runtime session."""

    def __init__(self, model: Any, *, quantize: bool = True, num_threads: int | None = None) -> None:
        import onnxruntime as ort  # noqa: PLC0415
        import torch  # noqa: PLC0415

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = num_threads or torch.get_num_threads()
        options.inter_op_num_threads = 1
        # Idle threads sleep instead of spinning: the anonymizer shares its cores (with its event loop, Redis,
        # other services); spinning workers made a contended 2-core machine 1.6x slower (84 vs 54 texts/s).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        with tempfile.TemporaryDirectory(prefix="streamtune-pii-onnx-") as tmp:
            path = export(model, Path(tmp) / "model.onnx")
            if quantize:
                path = quantize_int8(path, Path(tmp) / "model.int8.onnx")
            self.session = ort.InferenceSession(path.read_bytes(), options, providers=["CPUExecutionProvider"])

    def __call__(self, input_ids: Any, attention_mask: Any) -> Any:
        """The logits (batch, pieces, labels) as a numpy array."""
        return self.session.run(["logits"], {"input_ids": input_ids, "attention_mask": attention_mask})[0]


def export(model: Any, path: Path) -> Path:
    """The token classifier as an ONNX graph with dynamic batch and length (TorchScript exporter)."""
    import torch  # noqa: PLC0415

    model = model.eval()
    example = torch.ones((2, 8), dtype=torch.long)
    axes = {name: {0: "batch", 1: "pieces"} for name in (*INPUTS, "logits")}
    with torch.inference_mode():
        torch.onnx.export(model, (example, torch.ones_like(example)), str(path), input_names=list(INPUTS),
                          output_names=["logits"], dynamic_axes=axes, opset_version=OPSET, dynamo=False)
    return path


def quantize_int8(source: Path, target: Path) -> Path:
    """Dynamic int8 quantization of the graph's weights (activations quantized per batch)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic  # noqa: PLC0415

    quantize_dynamic(str(source), str(target), weight_type=QuantType.QInt8)
    return target
