"""The depth and data-size curves: where a cut SmolLM2 beats the tuned peers, and where it does not.

`--curve size` runs the cuts (N in --layers, plain) and the tuned peers (TF-IDF, fastText, all-MiniLM-L6-v2) at
each --per-class training size (rows per class; `full` is the cpu recipe's cap, 4000) and seed, on the same
rows. `--curve depth` runs N in --layers (1, 2, 4, 8), plain and distilled from the full-depth export of the
same seed (when that teacher is in --out: it costs hours per seed on 2 CPU cores, so a GPU machine makes it
with `--kinds full --no-timing` and this machine folds its results in with --merge-from), beside the full
model and the same peers.

Every row follows the one tuning rule of benchmarks/peers.py: its few hyper-parameters chosen on the
validation split (500 rows, whatever the training size: the data's split caps training rows only) from a
small stated grid, the choice in the table's last column. Exports train for at least the cpu recipe's 2
epochs and at least MIN_STEPS optimizer steps (`schedule_for`), each epoch evaluated on validation and the best
kept, at their family's learning rate (a cut the cpu recipe's, MiniLM an encoder's); --lr-auto also picks the
learning rate from the export's 3-point grid (three trainings an export); --lr-grid gives that grid other
factors, for a study of the grid (its own results file).

Each finished run is kept in --out (its rows as JSON; the artifact is removed unless --keep-artifacts or it
is a teacher), so a rerun skips it. After every run the results are written again:
benchmarks/results/curve-<curve>-<data>.json (every run, the summary, the answer, machine and versions), .md
and .png (accuracy against batch-1 latency per training size, mean ± sd over seeds, the Pareto front as a step
line).

    .venv/bin/python benchmarks/curves.py --curve size --data rotten-tomatoes --layers 1 --per-class 16,64,256,1024
    .venv/bin/python benchmarks/curves.py --curve depth --data bbc-news --merge-from teachers.json

Every run of a column must share one split: --test-size also moves the validation and training rows, so a
merged run measured at another --test-size is refused (at a size this call measures) unless its kind is re-run.
A later --merge-from file replaces an earlier one's runs of the same row and seed, so a curve takes a peers
table's re-run rows without training anything:

    .venv/bin/python benchmarks/curves.py --curve depth --data rotten-tomatoes --kinds none \
        --merge-from benchmarks/results/curve-depth-rotten-tomatoes.json benchmarks/results/peers-rotten-tomatoes.json
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import os
import platform
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, replace
from datetime import UTC, datetime
from pathlib import Path

from edgecut.artifacts.manifest import is_artifact
from edgecut.errors import EdgecutError
from edgecut.model.data import DataSpec, load_dataset
from edgecut.model.finetune import RECIPES
from edgecut.pipeline import export
from edgecut.settings import parse_lr_grid
from edgecut.sweeps.baselines import BaselineUnavailable, baseline_in_a_process, tfidf_baseline
from edgecut.sweeps.sweep_report import Point
from edgecut.sweeps.sweep_report import pareto_front as sweep_pareto_front

sys.path.insert(0, str(Path(__file__).resolve().parent))
from peers import (  # noqa: E402
    FASTTEXT_LABEL,
    MODEL2VEC_LABEL,
    TFIDF_LABEL,
    Run,
    baseline_row,
    label_of,
    markdown,
    measure_artifact,
    row_from_record,
    settings_for,
    summarize,
    untimed_note,
)

ROOT = Path(__file__).resolve().parent.parent
KINDS = ("full", "minilm", "plain", "from-full", "tfidf", "fasttext")
PEERS = ("tfidf", "fasttext")  # trained here in seconds, not exported
DEFAULTS = {  # --curve: (--layers, --per-class, --kinds)
    "size": ("1,2", "16,64,256,1024,full", "plain,minilm,tfidf,fasttext"),
    "depth": ("1,2,4,8", "full", "full,minilm,plain,from-full,tfidf,fasttext"),
}
FULL = "full"  # the --per-class size that is the recipe's cap
MIN_STEPS = 32  # optimizer steps an export takes at least (tiny training sets: smaller batches, more epochs)
MIN_BATCH = 4
MAX_EPOCHS = 8
WITHIN_POINTS = 2.0  # the depth curve's question: the smallest N within this many points of the full model
CUT_PREFIX = "edgecut N="
FULL_LABEL = label_of(Run("full", "full", 0))


def schedule_for(train_rows: int) -> tuple[int, float]:
    """(batch size, epochs) of an export on `train_rows` rows: at least MIN_STEPS optimizer steps (16 rows per
    class would otherwise train for 2 steps at the cpu recipe's batch of 32 and 2 epochs). Smaller batches
    first (down to MIN_BATCH, 16 steps an epoch), then more epochs (at most MAX_EPOCHS), because each epoch
    costs an evaluation on the 500 validation rows, which dominates a tiny training set's time. The export
    keeps the best epoch on validation, so more epochs cannot overfit the number reported."""
    recipe = RECIPES["cpu"]
    batch = min(recipe.batch_size, max(MIN_BATCH, train_rows // 16))
    steps_per_epoch = max(1, math.ceil(train_rows / batch))
    epochs = min(MAX_EPOCHS, max(recipe.epochs, math.ceil(MIN_STEPS / steps_per_epoch)))
    return batch, float(epochs)


def size_key(size: str) -> float:
    """Training sizes in order, `full` last."""
    return math.inf if size == FULL else float(size)


def pareto_front(points: list[tuple[float, float]]) -> list[int]:
    """Indices of the (latency, accuracy) points no other point beats (the sweep's own rule, ties kept),
    fastest first; points without a latency (NaN: untimed) are left out."""
    timed = [Point(str(i), y, 0.0, x, "") for i, (x, y) in enumerate(points) if not math.isnan(x)]
    return [int(p.label) for p in sweep_pareto_front(timed)]


def _best(rows: list[dict], cut: bool) -> dict | None:
    pool = [r for r in rows if r["name"].startswith(CUT_PREFIX) == cut and r["name"] != FULL_LABEL]
    return max(pool, key=lambda r: r["accuracy_mean"], default=None)


def size_answer(table: list[dict]) -> dict:
    """Below which training size a cut beats every tuned peer: per size, the best cut's and the best peer's
    mean accuracy, and the sentence that answers (a threshold, every size, never, or no single threshold)."""
    sizes = sorted({r["size"] for r in table}, key=size_key)
    cells = {}
    for size in sizes:
        rows = [r for r in table if r["size"] == size]
        cut, peer = _best(rows, cut=True), _best(rows, cut=False)
        if cut and peer:
            cells[size] = {
                "best_cut": cut["name"],
                "cut_accuracy": cut["accuracy_mean"],
                "best_peer": peer["name"],
                "peer_accuracy": peer["accuracy_mean"],
                "cut_wins": cut["accuracy_mean"] > peer["accuracy_mean"],
            }
    wins = [s for s in cells if cells[s]["cut_wins"]]
    losses = [s for s in cells if not cells[s]["cut_wins"]]
    unit = " training rows per class" + (f" ({FULL}: the recipe's cap)" if FULL in cells else "")
    if not cells:
        text = "not answered: no training size has both a cut and a peer measured"
    elif not losses:
        text = f"a cut beats every tuned peer at every size measured ({', '.join(cells)}{unit})"
    elif not wins:
        text = f"a cut never beats every tuned peer (sizes measured: {', '.join(cells)}{unit})"
    elif all(size_key(w) < size_key(lost) for w in wins for lost in losses):
        text = (
            f"a cut beats every tuned peer below {losses[0]}{unit} (at {', '.join(wins)}); "
            f"from {losses[0]} on, a peer is as good or better"
        )
    else:
        text = (
            f"no single threshold: a cut beats every tuned peer at {', '.join(wins)}, not at {', '.join(losses)}{unit}"
        )
    if cells:  # the facts behind it: per size, the best cut's and the best peer's mean accuracy
        text += (
            " (best cut against best peer: "
            + "; ".join(
                f"{size}: {c['best_cut'].removeprefix('edgecut ')} {c['cut_accuracy']:.1%} against "
                f"{c['best_peer']} {c['peer_accuracy']:.1%}"
                for size, c in cells.items()
            )
            + ")"
        )
    return {"question": "below which training size does a cut beat every tuned peer?", "cells": cells, "text": text}


def smallest_within(table: list[dict], suffix: str, reference: float, within: float) -> int | None:
    """The smallest N whose row `edgecut N=<N><suffix>` is within `within` points of `reference` (mean accuracy)."""
    found = []
    for r in table:
        head, _, n = r["name"].partition(CUT_PREFIX)
        depth, _, rest = n.partition(" ")
        if head == "" and depth.isdigit() and (f" {rest}" if rest else "") == suffix:
            if (reference - r["accuracy_mean"]) * 100 <= within:
                found.append(int(depth))
    return min(found, default=None)


def depth_answer(table: list[dict], within: float = WITHIN_POINTS) -> dict:
    """The smallest N within `within` points of the full model, plain and distilled from it (or none up to the
    deepest N measured), and whether distillation moves it."""
    full = next((r for r in table if r["name"] == FULL_LABEL), None)
    question = f"the smallest N within {within:g} points of the full model, and does distillation move it?"
    if full is None:
        return {"question": question, "text": "not answered: no full-depth row (its export needs a GPU)"}
    answer: dict = {"question": question, "full_accuracy": full["accuracy_mean"]}
    parts = []
    for variant, suffix in (("plain", ""), ("distilled", " from full")):
        measured = [
            r for r in table if r["name"].startswith(CUT_PREFIX) and r["name"].endswith(" from full") == bool(suffix)
        ]
        if not measured:
            continue
        deepest = max(int(r["name"].removeprefix(CUT_PREFIX).split()[0]) for r in measured)
        n = smallest_within(table, suffix, full["accuracy_mean"], within)
        answer[variant] = n
        parts.append(f"{variant}: " + (f"N={n}" if n else f"none up to {deepest}"))
    text = f"full model {full['accuracy_mean']:.1%}; smallest N within {within:g} points: " + "; ".join(parts)
    if "plain" in answer and "distilled" in answer:
        plain, distilled = (f"N={n}" if n else "none" for n in (answer["plain"], answer["distilled"]))
        moved = answer["plain"] != answer["distilled"]
        text += "; distillation " + (f"moves it from {plain} to {distilled}" if moved else "does not move it")
    answer["text"] = text
    return answer


def runs_from_peers(record: dict, depths: list[str] | None = None, distilled: bool = True) -> list[dict]:
    """The full-training-set runs of a benchmarks/peers.py results file, as this script's runs: the full model,
    the plain and from-full cuts (fp32; of `depths` only, when given) and the peers whose run recorded its
    tuning (TF-IDF, fastText, model2vec, and MiniLM at an encoder's rate). Left out: int8 rows (a curve compares
    fp32 graphs), MiniLM's students, and peer rows without a recorded tuning (an untuned floor, or MiniLM trained
    at the cut's rate before the encoder rule)."""
    runs = []
    cuts = {f"{CUT_PREFIX}{n}" for n in depths or []} | {f"{CUT_PREFIX}{n} from full" for n in depths or []}
    peers = (TFIDF_LABEL, FASTTEXT_LABEL, MODEL2VEC_LABEL, label_of(Run("minilm", "full", 0)))
    for row in record["runs"]:
        name = row["name"]
        cut = name.startswith(CUT_PREFIX) and (" from " not in name or (distilled and name.endswith(" from full")))
        cut = cut and (depths is None or name in cuts)
        peer = name in peers and row.get("tuning")
        if (cut or peer or name == FULL_LABEL) and not name.endswith(", int8"):
            runs.append({"size": FULL, "kind": "peers.py", "seed": row["seed"], "rows": [row]})
    return runs


def drop_remeasured(runs: list[dict], newer: list[dict]) -> list[dict]:
    """`runs` without those that `newer` measures again (same size, row and seed): a later file of --merge-from,
    or a run finished now, replaces what an earlier one said of the same row."""
    keys = {(r["size"], row["name"], row["seed"]) for r in newer for row in r["rows"]}
    return [r for r in runs if not any((r["size"], row["name"], row["seed"]) in keys for row in r["rows"])]


def with_test_size(runs: list[dict], split: int | None, peers_table: bool) -> list[dict]:
    """The runs of a --merge-from file, each tagged with the file's --test-size unless it carries its own; a
    curve file's rows that came from a peers table keep no tag (their split is that table's, not the curve's)."""
    tagged = []
    for r in runs:
        unknown = split is None or "test_size" in r or (r["kind"] == "peers.py" and not peers_table)
        tagged.append(r if unknown else r | {"test_size": split})
    return tagged


def other_split(
    merged: list[dict], sizes: list[str], kinds: set[str], test_size: int, test_rows: Callable[[int], int]
) -> str | None:
    """Why the runs of a training size would compare models on different rows, or None. --test-size also moves
    the validation and training rows (edgecut.model.data splits test first), so a merged run measured at another
    --test-size, at a size this call measures and of a kind it does not re-run, would sit in one column with
    runs on other rows. Two sizes that leave the same test rows (`test_rows`: a fifth of a small set caps
    both) are one split."""
    for size in sizes:
        kept = [r for r in merged if r["size"] == size and r["kind"] not in kinds]
        stale = [r for r in kept if r.get("test_size") not in (None, test_size)]
        stale = [r for r in stale if test_rows(r["test_size"]) != test_rows(test_size)]
        if stale:
            other = sorted({r["test_size"] for r in stale})
            names = ", ".join(sorted({r["kind"] for r in stale}))
            return (
                f"--merge-from: its runs at {size} rows per class ({names}) used --test-size "
                f"{', '.join(map(str, other))}, another split than --test-size {test_size}: give that --test-size, "
                f"or re-run those kinds here with --kinds"
            )
    return None


def curve_table(runs: list[dict]) -> list[dict]:
    """peers.py's summary per training size: mean ± sd of accuracy over seeds, medians of timings and sizes, and
    whether the row is on that size's accuracy/latency Pareto front."""
    table = []
    for size in sorted({r["size"] for r in runs}, key=size_key):
        rows = [row_from_record(row) for r in runs if r["size"] == size for row in r["rows"]]
        entries = summarize(rows)
        front = set(pareto_front([(e["p50_ms"], e["accuracy_mean"]) for e in entries]))
        table += [entry | {"size": size, "front": i in front} for i, entry in enumerate(entries)]
    return table


def grid_markdown(table: list[dict]) -> str:
    """Accuracy mean ± sd (seeds) with one column per training size."""
    sizes = sorted({r["size"] for r in table}, key=size_key)
    names = list(dict.fromkeys(r["name"] for r in table))
    cell = {(r["name"], r["size"]): r for r in table}
    heads = [f"{s} / class" if s != FULL else "full set" for s in sizes]
    lines = ["| model | " + " | ".join(heads) + " |", "|---" * (len(sizes) + 1) + "|"]
    for name in names:
        values = [cell.get((name, s)) for s in sizes]
        shown = [
            f"{v['accuracy_mean']:.1%} ± {v['accuracy_sd'] * 100:.1f} ({v['seeds']})" if v else "–" for v in values
        ]
        lines.append(f"| {name} | " + " | ".join(shown) + " |")
    return "\n".join(lines) + "\n"


def plot(table: list[dict], path: Path, title: str) -> None:
    """One panel per training size: accuracy against batch-1 latency (log x), every row a point with its sd over
    seeds as an error bar, the Pareto front as a step line. An untimed row (trained on another machine: the
    full model, its students) is a dashed line at its accuracy, so the depth curve shows what it aims at."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = sorted({r["size"] for r in table}, key=size_key)
    names = list(dict.fromkeys(r["name"] for r in table))
    untimed = {r["name"] for r in table if math.isnan(r["p50_ms"])}

    def style(name: str) -> dict:  # ten colours, then the next marker: no two rows look alike
        i = names.index(name)
        return {"color": f"C{i % 10}", "marker": "osD^v"[i // 10 % 5]}

    fig, axes = plt.subplots(1, len(sizes), figsize=(4.2 * len(sizes) + 2.5, 4.6), squeeze=False)
    for ax, size in zip(axes[0], sizes, strict=True):
        rows = [r for r in table if r["size"] == size]
        for r in rows:
            look = style(r["name"])
            if math.isnan(r["p50_ms"]):
                ax.axhline(r["accuracy_mean"] * 100, color=look["color"], linestyle="--", linewidth=1)
                continue
            ax.errorbar(
                r["p50_ms"], r["accuracy_mean"] * 100, yerr=r["accuracy_sd"] * 100, linestyle="", capsize=3, **look
            )
        points = [(r["p50_ms"], r["accuracy_mean"] * 100) for r in rows]
        front = pareto_front(points)
        if front:
            xs, ys = [points[i][0] for i in front], [points[i][1] for i in front]
            ax.step(xs, ys, where="post", color="black", linewidth=1, alpha=0.6)
        ax.set_xscale("log")
        ax.set_title(f"{size} rows per class" if size != FULL else "full training set", fontsize=9)
        ax.set_xlabel("latency per text, batch 1 (ms, log)", fontsize=8)
    axes[0][0].set_ylabel("test accuracy (%), mean ± sd over seeds", fontsize=8)
    handles = [
        plt.Line2D([], [], linestyle="--", color=style(name)["color"], label=f"{name} (untimed: dashed)")
        if name in untimed
        else plt.Line2D([], [], linestyle="", label=name, **style(name))
        for name in names
    ]
    handles.append(plt.Line2D([], [], color="black", alpha=0.6, label="Pareto front"))
    fig.legend(handles=handles, loc="center right", fontsize=7, frameon=False)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, 0, 1 - 2.4 / fig.get_figwidth(), 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    found = {"python": platform.python_version()}
    for name in ("edgecut", "torch", "transformers", "onnxruntime", "scikit-learn", "fasttext-numpy2-wheel"):
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            continue
    return found


def run_one(kind: str, layers: str, seed: int, size: str, args, cell: Path) -> dict | None:
    """One run's rows (measured now, or read from --out where an earlier call finished it); None when it cannot
    run (its teacher is missing, its export or package failed: a line on stderr says why)."""
    cap = args.full_cap if size == FULL else int(size)
    run = Run(kind, layers if kind in ("plain", "from-full") else "full", seed)
    name = run.name if kind not in PEERS else f"{kind}-s{seed}"
    done = cell / f"{name}.rows.json"
    if done.exists():
        return json.loads(done.read_text())
    if args.cached_only:
        return None
    spec = DataSpec(source=args.data, seed=seed, test_size=args.test_size, per_class_cap=cap, demonstrations=False)
    dataset = load_dataset(spec)
    print(f"{args.curve} {size}/class: {name} …", file=sys.stderr, flush=True)
    try:
        if kind == "tfidf":
            rows = [baseline_row(tfidf_baseline(dataset, seed), TFIDF_LABEL)]
        elif kind == "fasttext":
            rows = [baseline_row(baseline_in_a_process("fasttext", spec, pythonpath=ROOT), FASTTEXT_LABEL)]
        else:
            settings = settings_for(run, args, cell)
            if settings.teacher is not None and not is_artifact(settings.teacher):
                print(f"SKIP {name}: no teacher at {settings.teacher}", file=sys.stderr, flush=True)
                return None
            directory = cell / run.name
            if not is_artifact(directory):
                batch, epochs = (None, None) if size == FULL else schedule_for(len(dataset.train))
                settings = replace(settings, per_class_cap=cap, epochs=epochs, batch_size=batch)
                export(replace(settings, baseline="none", force=True))
            rows = measure_artifact(directory, label_of(run), seed, dataset, with_int8=False, timed=not args.no_timing)
            if kind != "full" and not args.keep_artifacts:
                shutil.rmtree(directory)
    except (EdgecutError, BaselineUnavailable) as e:
        print(f"error: {name} at {size}/class: {e}", file=sys.stderr, flush=True)
        return None
    if args.no_timing:
        rows = [replace(r, note=untimed_note()) for r in rows]
    record = {"size": size, "kind": kind, "seed": seed, "train_rows": len(dataset.train), "test_size": args.test_size}
    record["rows"] = [asdict(r) for r in rows]
    done.write_text(json.dumps(record, indent=1))
    return record


def write_results(runs: list[dict], args, stem: Path, missing: list[str]) -> dict:
    """The JSON record, the markdown and the plot, from every run so far."""
    table = curve_table(runs)
    answer = size_answer(table) if args.curve == "size" else depth_answer(table, args.within)
    title = f"{Path(args.model).name} on {args.data}: the {args.curve} curve (seeds {args.seeds})"
    if args.lr_grid is not None:
        title += f", --lr auto over {', '.join(f'x{f:g}' for f in args.lr_grid)} the family's rate"
    md = [f"### {title}", "", f"**Answer:** {answer['text']}.", "", grid_markdown(table)]
    for size in sorted({r["size"] for r in table}, key=size_key):
        md.append(markdown([r for r in table if r["size"] == size], f"{size} training rows per class"))
    if missing:
        md.append("Not measured: " + ", ".join(missing) + ".\n")
    record = {
        "title": title,
        "curve": args.curve,
        "data": args.data,
        "answer": answer,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"processor": platform.processor() or platform.machine(), "cores": os.cpu_count()},
        "versions": versions(),
        "note": args.note,
        "settings": json.loads(json.dumps(vars(args), default=str)),
        "missing": missing,
        "table": table,
        "runs": runs,
    }
    stem.parent.mkdir(parents=True, exist_ok=True)
    stem.with_suffix(".json").write_text(json.dumps(record, indent=1))
    stem.with_suffix(".md").write_text("\n".join(md))
    plot(table, stem.with_suffix(".png"), title)
    return record


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--curve", choices=tuple(DEFAULTS), required=True)
    p.add_argument("--data", default="rotten-tomatoes")
    p.add_argument("--model", default="smollm2-135m")
    p.add_argument("--layers", default=None, help="N of the cuts (default: size 1,2; depth 1,2,4,8)")
    p.add_argument("--per-class", default=None, help="training rows per class, or full (default: size 16,...,full)")
    p.add_argument("--seeds", default="0,42,421")
    p.add_argument("--kinds", default=None, help="rows to run: any of " + ",".join(KINDS) + ", or none")
    p.add_argument("--lr-auto", action="store_true", help="the exports pick their learning rate on validation too")
    p.add_argument(
        "--lr-grid",
        default=None,
        help="--lr auto's factors (edgecut's --lr-grid) for a study of the grid: the results go to their own "
        "file, curve-<curve>-<data>-grid-<factors> (0.2 written 0p2)",
    )
    p.add_argument("--full-cap", type=int, default=RECIPES["cpu"].per_class_cap, help="rows per class of `full`")
    p.add_argument("--test-size", type=int, default=1000)
    p.add_argument("--time-budget", type=float, default=None)
    p.add_argument("--within", type=float, default=WITHIN_POINTS, help="the depth curve's points from the full model")
    p.add_argument("--teacher-target", default="cpu", help="target of the full-depth export (cuda-fp32 on a GPU)")
    p.add_argument("--no-timing", action="store_true", help="accuracy and size only (a GPU machine)")
    p.add_argument(
        "--cached-only",
        action="store_true",
        help="write the results of the runs finished in --out and train nothing (the rest are listed as missing)",
    )
    p.add_argument("--keep-artifacts", action="store_true", help="keep every export (default: the teachers only)")
    p.add_argument(
        "--merge-from",
        type=Path,
        nargs="*",
        default=[],
        help="curve JSON files of other machines, or a peers.py JSON (its full-set rows: full, cuts, tuned peers); "
        "a later file replaces an earlier one's runs of the same row and seed",
    )
    p.add_argument("--note", default="", help="what a reader of the numbers must know (a shared, loaded machine)")
    p.add_argument("--out", type=Path, default=Path("curves-out"))
    p.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "results")
    args = p.parse_args()
    layers, sizes, kinds = DEFAULTS[args.curve]
    args.layers, args.per_class, args.kinds = args.layers or layers, args.per_class or sizes, args.kinds or kinds
    args.pooling, args.alpha, args.temperature, args.unlabeled = "auto", 0.5, 2.0, None  # peers.settings_for's
    chosen = {k.strip() for k in args.kinds.split(",")} - {"none"}  # none: only the --merge-from runs
    if not chosen <= set(KINDS):
        p.error(f"--kinds: unknown {', '.join(sorted(chosen - set(KINDS)))}; choose from {', '.join(KINDS)}")
    if args.lr_grid is not None:
        if not args.lr_auto:
            p.error("--lr-grid is the grid of --lr-auto: add --lr-auto")
        try:
            args.lr_grid = parse_lr_grid(args.lr_grid)
        except EdgecutError as e:
            p.error(str(e))
    sizes = [s.strip() for s in args.per_class.split(",")]
    if any(s != FULL and not (s.isdigit() and int(s) > 0) for s in sizes):
        p.error(f"--per-class {args.per_class}: give whole numbers of rows per class, or full")
    merged = []
    for other in args.merge_from:
        try:
            written = json.loads(other.read_text())
            if "curve" in written:
                joined = written["runs"]
            else:  # the size curve compares the plain cuts of --layers only
                size = args.curve == "size"
                depths = [n.strip() for n in args.layers.split(",")] if size else None
                joined = runs_from_peers(written, depths, distilled=not size)
            joined = with_test_size(joined, (written.get("settings") or {}).get("test_size"), "curve" not in written)
            merged = drop_remeasured(merged, joined) + joined
        except (OSError, ValueError, KeyError, TypeError) as e:
            p.error(f"--merge-from {other}: not a curves.py results file ({type(e).__name__}: {e})")
    seeds = [int(s) for s in args.seeds.split(",")]

    @functools.cache
    def test_rows(test_size: int) -> int:
        spec = DataSpec(source=args.data, seed=seeds[0], test_size=test_size, demonstrations=False)
        return len(load_dataset(spec).test)

    try:
        clash = other_split(merged, sizes, chosen, args.test_size, test_rows)
    except EdgecutError as e:  # --data cannot be read: the same message the runs would give
        p.error(str(e))
    if clash:
        p.error(clash)
    depths = [n.strip() for n in args.layers.split(",")]
    plan = [
        (kind, n) for kind in KINDS if kind in chosen for n in (depths if kind in ("plain", "from-full") else ["-"])
    ]
    # a dot would read as the file's suffix: 0.2 is written 0p2
    grid = "" if args.lr_grid is None else "-grid-" + "-".join(f"{f:g}".replace(".", "p") for f in args.lr_grid)
    stem = args.results / f"curve-{args.curve}-{Path(args.data).stem}{grid}"
    runs: list[dict] = []
    missing: list[str] = []
    todo = [(kind, n, seed, size) for kind, n in plan for seed in seeds for size in sorted(sizes, key=size_key)]
    # The peers first (seconds a cell), then one seed of every size before the next seed (a partial curve has
    # every size); within a seed and size, KINDS' order (a teacher before its students).
    todo.sort(key=lambda t: (t[0] not in PEERS, seeds.index(t[2]), size_key(t[3])))
    started = time.perf_counter()
    for kind, n, seed, size in todo:
        cell = args.out / f"{Path(args.data).stem}{grid}" / size  # another grid's runs are other runs
        cell.mkdir(parents=True, exist_ok=True)
        record = run_one(kind, n, seed, size, args, cell)
        label = f"{kind}{'' if n == '-' else f' N={n}'} seed {seed} at {size}/class"
        if record is None:
            missing.append(label)
            continue
        merged = drop_remeasured(merged, [record])
        runs.append(record)
        write_results(merged + runs, args, stem, missing)
    record = write_results(merged + runs, args, stem, missing)
    print(stem.with_suffix(".md").read_text())
    print(f"{len(runs)} runs in {time.perf_counter() - started:.0f} s; answer: {record['answer']['text']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
