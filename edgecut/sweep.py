"""`edgecut sweep`: the paper's question for a user's task — the smallest N that is good enough.

One export per (N, seed) into `OUT/runs/n{N}-s{seed}/` (an ordinary artifact, written atomically), so an
interrupted sweep resumes where it stopped: a run whose artifact exists is not run again. A sweep directory
holds one configuration (`sweep-options.json`); running it again with other N or seeds extends it, and the
reports cover every finished run in it. Encoder baselines (all-MiniLM-L6) are exported through the same
pipeline into `OUT/runs/{baseline}-s{seed}/`. After the runs, each artifact's fp32 graph and an int8 copy of
it are timed side by side here, and the results become `sweep.json`, `sweep.md` and `sweep.png`. This module
needs no torch; the CLI runs the exports.
"""

from __future__ import annotations

import json
import os
import re
import statistics
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from edgecut.baselines import BaselineResult
from edgecut.errors import EdgecutError
from edgecut.quantize import graph_bytes
from edgecut.runtime import MANIFEST

FULL = "full"
OPTIONS = "sweep-options.json"
# Baselines exported through the same pipeline (full depth, `cls` setting): name -> model alias.
ENCODER_BASELINES = {"minilm": "all-minilm-l6-v2"}
BASELINE_NAMES = {"tfidf": "TF-IDF + logistic regression", "minilm": "all-MiniLM-L6-v2, fine-tuned (cls)"}
BASELINE_STYLE = {"tfidf": ("gray", "-."), "minilm": ("tab:brown", "--")}  # plot colour, line style


@dataclass(frozen=True)
class Run:
    layers: str  # a number, or "full"
    seed: int
    baseline: str | None = None  # an ENCODER_BASELINES name instead of a cut of the sweep's model

    @property
    def name(self) -> str:
        return f"{self.baseline}-s{self.seed}" if self.baseline else f"n{self.layers}-s{self.seed}"


_RUN_NAME = re.compile(r"^(?:n(?P<layers>\d+|full)|(?P<baseline>[a-z]+))-s(?P<seed>-?\d+)$")


def parse_layers(text: str) -> list[str]:
    """`1,2,4,full` -> ["1", "2", "4", "full"]; refuses anything else with the fix."""
    values = [v.strip() for v in text.split(",") if v.strip()]
    bad = [v for v in values if v != FULL and not (v.isdigit() and int(v) >= 1)]
    if not values or bad:
        raise EdgecutError(f"--layers {text!r}: give layer counts ≥ 1 and/or 'full', comma-separated, e.g. 1,2,4,full")
    return list(dict.fromkeys(values))


def parse_seeds(text: str) -> list[int]:
    try:
        seeds = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        seeds = []
    if not seeds:
        raise EdgecutError(f"--seeds {text!r}: give integers, comma-separated, e.g. 0,42,421")
    return list(dict.fromkeys(seeds))


def parse_baselines(text: str) -> list[str]:
    """`tfidf,minilm` -> ["tfidf", "minilm"]; `none` -> []."""
    values = [v.strip() for v in text.split(",") if v.strip()]
    if values == ["none"]:
        return []
    if not values or any(v not in BASELINE_NAMES for v in values):
        raise EdgecutError(f"--baselines {text!r}: use none, or a comma-separated list of {', '.join(BASELINE_NAMES)}")
    return list(dict.fromkeys(values))


def plan(layers: list[str], seeds: list[int], baselines: Sequence[str] = ()) -> list[Run]:
    """Every (N, seed), then every encoder baseline at every seed."""
    encoders = [Run(FULL, s, b) for b in baselines if b in ENCODER_BASELINES for s in seeds]
    return [Run(n, s) for n in layers for s in seeds] + encoders


def check_options(out: Path, options: dict) -> None:
    """One configuration per sweep directory: resuming or extending it with other options would mix runs.

    Options are only binding once a run has finished: a first attempt that failed on a typo leaves
    nothing to mix, so the corrected command simply takes the directory over.
    """
    path = out / OPTIONS
    if not path.is_file() or not finished_runs(out):
        _write_atomic(path, json.dumps(options, indent=1, sort_keys=True))
        return
    before = json.loads(path.read_text(encoding="utf-8"))
    changed = sorted(k for k in options.keys() | before.keys() if options.get(k) != before.get(k))
    if changed:
        was = ", ".join(f"--{k.replace('_', '-')} {_shown(before.get(k))}" for k in changed)
        raise EdgecutError(
            f"{out} holds a sweep made with {was}: repeat those options to resume or extend it, or use a new --output"
        )


