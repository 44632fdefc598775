"""`edgecut sweep`: the paper's question for a user's task — the smallest N that is good enough.

One export per (N, seed) into `OUT/runs/n{N}-s{seed}/` (an ordinary artifact, written atomically), so an
interrupted sweep resumes where it stopped: a run whose artifact exists is not run again. A sweep directory
holds one configuration (`sweep-options.json`); running it again with other N or seeds extends it, and the
reports cover every finished run in it. Encoder baselines (all-MiniLM-L6) are exported through the same
pipeline into `OUT/runs/{baseline}-s{seed}/`. After the runs, each artifact's fp32 graph and an int8 copy of
it are timed side by side here, and the results become `sweep.json`, `sweep.md` and `sweep.png`
(`edgecut.sweeps.sweep_report`). `run_sweep` is the loop; each run is `edgecut.pipeline.export`. For grids too large
for one machine, `--ray` runs every cell as a Ray task on a cluster (`edgecut.sweeps.sweep_ray`), or `--shard K/N`
runs every N-th run over a shared directory (job arrays) and `--report` builds the reports from whatever runs
are finished.
"""

from __future__ import annotations

import json
import re
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from edgecut.artifacts.manifest import MANIFEST, read_golden, read_manifest
from edgecut.errors import EdgecutError, ParityError
from edgecut.graph.quantize import graph_bytes
from edgecut.pipeline import ExportSettings, Progress
from edgecut.sweeps.baselines import BASELINES, BaselineResult, baseline_in_a_process, tfidf_baseline
from edgecut.sweeps.sweep_report import (
    BASELINE_NAMES,
    RunResult,
    SweepSummary,
    mixed_learning_rates,
    summarize,
    write_atomic,
    write_reports,
)

FULL = "full"
OPTIONS = "sweep-options.json"
# Baselines exported through the same pipeline (full depth, `cls` setting): name -> model alias.
ENCODER_BASELINES = {"minilm": "all-minilm-l6-v2"}


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


def plan(layers: list[str], seeds: list[int], baselines: Sequence[str] = (), distill: bool = False) -> list[Run]:
    """Every (N, seed), then every encoder baseline at every seed. With `distill`, the full-depth run of each
    seed comes before the cuts it teaches."""
    if distill:
        layers = [FULL, *(n for n in layers if n != FULL)]
    encoders = [Run(FULL, s, b) for b in baselines if b in ENCODER_BASELINES for s in seeds]
    return [Run(n, s) for n in layers for s in seeds] + encoders


def check_options(out: Path, options: dict) -> None:
    """One configuration per sweep directory: resuming or extending it with other options would mix runs.

    Options are only binding once a run has finished: a first attempt that failed on a typo leaves
    nothing to mix, so the corrected command simply takes the directory over.
    """
    path = out / OPTIONS
    if not path.is_file() or not finished_runs(out):
        write_atomic(path, json.dumps(options, indent=1, sort_keys=True))
        return
    # None is an option not given: directories made before options were declared once record every legacy
    # option that way, newer ones only what was typed; both compare alike.
    before = given_options(json.loads(path.read_text(encoding="utf-8")))
    now = given_options(options)
    changed = sorted(k for k in now.keys() | before.keys() if now.get(k) != before.get(k))
    if changed:
        was = ", ".join(f"--{k.replace('_', '-')} {_shown(before.get(k))}" for k in changed)
        raise EdgecutError(
            f"{out} holds a sweep made with {was}: repeat those options to resume or extend it, or use a new --output"
        )


def given_options(recorded: dict[str, Any]) -> dict[str, Any]:
    """A sweep-options.json record without the options it marks as not given (None)."""
    return {k: v for k, v in recorded.items() if v is not None}


