"""Accuracy, latency and size of each runtime/precision, per number of kept layers (README "Targets").

For SmolLM2 cut to each N in --layers: a short fine-tune on rotten-tomatoes (the same for every runtime),
then torch eager (CPU), ORT fp32, ORT int8 dynamic and ORT int8 static QDQ (per-channel), and with --cuda
ORT CUDA fp32 and fp16 (IO binding), all measured side by side in this one process on the same test
prompts. Latency is p50 of `session.run` at batch 1 and 8; ratios are to torch eager of the same N.
Writes a table to stdout and JSON to --json.

    .venv/bin/python benchmarks/targets.py --layers 1,2,4,30 --json benchmarks/results/targets.json
    python benchmarks/targets.py --cuda --json benchmarks/results/targets-cuda.json   # on a GPU machine
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import onnxruntime
import torch

from edgecut.classifier import make_classifier
from edgecut.data import DataSpec, encode_examples, load_dataset
from edgecut.errors import EdgecutError
from edgecut.export import export_onnx, torch_logits
from edgecut.finetune import finetune, get_recipe
from edgecut.load import load_model
from edgecut.prompt import PromptFormat
from edgecut.prune import cut_to_first
from edgecut.quantize import cpu_has_vnni, graph_bytes, to_fp16, to_int8
from edgecut.runtime import check_target_available, create_session, measure_latency, pad_batch, run_logits
from edgecut.targets import Int8Settings, load_target
from edgecut.validate import accuracy

VARIANTS = {
    "ort-fp32": None,
    "ort-int8-dynamic": Int8Settings(mode="dynamic", per_channel=False),
    "ort-int8-dynamic-pc": Int8Settings(mode="dynamic", per_channel=True),
    "ort-int8-static-pc": Int8Settings(mode="static", per_channel=True, calibration_size=128),
}


def _torch_latency(model, seqs, pad, batch, runs) -> float:
    feeds = [pad_batch(seqs[i : i + batch], pad) for i in range(0, len(seqs) - batch + 1, batch)]
    feeds = [{k: torch.from_numpy(v) for k, v in f.items()} for f in feeds]
    times = []
    with torch.no_grad():
        for i in range(runs + 10):
            start = time.perf_counter()
            model(**feeds[i % len(feeds)])
            if i >= 10:
                times.append((time.perf_counter() - start) * 1e3)
    return float(np.median(times))


def _sample(examples: list, n: int) -> list:
    return random.Random(0).sample(examples, min(n, len(examples)))


def _ort_row(path: Path, target, seqs, labels, reference, pad, runs) -> dict:
    """Accuracy, agreement with torch and p50 latency of one graph on one target (IO binding where it says)."""
    session = create_session(path, target)
    logits = run_logits(session, seqs, pad)
    timing = {"io_binding": target.io_binding, "runs": runs}
    return {
        "accuracy": accuracy(logits, labels),
        "argmax_agreement_vs_torch": float((logits.argmax(-1) == reference.argmax(-1)).mean()),
        "p50_b1_ms": measure_latency(session, seqs, pad, 1, warmup=20, **timing).p50_ms,
        "p50_b8_ms": measure_latency(session, seqs, pad, 8, warmup=5, **timing).p50_ms,
        "bytes": graph_bytes(path),
    }


def bench_layers(n: int, ds, args) -> list[dict]:
    loaded = load_model("smollm2-135m")
    cut_to_first(loaded.model, n)
    tok, pad, cpu = loaded.tokenizer, loaded.tokenizer.pad_token_id, load_target("cpu")
    clf = make_classifier(loaded.model, tok, ds.labels, ds.label_words)
    prompt = PromptFormat(ds.template, (), 128)
    train, _ = encode_examples(tok, prompt, ds.train)
    # The splits come grouped by class: sample, never slice, or a short split holds one class only.
    val, _ = encode_examples(tok, prompt, _sample(ds.validation, 200))
    test, _ = encode_examples(tok, prompt, _sample(ds.test, args.rows))
    # The default cpu recipe, capped in time so the 30-layer model fits a benchmark run (stated in the output).
    recipe = replace(get_recipe("cpu"), per_class_cap=args.per_class, time_budget_s=args.time_budget)
    tuned = finetune(clf, tok, train, val, recipe, show_progress=False)
    clf = tuned.model.eval()
    seqs, labels = [f["input_ids"] for f in test], [f["labels"] for f in test]
    reference = torch_logits(clf, seqs, pad)
    rows = [
        {
            "layers": n,
            "runtime": "torch-eager",
            "accuracy": accuracy(reference, labels),
            "p50_b1_ms": _torch_latency(clf, seqs, pad, 1, args.runs),
            "p50_b8_ms": _torch_latency(clf, seqs, pad, 8, args.runs),
            "bytes": sum(p.numel() * p.element_size() for p in clf.parameters()),
            "train_seconds": tuned.seconds,
        }
    ]
    calibration = [pad_batch([f["input_ids"]], pad) for f in train[:128]]
    measured = (seqs, labels, reference, pad, args.runs)
    with tempfile.TemporaryDirectory() as tmp:
        fp32 = export_onnx(clf, pad_batch(seqs[:2], pad), Path(tmp) / "fp32.onnx").path
        for name, settings in VARIANTS.items():
            path = fp32 if settings is None else to_int8(fp32, Path(tmp) / f"{name}.onnx", settings, calibration).path
            rows.append({"layers": n, "runtime": name} | _ort_row(path, cpu, *measured))
        if args.cuda:
            # The `cuda` target's graph (fp16, norms and softmax fp32) against fp32 on the same provider.
            cuda = load_target("cuda")
            fp16 = to_fp16(fp32, Path(tmp) / "fp16.onnx", cuda.fp16.keep_fp32_ops).path
            for name, path in (("ort-cuda-fp32", fp32), ("ort-cuda-fp16", fp16)):
                rows.append({"layers": n, "runtime": name} | _ort_row(path, cuda, *measured))
    base = rows[0]
    for r in rows:
        r["b1_vs_torch"] = r["p50_b1_ms"] / base["p50_b1_ms"]
        r["b8_vs_torch"] = r["p50_b8_ms"] / base["p50_b8_ms"]
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--layers", default="1,2,4,30")
    parser.add_argument("--rows", type=int, default=1000, help="test rows for accuracy and timing")
    parser.add_argument("--per-class", type=int, default=2000, help="training rows per class")
    parser.add_argument("--time-budget", type=float, default=240, help="training seconds per N at most")
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--json", type=Path, default=Path("benchmarks/results/targets.json"))
    parser.add_argument("--cuda", action="store_true", help="add ORT CUDA rows, fp32 and fp16 (needs a GPU)")
    args = parser.parse_args()
    if args.cuda:
        try:
            check_target_available(load_target("cuda"))  # fail before training, not after
        except EdgecutError as e:
            parser.exit(2, f"error: {e}\n")
    ds = load_dataset(DataSpec(demonstrations=False, per_class_cap=args.per_class))
    rows = []
    for n in [int(x) for x in args.layers.split(",")]:
        rows += bench_layers(n, ds, args)
        print(f"N={n} done", flush=True)
    machine = {
        "cpu": platform.processor() or platform.machine(),
        "vnni": cpu_has_vnni(),
        "torch_threads": torch.get_num_threads(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "onnxruntime": onnxruntime.__version__,
        "train_device": "cuda" if torch.cuda.is_available() else "cpu",
    }
    print(f"\nSmolLM2 on rotten-tomatoes ({args.rows} test rows), {machine}")
    print(
        f"{'N':>3} {'runtime':20} {'acc':>6} {'p50 b1 ms':>10} {'x torch':>8} {'p50 b8 ms':>10} {'x torch':>8}"
        f" {'MB':>7}"
    )
    for r in rows:
        print(
            f"{r['layers']:3d} {r['runtime']:20} {r['accuracy']:6.1%} {r['p50_b1_ms']:10.2f} {r['b1_vs_torch']:8.2f} "
            f"{r['p50_b8_ms']:10.2f} {r['b8_vs_torch']:8.2f} {r['bytes'] / 1e6:7.1f}"
        )
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(
        json.dumps({"machine": machine, "args": vars(args) | {"json": str(args.json)}, "rows": rows}, indent=2) + "\n"
    )


if __name__ == "__main__":
    main()
