"""The parity policy: how many prompts are compared with torch, and how close the graph must stay.

One place for the numbers export, optimisation, `check` and `sweep` use, and one `compare_logits` for
every comparison of a graph's logits with a reference. Torch-free.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgecut.errors import ParityError


@dataclass(frozen=True)
class ParityPolicy:
    """Sample sizes and tolerances.

    Tolerances against torch are per unit of the largest logit above 1 (`tolerance`): rounding grows with
    the numbers (a 30-layer SmolLM with logits near 15 differs from torch by 1e-5 to 2e-4 between seeds),
    while a real export bug moves logits by 1e-2 or more.
    """

    trace_rows: int = 2  # padded test prompts the exporter traces (≥ 2: a batch dimension that varies)
    rows: int = 64  # test prompts compared with torch: after export, after each pass, the shipped graph
    golden_rows: int = 8  # prompts (and logits) written to golden.npz for `edgecut check`
    calibration_rows: int = 64  # training prompts that score layers for --select block-influence/angular
    export_atol: float = 1e-4  # the fp32 graph against torch on the CPU, whatever the target
    reduced_golden_atol: float = 1e-3  # golden tolerance floor for int8/fp16 graphs (kernels differ per CPU)
    # argmax agreement with torch of an int8/fp16 graph asked of a target built for fp32 (`--quantize int8` on
    # `cpu`): the validation-split search is the real gate; this only catches a broken graph
    reduced_min_agreement: float = 0.9

    def tolerance(self, atol: float, reference: np.ndarray) -> float:
        """`atol`, times the largest |logit| of the reference when that is above 1."""
        return atol * max(1.0, float(np.abs(reference).max()))

    def shipped_min_agreement(self, target_agreement: float, target_precision: str, precision: str) -> float:
        """The target's own threshold for its own precision; `reduced_min_agreement` when --quantize asked
        a target for a lower precision than it is built for."""
        return target_agreement if precision == target_precision else min(target_agreement, self.reduced_min_agreement)

    def golden_atol(self, target_atol: float, precision: str) -> float:
        """How far `edgecut check` lets the shipped graph stray from its own golden logits."""
        return target_atol if precision == "fp32" else max(target_atol, self.reduced_golden_atol)


POLICY = ParityPolicy()


@dataclass(frozen=True)
class ParityResult:
    max_abs_diff: float
    argmax_agreement: float  # fraction of rows with the same predicted class
    rows: int
    atol: float | None  # None: only the argmax agreement counts (int8, where logits move by design)
    min_agreement: float = 1.0

    @property
    def ok(self) -> bool:
        close = self.atol is None or self.max_abs_diff <= self.atol
        return close and self.argmax_agreement >= self.min_agreement

    def as_dict(self) -> dict:
        return {
            "max_abs_diff": self.max_abs_diff,
            "argmax_agreement": self.argmax_agreement,
            "rows": self.rows,
            "atol": self.atol,
        }


def compare_logits(
    expected: np.ndarray, actual: np.ndarray, atol: float | None, min_agreement: float = 1.0
) -> ParityResult:
    """How `actual` logits compare with `expected` (same prompts, same order). Never raises on a mismatch."""
    if expected.shape != actual.shape:
        return ParityResult(float("inf"), 0.0, len(expected), atol, min_agreement)
    return ParityResult(
        max_abs_diff=float(np.abs(expected - actual).max()) if expected.size else 0.0,
        argmax_agreement=float((expected.argmax(-1) == actual.argmax(-1)).mean()) if len(expected) else 1.0,
        rows=len(expected),
        atol=atol,
        min_agreement=min_agreement,
    )


def require_parity(result: ParityResult, what: str = "ONNX export") -> ParityResult:
    """`result`, or a ParityError naming the numbers when the graph disagrees with torch."""
    if not result.ok:
        allowed = "not checked" if result.atol is None else f"allowed {result.atol:.1e}"
        raise ParityError(
            f"{what} does not match torch: max |Δlogit| {result.max_abs_diff:.2e} ({allowed}), "
            f"argmax agreement {result.argmax_agreement:.1%} (needs {result.min_agreement:.0%})"
        )
    return result