def check_pooling(out: Path, pooling: str) -> None:
    """Runs made before `--pooling auto` (mean for decoders) became the default recorded `last`, or nothing:
    extending such a directory with the new default would put last-token and mean-pooled runs in one table.
    """
    for run in finished_runs(out):
        if run.baseline is not None:  # encoders pool their own way
            continue
        try:  # a manifest that does not parse is reported where the run is measured, not here
            recorded = json.loads((run_dir(out, run) / MANIFEST).read_text(encoding="utf-8"))["settings"]
        except (OSError, ValueError, KeyError, TypeError):
            continue
        recorded = recorded.get("pooling", "last") if isinstance(recorded, dict) else "last"
        if recorded != pooling:
            raise EdgecutError(
                f"{out} holds runs made with --pooling {recorded}: add --pooling {recorded} to resume or extend "
                "it, or use a new --output"
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


def measure_run(out: Path, run: Run) -> RunResult:
    """Read one run's manifest and time its fp32 graph and an int8 copy side by side (cached on disk)."""
    cache = run_dir(out, run).with_suffix(".timing.json")
    manifest = read_manifest(run_dir(out, run))
    if cache.is_file():
        timing = json.loads(cache.read_text(encoding="utf-8"))
    else:
        timing = _time_fp32_and_int8(run_dir(out, run), manifest)
        write_atomic(cache, json.dumps(timing, indent=1))
    model = manifest.model_path
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
        learning_rate=manifest["recipe"].get("learning_rate"),
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


def _time_fp32_and_int8(directory: Path, manifest) -> dict:
    from edgecut.graph.precision import build_int8_candidate
    from edgecut.runtime import create_session, measure_latency, pad_batch
    from edgecut.targets import load_target

    seqs = read_golden(manifest).sequences()
    pad, cpu = manifest.pad_token_id, load_target("cpu")
    with tempfile.TemporaryDirectory(prefix="edgecut-sweep-") as tmp:
        # cpu-int8's first candidate (static QDQ), built by the int8 search's own code and calibrated on the
        # golden prompts: the column is for speed and size; which int8 graph an export ships, and its
        # accuracy, is the search's (edgecut/graph/precision.py)
        feeds = [pad_batch([ids], pad) for ids in seqs]
        settings = load_target("cpu-int8").int8
        destination = Path(tmp) / "int8.onnx"
        int8 = build_int8_candidate(settings.candidates[0], manifest.model_path, destination, settings, feeds)
        sessions = {"fp32": create_session(manifest.model_path, cpu), "int8": create_session(int8.path, cpu)}
        p50 = {k: measure_latency(s, seqs, pad, 1, warmup=20, runs=200).p50_ms for k, s in sessions.items()}
    return {"fp32_p50_ms": p50["fp32"], "int8_p50_ms": p50["int8"], "int8_bytes": int8.bytes_after}


@dataclass(frozen=True)
class SweepSettings:
    """A grid of exports: every N in `layers` at every seed, plus encoder baselines, into `output`.

    `base` carries the options every run shares (model, data, recipe, target, ...); each run sets its own
    layers, seed and output. `options` is what binds the directory (`sweep-options.json`).
    """

    layers: tuple[str, ...]
    seeds: tuple[int, ...]
    base: ExportSettings
    options: dict[str, Any]
    output: Path = Path("sweep-out")
    baselines: tuple[str, ...] = ("tfidf",)
    margin: float = 1.0
    shard: tuple[int, int] | None = None  # (K, N): run every N-th run of the grid, starting at the K-th
    report_only: bool = False
    distill: bool = False  # each cut learns from the full-depth run of its seed (--teacher)
    ray: str | None = None  # "local" or a cluster address: run the cells as Ray tasks (edgecut.sweeps.sweep_ray)
    teacher_gpu: bool = False  # on Ray: each full-depth run asks for a GPU

    def __post_init__(self) -> None:
        if self.distill and FULL not in self.layers:
            raise EdgecutError("--distill teaches each cut with the full run of its seed: add full to --layers")
        if self.distill and self.shard is not None:
            raise EdgecutError("--distill needs each seed's full run before its cuts: run it without --shard")
        if self.margin < 0:
            raise EdgecutError(f"--margin {self.margin:g} must be 0 or more (accuracy points)")
        if self.shard is not None and self.report_only:
            raise EdgecutError("--shard runs a part of the grid and --report only reports: give one of them")
        if self.ray is not None and self.shard is not None:
            raise EdgecutError("--ray schedules the whole grid itself: drop --shard (that is for job arrays)")
        if self.teacher_gpu and self.ray is None:
            raise EdgecutError("--teacher-gpu places the full-depth runs on Ray: add --ray local or --ray ADDRESS")


def parse_shard(text: str | None) -> tuple[int, int] | None:
    """`2/8` -> (2, 8): the second of eight shards."""
    if text is None:
        return None
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
    if not match or not 1 <= int(match[1]) <= int(match[2]):
        raise EdgecutError(f"--shard {text!r}: give K/N with 1 ≤ K ≤ N, e.g. 1/4 for the first of four shards")
    return int(match[1]), int(match[2])


def shard_of(runs: list[Run], shard: tuple[int, int] | None) -> list[Run]:
    """Every N-th run, starting at the K-th: shards of one grid never share a run and together cover it."""
    if shard is None:
        return runs
    k, n = shard
    return runs[k - 1 :: n]


@dataclass
class SweepOutcome:
    summary: SweepSummary | None  # None for a shard (reports come from `--report`)
    reports: dict[str, Path] = field(default_factory=dict)
    ran: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)  # runs left out: "name: why"
    bad_input: bool = False  # one of `failed` is a user error (Ray only: a serial sweep stops at one)


