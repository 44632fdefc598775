"""Dynamic int8 quantization with ONNX Runtime's quantizer (weights int8, activations at run time).

Gather is quantized too: in a 1–2 layer model the embedding table is most of the weights.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

OP_TYPES = ["MatMul", "Gemm", "Gather"]


@dataclass(frozen=True)
class QuantizeResult:
    path: Path
    mode: str
    op_types: tuple[str, ...]
    bytes_before: int
    bytes_after: int
    seconds: float


def quantize_int8(source: Path, destination: Path) -> QuantizeResult:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    start = time.monotonic()
    quantize_dynamic(
        model_input=str(source),
        model_output=str(destination),
        op_types_to_quantize=OP_TYPES,
        weight_type=QuantType.QInt8,
        per_channel=False,
        extra_options={"WeightSymmetric": True},
    )
    return QuantizeResult(
        destination, "dynamic", tuple(OP_TYPES), _size(source), _size(destination), time.monotonic() - start
    )


def _size(path: Path) -> int:
    data = path.with_name(path.name + ".data")
    return path.stat().st_size + (data.stat().st_size if data.exists() else 0)
