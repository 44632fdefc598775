"""The sweep's reports: the per-N summary (mean ± sd over seeds), `sweep.json`, `sweep.md` and `sweep.png`.

Built from whatever runs are finished (`edgecut sweep --report`), so shards of one grid (`--shard K/N`)
report together. Torch-free; matplotlib only for the plot.
"""

from __future__ import annotations

import json
import os
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from edgecut.sweeps.baselines import BaselineResult

BASELINE_NAMES = {
    "tfidf": "TF-IDF + logistic regression",
    "fasttext": "fastText (word bigrams)",
    "model2vec": "model2vec (static, from all-MiniLM-L6-v2)",
    "minilm": "all-MiniLM-L6-v2, fine-tuned (cls)",
}
BASELINE_STYLE = {  # plot colour, line style
    "tfidf": ("gray", "-."),
    "fasttext": ("tab:olive", ":"),
    "model2vec": ("tab:pink", "-."),
    "minilm": ("tab:brown", "--"),
}


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
    learning_rate: float | None = None  # the recipe's rate the run trained at (the manifest's)


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
    notes: list[str] = field(default_factory=list)  # per seed, what changed its number (a retried fit)


@dataclass(frozen=True)
class Point:
    """One row of the sweep on the accuracy/latency plane: a cut (N) or a peer, mean ± sd over seeds."""

    label: str
    accuracy_mean: float
    accuracy_sd: float
    p50_ms: float  # batch 1: the ONNX graph for a cut, text to label for a peer
    kind: str  # "cut" or "peer"


@dataclass
class SweepSummary:
    rows: list[LayerSummary]
    runs: list[RunResult]
    margin_points: float
    recommended_layers: int
    best_layers: int
    settings: dict = field(default_factory=dict)
    baselines: list[BaselineSummary] = field(default_factory=list)
    front: list[str] = field(default_factory=list)  # labels of the points no other point beats on both axes
    recommended: str = ""  # the fastest point (cut or peer) within margin_points of the best
    recommendation: str = ""  # the same, in plain words


def points(summary: SweepSummary) -> list[Point]:
    """Every cut (its fp32 graph's p50) and every peer (its end-to-end p50) as a point."""
    cuts = [Point(f"N = {layer_label(r)}", r.accuracy_mean, r.accuracy_sd, r.fp32_p50_ms, "cut") for r in summary.rows]
    peers = [
        Point(BASELINE_NAMES.get(b.name, b.name), b.accuracy_mean, b.accuracy_sd, b.p50_ms, "peer")
        for b in summary.baselines
    ]
    return cuts + peers


def pareto_front(candidates: Sequence[Point]) -> list[Point]:
    """The points no other point beats on both accuracy (higher) and latency (lower), fastest first."""
    front = [
        p
        for p in candidates
        if not any(
            q.accuracy_mean >= p.accuracy_mean
            and q.p50_ms <= p.p50_ms
            and (q.accuracy_mean, q.p50_ms) != (p.accuracy_mean, p.p50_ms)
            for q in candidates
        )
    ]
    return sorted(front, key=lambda p: p.p50_ms)


def recommend(candidates: Sequence[Point], margin_points: float) -> tuple[Point, str]:
    """The fastest point within `margin_points` of the best mean accuracy, peers included, and why, in words."""
    best = max(candidates, key=lambda p: p.accuracy_mean)
    near = [p for p in candidates if p.accuracy_mean * 100 >= best.accuracy_mean * 100 - margin_points]
    pick = min(near, key=lambda p: (p.p50_ms, -p.accuracy_mean))
    front = pareto_front(candidates)
    said = (
        f"{pick.label} ({pick.accuracy_mean:.1%}, {pick.p50_ms:.2f} ms at batch 1): the fastest within "
        f"{margin_points:g} points of the best ({best.label}, {best.accuracy_mean:.1%})"
    )
    if pick.kind == "peer":
        cuts_on_front = [p.label for p in front if p.kind == "cut"]
        if cuts_on_front:
            said += (
                f". A peer, not a cut; of the cuts, only {', '.join(cuts_on_front)} is on the accuracy/latency front"
            )
        else:
            said += ". A peer, not a cut: no cut is on the accuracy/latency front here, so ship the peer"
    return pick, said