# Runs the missing cells of a list elsewhere (edgecut.sweeps.sweep_ray.run_on_ray): (ran, failed, any bad input).
Execute = Callable[[SweepSettings, list[Run], Progress], tuple[list[str], list[str], bool]]


def run_sweep(
    settings: SweepSettings, progress: Progress | None = None, execute: Execute | None = None
) -> SweepOutcome:
    """Export the missing runs (of this shard), then report every finished run of the directory.

    A run whose graph fails parity is left out (in `failed`) and the grid goes on; any other error (bad
    data, bad options) stops a serial sweep at once, as it would stop every run. With `execute` (Ray:
    `edgecut.sweeps.sweep_ray.run_sweep_on_ray` passes it), cells run in parallel, so a cell's bad input is left
    out in `failed` too (and `bad_input` is set).
    """
    progress = progress or Progress()
    out = settings.output
    check_options(out, settings.options)
    check_pooling(out, settings.base.pooling)
    runs = plan(list(settings.layers), list(settings.seeds), settings.baselines, settings.distill)
    outcome = SweepOutcome(summary=None)
    if not settings.report_only:
        mine = shard_of(runs, settings.shard)
        done = sum(is_done(out, r) for r in mine)
        progress.note(f"sweep: {len(mine)} runs ({done} already done) in {out}")
        if settings.ray is not None and execute is None:
            raise EdgecutError(
                "a sweep on Ray runs through edgecut.sweeps.sweep_ray.run_sweep_on_ray (edgecut sweep --ray)"
            )
        if execute is not None:  # e.g. every missing cell a Ray task; each calls run_cell as the loop does
            outcome.ran, outcome.failed, outcome.bad_input = execute(settings, mine, progress)
        else:
            _run_serially(settings, mine, outcome, progress)
        if outcome.failed and not any(not r.baseline for r in finished_runs(out)):
            raise (EdgecutError if outcome.bad_input else ParityError)(f"no run finished; {'; '.join(outcome.failed)}")
        if settings.shard is not None:
            progress.note("shard done: run `edgecut sweep --report` with the same options once every shard is")
            return outcome
    outcome.summary, outcome.reports = report(settings, progress)
    return outcome


def _run_serially(settings: SweepSettings, mine: list[Run], outcome: SweepOutcome, progress: Progress) -> None:
    """The missing runs one after another, in grid order (a student after its teacher)."""
    out = settings.output
    durations: list[float] = []
    for i, run in enumerate(mine):
        if is_done(out, run):
            continue
        left = eta_seconds(durations, sum(not is_done(out, r) for r in mine))
        eta = "estimating time left…" if left is None else f"about {left / 60:.0f} min left"
        what = f"baseline {run.baseline}" if run.baseline else f"N={run.layers}"
        progress.note(f"run {i + 1}/{len(mine)}: {what}, seed {run.seed} — {eta}")
        start = time.monotonic()
        try:
            run_cell(settings, run, progress)
        except ParityError as e:  # this run's numbers, not the sweep's inputs: the other runs still count
            outcome.failed.append(f"{run.name}: {e}")
            progress.note(f"✗ {run.name} left out: {e}")
            continue
        durations.append(time.monotonic() - start)
        outcome.ran.append(run.name)


