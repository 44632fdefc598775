"""fp32 vs today's dynamic int8 vs the accuracy-tuned int8 (edgecut/graph/precision.py), per fp32 artifact.

For each artifact directory (exported with `--target cpu`, so model.onnx is fp32), the data split is
rebuilt from the manifest's recorded settings (same source, seed and sizes), the prompts are encoded with
the artifact's own tokenizer and prompt format, and three graphs are measured side by side in this one
process on the same prompts:
  fp32            the artifact's graph
  int8-dynamic    what `cpu-int8` shipped before 0.2.0: dynamic per-channel int8 (batch-dependent)
  int8-tuned      choose_int8 with the target below: candidates in order, the first within
                  max_accuracy_drop on the validation split (or the row says why none was)
Columns: validation and test accuracy, p50 latency at batch 1 and 8 (test prompts), size, the largest
logit change of a row between alone and in a padded batch of 32, and the seconds the tuning added.
Writes a table to stdout and JSON to --json.

    .venv/bin/python benchmarks/int8.py ART_DIR [ART_DIR ...] --json benchmarks/results/int8.json
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import onnxruntime

from edgecut.artifacts.manifest import read_manifest
from edgecut.errors import EdgecutError, QualityError
from edgecut.graph.precision import batch_dependence, choose_int8
from edgecut.graph.quantize import cpu_has_vnni, graph_bytes, to_int8
from edgecut.graph.validate import accuracy
from edgecut.model.data import load_dataset
from edgecut.pipeline import ExportSettings
from edgecut.runtime import ArtifactClassifier, create_session, measure_latency, pad_batch, run_logits
from edgecut.targets import Int8Settings, load_target


def _prompts(directory: Path, args) -> dict:
    """The artifact's data split, encoded as the artifact encodes: train (calibration), validation, test."""
    manifest = read_manifest(directory)
    if manifest["precision"] != "fp32":
        raise EdgecutError(f"{directory} ships {manifest['precision']}: export it with --target cpu (fp32)")
    if "settings" not in manifest:
        raise EdgecutError(f"{directory}'s manifest has no settings record: re-export it with this edgecut")
    settings = ExportSettings(**manifest["settings"])
    dataset = load_dataset(settings.data_spec())
    encode = ArtifactClassifier(directory).encode

    def split(examples, limit):
        examples = examples[:limit] if limit else examples
        return [encode(e.text)[0] for e in examples], [e.label for e in examples]

    calibration, _ = split(dataset.train, load_target(args.target).int8.calibration_size)
    validation, validation_labels = split(dataset.validation, args.validation_rows)
    test, test_labels = split(dataset.test, args.test_rows)
    return {
        "manifest": manifest,
        "data": dataset.name,
        "pad": manifest.pad_token_id,
        "calibration": [pad_batch([ids], manifest.pad_token_id) for ids in calibration],
        "validation": (validation, validation_labels),
        "test": (test, test_labels),
    }


def _measure(path: Path, prompts: dict, runs: int) -> dict:
    cpu = load_target("cpu")
    session = create_session(path, cpu)
    (val, val_labels), (test, test_labels), pad = prompts["validation"], prompts["test"], prompts["pad"]
    return {
        "validation_accuracy": accuracy(run_logits(session, val, pad), val_labels),
        "test_accuracy": accuracy(run_logits(session, test, pad), test_labels),
        "p50_b1_ms": measure_latency(session, test, pad, 1, warmup=20, runs=runs).p50_ms,
        "p50_b8_ms": measure_latency(session, test, pad, 8, warmup=5, runs=runs).p50_ms,
        "bytes": graph_bytes(path),
        "batch_max_abs_diff": batch_dependence(session, test, pad),
    }


def bench(directory: Path, args) -> list[dict]:
    prompts = _prompts(directory, args)
    fp32 = prompts["manifest"].model_path
    target = load_target(args.target)
    manifest = prompts["manifest"]
    base = {
        "artifact": str(directory),
        "data": prompts["data"],
        "layers": manifest["layers"]["kept"],
        "seed": manifest["settings"]["seed"],
        "max_length": manifest["prompt"]["max_length"],
    }
    rows = [base | {"variant": "fp32", "tuning_seconds": 0.0} | _measure(fp32, prompts, args.runs)]
    with tempfile.TemporaryDirectory(prefix="edgecut-int8-bench-") as tmp:
        dynamic = to_int8(fp32, Path(tmp) / "dynamic.onnx", Int8Settings("dynamic", per_channel=True))
        rows.append(
            base
            | {"variant": "int8-dynamic", "tuning_seconds": round(dynamic.seconds, 1)}
            | _measure(dynamic.path, prompts, args.runs)
        )
        start = time.monotonic()
        try:
            choice = choose_int8(
                fp32, Path(tmp), target, prompts["calibration"], *prompts["validation"], prompts["pad"]
            )
        except QualityError as e:
            rows.append(
                base
                | {"variant": "int8-tuned", "kept": None, "error": str(e), "candidates": e.candidates}
                | {"tuning_seconds": round(time.monotonic() - start, 1)}
            )
            return rows
        tuned = base | {
            "variant": "int8-tuned",
            "kept": choice.candidate,
            "tuning_seconds": round(choice.seconds, 1),
            "candidates": choice.candidates,
        }
        rows.append(tuned | _measure(choice.path, prompts, args.runs))
    return rows


def _span(values: list[float], fmt: str) -> str:
    """'low–high' in `fmt`, or one value where both print the same."""
    low, high = format(min(values), fmt), format(max(values), fmt)
    return low if low == high else f"{low}–{high}"


