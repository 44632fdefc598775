"""Accuracy-aware precision (the approach of Olive's and Neural Compressor's tuners): int8 and fp16 graphs
are scored on the validation split, and only one within the target's `max_accuracy_drop` ships.

Every candidate is built from the fp32 graph, scored on the whole validation split (accuracy, argmax
agreement with fp32), checked for batch independence (a row alone and inside a padded batch of mixed
lengths must give the same logits) and timed at batch 1 side by side with the fp32 graph. The candidates
are tried in the target's order, cheapest first, and the FIRST within budget ships: the choice must not
depend on timing noise (on a shared 2-core machine, p50s move by 10-20 % between runs), and the order
already runs from the fastest and smallest to the slowest, so the first within budget is also the fastest
of those that would pass. Candidates after it are not built (export time). When none is within budget, a
QualityError (exit 1) names the best drop found and the two ways out; there is no silent fp32 fallback.
The test split plays no part here: it reports, it does not choose.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from edgecut.errors import QualityError
from edgecut.graph.parity import POLICY
from edgecut.graph.quantize import QuantizeResult, graph_bytes, to_fp16, to_int8
from edgecut.graph.validate import accuracy as accuracy_of
from edgecut.runtime import create_session, measure_latency, pad_batch, run_logits
from edgecut.targets import Int8Settings, Target, fp32_target_for


@dataclass(frozen=True)
class Int8Candidate:
    """How one int8 candidate is built from the fp32 graph (the names and their order live in targets.py)."""

    name: str
    mode: str  # "static" (QDQ, calibrated activations) or "weights" (the embedding table only)
    calibration: str = "minmax"  # static ranges: "minmax" or "percentile"
    fp32_groups: tuple[str, ...] = ()  # node groups left fp32: "head", "outliers" (see node_groups)


@dataclass(frozen=True)
class Fp16Candidate:
    """How one fp16 candidate is built, on top of the target's keep_fp32_ops."""

    name: str
    fp32_ops: tuple[str, ...] = ()  # extra op types kept fp32
    fp32_groups: tuple[str, ...] = ()  # node groups kept fp32


_ELEMENTWISE = ("Add", "Mul", "Sub", "Div")
INT8_RECIPES: dict[str, Int8Candidate] = {
    c.name: c
    for c in (
        Int8Candidate("static", "static"),
        Int8Candidate("static-fp32-head", "static", fp32_groups=("head",)),
        Int8Candidate("static-percentile-fp32-head", "static", "percentile", ("head",)),
        Int8Candidate("static-fp32-outliers", "static", fp32_groups=("head", "outliers")),
        Int8Candidate("int8-embedding", "weights"),
    )
}
FP16_RECIPES: dict[str, Fp16Candidate] = {
    c.name: c
    for c in (
        Fp16Candidate("fp16"),
        Fp16Candidate("fp16-fp32-elementwise", _ELEMENTWISE),
        Fp16Candidate("fp16-fp32-head", _ELEMENTWISE, ("head",)),
    )
}
# A weight MatMul whose input's largest |value| is this many times the median over all weight MatMuls is
# an outlier: one per-tensor int8 scale for it crushes every other channel (LLM.int8, Dettmers et al. 2022).
OUTLIER_RATIO = 8.0
TIMING_ROWS = 64  # validation prompts timed at batch 1, the same ones for fp32 and each candidate
BATCH_CHECK_ROWS = 32


@dataclass(frozen=True)
class PrecisionChoice:
    """The graph to ship and what the search measured (`as_dict` goes into the manifest)."""

    path: Path
    quantize: QuantizeResult | None  # None: the fp32 graph itself (TensorRT builds its own fp16 engine)
    precision: str
    candidate: str
    fp32_accuracy: float  # validation split
    accuracy: float  # validation split, the shipped graph
    max_accuracy_drop: float  # points
    validation_rows: int
    changed_answers: int  # validation prompts whose argmax differs from fp32's
    candidates: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def drop_points(self) -> float:
        return (self.fp32_accuracy - self.accuracy) * 100

    @property
    def drop_uncertainty_points(self) -> float:
        """About a 95 % half-width for the drop on new data, from the changed answers (a paired comparison:
        the net drop is the difference of two counts whose sum is `changed_answers`). The gate passes on the
        measured drop; this says how far new data may land from it (measured: 212 validation rows, 10 changed
        answers, a drop of 0.9 on validation and 3.8 on test)."""
        return 196 * math.sqrt(self.changed_answers) / max(self.validation_rows, 1)

    def describe(self) -> str:
        """One line for the export's progress: what shipped, its drop, and how firm that drop is."""
        spread = (
            f"{self.changed_answers} of {self.validation_rows} answers changed, so on new data the drop may "
            f"land about ±{self.drop_uncertainty_points:.1f} points from that"
            if self.changed_answers
            else f"none of {self.validation_rows} answers changed"
        )
        return (
            f"shipped {self.candidate}: validation {self.accuracy:.1%} vs fp32 {self.fp32_accuracy:.1%} "
            f"(drop {self.drop_points:+.1f} points, at most {self.max_accuracy_drop:g}); {spread}"
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "precision": self.precision,
            "kept": self.candidate,
            "rule": "the first candidate, in the target's order, within max_accuracy_drop on the validation split",
            "validation_rows": self.validation_rows,
            "fp32_validation_accuracy": self.fp32_accuracy,
            "validation_accuracy": self.accuracy,
            "drop_points": self.drop_points,
            "changed_answers": self.changed_answers,
            "drop_uncertainty_points": self.drop_uncertainty_points,
            "max_accuracy_drop": self.max_accuracy_drop,
            "candidates": self.candidates,
            "seconds": round(self.seconds, 1),
        }


