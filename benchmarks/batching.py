"""Throughput of `ArtifactClassifier.predict` at batch 1, 8 and 32 (docs/serving.md).

Texts/s for one artifact over 1000 texts (the rotten-tomatoes test split, or one text a line from --file),
on the CPU, and also on CUDA when the artifact's target runs on CUDA and this ONNX Runtime has a GPU.
Two rates per batch size: end to end (tokenizing, prompt, padding, `session.run`, softmax: what
`edgecut predict --batch-size` delivers) and the model alone (the texts over the summed `session.run` time,
i.e. over the `latency_ms` of every prediction). Each rate is the median of --repeats passes after one
warm-up pass. Labels at every batch size are compared with batch 1 (fp32 artifacts agree; int8 dynamic
quantisation scales activations per batch, so a few rows may differ there).

    .venv/bin/python benchmarks/batching.py edgecut-out
    .venv/bin/python benchmarks/batching.py edgecut-out --file texts.txt --batch-sizes 1,8,32,64
    .venv/bin/python benchmarks/batching.py edgecut-out --text-graph   # + tokenizing in the graph vs Python

With --text-graph (needs onnxruntime-extensions) the same texts, cut into the same batches in input order,
are also tokenized by model_text.onnx's text side (`build_front_graph`) and by `tokenizers` in Python
(`ArtifactClassifier.encode` + `pad_batch`), and classified end to end by model_text.onnx against
`predict`; both on the CPU, ms per text, median of --repeats passes.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import onnxruntime

from edgecut.errors import EdgecutError
from edgecut.runtime import ArtifactClassifier, read_manifest

RESULTS = Path(__file__).parent / "results" / "batching.json"


def load_texts(file: Path | None, n: int) -> tuple[list[str], str]:
    """The first n texts of --file, or n texts of the rotten-tomatoes test split (seeded, as export splits)."""
    if file is not None:
        from edgecut.runtime import read_texts

        with file.open(encoding="utf-8") as f:
            texts = read_texts(f, jsonl=file.suffix in (".jsonl", ".ndjson"), source=str(file))
        return texts[:n], str(file)
    from edgecut.model.data import DataSpec, load_dataset

    test = load_dataset(DataSpec(test_size=n)).test
    return [ex.text for ex in test[:n]], f"rotten-tomatoes test split ({len(test[:n])} texts)"


def measure(clf: ArtifactClassifier, texts: list[str], batch_size: int, repeats: int) -> dict:
    """Median end-to-end and model-only texts/s of predict(texts, batch_size) over `repeats` passes."""
    clf.predict(texts, batch_size=batch_size)  # warm-up: ORT allocates and tunes per shape
    total, model, labels = [], [], []
    for _ in range(repeats):
        start = time.perf_counter()
        predictions = clf.predict(texts, batch_size=batch_size)
        total.append(time.perf_counter() - start)
        model.append(sum(p.latency_ms for p in predictions) / 1e3)
        labels = [p.label for p in predictions]
    seconds, model_seconds = statistics.median(total), statistics.median(model)
    return {
        "batch_size": batch_size,
        "texts_per_s": len(texts) / seconds,
        "model_texts_per_s": len(texts) / model_seconds,
        "ms_per_text": seconds * 1e3 / len(texts),
        "model_ms_per_text": model_seconds * 1e3 / len(texts),
        "labels": labels,
    }


def bench(artifact: Path, target: str | None, texts: list[str], sizes: list[int], repeats: int) -> dict:
    clf = ArtifactClassifier(artifact, target=target)
    rows = [measure(clf, texts, b, repeats) for b in sizes]
    reference = rows[0]["labels"]
    for row in rows:
        labels = row.pop("labels")
        row["labels_equal_to_first"] = sum(a == b for a, b in zip(labels, reference, strict=True))
        row["speedup"] = row["texts_per_s"] / rows[0]["texts_per_s"]
    return {"target": clf.target.name, "provider": clf.session.get_providers()[0], "rows": rows}


def _median_ms_per_text(call, batches: list[list[str]], n: int, repeats: int) -> float:
    """Median over passes of the time to run `call` on every batch, per text."""
    for batch in batches[:8]:  # warm-up
        call(batch)
    passes = []
    for _ in range(repeats):
        start = time.perf_counter()
        for batch in batches:
            call(batch)
        passes.append(time.perf_counter() - start)
    return statistics.median(passes) * 1e3 / n


def bench_text_graph(artifact: Path, texts: list[str], sizes: list[int], repeats: int) -> list[dict]:
    """Tokenizing in the graph vs in Python, and model_text.onnx vs predict, per batch size (CPU)."""
    import tempfile

    from edgecut.graph.text_graph import build_front_graph, build_text_graph, session_options

    clf = ArtifactClassifier(artifact, target="cpu")
    providers = ["CPUExecutionProvider"]
    front = onnxruntime.InferenceSession(
        build_front_graph(artifact).SerializeToString(), session_options(), providers=providers
    )
    with tempfile.TemporaryDirectory() as tmp:
        path = build_text_graph(artifact, Path(tmp) / "model_text.onnx").path
        whole = onnxruntime.InferenceSession(str(path), session_options(), providers=providers)
    return [_text_graph_row(clf, front, whole, texts, size, repeats) for size in sizes]


def _text_graph_row(clf: ArtifactClassifier, front, whole, texts: list[str], size: int, repeats: int) -> dict:
    import numpy as np

    from edgecut.runtime import pad_batch

    batches = [texts[i : i + size] for i in range(0, len(texts), size)]
    strings = {id(b): np.array(b, dtype=object) for b in batches}
    n = len(texts)

    def python_tokens(batch: list[str]) -> None:
        pad_batch([clf.encode(t)[0] for t in batch], clf.pad_id)

    return {
        "batch_size": size,
        "tokenize_python_ms_per_text": _median_ms_per_text(python_tokens, batches, n, repeats),
        "tokenize_graph_ms_per_text": _median_ms_per_text(
            lambda b: front.run(None, {"text": strings[id(b)]}), batches, n, repeats
        ),
        "predict_ms_per_text": _median_ms_per_text(lambda b: clf.predict(b, batch_size=size), batches, n, repeats),
        "text_graph_ms_per_text": _median_ms_per_text(
            lambda b: whole.run(["logits"], {"text": strings[id(b)]}), batches, n, repeats
        ),
    }


def print_text_graph_table(rows: list[dict]) -> None:
    print("| batch | tokenize: tokenizers in Python | tokenize: in the graph | predict (ids graph) | model_text.onnx |")
    print("|---:|---:|---:|---:|---:|")
    for r in rows:
        cells = [r[f"{k}_ms_per_text"] for k in ("tokenize_python", "tokenize_graph", "predict", "text_graph")]
        print(f"| {r['batch_size']} | " + " | ".join(f"{c:.3f} ms" for c in cells) + " |")


def print_table(runs: list[dict], n: int) -> None:
    head = "| device | batch | texts/s | ms/text | model texts/s | model ms/text | vs batch 1 | labels = batch 1 |"
    print(head)
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for run in runs:
        for r in run["rows"]:
            print(
                f"| {run['provider'].removesuffix('ExecutionProvider')} | {r['batch_size']} "
                f"| {r['texts_per_s']:.0f} | {r['ms_per_text']:.3f} | {r['model_texts_per_s']:.0f} "
                f"| {r['model_ms_per_text']:.3f} | {r['speedup']:.2f}x | {r['labels_equal_to_first']}/{n} |"
            )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("artifact", type=Path, help="artifact directory written by `edgecut export`")
    parser.add_argument("--file", type=Path, help="texts, one a line (or JSONL); default: rotten-tomatoes test")
    parser.add_argument("-n", type=int, default=1000, help="number of texts (default 1000)")
    parser.add_argument("--batch-sizes", default="1,8,32", help="comma-separated (default 1,8,32)")
    parser.add_argument("--repeats", type=int, default=3, help="timed passes per batch size (default 3)")
    parser.add_argument("--text-graph", action="store_true", help="also time model_text.onnx (tokenizer in the graph)")
    parser.add_argument("--json", type=Path, default=RESULTS, help=f"where to write results (default {RESULTS})")
    args = parser.parse_args()
    try:
        sizes = [int(b) for b in args.batch_sizes.split(",")]
        manifest = read_manifest(args.artifact)
        texts, source = load_texts(args.file, args.n)
        if not texts:
            raise EdgecutError(f"{args.file} holds no texts: give a file with one text a line")
        runs = [bench(args.artifact, "cpu", texts, sizes, args.repeats)]
        on_cuda = "CUDAExecutionProvider" in manifest["target"]["providers"]
        if on_cuda and "CUDAExecutionProvider" in onnxruntime.get_available_providers():
            runs.append(bench(args.artifact, None, texts, sizes, args.repeats))
        elif on_cuda:
            print(
                "note: the artifact targets CUDA but this ONNX Runtime has no CUDA provider: CPU only", file=sys.stderr
            )
        text_graph = bench_text_graph(args.artifact, texts, sizes, args.repeats) if args.text_graph else None
    except (EdgecutError, ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"{args.artifact} ({manifest.get('precision', 'fp32')}), {source}, median of {args.repeats} passes")
    print_table(runs, len(texts))
    if text_graph:
        print(f"\ntokenizing in the graph vs in Python, CPU, ms per text ({len(texts)} texts, batches in input order)")
        print_text_graph_table(text_graph)
    result = {
        "artifact": str(args.artifact.resolve()),
        "source_model": manifest.get("source_model"),
        "layers": manifest.get("layers"),
        "precision": manifest.get("precision", "fp32"),
        "texts": source,
        "n": len(texts),
        "repeats": args.repeats,
        "machine": {
            "cpu": platform.processor() or platform.machine(),
            "cores": os.cpu_count(),
            "onnxruntime": onnxruntime.__version__,
        },
        "runs": runs,
        "text_graph": text_graph,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
