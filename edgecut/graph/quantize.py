"""Change the precision of an exported fp32 graph with ONNX Runtime's own tools.

int8 static (QDQ): activation ranges calibrated on training prompts; per-channel weight scales. What
  targets ship: a row's logits do not depend on the other rows of its batch.
int8 weights: only the embedding Gather's table int8 (weight-only); compute stays fp32.
int8 dynamic: weights int8, activations quantized at run time with one scale for the whole batch tensor,
  padding included, so a row's logits change with its batch. Kept only for comparisons (benchmarks/int8.py).
fp16: `onnxruntime.transformers.float16`, with the ops that overflow in fp16 kept fp32 and fp32/int64 I/O.
Gather is quantized too: in a 1–2 layer model the embedding table is most of the weights.
Which candidate ships is decided on validation accuracy by edgecut/graph/precision.py.
"""

from __future__ import annotations

import contextlib
import io
import logging
import platform
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgecut.targets import Int8Settings

OP_TYPES = ("MatMul", "Gemm", "Gather")
# Fused contrib ops (transformer-fusion) defeat ONNX shape inference; their outputs are fp32.
_FLOAT = 1  # onnx.TensorProto.FLOAT


@dataclass(frozen=True)
class QuantizeResult:
    path: Path
    precision: str
    mode: str  # dynamic | static | fp16
    op_types: tuple[str, ...]
    per_channel: bool
    reduce_range: bool
    calibration_size: int
    bytes_before: int
    bytes_after: int
    seconds: float
    calibration_method: str = ""  # minmax | percentile (static mode)
    nodes_excluded: tuple[str, ...] = ()  # left in fp32 (int8), or blocked from fp16

    def as_dict(self) -> dict:
        return {
            "precision": self.precision,
            "mode": self.mode,
            "op_types": list(self.op_types),
            "per_channel": self.per_channel,
            "reduce_range": self.reduce_range,
            "calibration_size": self.calibration_size,
            "calibration_method": self.calibration_method,
            "nodes_excluded": list(self.nodes_excluded),
            "bytes_before": self.bytes_before,
            "bytes_after": self.bytes_after,
        }


@contextlib.contextmanager
def _quiet_root_logger():
    """The quantizer warns on the root logger that pre-processing is advised; edgecut's graphs are already
    optimised (optimize.py), so that advice is noise in the user's terminal. The percentile calibrator also
    prints progress to stdout, which is the command's output."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        root.setLevel(level)


def cpu_has_vnni() -> bool:
    """x86 VNNI (AVX512-VNNI or AVX-VNNI) or ARM dot-product: int8 matmuls without u8s8 saturation."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.machine().lower() in ("arm64", "aarch64")  # Apple silicon and Graviton have dot product
    return any(f in flags for f in ("avx512_vnni", "avx_vnni", "asimddp"))


def resolve_reduce_range(setting: bool | str) -> bool:
    return (not cpu_has_vnni()) if setting == "auto" else bool(setting)


CALIBRATION_METHODS = ("minmax", "percentile")
PERCENTILE = 99.999  # of |activation| per tensor: clips the rare outliers MinMax would stretch the scale for
PERCENTILE_ROWS = 32  # calibration prompts for percentile ranges (a 30-layer model's tensors fill ~3 GB)


