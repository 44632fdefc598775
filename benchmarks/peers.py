"""edgecut against what a user would pick instead, on the same splits (the peers table and plot).

Rows, each at every seed (mean ± sd over seeds):
- edgecut N in --layers: plain; distilled from the full-depth export of the same seed; distilled from the
  all-MiniLM-L6-v2 export of the same seed; each as the fp32 graph and as the int8 graph `cpu-int8` ships;
- the full-depth model (the teacher, fp32 only: its int8 search calibrates 30 layers, which costs more time
  and memory than 2 CPU cores can spare, and the row is the reference, not a pick) and all-MiniLM-L6-v2
  fine-tuned through edgecut (cls setting);
- fastText supervised (word bigrams), model2vec distilled from the installed all-MiniLM-L6-v2 (run in its
  own environment with --model2vec-python), TF-IDF + logistic regression: all on the same training rows.

One tuning rule for every row: each picks its few hyper-parameters on the validation split from a small stated
grid, and the table's last column says which rule chose what. TF-IDF: word 1-2- or char 1-3-grams x C; fastText:
lr x epochs; model2vec: lr in {3e-4, 1e-3, 3e-3}, epochs by early stopping on validation (all three in
edgecut/sweeps/baselines.py); the neural rows: the epoch with the best validation accuracy (the export
keeps it), at the learning rate of their family's rule (a decoder cut the cpu recipe's, an encoder such as
MiniLM an encoder's, edgecut/model/finetune.py), or with --lr-auto at the best of the export's 3-point grid around it.

Columns: test accuracy, end-to-end latency per text at batch 1 (tokenize + run, p50), throughput at batch 32
(texts/s, tokenizing included), artifact MB, training seconds (a student's own; its teacher's are in the
teacher's row). Every export is an ordinary `edgecut.pipeline.export`; runs are kept in --out and a rerun
skips the finished ones, so the script resumes. Teachers train before the cuts of their seed.

    .venv/bin/python benchmarks/peers.py --data rotten-tomatoes --seeds 0,42,421
    .venv/bin/python benchmarks/peers.py --data bbc-news --seeds 0,42,421 --model2vec-python .venv-model2vec/bin/python

`bash scripts/model2vec_env.sh` makes the model2vec environment. A 30-layer teacher costs hours per seed on
2 cores, so `--kinds` runs only some rows and `--merge` folds them into the results already written (a run of
the same row and seed is replaced), one seed at a time:

    .venv/bin/python benchmarks/peers.py --data rotten-tomatoes --seeds 42 --kinds full,from-full --merge

`--kinds baselines` runs TF-IDF, fastText and model2vec; `--kinds model2vec` runs model2vec alone.

Writes benchmarks/results/peers-<data>.json (every run and the summary), .md (the table) and .png
(accuracy against batch-1 latency with each row's sd and the Pareto front, point size = artifact MB; the
manual shows it; `--replot` draws it again from the JSON). Time it on a quiet machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from edgecut.artifacts.manifest import is_artifact, read_manifest
from edgecut.errors import EdgecutError
from edgecut.model.data import DataSpec, load_dataset
from edgecut.model.load import resolve_alias
from edgecut.pipeline import ExportSettings, export
from edgecut.runtime import ArtifactClassifier, create_session, pad_batch
from edgecut.sweeps.baselines import BaselineResult, BaselineUnavailable, baseline_in_a_process, tfidf_baseline
from edgecut.targets import load_target

ROOT = Path(__file__).resolve().parent.parent
KINDS = ("full", "minilm", "plain", "from-full", "from-minilm", "baselines", "model2vec")
MINILM = "all-minilm-l6-v2"
TFIDF_LABEL = "TF-IDF + logistic regression"
FASTTEXT_LABEL = "fastText (bigrams)"
MODEL2VEC_LABEL = "model2vec (from MiniLM)"
LATENCY_TEXTS = 200  # batch-1 calls, one text each, cycling through the test texts
THROUGHPUT_TEXTS = 640  # texts classified at batch 32 for the throughput column


@dataclass(frozen=True)
class Run:
    """One export: `kind` is full | minilm | plain | from-full | from-minilm."""

    kind: str
    layers: str
    seed: int

    @property
    def name(self) -> str:
        return (
            f"{self.kind}-n{self.layers}-s{self.seed}"
            if self.kind not in ("full", "minilm")
            else f"{self.kind}-s{self.seed}"
        )


@dataclass(frozen=True)
class Row:
    name: str  # the table's row label, e.g. "edgecut N=1 from full, int8"
    seed: int
    accuracy: float
    p50_ms: float
    texts_per_s: float
    mb: float
    train_seconds: float | None
    detail: str = ""  # the int8 rows: which candidate the int8 search shipped
    note: str = ""  # `--no-timing`: which machine trained and measured the run
    tuning: str = ""  # which rule chose the row's hyper-parameters, and what it chose (e.g. "C=3, word 1-2-grams")


def plan(layers: list[str], seeds: list[int], teachers: set[str]) -> list[Run]:
    """Per seed: the teachers first (a student needs its teacher's artifact), then every cut. The full-depth
    model runs only when it teaches (`--teachers full`): on 2 CPU cores it costs hours per seed."""
    runs = []
    for seed in seeds:
        runs += [Run(t, "full", seed) for t in ("full", "minilm") if t in teachers or t == "minilm"]
        for n in layers:
            runs.append(Run("plain", n, seed))
            runs += [Run(f"from-{t}", n, seed) for t in ("full", "minilm") if t in teachers]
    return runs


def label_of(run: Run) -> str:
    """The table's row label of an export."""
    return {
        "full": "full-depth (teacher)",
        "minilm": "all-MiniLM-L6-v2 (cls)",
        "plain": f"edgecut N={run.layers}",
        "from-full": f"edgecut N={run.layers} from full",
        "from-minilm": f"edgecut N={run.layers} from MiniLM",
    }[run.kind]


def settings_for(run: Run, args, out: Path) -> ExportSettings:
    common = dict(
        data=args.data,
        seed=run.seed,
        test_size=args.test_size,
        output=out / run.name,
        target=args.teacher_target if run.kind == "full" else "cpu",
        time_budget=args.time_budget,
        lr="auto" if getattr(args, "lr_auto", False) else None,  # None: the family's rule (never the cut's rate)
        lr_grid=getattr(args, "lr_grid", None),  # curves.py's study of --lr auto's grid
    )
    if run.kind == "minilm":
        return ExportSettings(model=MINILM, layers="full", setting="cls", **common)
    distill = {}
    if run.kind.startswith("from-"):
        teacher = out / Run(run.kind.removeprefix("from-"), "full", run.seed).name
        distill = dict(
            teacher=teacher,
            distill_alpha=args.alpha,
            distill_temperature=args.temperature,
            unlabeled=args.unlabeled,
        )
    return ExportSettings(model=args.model, layers=run.layers, pooling=args.pooling, **common, **distill)


def tuning_of_manifest(manifest) -> str:
    """What chose an export's learning rate and epoch, from its manifest: "lr 5e-05 (encoder rule), epoch 2/2"."""
    recipe, training = manifest["recipe"], manifest["training"]
    search = training.get("learning_rate") or {}
    rule = recipe.get("learning_rate_rule", "recipe")
    if rule == "auto" and search.get("grid"):
        grid = ", ".join(f"{g['learning_rate']:g}" for g in search["grid"])
        rate = f"lr {search['chosen']:g} of {{{grid}}} (validation)"
    else:
        rate = f"lr {recipe['learning_rate']:g} ({rule} rule)"
    scores = training.get("validation_accuracy") or []
    if not scores:
        return rate
    best = max(range(len(scores)), key=lambda i: scores[i])
    return f"{rate}, epoch {best + 1}/{len(scores)} (validation)"


def training_seconds_of_manifest(manifest) -> float:
    """An export's training time as the table compares it: with `--lr auto`, every run of the grid (what tuning
    cost, as a tuned baseline's time includes its grid), not only the winner's."""
    search = manifest["training"].get("learning_rate") or {}
    return search.get("seconds", manifest["training"]["seconds"])


def tuning_of_baseline(result: BaselineResult) -> str:
    """The grid point a tuned baseline's validation chose: "C=3, word 1-2-grams" or "lr 0.5 x 25 epochs"."""
    if not result.tuned:
        return "untuned"
    chosen = result.tuned["chosen"]
    if "C" in chosen:
        return f"C={chosen['C']:g}, {chosen['features']} (validation)"
    return f"lr {chosen['lr']:g} x {chosen['epochs']} epochs (validation)"


def _classify(clf: ArtifactClassifier, session, texts: list[str], batch: int) -> np.ndarray:
    """Predicted class per text, tokenizing with the artifact's own tokenizer and prompt."""
    out = []
    for start in range(0, len(texts), batch):
        ids = [clf.encode(t)[0] for t in texts[start : start + batch]]
        out.append(session.run(["logits"], pad_batch(ids, clf.pad_id))[0].argmax(-1))
    return np.concatenate(out)


def measure_graph(
    clf: ArtifactClassifier, session, texts: list[str], truth: np.ndarray, timed: bool = True
) -> tuple[float, float, float]:
    """(accuracy, p50 ms per text at batch 1 end to end, texts/s at batch 32 end to end); the timings are
    NaN when not `timed`."""
    accuracy = float((_classify(clf, session, texts, 32) == truth).mean())
    if not timed:
        return accuracy, float("nan"), float("nan")
    _classify(clf, session, texts[:8], 1)  # warm-up
    times = []
    for i in range(LATENCY_TEXTS):
        start = time.perf_counter()
        _classify(clf, session, [texts[i % len(texts)]], 1)
        times.append((time.perf_counter() - start) * 1e3)
    pool = [texts[i % len(texts)] for i in range(THROUGHPUT_TEXTS)]
    start = time.perf_counter()
    _classify(clf, session, pool, 32)
    return accuracy, float(np.median(times)), THROUGHPUT_TEXTS / (time.perf_counter() - start)


def measure_artifact(directory: Path, label: str, seed: int, dataset, with_int8: bool, timed: bool = True) -> list[Row]:
    """The artifact on its own target (fp32 `cpu` for every row but a `--teacher-target` teacher), and the
    int8 graph `--target cpu-int8` would ship: the int8 search's pick (edgecut/graph/precision.py: calibrated on
    training prompts, chosen on the validation split, as the export does), measured the same way. Where no
    candidate is within the target's budget the export would fail, so there is no int8 row, and a line on
    stderr says so. Not `timed`: accuracy and size only (a machine whose timings would not compare)."""
    from edgecut.errors import QualityError
    from edgecut.graph.precision import choose_int8
    from edgecut.graph.quantize import graph_bytes

    manifest = read_manifest(directory)
    clf = ArtifactClassifier(directory)
    texts = [ex.text for ex in dataset.test]
    truth = np.array([ex.label for ex in dataset.test])
    train_seconds = training_seconds_of_manifest(manifest)
    rows = []
    tuning = tuning_of_manifest(manifest)
    acc, p50, tps = measure_graph(clf, clf.session, texts, truth, timed)
    size = graph_bytes(manifest.model_path) / 1e6
    rows.append(Row(label, seed, acc, p50, tps, size, train_seconds, tuning=tuning))
    if with_int8:
        target = load_target("cpu-int8")
        calibration = [
            pad_batch([clf.encode(ex.text)[0]], clf.pad_id) for ex in dataset.train[: target.int8.calibration_size]
        ]
        validation = [clf.encode(ex.text)[0] for ex in dataset.validation]
        with tempfile.TemporaryDirectory(prefix="edgecut-peers-") as tmp:
            try:
                choice = choose_int8(
                    manifest.model_path,
                    Path(tmp),
                    target,
                    calibration,
                    validation,
                    [ex.label for ex in dataset.validation],
                    clf.pad_id,
                )
            except QualityError as e:
                print(f"  {label} seed {seed}: no int8 row: {e}", file=sys.stderr, flush=True)
                return rows
            session = create_session(choice.path, load_target("cpu"))
            acc, p50, tps = measure_graph(clf, session, texts, truth, timed)
            size = graph_bytes(choice.path) / 1e6
            rows.append(
                Row(f"{label}, int8", seed, acc, p50, tps, size, train_seconds, choice.candidate, tuning=tuning)
            )
    return rows


UNTIMED = "untimed, on "


def untimed_note() -> str:
    """Which machine trained and measured an untimed row (its training seconds do not compare either)."""
    import torch

    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else platform.node()
    return f"{UNTIMED}{device}"


def row_from_record(record: dict) -> Row:
    """A run of a results file. Files written before `note` existed carried it at the end of `detail`, so a
    table that merged seeds repeated it once per int8 candidate."""
    record = dict(record)
    if "note" not in record and UNTIMED in record.get("detail", ""):
        candidate, _, device = record["detail"].partition(UNTIMED)
        record["detail"], record["note"] = candidate.rstrip(", "), UNTIMED + device
    return Row(**record)


def baseline_row(result: BaselineResult, label: str) -> Row:
    return Row(
        label,
        result.seed,
        result.accuracy,
        result.p50_ms,
        result.texts_per_s or float("nan"),
        result.artifact_mb or 0.0,
        result.train_seconds,
        tuning=tuning_of_baseline(result),
    )


def merge_runs(earlier: list[dict], new: list[Row]) -> list[Row]:
    """The runs of an earlier results file with these new ones: a new run takes the place of the earlier run of
    its row and seed, so the table keeps its order; runs of rows the file did not have come last."""
    fresh = {(r.name, r.seed): r for r in new}
    merged = [fresh.pop((r["name"], r["seed"]), None) or row_from_record(r) for r in earlier]
    return merged + [r for r in new if (r.name, r.seed) in fresh]


def _median_of_timed(values: list[float]) -> float:
    """The median of the timed values; NaN where no run was timed (`--no-timing`)."""
    timed = [v for v in values if not np.isnan(v)]
    return statistics.median(timed) if timed else float("nan")


def _cell(value: float, spec: str) -> str:
    return "–" if np.isnan(value) else format(value, spec)


def _tunings(group: list[Row]) -> str:
    """Each seed's choice, once, with how many seeds made it: "C=3, word 1-2-grams (x2); C=30, ... (x1)"."""
    counts = Counter(r.tuning for r in group if r.tuning)
    if len(counts) == 1 and sum(counts.values()) == len(group):
        return next(iter(counts))
    return "; ".join(f"{t} (x{n})" for t, n in sorted(counts.items(), key=lambda c: (-c[1], c[0])))


def summarize(rows: list[Row]) -> list[dict]:
    """Mean ± sd of accuracy over seeds; medians of the timings and sizes; what tuning chose per seed."""
    groups: dict[str, list[Row]] = {}
    for r in rows:
        groups.setdefault(r.name, []).append(r)
    table = []
    for name, group in groups.items():
        accs = [r.accuracy for r in group]
        train = [r.train_seconds for r in group if r.train_seconds is not None]
        table.append(
            {
                "name": name,
                "seeds": len(group),
                "accuracy_mean": statistics.fmean(accs),
                "accuracy_sd": statistics.stdev(accs) if len(accs) > 1 else 0.0,
                "p50_ms": _median_of_timed([r.p50_ms for r in group]),
                "texts_per_s": _median_of_timed([r.texts_per_s for r in group]),
                "mb": statistics.median(r.mb for r in group),
                "train_seconds": statistics.median(train) if train else None,
                "details": sorted({r.detail for r in group if r.detail}) + sorted({r.note for r in group if r.note}),
                "tuning": _tunings(group),
            }
        )
    return table


def markdown(table: list[dict], title: str) -> str:
    lines = [
        f"### {title}",
        "",
        "| model | seeds | accuracy | latency b1 (ms) | texts/s b32 | MB | training (s) | tuned (rule: choice) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in table:
        train = "–" if r["train_seconds"] is None else f"{r['train_seconds']:.0f}"
        name = f"{r['name']} ({', '.join(r['details'])})" if r.get("details") else r["name"]
        lines.append(
            f"| {name} | {r['seeds']} | {r['accuracy_mean']:.1%} ± {r['accuracy_sd'] * 100:.1f} | "
            f"{_cell(r['p50_ms'], '.2f')} | {_cell(r['texts_per_s'], '.0f')} | {r['mb']:.1f} | {train} | "
            f"{r.get('tuning') or 'not recorded'} |"
        )
    return "\n".join(lines) + "\n"


def plot(table: list[dict], path: Path, title: str) -> list[str]:
    """Accuracy against latency, one numbered point a row with its sd over seeds as an error bar, and the
    accuracy/latency Pareto front (the rule `edgecut sweep` recommends from) as a step line; returns the key's
    lines. The manual shows this file as it is."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from edgecut.sweeps.sweep_report import Point, pareto_front

    fig, ax = plt.subplots(figsize=(10, 5.5))
    ax.set_xscale("log")
    # Points are numbered and the key names them: rows of a task crowd together (N=1 and its int8, the
    # MiniLM rows), and names printed beside the points ran over each other.
    # An untimed row (measured on another machine) has no place on the latency axis, but its accuracy is
    # still the reference a user reads the others against (the teacher's, above all): a dashed line.
    timed = []
    for number, r in enumerate(table, 1):
        x, y, colour = r["p50_ms"], r["accuracy_mean"] * 100, f"C{(number - 1) % 10}"
        if x is None or np.isnan(x):
            line = ax.axhline(y, linestyle="--", linewidth=1, alpha=0.7, color=colour)
            line.set_label(f"{number}  {r['name']} ({r['mb']:.0f} MB, untimed: dashed at its accuracy)")
            where = {"xycoords": ("axes fraction", "data"), "xytext": (3, 0), "textcoords": "offset points"}
            ax.annotate(str(number), (1.0, y), va="center", fontsize=7, **where)
            continue
        sd = r.get("accuracy_sd", 0.0) * 100
        timed.append(Point(str(number), y, sd, x, ""))
        ax.errorbar(x, y, yerr=sd, linestyle="", capsize=2, color=colour, alpha=0.5)
        ax.scatter(x, y, s=20 + 4 * r["mb"], alpha=0.6, color=colour, label=f"{number}  {r['name']} ({r['mb']:.0f} MB)")
        ax.annotate(
            str(number), (x, y), xytext=(0, 0), textcoords="offset points", ha="center", va="center", fontsize=7
        )
    front = pareto_front(timed)
    if front:
        xs, ys = [p.p50_ms for p in front], [p.accuracy_mean for p in front]
        ax.step(xs, ys, where="post", color="black", linewidth=1, alpha=0.6, label="Pareto front")
    ax.set_xlabel("latency per text at batch 1, tokenizing included (ms, log)")
    ax.set_ylabel("test accuracy (%), mean ± sd over seeds")
    ax.set_title(f"{title}\n(numbers: rows of the table; bars: sd over seeds; point size: artifact MB)", fontsize=10)
    key = ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=7, frameon=False)
    for handle in key.legend_handles:
        if hasattr(handle, "set_sizes"):  # the points; an untimed row's handle is a line
            handle.set_sizes([30])
    fig.tight_layout()
    fig.savefig(path, dpi=120, metadata={"Software": None})  # no version stamp: the same table, the same file
    plt.close(fig)
    return [text.get_text() for text in key.get_texts()]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default="rotten-tomatoes")
    p.add_argument("--model", default="smollm2-135m")
    p.add_argument("--layers", default="1,2")
    p.add_argument("--seeds", default="0,42,421")
    p.add_argument("--teachers", default="full,minilm", help="which distilled rows: full, minilm, full,minilm or none")
    p.add_argument("--alpha", type=float, default=0.5, help="--distill-alpha of the distilled rows")
    p.add_argument("--temperature", type=float, default=2.0, help="--distill-temperature of the distilled rows")
    p.add_argument("--unlabeled", type=Path, default=None, help="--unlabeled for the distilled rows")
    p.add_argument("--pooling", default="auto", help="--pooling of the cuts (auto: the export's default, mean)")
    p.add_argument("--test-size", type=int, default=1000)
    p.add_argument("--per-class-cap", type=int, default=4000, help="the cpu recipe's, for the baselines' rows")
    p.add_argument("--time-budget", type=float, default=None)
    p.add_argument(
        "--lr-auto",
        action="store_true",
        help="the neural rows pick their learning rate on validation too (--lr auto: 3 trainings per export)",
    )
    p.add_argument("--model2vec-python", default=None, help="python of an environment with model2vec[distill,train]")
    p.add_argument("--no-int8", action="store_true", help="only the fp32 graphs")
    p.add_argument(
        "--teacher-target",
        default="cpu",
        help="target of the full-depth teacher's export (cuda-fp32 on a GPU machine: it then labels on the GPU)",
    )
    p.add_argument(
        "--no-timing",
        action="store_true",
        help="accuracy and size only, for a machine whose timings would not compare (a lent GPU machine)",
    )
    p.add_argument(
        "--baselines-only",
        action="store_true",
        help="only TF-IDF, fastText and model2vec (minutes), into peers-<data>-baselines.*",
    )
    p.add_argument(
        "--kinds",
        default=",".join(KINDS),
        help="which rows to run: any of " + ",".join(KINDS) + " (a student's teacher must exist in --out), or none",
    )
    p.add_argument(
        "--merge",
        action="store_true",
        help="fold these runs into the results already written (a run of the same row and seed is replaced), "
        "so the rows of a long study can land one seed at a time",
    )
    p.add_argument(
        "--merge-from",
        type=Path,
        nargs="+",
        default=[],
        help="peers JSON files written by other calls (another machine): their runs join this call's",
    )
    p.add_argument("--out", type=Path, default=Path("peers-out"))
    p.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "results")
    p.add_argument("--replot", action="store_true", help="draw the .png again from the results JSON; run nothing")
    args = p.parse_args()
    kinds = {k.strip() for k in args.kinds.split(",")} - {"none"}
    if not kinds <= set(KINDS):
        p.error(f"--kinds: unknown {', '.join(sorted(kinds - set(KINDS)))}; choose from {', '.join(KINDS)}")
    stem = args.results / f"peers-{Path(args.data).stem}{'-baselines' if args.baselines_only else ''}"
    if args.replot:
        try:
            record = json.loads(stem.with_suffix(".json").read_text())
            plot(record["table"], stem.with_suffix(".png"), record["title"])
        except (OSError, ValueError, KeyError) as e:
            p.error(f"--replot: {stem}.json is not a peers.py results file ({type(e).__name__}: {e})")
        print(f"drew {stem}.png")
        return 0
    if args.merge_from and not args.merge:
        p.error("--merge-from folds runs into the results already written: add --merge")
    elsewhere = []  # the other calls' records, read before anything runs
    for other in args.merge_from:
        try:
            record = json.loads(other.read_text())
            missing = {"runs", "settings", "machine"} - set(record)
        except (OSError, ValueError, TypeError) as e:
            p.error(f"--merge-from {other}: not a peers.py results file ({type(e).__name__}: {e})")
        if missing:
            p.error(f"--merge-from {other}: not a peers.py results file (no {', '.join(sorted(missing))})")
        elsewhere.append(record)
    if kinds != set(KINDS) and not args.merge and stem.with_suffix(".json").exists():
        p.error(f"--kinds runs only some rows: add --merge to fold them into {stem}.json, or give another --results")

    seeds = [int(s) for s in args.seeds.split(",")]
    layers = [n.strip() for n in args.layers.split(",")]
    out = args.out / Path(args.data).stem
    out.mkdir(parents=True, exist_ok=True)
    rows: list[Row] = []
    runs = [] if args.baselines_only else plan(layers, seeds, set(args.teachers.split(",")))
    for run in [r for r in runs if r.kind in kinds]:
        directory = out / run.name
        if not is_artifact(directory):
            print(f"export {run.name} …", file=sys.stderr, flush=True)
            try:
                export(settings_for(run, args, out))
            except EdgecutError as e:
                print(f"error: {run.name}: {e}", file=sys.stderr)
                return 2
        label = label_of(run)
        spec = DataSpec(source=args.data, seed=run.seed, test_size=args.test_size, per_class_cap=args.per_class_cap)
        dataset = load_dataset(spec)
        rows += measure_artifact(
            directory,
            label,
            run.seed,
            dataset,
            with_int8=not args.no_int8 and run.kind != "full",
            timed=not args.no_timing,
        )
    if args.no_timing:  # the training seconds are this machine's too: say so beside every row
        note = untimed_note()
        rows = [replace(r, note=note) for r in rows]

    skipped: set[str] = set()
    for seed in seeds if kinds & {"baselines", "model2vec"} else []:
        spec = DataSpec(
            source=args.data,
            seed=seed,
            test_size=args.test_size,
            per_class_cap=args.per_class_cap,
            demonstrations=False,
        )
        if "baselines" in kinds:  # `model2vec` alone: only the row below
            rows.append(baseline_row(tfidf_baseline(load_dataset(spec), seed), TFIDF_LABEL))
            try:  # each in a fresh process (edgecut.sweeps.baselines.baseline_in_a_process says why)
                fasttext = baseline_in_a_process("fasttext", spec, pythonpath=ROOT)
                rows.append(baseline_row(fasttext, FASTTEXT_LABEL))
                if fasttext.note:
                    print(f"note: fastText, seed {seed}: {fasttext.note}", flush=True)
            except BaselineUnavailable as e:
                skipped.add(f"SKIP: {e}")
        try:
            if not args.model2vec_python:
                raise BaselineUnavailable(
                    "model2vec: give --model2vec-python (bash scripts/model2vec_env.sh makes one)"
                )
            model2vec = baseline_in_a_process(
                "model2vec", spec, args.model2vec_python, ROOT, sentence_model=resolve_alias(MINILM)
            )
            rows.append(baseline_row(model2vec, MODEL2VEC_LABEL))
        except BaselineUnavailable as e:
            skipped.add(f"SKIP: {e}")
    for line in sorted(skipped):
        print(line, flush=True)

    args.results.mkdir(parents=True, exist_ok=True)
    history = []  # the calls whose runs --merge kept, oldest first
    if args.merge and stem.with_suffix(".json").exists():
        earlier = json.loads(stem.with_suffix(".json").read_text())
        history = earlier.get("earlier_settings", []) + [earlier["settings"]]
        rows = merge_runs(earlier["runs"], rows)
    for written in elsewhere:
        history.append(written["settings"] | {"machine": written["machine"]})
        rows = merge_runs([asdict(r) for r in rows], [row_from_record(r) for r in written["runs"]])
    if history:
        seeds = sorted({r.seed for r in rows})
    table = summarize(rows)
    title = f"{Path(args.model).name} on {args.data}: edgecut and its peers ({len(seeds)} seeds)"
    md = markdown(table, title)
    print(md)
    record = {
        "title": title,
        "machine": {"processor": platform.processor() or platform.machine(), "cores": os.cpu_count()},
        "settings": json.loads(json.dumps(vars(args), default=str)),
        "table": table,
        "runs": [asdict(r) for r in rows],
    }
    if history:
        record["earlier_settings"] = history
    stem.with_suffix(".json").write_text(json.dumps(record, indent=2))
    stem.with_suffix(".md").write_text(md)
    plot(table, stem.with_suffix(".png"), title)
    return 0


if __name__ == "__main__":
    sys.exit(main())