class SameGraph(Exception):
    """A candidate whose graph would be identical to one already scored (skipped, not an error)."""


def choose_int8(
    fp32_path: Path,
    workdir: Path,
    target: Target,
    calibration: Sequence[dict[str, np.ndarray]],
    validation: Sequence[Sequence[int]],
    validation_labels: Sequence[int],
    pad_id: int,
) -> PrecisionChoice:
    """Build the target's int8 candidates in order and return the first within `target.int8.max_accuracy_drop`.

    Args:
        fp32_path: the (optimised) fp32 graph.
        workdir: scratch directory for the candidates (the chosen one is `choice.path`, inside it).
        calibration: feeds ({"input_ids", "attention_mask"}, one training prompt each) for static ranges.
        validation: token ids of the validation prompts; validation_labels: their class indices.

    Raises:
        QualityError: no candidate within budget (exit 1); the message names the best drop and the fixes.
    """
    settings = target.int8
    feeds = list(calibration)[: settings.calibration_size]

    built: dict[tuple, str] = {}

    def build(name: str, destination: Path) -> QuantizeResult:
        recipe = INT8_RECIPES[name]
        groups = _node_groups(fp32_path, recipe.fp32_groups, feeds)
        same = built.setdefault((recipe.mode, recipe.calibration, groups), name)
        if same != name:  # e.g. no outliers found: the graph would repeat one already scored
            raise SameGraph(f"the same graph as {same}")
        return build_int8_candidate(name, fp32_path, destination, settings, feeds)

    return _search(
        "int8", fp32_path, workdir, target, settings.candidates, build, validation, validation_labels, pad_id
    )


def choose_fp16(
    fp32_path: Path,
    workdir: Path,
    target: Target,
    validation: Sequence[Sequence[int]],
    validation_labels: Sequence[int],
    pad_id: int,
) -> PrecisionChoice:
    """fp16 with growing keep-fp32 lists, the first within `target.fp16.max_accuracy_drop` of fp32.

    Where the provider builds its own fp16 engine (TensorRT, `convert_graph = false`) the only candidate is
    the fp32 graph run on that provider, scored against the fp32 graph on the CPU.

    Raises:
        QualityError: no candidate within budget (exit 1).
    """
    keep = tuple(target.fp16.keep_fp32_ops)
    if not target.fp16.convert_graph:
        return _search(
            "fp16", fp32_path, workdir, target, ("provider-fp16",), None, validation, validation_labels, pad_id
        )

    def build(name: str, destination: Path) -> QuantizeResult:
        return build_fp16_candidate(name, fp32_path, destination, keep)

    return _search(
        "fp16", fp32_path, workdir, target, target.fp16.candidates, build, validation, validation_labels, pad_id
    )


def build_int8_candidate(
    name: str,
    fp32_path: Path,
    destination: Path,
    settings: Int8Settings,
    calibration: Sequence[dict[str, np.ndarray]],
) -> QuantizeResult:
    """The int8 graph of candidate `name` (INT8_CANDIDATES) with the target's per-channel/reduce-range.

    Also the sweep's int8 column (its first candidate), so the column times a graph the search would try.
    """
    recipe = INT8_RECIPES[name]
    feeds = list(calibration)[: settings.calibration_size]
    exclude = _node_groups(fp32_path, recipe.fp32_groups, feeds)
    return to_int8(fp32_path, destination, replace(settings, mode=recipe.mode), feeds, exclude, recipe.calibration)