def _mean_sd(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation over seeds (sd 0 for a single seed)."""
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def _median(values: list[float | None]) -> float | None:
    return None if None in values else statistics.median(values)


def _grouped(items: Sequence, key: str) -> list[list]:
    """Items with the same `key` attribute together, in sorted key order (one group per N or baseline)."""
    return [[i for i in items if getattr(i, key) == k] for k in sorted({getattr(i, key) for i in items})]


def mixed_learning_rates(results: Sequence[RunResult]) -> list[str]:
    """One line per N whose seeds trained at different learning rates: a directory extended after a default
    changed (full-depth runs train at 1e-4 since the distillation study; they trained at 5e-4 before)."""
    lines = []
    for group in _grouped(results, "layers"):
        if len({r.learning_rate for r in group if r.learning_rate is not None}) > 1:
            rates = ", ".join(
                f"{r.seed}: {'unknown' if r.learning_rate is None else format(r.learning_rate, 'g')}"
                for r in sorted(group, key=lambda r: r.seed)
            )
            lines.append(
                f"N = {group[0].layers}: its seeds trained at different learning rates ({rates}); its mean mixes "
                "two recipes: give --lr and a new --output to compare like with like"
            )
    return lines


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
                notes=[f"seed {b.seed}: {b.note}" for b in group if b.note],
            )
        )
    summary = SweepSummary(
        rows, results, margin_points, min(r.layers for r in good), best.layers, settings or {}, floors
    )
    candidates = points(summary)
    summary.front = [p.label for p in pareto_front(candidates)]
    pick, summary.recommendation = recommend(candidates, margin_points)
    summary.recommended = pick.label
    return summary


def write_reports(summary: SweepSummary, out: Path) -> dict[str, Path]:
    """sweep.json (everything), sweep.md (the table and the recommendation), sweep.png (the picture)."""
    paths = {"json": out / "sweep.json", "md": out / "sweep.md", "png": out / "sweep.png", "pareto": out / "pareto.png"}
    write_atomic(paths["json"], json.dumps(asdict(summary), indent=2))
    write_atomic(paths["md"], to_markdown(summary))
    plot(summary, paths["png"])
    plot_pareto(summary, paths["pareto"])
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
    notes = [f"- {BASELINE_NAMES.get(b.name, b.name)}, {note}" for b in summary.baselines for note in b.notes]
    lines += ["", *notes] if notes else []
    best = next(r for r in summary.rows if r.layers == summary.best_layers)
    lines += [
        "",
        f"Of the cuts: **N = {summary.recommended_layers}**, the smallest N whose mean accuracy is within "
        f"{summary.margin_points:g} points of the best cut ({best.accuracy_mean:.1%} at N = {best.layers}).",
        "",
        f"Recommended, peers included: **{summary.recommendation}**.",
        "",
        f"On the accuracy/latency front (nothing else is both more accurate and faster): {', '.join(summary.front)}.",
        "",
        "![accuracy and latency against the number of layers](sweep.png)",
        "",
        "![accuracy against latency: every cut and peer, the front drawn](pareto.png)",
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


def plot_pareto(summary: SweepSummary, path: Path) -> None:
    """Accuracy against batch-1 latency (log x): every cut and peer with its spread over seeds, the front as a
    step line, the recommended point ringed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    candidates = points(summary)
    fig, ax = plt.subplots(figsize=(7, 5), dpi=120)
    for p in candidates:
        ax.errorbar(
            p.p50_ms,
            p.accuracy_mean * 100,
            yerr=p.accuracy_sd * 100,
            marker="o" if p.kind == "cut" else "s",
            color="tab:blue" if p.kind == "cut" else "tab:gray",
            capsize=3,
        )
        ax.annotate(p.label, (p.p50_ms, p.accuracy_mean * 100), textcoords="offset points", xytext=(5, 4), fontsize=7)
    front = pareto_front(candidates)
    xs, ys = [p.p50_ms for p in front], [p.accuracy_mean * 100 for p in front]
    ax.step(xs, ys, where="post", color="tab:green", linewidth=1, label="front")
    pick = next(p for p in candidates if p.label == summary.recommended)
    ax.scatter(
        [pick.p50_ms], [pick.accuracy_mean * 100], s=180, facecolors="none", edgecolors="tab:red", label="recommended"
    )
    ax.set_xscale("log")
    ax.set_xlabel("latency p50, batch 1 (ms, log scale)")
    ax.set_ylabel("test accuracy (%, mean ± sd)")
    ax.legend(fontsize=8, loc="lower right")
    ax.set_title(summary.settings.get("title") or "edgecut sweep", fontsize=10)
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.{os.getpid()}.png")
    fig.savefig(tmp)
    plt.close(fig)
    os.replace(tmp, path)


def write_atomic(path: Path, text: str) -> None:
    """Write `text` to `path` through a temporary file, so a reader never sees half of it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text if text.endswith("\n") else text + "\n", encoding="utf-8")
    os.replace(tmp, path)
