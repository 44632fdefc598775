"""Accuracy, latency and size of each runtime/precision, per number of kept layers (docs/targets.md).

For SmolLM2 cut to each N in --layers: `edgecut.pipeline.export` with a short fine-tune on rotten-tomatoes
(the same model for every runtime),
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
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime
import torch

from edgecut.errors import EdgecutError
from edgecut.graph.exporter import torch_logits
from edgecut.graph.quantize import cpu_has_vnni, graph_bytes, to_fp16, to_int8
from edgecut.graph.validate import accuracy
from edgecut.model.data import load_dataset
from edgecut.pipeline import ExportSettings, Progress, export
from edgecut.runtime import (
    ArtifactClassifier,
    check_target_available,
    create_session,
    measure_latency,
    pad_batch,
    run_logits,
)
from edgecut.targets import Int8Settings, load_target

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


class _KeepModel(Progress):
    """Keeps the fine-tuned torch model the pipeline hands over, to time torch eager beside the graphs."""

    model = None

    def trained(self, classifier) -> None:
        self.model = classifier


def bench_layers(n: int, args, work: Path) -> list[dict]:
    # The same export a user runs (edgecut.pipeline.export), with the cpu recipe capped in rows and time so
    # the 30-layer model fits a benchmark run (stated in the output); then every variant of its graph.
    settings = ExportSettings(
        layers=n, per_class_cap=args.per_class, time_budget=args.time_budget, test_size=args.rows, output=work / f"n{n}"
    )
    keep = _KeepModel()
    result = export(settings, keep)
    clf = ArtifactClassifier(result.path)
    dataset = load_dataset(settings.data_spec())  # the export's own split (same seed)
    seqs = [clf.encode(ex.text)[0] for ex in dataset.test]
    labels, pad, cpu = [ex.label for ex in dataset.test], clf.pad_id, load_target("cpu")
    reference = torch_logits(keep.model, seqs, pad)
    rows = [
        {
            "layers": n,
            "runtime": "torch-eager",
            "accuracy": accuracy(reference, labels),
            "p50_b1_ms": _torch_latency(keep.model, seqs, pad, 1, args.runs),
            "p50_b8_ms": _torch_latency(keep.model, seqs, pad, 8, args.runs),
            "bytes": sum(p.numel() * p.element_size() for p in keep.model.parameters()),
            "train_seconds": result.manifest["training"]["seconds"],
        }
    ]
    train_ids = [clf.encode(ex.text)[0] for ex in dataset.train[:128]]
    calibration = [pad_batch([ids], pad) for ids in train_ids]
    measured = (seqs, labels, reference, pad, args.runs)
    fp32 = result.path / "model.onnx"
    for name, int8 in VARIANTS.items():
        path = fp32 if int8 is None else to_int8(fp32, work / f"n{n}-{name}.onnx", int8, calibration).path
        rows.append({"layers": n, "runtime": name} | _ort_row(path, cpu, *measured))
    if args.cuda:
        # The `cuda` target's graph (fp16, norms and softmax fp32) against fp32 on the same provider.
        cuda = load_target("cuda")
        fp16 = to_fp16(fp32, work / f"n{n}-fp16.onnx", cuda.fp16.keep_fp32_ops).path
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
    rows = []
    with tempfile.TemporaryDirectory(prefix="edgecut-bench-") as tmp:
        for n in [int(x) for x in args.layers.split(",")]:
            rows += bench_layers(n, args, Path(tmp))
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