def build_fp16_candidate(name: str, fp32_path: Path, destination: Path, keep_fp32_ops: Sequence[str]) -> QuantizeResult:
    """The fp16 graph of candidate `name` (FP16_CANDIDATES) on top of the target's keep_fp32_ops."""
    recipe = FP16_RECIPES[name]
    exclude = _node_groups(fp32_path, recipe.fp32_groups, ())
    return to_fp16(fp32_path, destination, tuple(keep_fp32_ops) + recipe.fp32_ops, exclude)


def _search(
    precision: str,
    fp32_path: Path,
    workdir: Path,
    target: Target,
    names: Sequence[str],
    build: Callable[[str, Path], QuantizeResult] | None,
    validation: Sequence[Sequence[int]],
    labels: Sequence[int],
    pad_id: int,
) -> PrecisionChoice:
    start = time.monotonic()
    budget = target.int8.max_accuracy_drop if precision == "int8" else target.fp16.max_accuracy_drop
    rows, truth = [list(s) for s in validation], np.asarray(labels)
    if not rows or len(rows) != len(truth):
        raise ValueError("the search needs validation prompts with one label each")
    # fp32 is scored where it runs as fp32: on the target for int8/converted fp16, on the CPU for TensorRT.
    fp32_target = target if build is not None else _cpu_like(target)
    fp32_session = create_session(fp32_path, fp32_target)
    fp32_logits = run_logits(fp32_session, rows, pad_id)
    fp32_accuracy = accuracy_of(fp32_logits, truth)
    timing = rows[:TIMING_ROWS]
    tolerance = POLICY.tolerance(target.parity_atol, fp32_logits)
    # The shipped graph's own gate (pipeline: argmax agreement with torch, and for fp16 the logit tolerance),
    # here against fp32 on validation: a candidate within the accuracy budget that the gate would refuse
    # must not end the search (a 30-layer SmolLM2 on CUDA: 0.8 points lost, 96 % agreement, refused after).
    min_agreement = POLICY.shipped_min_agreement(target.min_argmax_agreement, target.precision, precision)
    logit_tolerance = None if precision == "int8" else tolerance
    records: list[dict[str, Any]] = []
    for name in names:
        path = workdir / f"{precision}-{name}.onnx"
        try:
            result = build(name, path) if build else None
        except SameGraph as e:
            records.append({"name": name, "kept": False, "why": str(e)})
            continue
        except Exception as e:  # a quantizer that cannot handle this graph is a skipped candidate
            records.append({"name": name, "kept": False, "why": f"{type(e).__name__}: {str(e)[:200]}"})
            continue
        path = result.path if result else fp32_path
        session = create_session(path, target)
        logits = run_logits(session, rows, pad_id)
        accuracy = accuracy_of(logits, truth)
        changed = int((logits.argmax(-1) != fp32_logits.argmax(-1)).sum())
        agreement = 1 - changed / len(rows)
        max_diff = float(np.abs(logits - fp32_logits).max())
        drop = (fp32_accuracy - accuracy) * 100
        batch_diff = batch_dependence(session, rows, pad_id)
        fp32_p50 = _p50(fp32_session, timing, pad_id)  # side by side: timed again next to each candidate
        record = {
            "name": name,
            "nodes_excluded": list(result.nodes_excluded) if result else [],
            "validation_accuracy": accuracy,
            "drop_points": drop,
            "argmax_agreement_fp32": agreement,
            "max_abs_diff_fp32": max_diff,
            "batch_max_abs_diff": batch_diff,
            "p50_ms_batch1": _p50(session, timing, pad_id),
            "p50_ms_batch1_fp32": fp32_p50,
            "bytes": graph_bytes(path),
            "bytes_fp32": graph_bytes(fp32_path),
            "build_seconds": round(result.seconds, 2) if result else 0.0,
        }
        if batch_diff > tolerance:
            record |= {"kept": False, "why": f"logits depend on the batch (max |diff| {batch_diff:.1e})"}
        elif drop > budget + 1e-9:
            record |= {"kept": False, "why": f"drop {drop:.2f} points > max_accuracy_drop {budget:g}"}
        elif agreement < min_agreement:
            why = f"argmax agrees with fp32 on {agreement:.1%} < the shipped gate's {min_agreement:.0%}"
            record |= {"kept": False, "why": why}
        elif logit_tolerance is not None and not max_diff <= logit_tolerance:  # NaN logits fail too
            why = f"max |Δlogit| vs fp32 {max_diff:.2e} > the shipped gate's {logit_tolerance:.1e}"
            record |= {"kept": False, "why": why}
        else:
            record |= {"kept": True, "why": f"first within max_accuracy_drop {budget:g}"}
        records.append(record)
        if record["kept"]:
            return PrecisionChoice(
                path,
                result,
                precision,
                name,
                fp32_accuracy,
                accuracy,
                budget,
                len(rows),
                changed,
                records,
                time.monotonic() - start,
            )
    scored = [r for r in records if "drop_points" in r]
    best = min(scored, key=lambda r: r["drop_points"]) if scored else None
    found = (
        f"the best candidate ({best['name']}) loses {best['drop_points']:.1f} points "
        f"({fp32_accuracy:.1%} fp32 → {best['validation_accuracy']:.1%})"
        if best
        else f"no candidate could be built ({records[0]['why'] if records else 'none listed'})"
    )
    if best and best["drop_points"] <= budget + 1e-9:  # within the budget, refused by the shipped graph's gate
        found += f", within budget but refused ({best['why']})"
    error = QualityError(
        f"{precision} stays within {budget:g} point(s) of fp32 on no candidate: {found} on "
        f"{len(rows)} validation prompts; export fp32 with --target {fp32_target_for(target)}, or raise [{precision}] "
        f"max_accuracy_drop in a copy of {target.path or target.name + '.toml'} and pass --target that file"
    )
    error.candidates = records  # for the caller's report (benchmarks/int8.py); the CLI prints the message
    raise error