def run_cell(settings: SweepSettings, run: Run, progress: Progress | None = None) -> None:
    """One cell of the grid: export `run` into its directory, unless it is already there.

    The serial loop and the Ray tasks (`edgecut.sweeps.sweep_ray`) both call this, so a cell is the same export
    wherever it runs; the artifact is renamed into place only when complete.
    """
    from edgecut.pipeline import export

    if not is_done(settings.output, run):
        export(run_settings(settings.base, settings.output, run, settings.distill), progress)


def run_settings(base: ExportSettings, out: Path, run: Run, distill: bool = False) -> ExportSettings:
    """One run's export: the sweep's options with this run's N, seed and directory (and teacher)."""
    changes: dict[str, Any] = {"layers": run.layers, "seed": run.seed, "output": run_dir(out, run), "force": False}
    if distill and not run.baseline and run.layers != FULL:
        changes["teacher"] = run_dir(out, Run(FULL, run.seed))
    if run.baseline:  # the encoder at full depth, plain text into a fresh head (no template)
        changes |= {"model": ENCODER_BASELINES[run.baseline], "setting": "cls", "select": "first", "template": None}
    return replace(base, **changes)


def report(settings: SweepSettings, progress: Progress) -> tuple[SweepSummary, dict[str, Path]]:
    """Time and summarise every finished run of the directory; write sweep.json, sweep.md, sweep.png."""
    out = settings.output
    finished = finished_runs(out)  # failed runs are not among them
    # Baseline runs count only when asked for; layer runs of earlier invocations count too.
    measured = [r for r in finished if not r.baseline or r.baseline in settings.baselines]
    if not any(not r.baseline for r in measured):
        raise ParityError(f"no run of {out} has finished: nothing to report")
    with progress.stage("time fp32 and int8 graphs of every run"):
        results = {run: measure_run(out, run) for run in measured}
    by_depth = {(res.layers, run.seed): res for run, res in results.items() if not run.baseline}
    for line in mixed_learning_rates(list(by_depth.values())):
        progress.warn(line)
    floors = [as_baseline(run, res) for run, res in results.items() if run.baseline]
    fitted = [name for name in settings.baselines if name in BASELINES]  # fitted here, not exported
    if fitted:
        from edgecut.model.data import load_dataset
        from edgecut.model.load import resolve_alias
        from edgecut.sweeps.baselines import BaselineUnavailable

        with progress.stage(f"{', '.join(fitted)} on the same splits"):
            for name in fitted:
                extra = {"sentence_model": resolve_alias(ENCODER_BASELINES["minilm"])} if name == "model2vec" else {}
                try:
                    for seed in sorted({seed for _, seed in by_depth}):
                        spec = replace(settings.base, seed=seed, demos=False).data_spec()
                        if name == "tfidf":
                            floors.append(tfidf_baseline(load_dataset(spec), seed))
                        else:  # this process has exported and timed models: fastText's result moved in one such
                            floors.append(baseline_in_a_process(name, spec, **extra))
                        if floors[-1].note:
                            progress.warn(f"{name} baseline, seed {seed}: {floors[-1].note}")
                except BaselineUnavailable as e:
                    progress.warn(f"SKIP: {name} baseline: {e}")
    base = settings.base
    title = f"{Path(base.model).name} on {Path(base.data).name}: setting {base.setting}, select {base.select}"
    summary = summarize(list(by_depth.values()), settings.margin, {"title": title} | settings.options, floors)
    return summary, write_reports(summary, out)


def eta_seconds(done_seconds: list[float], remaining: int) -> float | None:
    """Time left, from the mean duration of the runs done in this session (None before the first)."""
    if not remaining:
        return 0.0
    return statistics.fmean(done_seconds) * remaining if done_seconds else None