def to_int8(
    source: Path,
    destination: Path,
    settings: Int8Settings,
    calibration: Sequence[dict[str, np.ndarray]] = (),
    nodes_to_exclude: Sequence[str] = (),
    calibration_method: str = "minmax",
) -> QuantizeResult:
    """Quantize `source` to int8 into `destination`.

    Args:
        settings: mode "static" (QDQ, needs `calibration` feeds), "weights" (the embedding table only) or
            "dynamic" (batch-dependent; comparisons only), per-channel, reduce-range, calibration size.
        nodes_to_exclude: node names left in fp32.
        calibration_method: "minmax" or "percentile" (static mode).
    """
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_dynamic,
        quantize_static,
    )

    start = time.monotonic()
    reduce_range = resolve_reduce_range(settings.reduce_range)
    op_types = OP_TYPES
    method = ""
    if settings.mode in ("dynamic", "weights"):
        # Gather's int8 table is dequantized row by row: weight-only, nothing depends on the batch.
        op_types = OP_TYPES if settings.mode == "dynamic" else ("Gather",)
        with _quiet_root_logger():
            quantize_dynamic(
                model_input=_without_initializer_shapes(source),
                model_output=str(destination),
                op_types_to_quantize=list(op_types),
                nodes_to_exclude=list(nodes_to_exclude),
                weight_type=QuantType.QInt8,
                per_channel=settings.per_channel,
                reduce_range=reduce_range,
                extra_options={"WeightSymmetric": True, "DefaultTensorType": _FLOAT},
            )
        used = 0
    elif settings.mode == "static":
        if calibration_method not in CALIBRATION_METHODS:
            raise ValueError(f"calibration_method must be one of {CALIBRATION_METHODS}")
        method = calibration_method
        feeds = list(calibration)[: settings.calibration_size]
        if not feeds:
            raise ValueError("static int8 needs calibration feeds")
        used = len(feeds)
        if method == "percentile":
            # ORT's histogram calibrator stacks each tensor over the feeds, so they must share one shape:
            # one padded batch (its padding positions count too; the percentile clips what they add). It
            # keeps every calibrated tensor in memory: PERCENTILE_ROWS bounds that for deep models.
            feeds = [_one_batch(feeds[:PERCENTILE_ROWS])]
            used = min(used, PERCENTILE_ROWS)

        class Reader(CalibrationDataReader):
            def __init__(self):
                self.items = iter(feeds)

            def get_next(self):
                return next(self.items, None)

        with _quiet_root_logger():
            quantize_static(
                model_input=str(source),
                model_output=str(destination),
                calibration_data_reader=Reader(),
                quant_format=QuantFormat.QDQ,
                op_types_to_quantize=list(OP_TYPES),
                nodes_to_exclude=list(nodes_to_exclude),
                per_channel=settings.per_channel,
                reduce_range=reduce_range,
                activation_type=QuantType.QUInt8,  # u8 activations x s8 weights: the fast CPU kernels
                weight_type=QuantType.QInt8,
                calibrate_method=(CalibrationMethod.Percentile if method == "percentile" else CalibrationMethod.MinMax),
                extra_options={
                    "WeightSymmetric": True,
                    "ActivationSymmetric": False,
                    "DefaultTensorType": _FLOAT,
                    "CalibPercentile": PERCENTILE,
                },
            )
    else:
        raise ValueError(f"unknown int8 mode {settings.mode!r}")
    return QuantizeResult(
        destination,
        "int8",
        settings.mode,
        tuple(op_types),
        settings.per_channel,
        reduce_range,
        used,
        graph_bytes(source),
        graph_bytes(destination),
        time.monotonic() - start,
        method,
        tuple(nodes_to_exclude),
    )