def batch_dependence(session, rows: Sequence[Sequence[int]], pad_id: int, size: int = BATCH_CHECK_ROWS) -> float:
    """Largest |logit difference| of a row run alone and inside one padded batch of `size` mixed-length rows.

    A served model is batched with whatever else arrives (Triton dynamic batching, `edgecut check`'s
    batches of 16): a row's answer must not depend on its neighbours.
    """
    batch = [list(r) for r in rows[:size]]
    together = session.run(["logits"], pad_batch(batch, pad_id))[0]
    alone = np.concatenate([session.run(["logits"], pad_batch([r], pad_id))[0] for r in batch])
    return float(np.abs(together - alone).max())


def _p50(session, rows, pad_id: int) -> float:
    return measure_latency(session, rows, pad_id, batch_size=1, warmup=5, runs=40).p50_ms


def _cpu_like(target: Target) -> Target:
    return replace(target, providers=("CPUExecutionProvider",), provider_options={}, io_binding=False)


def weight_matmuls(model) -> list[str]:
    """Names of MatMul/Gemm nodes with a weight (an initializer) as input, in graph (topological) order."""
    weights = {t.name for t in model.graph.initializer}
    return [n.name for n in model.graph.node if n.op_type in ("MatMul", "Gemm") and set(n.input) & weights]


def _node_groups(fp32_path: Path, groups: Sequence[str], feeds: Sequence[dict[str, np.ndarray]]) -> tuple[str, ...]:
    """Node names for the groups a candidate leaves in fp32.

    "head": the last two weight MatMuls (the classification head and the last projection before it:
    the last layer's MLP output in a decoder, the pooler in BERT). "outliers": every weight MatMul whose
    input range on the calibration feeds is OUTLIER_RATIO times the median.
    """
    if not groups:
        return ()
    import onnx

    model = onnx.load(str(fp32_path))
    names = weight_matmuls(model)
    chosen: list[str] = []
    if "head" in groups:
        chosen += names[-2:]
    if "outliers" in groups and feeds:
        ranges = _input_ranges(model, names, feeds)
        median = float(np.median(list(ranges.values())))
        chosen += [n for n, r in ranges.items() if median > 0 and r > OUTLIER_RATIO * median and n not in chosen]
    return tuple(chosen)


def _input_ranges(model, names: Sequence[str], feeds: Sequence[dict[str, np.ndarray]]) -> dict[str, float]:
    """Largest |value| entering each named MatMul over the feeds (the fp32 graph with extra outputs)."""
    import onnx
    import onnxruntime as ort

    nodes = {n.name: n for n in model.graph.node}
    weights = {t.name for t in model.graph.initializer}
    inputs = {name: next(i for i in nodes[name].input if i not in weights) for name in names}
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    present = {o.name for o in probe.graph.output}
    for tensor in dict.fromkeys(inputs.values()):
        if tensor not in present:
            probe.graph.output.append(onnx.helper.make_tensor_value_info(tensor, onnx.TensorProto.FLOAT, None))
    session = ort.InferenceSession(probe.SerializeToString(), providers=["CPUExecutionProvider"])
    wanted = list(dict.fromkeys(inputs.values()))
    peak = dict.fromkeys(wanted, 0.0)
    for feed in feeds:
        for tensor, value in zip(wanted, session.run(wanted, feed), strict=True):
            peak[tensor] = max(peak[tensor], float(np.abs(value).max()) if value.size else 0.0)
    return {name: peak[tensor] for name, tensor in inputs.items()}