def _shown(value) -> str:
    return "(not given)" if value is None else str(value)


def finished_runs(out: Path) -> list[Run]:
    """Every complete run in the directory, also those an earlier invocation made with other N or seeds."""
    named = [_RUN_NAME.match(d.name) for d in sorted((out / "runs").glob("*"))]
    runs = [Run(m["layers"] or FULL, int(m["seed"]), m["baseline"]) for m in named if m]
    return [run for run in runs if is_done(out, run)]


def run_dir(out: Path, run: Run) -> Path:
    return out / "runs" / run.name


def is_done(out: Path, run: Run) -> bool:
    """Artifacts are renamed into place only when complete, so existence means done."""
    return (run_dir(out, run) / MANIFEST).is_file()


@dataclass
class RunResult:
    layers: int
    seed: int
    accuracy: float
    params: int
    artifact_mb: float
    fp32_p50_ms: float
    int8_p50_ms: float
    int8_mb: float
    train_seconds: float
    total_layers: int = 0  # depth of the model it was cut from


def measure_run(out: Path, run: Run) -> RunResult:
    """Read one run's manifest and time its fp32 graph and an int8 copy side by side (cached on disk)."""
    cache = run_dir(out, run).with_suffix(".timing.json")
    manifest = json.loads((run_dir(out, run) / MANIFEST).read_text(encoding="utf-8"))
    if cache.is_file():
        timing = json.loads(cache.read_text(encoding="utf-8"))
    else:
        timing = _time_fp32_and_int8(run_dir(out, run), manifest)
        _write_atomic(cache, json.dumps(timing, indent=1))
    model = run_dir(out, run) / manifest["model_file"]
    return RunResult(
        layers=len(manifest["layers"]["kept"]),
        seed=run.seed,
        accuracy=manifest["metrics"]["onnx_accuracy"],
        params=manifest["parameters"]["after"],
        artifact_mb=graph_bytes(model) / 1e6,
        fp32_p50_ms=timing["fp32_p50_ms"],
        int8_p50_ms=timing["int8_p50_ms"],
        int8_mb=timing["int8_bytes"] / 1e6,
        train_seconds=manifest["training"]["seconds"],
        total_layers=manifest["layers"]["total"],
    )


def as_baseline(run: Run, result: RunResult) -> BaselineResult:
    """An encoder baseline run, as a row of the baselines table (timed on ORT like the layer rows)."""
    return BaselineResult(
        run.baseline or "",
        run.seed,
        result.accuracy,
        result.fp32_p50_ms,
        result.params,
        runtime="onnxruntime",
        artifact_mb=result.artifact_mb,
        int8_mb=result.int8_mb,
        int8_p50_ms=result.int8_p50_ms,
    )


def _time_fp32_and_int8(directory: Path, manifest: dict) -> dict:
    import numpy as np

    from edgecut.quantize import to_int8
    from edgecut.runtime import create_session, measure_latency
    from edgecut.targets import Int8Settings, load_target

    golden = np.load(directory / "golden.npz", allow_pickle=False)
    rows = zip(golden["input_ids"], golden["attention_mask"], strict=True)
    seqs = [ids[mask.astype(bool)].tolist() for ids, mask in rows]  # unpadded golden prompts
    pad, cpu = int(manifest["pad_token_id"]), load_target("cpu")
    with tempfile.TemporaryDirectory(prefix="edgecut-sweep-") as tmp:
        int8 = to_int8(directory / manifest["model_file"], Path(tmp) / "int8.onnx", Int8Settings(per_channel=True))
        sessions = {
            "fp32": create_session(directory / manifest["model_file"], cpu),
            "int8": create_session(int8.path, cpu),
        }
        p50 = {k: measure_latency(s, seqs, pad, 1, warmup=20, runs=200).p50_ms for k, s in sessions.items()}
    return {"fp32_p50_ms": p50["fp32"], "int8_p50_ms": p50["int8"], "int8_bytes": int8.bytes_after}


@dataclass
class LayerSummary:
    layers: int
    seeds: int
    accuracy_mean: float
    accuracy_sd: float
    params: int
    artifact_mb: float
    int8_mb: float
    fp32_p50_ms: float
    int8_p50_ms: float
    full: bool = False  # the uncut model: the paper's reference row