def _summary(rows: list[dict]) -> list[dict]:
    """Per data set, N and variant, over seeds: mean validation, test mean ± sd (and per seed), and ranges of
    the batch-1 latency as a ratio to fp32 of the same artifact, size, batch Δ and tuning seconds."""
    fp32_ms = {r["artifact"]: r["p50_b1_ms"] for r in rows if r["variant"] == "fp32"}
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        if "error" not in r:
            key = (r["data"], r.get("max_length"), len(r["layers"]), r["variant"])
            groups.setdefault(key, []).append(r)
    table = []
    for (data, max_length, layers, variant), group in sorted(groups.items(), key=lambda kv: kv[0][:3]):
        group.sort(key=lambda r: r.get("seed", 0))
        test = [100 * r["test_accuracy"] for r in group]
        table.append(
            {
                "data": data if max_length in (None, 128) else f"{data} ({max_length} tokens)",
                "layers": layers,
                "variant": variant,
                "seeds": [r.get("seed") for r in group],
                "validation_mean": statistics.fmean(100 * r["validation_accuracy"] for r in group),
                "test_mean": statistics.fmean(test),
                "test_sd": statistics.stdev(test) if len(test) > 1 else 0.0,
                "test_per_seed": " / ".join(f"{t:.1f}" for t in test),
                "b1_vs_fp32": _span([r["p50_b1_ms"] / fp32_ms[r["artifact"]] for r in group], ".2f") + "×",
                "mb": _span([r["bytes"] / 1e6 for r in group], ".1f"),
                "batch_delta": _span([r["batch_max_abs_diff"] for r in group], ".2g"),
                "tuning_s": _span([r["tuning_seconds"] for r in group], ".0f"),
                "kept": sorted({r["kept"] for r in group if r.get("kept")}),
            }
        )
    return table


def _print_summary(rows: list[dict]) -> None:
    print("\nover seeds (test: mean ± sd, per seed in seed order; latency: batch-1 p50 over fp32's, same artifact)")
    print("| data | N | variant | seeds | validation | test | per seed | b1 vs fp32 | MB | batch Δ | tuning s | kept |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for s in _summary(rows):
        print(
            f"| {s['data']} | {s['layers']} | {s['variant']} | {len(s['seeds'])} | {s['validation_mean']:.1f} % | "
            f"{s['test_mean']:.1f} % ± {s['test_sd']:.1f} | {s['test_per_seed']} | {s['b1_vs_fp32']} | {s['mb']} | "
            f"{s['batch_delta']} | {s['tuning_s']} | {', '.join(s['kept'])} |"
        )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "artifacts", nargs="*", type=Path, help="fp32 artifact directories (export --target cpu); none: report --json"
    )
    parser.add_argument("--target", default="cpu-int8", help="target whose [int8] settings the tuning follows")
    parser.add_argument("--validation-rows", type=int, default=0, help="0: the whole validation split")
    parser.add_argument("--test-rows", type=int, default=0, help="0: the whole test split")
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--json", type=Path, default=Path("benchmarks/results/int8.json"))
    parser.add_argument(
        "--resume", action="store_true", help="keep the rows already in --json and skip their artifacts"
    )
    args = parser.parse_args(argv)
    report_only = not args.artifacts
    kept = json.loads(args.json.read_text())["rows"] if args.json.is_file() else []
    if report_only and not args.json.is_file():
        parser.exit(2, f"error: {args.json} does not exist: give artifact directories to measure\n")
    if kept and not (args.resume or report_only):  # never replace measured rows without being asked
        parser.exit(
            2, f"error: {args.json} holds {len(kept)} rows: add --resume to add to it, or give another --json\n"
        )
    rows = kept
    done = {r["artifact"] for r in rows}
    try:
        for directory in args.artifacts:
            if str(directory) in done:
                continue
            rows += bench(directory, args)
            print(f"{directory} done", file=sys.stderr, flush=True)
    except EdgecutError as e:
        parser.exit(2, f"error: {e}\n")
    machine = {
        "cpu": platform.processor() or platform.machine(),
        "vnni": cpu_has_vnni(),
        "onnxruntime": onnxruntime.__version__,
    }
    print(f"fp32 vs dynamic int8 vs tuned int8 (target {args.target}), {machine}")
    header = (
        f"{'artifact':28} {'variant':13} {'kept':28} {'val acc':>7} {'test acc':>8} {'b1 ms':>7} {'b8 ms':>7}"
        f" {'MB':>6} {'batch Δ':>8} {'tune s':>6}"
    )
    print(header)
    for r in rows:
        if "error" in r:
            print(f"{Path(r['artifact']).name[:28]:28} {r['variant']:13} {'none within budget':28} {r['error']}")
            continue
        print(
            f"{Path(r['artifact']).name[:28]:28} {r['variant']:13} {r.get('kept') or '':28} "
            f"{r['validation_accuracy']:7.1%} {r['test_accuracy']:8.1%} {r['p50_b1_ms']:7.2f} {r['p50_b8_ms']:7.2f} "
            f"{r['bytes'] / 1e6:6.1f} {r['batch_max_abs_diff']:8.1e} {r['tuning_seconds']:6.1f}"
        )
    _print_summary(rows)
    if report_only:  # the table of what --json holds; nothing to write
        return
    args.json.parent.mkdir(parents=True, exist_ok=True)
    record = {
        "machine": machine,
        "args": vars(args) | {"json": str(args.json), "artifacts": sorted({r["artifact"] for r in rows})},
    }
    partial = args.json.with_name(args.json.name + ".partial")  # a crash mid-write must not cost the rows
    partial.write_text(json.dumps(record | {"rows": rows}, indent=2) + "\n")
    partial.replace(args.json)


if __name__ == "__main__":
    main()
