"""Offline graph optimisation: the passes a target lists, each kept only where parity with torch holds.

Which passes a target lists is decided by a recorded benchmark (`benchmarks/optimizations.py`,
docs/targets.md), not by a timing taken during the export: one timing on a shared machine kept no pass in one
export and both in the next, so the same model and target gave different graphs. Now the same model and
target always give the same graph. Passes (in the target's order):
- `transformer-fusion`: onnxruntime's transformer optimizer (attention, (skip-)layer-norm, GELU/SiLU
  fusions). It knows BERT and GPT-2 graphs; other decoders are tried with its GPT-2 rules.
- `ort-offline`: ONNX Runtime's own extended optimisations, saved to a file (`optimized_model_filepath`),
  so the serving session starts from the optimised graph.
"""

from __future__ import annotations

import contextlib
import io
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgecut.graph.parity import POLICY, compare_logits
from edgecut.runtime import create_session, run_logits
from edgecut.targets import Target

FUSION_MODEL_TYPES = {"bert": "bert", "roberta": "bert", "distilbert": "bert", "gpt2": "gpt2", "qwen3": "qwen3"}


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
    """Apply the target's passes to the fp32 graph at `path` in order; a pass that breaks parity is dropped.

    Returns the last graph that kept parity (maybe `path` itself) and, per pass, what happened.
    """
    result = OptimizeResult(path)
    rows = sequences[: len(reference)]
    atol = POLICY.tolerance(target.parity_atol, reference)
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
        parity = compare_logits(reference, run_logits(create_session(candidate, target), rows, pad_id), atol)
        record = {"max_abs_diff": parity.max_abs_diff, "model_type": produced, "kept": parity.ok}
        if parity.ok:
            record["why"] = f"listed by target '{target.name}'; parity holds"
            result.path = candidate
            result.applied.append(name)
        else:
            record["why"] = "parity"
        result.passes[name] = record
    return result


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
