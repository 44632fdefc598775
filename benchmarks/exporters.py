"""Which ONNX exporter and attention implementation give the fastest ORT graph? (docs/results/more.md)

Exports the SmolLM2 N-layer classifier four ways — torch.onnx dynamo vs legacy TorchScript, SDPA vs
eager attention — and measures each graph side by side in one run on real rotten-tomatoes prompts:
parity with torch, and ORT CPU latency p50/p90 at batch 1 and 8, as a ratio to the first row.

    .venv/bin/python benchmarks/exporters.py --layers 1 --json benchmarks/results/exporters.json
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch

from edgecut.graph.exporter import export_onnx, logits_only, torch_logits
from edgecut.model.cut import cut_model
from edgecut.model.data import DataSpec, encode_examples, load_dataset
from edgecut.model.load import load_model
from edgecut.model.prompt import PromptFormat
from edgecut.runtime import create_session, measure_latency, pad_batch, run_logits
from edgecut.targets import load_target


def _legacy_export(classifier, sample, path: Path) -> None:
    args = tuple(torch.from_numpy(sample[k]) for k in ("input_ids", "attention_mask"))
    axes = {
        "input_ids": {0: "batch", 1: "sequence"},
        "attention_mask": {0: "batch", 1: "sequence"},
        "logits": {0: "batch"},
    }
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            logits_only(classifier),
            args,
            str(path),
            input_names=["input_ids", "attention_mask"],
            output_names=["logits"],
            dynamic_axes=axes,
            opset_version=18,
            dynamo=False,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--layers", type=int, default=1)
    parser.add_argument("--rows", type=int, default=200, help="test prompts used for parity and timing")
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--json", type=Path, default=Path("benchmarks/results/exporters.json"))
    args = parser.parse_args()

    ds = load_dataset(DataSpec(demonstrations=False))
    loaded = load_model("smollm2-135m")
    base = cut_model(loaded, args.layers, ds.labels, ds.label_words, pooling="last").classifier
    tok, cpu = loaded.tokenizer, load_target("cpu")
    features, _ = encode_examples(tok, PromptFormat(ds.template, (), 128), ds.test[: args.rows])
    seqs = [f["input_ids"] for f in features]
    sample = pad_batch(seqs[:2], tok.pad_token_id)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for exporter in ("dynamo", "legacy"):
            for attention in ("sdpa", "eager"):
                clf = base
                clf.set_attn_implementation(attention)
                reference = torch_logits(clf, seqs, tok.pad_token_id)
                path = Path(tmp) / f"{exporter}-{attention}.onnx"
                if exporter == "dynamo":
                    export_onnx(clf, sample, path)
                else:
                    _legacy_export(clf, sample, path)
                session = create_session(path, cpu)
                diff = float(np.abs(run_logits(session, seqs, tok.pad_token_id) - reference).max())
                lat = {
                    b: measure_latency(session, seqs, tok.pad_token_id, b, warmup=20, runs=args.runs) for b in (1, 8)
                }
                rows.append(
                    {
                        "exporter": exporter,
                        "attention": attention,
                        "max_abs_diff": diff,
                        **{f"p50_b{b}_ms": x.p50_ms for b, x in lat.items()},
                        **{f"p90_b{b}_ms": x.p90_ms for b, x in lat.items()},
                        "nodes": len(__import__("onnx").load(str(path), load_external_data=False).graph.node),
                    }
                )
    ref = rows[0]
    print(f"SmolLM2 N={args.layers}, {len(seqs)} rotten-tomatoes prompts, ORT CPU, {torch.get_num_threads()} threads")
    print(
        f"{'exporter':8} {'attention':9} {'nodes':>5} {'max|Δ|':>8} {'p50 b1 ms':>10} {'x':>5}"
        f" {'p50 b8 ms':>10} {'x':>5}"
    )
    for r in rows:
        print(
            f"{r['exporter']:8} {r['attention']:9} {r['nodes']:5d} {r['max_abs_diff']:8.1e} "
            f"{r['p50_b1_ms']:10.3f} {r['p50_b1_ms'] / ref['p50_b1_ms']:5.2f} "
            f"{r['p50_b8_ms']:10.3f} {r['p50_b8_ms'] / ref['p50_b8_ms']:5.2f}"
        )
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"layers": args.layers, "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
