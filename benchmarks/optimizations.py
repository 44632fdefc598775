"""Which offline passes should a target list? Timed side by side, interleaved, on a real model.

The export applies exactly the passes a target file lists (edgecut/graph/optimize.py), so that the same model
and target always give the same graph. This benchmark is where that list comes from: it exports the
model's fp32 graph (untrained: speed does not depend on the weights), applies each pass, and times the
graphs in interleaved rounds (A, B, A, B, ...) on real prompts, so that load on a shared machine hits
both alike. A pass earns its place only if it is faster in every round by at least `--margin`.

    .venv/bin/python benchmarks/optimizations.py                       # SmolLM2 N=1, rotten-tomatoes prompts
    .venv/bin/python benchmarks/optimizations.py --layers 2 --target cpu-int8 --json out.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edgecut.graph.exporter import export_onnx, torch_logits  # noqa: E402
from edgecut.graph.optimize import optimize_graph  # noqa: E402
from edgecut.model.cut import cut_model  # noqa: E402
from edgecut.model.data import DataSpec, encode_examples, load_dataset  # noqa: E402
from edgecut.model.load import load_model  # noqa: E402
from edgecut.model.prompt import PromptFormat  # noqa: E402
from edgecut.runtime import create_session, measure_latency, pad_batch  # noqa: E402
from edgecut.targets import OPTIMIZATIONS, load_target  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--data", default="rotten-tomatoes")
    parser.add_argument("--layers", type=int, default=1)
    parser.add_argument("--target", default="cpu", help="providers and graph level to time with")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--runs", type=int, default=60, help="timed runs per graph per round")
    parser.add_argument("--margin", type=float, default=3.0, help="percent faster in every round to keep a pass")
    parser.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" / "optimizations.json")
    args = parser.parse_args()

    loaded = load_model(args.model)
    tok = loaded.tokenizer
    dataset = load_dataset(DataSpec(args.data, test_size=200, per_class_cap=10, demonstrations=False))
    prompt = PromptFormat(dataset.template, (), 128)
    test, _ = encode_examples(tok, prompt, dataset.test)
    seqs = [f["input_ids"] for f in test]
    clf = cut_model(loaded, args.layers, dataset.labels, dataset.label_words, pooling="last").classifier
    pad = tok.pad_token_id
    base_target = load_target(args.target)
    rows = []
    with tempfile.TemporaryDirectory(prefix="edgecut-bench-") as tmp:
        work = Path(tmp)
        fp32 = export_onnx(clf, pad_batch(seqs[:2], pad), work / "model.onnx").path
        reference = torch_logits(clf, seqs[:64], pad)
        graphs = {"none": fp32}
        for name in OPTIMIZATIONS:
            # one pass at a time, as a target listing only it would apply it
            single = replace(base_target, optimizations=(name,))
            (work / name).mkdir()
            result = optimize_graph(fp32, work / name, single, clf.config, seqs[:64], pad, reference)
            if result.applied:
                graphs[name] = result.path
            else:
                rows.append({"pass": name, "kept": False, "why": result.passes[name].get("why")})
        sessions = {name: create_session(path, base_target) for name, path in graphs.items()}
        for batch in (1, 8):
            times: dict[str, list[float]] = {name: [] for name in sessions}
            for _ in range(args.rounds):
                for name, session in sessions.items():  # interleaved: every round times every graph
                    times[name].append(measure_latency(session, seqs, pad, batch, warmup=5, runs=args.runs).p50_ms)
            for name in sessions:
                if name == "none":
                    continue
                ratios = [t / b for t, b in zip(times[name], times["none"], strict=True)]
                faster = all(r <= 1 - args.margin / 100 for r in ratios)
                rows.append(
                    {
                        "pass": name,
                        "batch": batch,
                        "p50_ms_without": statistics.median(times["none"]),
                        "p50_ms_with": statistics.median(times[name]),
                        "ratio_per_round": ratios,
                        "faster_in_every_round": faster,
                    }
                )
    print(f"{args.model} N={args.layers}, target {args.target}, {args.rounds} interleaved rounds x {args.runs} runs")
    print(f"{'pass':20} {'batch':>5} {'without ms':>11} {'with ms':>9} {'ratios (min..max)':>19} keep?")
    for r in rows:
        if "batch" not in r:
            print(f"{r['pass']:20} {'':>5} {'':>11} {'':>9} {'':>19} no ({r['why']})")
            continue
        lo, hi = min(r["ratio_per_round"]), max(r["ratio_per_round"])
        keep = "yes" if r["faster_in_every_round"] else "no"
        print(
            f"{r['pass']:20} {r['batch']:>5} {r['p50_ms_without']:>11.3f} {r['p50_ms_with']:>9.3f} "
            f"{lo:>9.3f}..{hi:<8.3f} {keep}"
        )
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"settings": vars(args) | {"json": str(args.json)}, "rows": rows}, indent=1))
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