def _one_batch(feeds: Sequence[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Single-row feeds (right-padded, as pad_batch writes them) as one batch padded to the longest."""
    width = max(f["input_ids"].shape[1] for f in feeds)
    pad = 0  # masked out; which token fills the padding barely moves a 99.999th percentile

    def widen(array: np.ndarray, value: int) -> np.ndarray:
        return np.pad(array, ((0, 0), (0, width - array.shape[1])), constant_values=value)

    ids = np.concatenate([widen(f["input_ids"], pad) for f in feeds])
    mask = np.concatenate([widen(f["attention_mask"], 0) for f in feeds])
    return {"input_ids": ids, "attention_mask": mask}


def _without_initializer_shapes(source: Path):
    """The graph without value_info entries for its initializers (torch.onnx writes them; they repeat
    what the initializer already says).

    onnxruntime(-gpu) < 1.32's dynamic quantizer turns Gemm(transB=1) into MatMul by transposing the weight
    in place but leaves its stale value_info, and ONNX shape inference then stops on the mismatch.
    """
    import onnx

    model = onnx.load(str(source))
    initializers = {tensor.name for tensor in model.graph.initializer}
    kept = [info for info in model.graph.value_info if info.name not in initializers]
    del model.graph.value_info[:]
    model.graph.value_info.extend(kept)
    return model


def to_fp16(
    source: Path, destination: Path, keep_fp32_ops: Sequence[str], keep_fp32_nodes: Sequence[str] = ()
) -> QuantizeResult:
    """fp16 weights and activations; `keep_fp32_ops` (op types) and `keep_fp32_nodes` (node names) stay
    fp32; graph inputs/outputs keep their types."""
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16
    from onnxruntime.transformers.onnx_model import OnnxModel

    start = time.monotonic()
    model = onnx.load(str(source))
    converted = convert_float_to_float16(
        model, keep_io_types=True, op_block_list=list(keep_fp32_ops), node_block_list=list(keep_fp32_nodes)
    )
    drop_repeated_nodes(converted.graph)
    drop_fp16_round_trips(converted)
    # The converter appends its Casts after their consumers: ORT sorts for itself, the ONNX checker
    # (`edgecut check`, other runtimes) refuses an unsorted graph.
    OnnxModel.graph_topological_sort(converted.graph)
    onnx.save(converted, str(destination))
    return QuantizeResult(
        destination,
        "fp16",
        "fp16",
        (),
        False,
        False,
        0,
        graph_bytes(source),
        graph_bytes(destination),
        time.monotonic() - start,
        "",
        tuple(keep_fp32_nodes),
    )


def drop_repeated_nodes(graph) -> int:
    """Keep one of each node that appears more than once, byte for byte; returns how many were dropped.

    onnxruntime(-gpu) < 1.32's fp16 converter inserts one Cast per consumer of an fp16 tensor feeding two
    kept-fp32 ops, all with the same name and output, and ORT then refuses the graph ("two nodes with same
    node name"). onnxruntime-gpu 1.31 is what PyPI has for the `cuda` target, so repair it here.
    """
    from onnx import NodeProto, ValueInfoProto

    def unique(items) -> list[bytes]:
        return list(dict.fromkeys(item.SerializeToString(deterministic=True) for item in items))

    nodes, infos = unique(graph.node), unique(graph.value_info)
    dropped = len(graph.node) - len(nodes)
    if dropped:
        del graph.node[:]
        graph.node.extend(NodeProto.FromString(b) for b in nodes)
        del graph.value_info[:]
        graph.value_info.extend(ValueInfoProto.FromString(b) for b in infos)
    return dropped


def drop_fp16_round_trips(model) -> int:
    """Let kept-fp32 ops hand each other fp32 tensors; returns how many fp32 -> fp16 -> fp32 trips were cut.

    The float16 converter types every float tensor fp16 and wraps each kept-fp32 node in Casts, so a
    tensor passed from one kept node to the next still goes fp32 -> fp16 -> fp32. Inside an RMSNorm that
    breaks the point of keeping it: Pow's x² of SmolLM2's 26,000 "massive activation" (full depth) is
    inf in fp16, and the 30-layer teachers lost 17.6-30.8 points. A consumer reading such a Cast pair now
    reads the original fp32 tensor (fp32 by its inferred type only: an int64 -> fp16 -> fp32 trip stays).
    """
    import onnx

    graph = model.graph
    try:  # types of every tensor; a graph over protobuf's 2 GB limit keeps the types it was saved with
        typed = onnx.shape_inference.infer_shapes(model).graph
    except (ValueError, onnx.shape_inference.InferenceError):
        typed = graph
    types = {v.name: v.type.tensor_type.elem_type for v in (*typed.value_info, *typed.input, *typed.output)}
    types.update({t.name: t.data_type for t in graph.initializer})
    producer = {out: node for node in graph.node for out in node.output}

    def cast_to(node) -> int | None:
        if node is None or node.op_type != "Cast":
            return None
        return next((a.i for a in node.attribute if a.name == "to"), None)

    outputs = {o.name for o in graph.output}
    bypass = {}
    for node in graph.node:
        up = producer.get(node.input[0]) if node.input else None
        if (
            cast_to(node) == onnx.TensorProto.FLOAT
            and cast_to(up) == onnx.TensorProto.FLOAT16
            and types.get(up.input[0]) == onnx.TensorProto.FLOAT
            and node.output[0] not in outputs
        ):
            bypass[node.output[0]] = up.input[0]
    for node in graph.node:
        for i, name in enumerate(node.input):
            if name in bypass:
                node.input[i] = bypass[name]
    # Casts nobody reads any more go, and then the Casts that only they read.
    readers: dict[str, int] = {}
    for node in graph.node:
        for name in node.input:
            readers[name] = readers.get(name, 0) + 1
    dead: set[int] = set()
    changed = True
    while changed:
        changed = False
        for index, node in enumerate(graph.node):
            if index in dead or node.op_type != "Cast" or node.output[0] in outputs or readers.get(node.output[0]):
                continue
            dead.add(index)
            readers[node.input[0]] -= 1
            changed = True
    if dead:
        kept = [node for index, node in enumerate(graph.node) if index not in dead]
        del graph.node[:]
        graph.node.extend(kept)
    return len(bypass)


def graph_bytes(path: Path) -> int:
    data = path.with_name(path.name + ".data")
    return path.stat().st_size + (data.stat().st_size if data.exists() else 0)
