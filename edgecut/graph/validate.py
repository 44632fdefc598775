"""Accuracy on the test split (torch and ONNX Runtime) and latency on the target's providers."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

from edgecut.runtime import Latency, measure_latency, run_logits


@dataclass
class ValidationReport:
    rows: int
    torch_accuracy: float
    onnx_accuracy: float  # the shipped graph (int8 when quantized)
    onnx_fp32_accuracy: float | None = None  # set when the shipped graph is int8/fp16: the drop is visible
    latency: list[Latency] = field(default_factory=list)
    providers: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        d = asdict(self)
        d["latency"] = {
            f"batch_{x.batch_size}": {"p50_ms": x.p50_ms, "p90_ms": x.p90_ms, "runs": x.runs} for x in self.latency
        }
        return d


def accuracy(logits: np.ndarray, labels: Sequence[int] | np.ndarray) -> float:
    """Share of rows whose argmax is the label: the one accuracy of export, check and the precision search."""
    return float((logits.argmax(-1) == np.asarray(labels)).mean())


def validate(
    torch_logits: np.ndarray,
    session,
    sequences: list[list[int]],
    labels: list[int],
    pad_id: int,
    fp32_session=None,
    batch_sizes: tuple[int, ...] = (1, 8),
    io_binding: bool = False,
    on_batch: Callable[[int], None] | None = None,
) -> ValidationReport:
    """Score the shipped session (and the fp32 one, if different) on the test prompts; time it."""
    report = ValidationReport(
        rows=len(sequences),
        torch_accuracy=accuracy(torch_logits, labels),
        onnx_accuracy=accuracy(run_logits(session, sequences, pad_id, on_batch=on_batch), labels),
        providers=list(session.get_providers()),
    )
    if fp32_session is not None:
        report.onnx_fp32_accuracy = accuracy(run_logits(fp32_session, sequences, pad_id, on_batch=on_batch), labels)
    report.latency = [measure_latency(session, sequences, pad_id, b, io_binding=io_binding) for b in batch_sizes]
    return report
