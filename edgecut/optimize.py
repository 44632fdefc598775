"""Offline graph optimisation, kept only where it pays: parity with torch holds and the graph is faster.

Passes (a target lists the ones to try, in order):
- `transformer-fusion`: onnxruntime's transformer optimizer (attention, (skip-)layer-norm, GELU/SiLU
  fusions). It knows BERT and GPT-2 graphs; other decoders are tried with its GPT-2 rules.
- `ort-offline`: ONNX Runtime's own extended optimisations, saved to a file (`optimized_model_filepath`),
  so the serving session starts from the optimised graph.
Each candidate is timed side by side with the current best on the same prompts, in the same process.
"""

from __future__ import annotations

import contextlib
import io
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgecut.export import scaled_tolerance
from edgecut.runtime import create_session, measure_latency, run_logits
from edgecut.targets import Target

FUSION_MODEL_TYPES = {"bert": "bert", "roberta": "bert", "distilbert": "bert", "gpt2": "gpt2", "qwen3": "qwen3"}
MIN_SPEEDUP = 0.97  # a candidate must be at least 3 % faster at batch 1 to be kept (timing noise)


@dataclass
class OptimizeResult:
    path: Path
    applied: list[str] = field(default_factory=list)
    passes: dict[str, dict] = field(default_factory=dict)  # pass -> what happened, for the manifest


def optimize_graph(
    path: Path,
    workdir: Path,
    target: Target,
    model_config,
    sequences: list[list[int]],
    pad_id: int,
    reference: np.ndarray,
) -> OptimizeResult:
    """Try the target's passes on the fp32 graph at `path`; return the best graph (maybe `path` itself)."""
    result = OptimizeResult(path)
    if not target.optimizations:
        return result
    rows = sequences[: len(reference)]
    best_p50 = _p50(create_session(path, target), rows, pad_id)
    for name in target.optimizations:
        candidate = workdir / f"{name}.onnx"
        try:
            produced = _run_pass(name, result.path, candidate, target, model_config)
        except Exception as e:  # an optimizer that cannot handle this graph is a skipped pass, not a failure
            result.passes[name] = {"kept": False, "why": f"{type(e).__name__}: {str(e)[:200]}"}
            continue
        if produced is None:
            result.passes[name] = {"kept": False, "why": f"no fusion rules for {model_config.model_type}"}
            continue
        session = create_session(candidate, target)
        logits = run_logits(session, rows, pad_id)
        diff = float(np.abs(logits - reference).max())
        same = bool((logits.argmax(-1) == reference.argmax(-1)).all())
        p50 = _p50(session, rows, pad_id)
        record = {"max_abs_diff": diff, "p50_ms_before": best_p50, "p50_ms_after": p50, "model_type": produced}
        if diff > scaled_tolerance(target.parity_atol, reference) or not same:
            record |= {"kept": False, "why": "parity"}
        elif p50 > best_p50 * MIN_SPEEDUP:
            record |= {"kept": False, "why": "not faster"}
        else:
            record |= {"kept": True}
            result.path, best_p50 = candidate, p50
            result.applied.append(name)
        result.passes[name] = record
    return result


def _p50(session, rows, pad_id) -> float:
    return measure_latency(session, rows, pad_id, batch_size=1, warmup=10, runs=60).p50_ms


def _run_pass(name: str, source: Path, destination: Path, target: Target, model_config) -> str | None:
    import onnxruntime as ort

    if name == "ort-offline":
        options = ort.SessionOptions()
        # EXTENDED, not ALL: ALL adds layout changes tied to this exact CPU, which a saved graph must not carry.
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
        options.optimized_model_filepath = str(destination)
        ort.InferenceSession(str(source), options, providers=target.provider_list())
        return "ort"
    # transformer-fusion
    from onnxruntime.transformers.optimizer import optimize_model

    kind = FUSION_MODEL_TYPES.get(model_config.model_type, "gpt2")
    heads = getattr(model_config, "num_attention_heads", 0) or 0
    hidden = getattr(model_config, "hidden_size", 0) or 0
    quiet = io.StringIO()
    logging.getLogger("onnxruntime.transformers").setLevel(logging.ERROR)
    with contextlib.redirect_stdout(quiet):
        model = optimize_model(
            str(source),
            model_type=kind,
            num_heads=heads,
            hidden_size=hidden,
            opt_level=0,
            use_gpu=target.providers[0] != "CPUExecutionProvider",
        )
        model.save_model_to_file(str(destination))
    return kind