@dataclass
class BaselineSummary:
    name: str
    seeds: int
    accuracy_mean: float
    accuracy_sd: float
    p50_ms: float
    parameters: int
    runtime: str = "scikit-learn"
    artifact_mb: float | None = None
    int8_mb: float | None = None
    int8_p50_ms: float | None = None


@dataclass
class SweepSummary:
    rows: list[LayerSummary]
    runs: list[RunResult]
    margin_points: float
    recommended_layers: int
    best_layers: int
    settings: dict = field(default_factory=dict)
    baselines: list[BaselineSummary] = field(default_factory=list)


def _mean_sd(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation over seeds (sd 0 for a single seed)."""
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def _median(values: list[float | None]) -> float | None:
    return None if None in values else statistics.median(values)


def _grouped(items: Sequence, key: str) -> list[list]:
    """Items with the same `key` attribute together, in sorted key order (one group per N or baseline)."""
    return [[i for i in items if getattr(i, key) == k] for k in sorted({getattr(i, key) for i in items})]


def summarize(
    results: list[RunResult],
    margin_points: float,
    settings: dict | None = None,
    baselines: Sequence[BaselineResult] = (),
) -> SweepSummary:
    """Mean ± sd over seeds per N; recommend the smallest N within `margin_points` of the best mean."""
    rows = []
    for group in _grouped(results, "layers"):
        mean, sd = _mean_sd([r.accuracy for r in group])
        rows.append(
            LayerSummary(
                layers=group[0].layers,
                seeds=len(group),
                accuracy_mean=mean,
                accuracy_sd=sd,
                params=group[0].params,
                artifact_mb=group[0].artifact_mb,
                int8_mb=group[0].int8_mb,
                fp32_p50_ms=statistics.median(r.fp32_p50_ms for r in group),
                int8_p50_ms=statistics.median(r.int8_p50_ms for r in group),
                full=group[0].layers == group[0].total_layers,
            )
        )
    best = max(rows, key=lambda r: r.accuracy_mean)
    good = [r for r in rows if r.accuracy_mean * 100 >= best.accuracy_mean * 100 - margin_points]
    floors = []
    for group in _grouped(baselines, "name"):
        mean, sd = _mean_sd([b.accuracy for b in group])
        floors.append(
            BaselineSummary(
                name=group[0].name,
                seeds=len(group),
                accuracy_mean=mean,
                accuracy_sd=sd,
                p50_ms=statistics.median(b.p50_ms for b in group),
                parameters=group[0].parameters,
                runtime=group[0].runtime,
                artifact_mb=_median([b.artifact_mb for b in group]),
                int8_mb=_median([b.int8_mb for b in group]),
                int8_p50_ms=_median([b.int8_p50_ms for b in group]),
            )
        )
    return SweepSummary(rows, results, margin_points, min(r.layers for r in good), best.layers, settings or {}, floors)


def write_reports(summary: SweepSummary, out: Path) -> dict[str, Path]:
    """sweep.json (everything), sweep.md (the table and the recommendation), sweep.png (the picture)."""
    paths = {"json": out / "sweep.json", "md": out / "sweep.md", "png": out / "sweep.png"}
    _write_atomic(paths["json"], json.dumps(asdict(summary), indent=2))
    _write_atomic(paths["md"], to_markdown(summary))
    plot(summary, paths["png"])
    return paths


def to_markdown(summary: SweepSummary) -> str:
    lines = [
        "| layers | seeds | accuracy (mean ± sd) | parameters | fp32 MB | int8 MB | fp32 p50 b1 ms | int8 p50 b1 ms |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in summary.rows:
        mark = " **(recommended)**" if r.layers == summary.recommended_layers else ""
        lines.append("| " + " | ".join([f"{layer_label(r)}{mark}", *layer_cells(r)]) + " |")
    for b in summary.baselines:
        lines.append("| " + " | ".join([f"{BASELINE_NAMES.get(b.name, b.name)} (baseline)", *baseline_cells(b)]) + " |")
    best = next(r for r in summary.rows if r.layers == summary.best_layers)
    lines += [
        "",
        f"Recommended: **N = {summary.recommended_layers}**, the smallest N whose mean accuracy is within "
        f"{summary.margin_points:g} points of the best ({best.accuracy_mean:.1%} at N = {best.layers}).",
        "",
        "![accuracy and latency against the number of layers](sweep.png)",
        "",
    ]
    return "\n".join(lines)


def layer_label(row: LayerSummary) -> str:
    return f"{row.layers} (full)" if row.full else str(row.layers)


def _accuracy_cell(mean: float, sd: float) -> str:
    return f"{mean:.1%} ± {sd * 100:.1f}"


def layer_cells(r: LayerSummary) -> list[str]:
    """The table's cells after the label: seeds, accuracy, parameters, MB and p50 for fp32 and int8."""
    return [
        str(r.seeds),
        _accuracy_cell(r.accuracy_mean, r.accuracy_sd),
        f"{r.params / 1e6:.1f} M",
        f"{r.artifact_mb:.1f}",
        f"{r.int8_mb:.1f}",
        f"{r.fp32_p50_ms:.2f}",
        f"{r.int8_p50_ms:.2f}",
    ]


def baseline_cells(b: BaselineSummary) -> list[str]:
    """The same cells for a baseline row ('' where it has none, e.g. no int8 graph for TF-IDF)."""
    where = "" if b.runtime == "onnxruntime" else f" ({b.runtime})"
    return [
        str(b.seeds),
        _accuracy_cell(b.accuracy_mean, b.accuracy_sd),
        f"{b.parameters / 1e6:.2f} M",
        "" if b.artifact_mb is None else f"{b.artifact_mb:.1f}",
        "" if b.int8_mb is None else f"{b.int8_mb:.1f}",
        f"{b.p50_ms:.2f}{where}",
        "" if b.int8_p50_ms is None else f"{b.int8_p50_ms:.2f}",
    ]


def plot(summary: SweepSummary, path: Path) -> None:
    """Accuracy (mean ± sd over seeds) and ORT latency (fp32, int8) against N, log-2 x axis."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    xs = [r.layers for r in summary.rows]
    fig, acc_ax = plt.subplots(figsize=(7, 5), dpi=120)
    acc_ax.errorbar(
        xs,
        [r.accuracy_mean * 100 for r in summary.rows],
        yerr=[r.accuracy_sd * 100 for r in summary.rows],
        marker="o",
        capsize=4,
        color="tab:blue",
        label="accuracy (mean ± sd)",
    )
    acc_ax.set_xscale("log", base=2)
    acc_ax.set_xticks(xs, [layer_label(r) for r in summary.rows])
    acc_ax.set_xlabel("layers kept (N)")
    acc_ax.set_ylabel("test accuracy (%)", color="tab:blue")
    acc_ax.axvline(
        summary.recommended_layers,
        color="tab:green",
        linestyle=":",
        label=f"recommended N={summary.recommended_layers}",
    )
    for b in summary.baselines:
        colour, style = BASELINE_STYLE.get(b.name, ("black", ":"))
        acc_ax.axhline(
            b.accuracy_mean * 100,
            color=colour,
            linestyle=style,
            linewidth=1.2,
            label=f"{BASELINE_NAMES.get(b.name, b.name)} ({b.accuracy_mean:.1%})",
        )
    lat_ax = acc_ax.twinx()
    # dashed: the latency lines belong to the right-hand axis
    fp32 = [r.fp32_p50_ms for r in summary.rows]
    lat_ax.plot(xs, fp32, "--", marker="s", color="tab:orange", label="ORT fp32 p50 (batch 1)")
    int8 = [r.int8_p50_ms for r in summary.rows]
    lat_ax.plot(xs, int8, "--", marker="^", color="tab:red", label="ORT int8 p50 (batch 1)")
    lat_ax.set_ylabel("latency (ms)", color="tab:red")
    lat_ax.set_ylim(bottom=0)
    handles = acc_ax.get_legend_handles_labels()[0] + lat_ax.get_legend_handles_labels()[0]
    # below the axes: with baselines the legend would cover the points
    acc_ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2, fontsize=8)
    title = summary.settings.get("title") or "edgecut sweep"
    acc_ax.set_title(title, fontsize=10)
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.{os.getpid()}.png")
    fig.savefig(tmp)
    plt.close(fig)
    os.replace(tmp, path)


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text if text.endswith("\n") else text + "\n", encoding="utf-8")
    os.replace(tmp, path)


def eta_seconds(done_seconds: list[float], remaining: int) -> float | None:
    """Time left, from the mean duration of the runs done in this session (None before the first)."""
    if not remaining:
        return 0.0
    return statistics.fmean(done_seconds) * remaining if done_seconds else None
