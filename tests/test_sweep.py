"""`edgecut sweep` on a tiny model: 2 values of N x 1 seed, the reports, resuming, shards, the recommendation."""

import json

import pytest
from conftest import load_script
from typer.testing import CliRunner

from edgecut.cli import app
from edgecut.errors import EdgecutError
from edgecut.sweeps.sweep import parse_layers, parse_shard, shard_of
from edgecut.sweeps.sweep_report import RunResult, summarize

runner = CliRunner()


def _sweep(model_dir, data, out, *extra):
    args = [
        "sweep",
        "--model",
        str(model_dir),
        "--data",
        str(data),
        "--labels",
        "negative,positive",
        "--layers",
        "1,full",
        "--seeds",
        "0",
        "--epochs",
        "2",
        "--lr",
        "3e-3",
        "--batch-size",
        "8",
        "--test-size",
        "40",
        "-o",
        str(out),
        *extra,
    ]
    return runner.invoke(app, args)


# The tests on a real sweep directory train and export two to four tiny models each (about two minutes of the
# suite together): they run with -m slow, which CI runs too. The planning, sharding and report tests stay.
whole_sweep = pytest.mark.slow


@pytest.fixture(scope="module")
def swept(tiny_model_dirs, tiny_csv, tmp_path_factory):
    out = tmp_path_factory.mktemp("sweep") / "s"
    result = _sweep(tiny_model_dirs["llama"], tiny_csv, out)
    assert result.exit_code == 0, result.output
    return out, result.output


@whole_sweep
def test_sweep_writes_table_json_and_plot(swept):
    out, output = swept
    report = json.loads((out / "sweep.json").read_text())
    assert [r["layers"] for r in report["rows"]] == [1, 3]  # "full" is the tiny model's 3 layers
    assert [r["full"] for r in report["rows"]] == [False, True]
    for row in report["rows"]:
        assert row["accuracy_mean"] >= 0.75 and row["seeds"] == 1 and row["accuracy_sd"] == 0  # the toy task
        assert row["fp32_p50_ms"] > 0 and row["int8_p50_ms"] > 0 and row["int8_mb"] < row["artifact_mb"]
    assert report["rows"][0]["params"] < report["rows"][1]["params"]
    best = max(report["rows"], key=lambda r: r["accuracy_mean"])
    within = [r["layers"] for r in report["rows"] if r["accuracy_mean"] >= best["accuracy_mean"] - 0.01]
    assert report["recommended_layers"] == min(within) and report["best_layers"] == best["layers"]
    (tfidf,) = report["baselines"]  # the floor, on the same split
    assert tfidf["name"] == "tfidf" and tfidf["seeds"] == 1 and tfidf["accuracy_mean"] >= 0.9  # the toy task is easy
    assert "TF-IDF + logistic regression (baseline)" in (out / "sweep.md").read_text()
    md = (out / "sweep.md").read_text()
    assert "Of the cuts: **N = " in md and "Recommended, peers included: **" in md and "sweep.png" in md
    assert "pareto.png" in md and (out / "pareto.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert report["recommended"] and set(report["front"]) <= {f"N = {r}" for r in ("1", "3 (full)")} | {
        "TF-IDF + logistic regression"
    }
    assert sum(line.startswith("| ") for line in md.splitlines()) == 4  # header, one row per N, the baseline
    assert "| 3 (full)" in md  # the paper's reference row is named as such
    png = (out / "sweep.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    assert "recommended: " in output and "of the cuts: N =" in output
    for name in ("n1-s0", "nfull-s0"):
        assert (out / "runs" / name / "edgecut.json").is_file()


@whole_sweep
def test_sweep_resumes_without_redoing_finished_runs(swept, tiny_model_dirs, tiny_csv):
    out, _ = swept
    stamps = {p: p.stat().st_mtime_ns for p in (out / "runs").glob("*/edgecut.json")}
    result = _sweep(tiny_model_dirs["llama"], tiny_csv, out)
    assert result.exit_code == 0, result.output
    assert "(2 already done)" in result.output and "run 1/2" not in result.output
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps


@whole_sweep
def test_a_run_failing_parity_is_left_out_and_the_sweep_goes_on(
    swept, tiny_model_dirs, tiny_csv, tmp_path, monkeypatch
):
    """One run's numbers must not stop a long grid: the others finish, the reports cover them, exit 1."""
    import shutil

    from edgecut import pipeline
    from edgecut.errors import ParityError

    real_export = pipeline.export

    def export_failing_at_two(settings, progress=None):
        if settings.layers == 2:
            raise ParityError("ONNX export does not match torch: max |Δlogit| 2.09e-04")
        return real_export(settings, progress)

    monkeypatch.setattr(pipeline, "export", export_failing_at_two)
    nothing = _sweep(tiny_model_dirs["llama"], tiny_csv, tmp_path / "new", "--layers", "2")
    assert nothing.exit_code == 1 and "no run finished; n2-s0: ONNX export" in nothing.output.splitlines()[-1]
    out = tmp_path / "s"
    shutil.copytree(swept[0], out)  # n1-s0 and nfull-s0 are done
    result = _sweep(tiny_model_dirs["llama"], tiny_csv, out, "--layers", "1,2,full")
    assert result.exit_code == 1 and "Traceback" not in result.output
    last = result.output.strip().splitlines()[-1]
    assert last.startswith("error: 1 run(s) left out of the reports (n2-s0: ONNX export") and "retries" in last
    assert [r["layers"] for r in json.loads((out / "sweep.json").read_text())["rows"]] == [1, 3]
    assert not (out / "runs" / "n2-s0").exists()


@whole_sweep
def test_a_sweep_directory_refuses_other_options(swept, tiny_model_dirs, tiny_csv):
    """Resuming with another recipe would mix incomparable runs in one table: refused before any work."""
    out, _ = swept
    result = _sweep(tiny_model_dirs["llama"], tiny_csv, out, "--epochs", "3")
    assert result.exit_code == 2 and "Traceback" not in result.output
    last = result.output.strip().splitlines()[-1]
    assert last.startswith("error:") and "--epochs 2" in last and "--output" in last


def test_options_of_a_sweep_directory_are_compared_key_by_key(tmp_path):
    from edgecut.sweeps.sweep import MANIFEST, OPTIONS, check_options

    check_options(tmp_path, {"epochs": 2.0, "template": None})  # a first attempt that finished no run ...
    check_options(tmp_path, {"epochs": 1.0, "template": None})  # ... is simply taken over
    (tmp_path / "runs" / "n1-s0").mkdir(parents=True)
    (tmp_path / "runs" / "n1-s0" / MANIFEST).write_text("{}")  # from now on the options bind
    assert json.loads((tmp_path / OPTIONS).read_text()) == {"epochs": 1.0, "template": None}
    check_options(tmp_path, {"template": None, "epochs": 1.0})  # the same: no error
    with pytest.raises(EdgecutError, match=r"made with --template \(not given\):"):
        check_options(tmp_path, {"epochs": 1.0, "template": "Q: {text}\nA:{label}"})


def test_a_sweep_made_with_last_token_pooling_is_not_extended_with_the_new_default(tmp_path):
    """Runs made before --pooling auto became the default recorded `last` (or no pooling at all): mixing
    them with mean-pooled runs in one table is refused, naming the option that resumes the directory."""
    from edgecut.sweeps.sweep import MANIFEST, check_pooling

    run = tmp_path / "runs" / "n1-s0"
    run.mkdir(parents=True)
    (run / MANIFEST).write_text(json.dumps({"settings": {"layers": 1}}))  # older than the option
    check_pooling(tmp_path, "last")
    with pytest.raises(EdgecutError, match=r"made with --pooling last: add --pooling last to resume"):
        check_pooling(tmp_path, "auto")
    (run / MANIFEST).write_text(json.dumps({"settings": {"layers": 1, "pooling": "auto"}}))
    check_pooling(tmp_path, "auto")
    with pytest.raises(EdgecutError, match=r"--pooling auto"):
        check_pooling(tmp_path, "last")


@whole_sweep
def test_a_sweep_made_with_last_token_pooling_resumes_with_pooling_last(swept, tiny_model_dirs, tiny_csv, tmp_path):
    """Through the CLI: the directory's runs say `last` (as every run made before the default changed does),
    so the new default is refused in one line, and the option that line names is accepted."""
    import shutil

    out = tmp_path / "old"
    shutil.copytree(swept[0], out)
    for manifest in (out / "runs").glob("*/edgecut.json"):
        record = json.loads(manifest.read_text())
        record["settings"]["pooling"] = "last"
        manifest.write_text(json.dumps(record))
    refused = _sweep(tiny_model_dirs["llama"], tiny_csv, out, "--report")
    assert refused.exit_code == 2 and "Traceback" not in refused.output
    assert refused.output.strip().splitlines()[-1].startswith("error:") and "add --pooling last" in refused.output
    resumed = _sweep(tiny_model_dirs["llama"], tiny_csv, out, "--report", "--pooling", "last")
    assert resumed.exit_code == 0, resumed.output


@whole_sweep
def test_shards_of_a_grid_then_one_report_cover_every_run(swept, tiny_model_dirs, tiny_csv, tmp_path, monkeypatch):
    """Another N added later joins the table and only the missing runs are done (a finished run is not
    rewritten); shards run disjoint parts of the grid over one directory and write no report; `--report`
    builds it from every finished run; `minilm` (a tiny BERT) is an ordinary run."""
    import shutil

    from edgecut.sweeps import sweep

    monkeypatch.setitem(sweep.ENCODER_BASELINES, "minilm", str(tiny_model_dirs["bert"]))
    out = tmp_path / "s"
    shutil.copytree(swept[0], out)
    (out / "sweep.json").unlink()
    kept = (out / "runs" / "n1-s0" / "edgecut.json").stat().st_mtime_ns
    grid = ["--layers", "1,2,full", "--baselines", "tfidf,minilm"]  # runs: n1, n2, nfull, minilm
    first = _sweep(tiny_model_dirs["llama"], tiny_csv, out, *grid, "--shard", "1/3")  # n1 (done), minilm
    assert first.exit_code == 0, first.output
    assert "2 runs (1 already done)" in first.output and "--report" in first.output
    assert (out / "runs" / "minilm-s0" / "edgecut.json").is_file() and not (out / "runs" / "n2-s0").exists()
    assert not (out / "sweep.json").exists()  # a shard does not report
    assert (out / "runs" / "n1-s0" / "edgecut.json").stat().st_mtime_ns == kept
    second = _sweep(tiny_model_dirs["llama"], tiny_csv, out, *grid, "--shard", "2/3")  # n2
    assert second.exit_code == 0, second.output
    assert "1 runs (0 already done)" in second.output
    result = _sweep(tiny_model_dirs["llama"], tiny_csv, out, *grid, "--report")
    assert result.exit_code == 0, result.output
    assert "run 1/" not in result.output  # --report runs nothing
    report = json.loads((out / "sweep.json").read_text())
    assert [r["layers"] for r in report["rows"]] == [1, 2, 3]
    minilm = next(b for b in report["baselines"] if b["name"] == "minilm")
    assert minilm["runtime"] == "onnxruntime" and minilm["seeds"] == 1
    assert minilm["int8_mb"] < minilm["artifact_mb"] and minilm["int8_p50_ms"] > 0
    manifest = json.loads((out / "runs" / "minilm-s0" / "edgecut.json").read_text())
    assert manifest["architecture"] == "BertForSequenceClassification" and manifest["setting"] == "cls"
    # `--pooling auto` leaves an encoder's own first-token pooling alone (test_pipeline: the decoders')
    assert manifest["pooling"] == "last"
    assert json.loads((out / "runs" / "minilm-s0" / "config.json").read_text()).get("edgecut_pooling", "last") == "last"
    assert "all-MiniLM-L6-v2, fine-tuned (cls) (baseline)" in (out / "sweep.md").read_text()

    again = _sweep(tiny_model_dirs["llama"], tiny_csv, out, "--layers", "1", "--baselines", "none")
    assert again.exit_code == 0, again.output
    report = json.loads((out / "sweep.json").read_text())
    assert [r["layers"] for r in report["rows"]] == [1, 2, 3] and report["baselines"] == []


@whole_sweep
def test_a_retried_baseline_is_said_in_the_sweep(swept, tiny_model_dirs, tiny_csv, tmp_path, monkeypatch):
    """fastText retried at a lower learning rate gives another number: the sweep says so, it does not hide it."""
    import shutil

    from edgecut.sweeps import sweep
    from edgecut.sweeps.baselines import BaselineResult

    asked = []

    def retried(name, spec, **_):  # the sweep trains fastText in a fresh process, never in its own
        asked.append((name, spec.seed, spec.demonstrations))
        return BaselineResult(name, spec.seed, 0.7, 0.1, 100, "fasttext", note="trained at lr 0.25: lr 0.5 diverged")

    monkeypatch.setattr(sweep, "baseline_in_a_process", retried)
    out = tmp_path / "s"
    shutil.copytree(swept[0], out)
    result = _sweep(tiny_model_dirs["llama"], tiny_csv, out, "--baselines", "fasttext", "--report")
    assert result.exit_code == 0, result.output
    assert "fasttext baseline, seed 0: trained at lr 0.25: lr 0.5 diverged" in " ".join(result.output.split())
    (floor,) = json.loads((out / "sweep.json").read_text())["baselines"]
    assert floor["name"] == "fasttext" and floor["notes"] == ["seed 0: trained at lr 0.25: lr 0.5 diverged"]
    assert "seed 0: trained at lr 0.25: lr 0.5 diverged" in (out / "sweep.md").read_text()
    assert asked == [("fasttext", 0, False)]


def test_shards_split_the_grid_without_overlap():
    from edgecut.sweeps.sweep import plan

    runs = plan(["1", "2", "4", "full"], [0, 42, 421], ["minilm"])
    shards = [shard_of(runs, (k, 4)) for k in range(1, 5)]
    assert sorted((r for part in shards for r in part), key=runs.index) == runs
    assert sum(len(part) for part in shards) == len(runs)
    assert parse_shard("2/4") == (2, 4) and parse_shard(None) is None
    for bad in ("0/4", "5/4", "2", "a/b"):
        with pytest.raises(EdgecutError, match="--shard"):
            parse_shard(bad)


def _result(layers, seed, accuracy):
    return RunResult(layers, seed, accuracy, layers * 10, 1.0, 1.0, 0.5, 0.3, 1.0)


def test_a_row_whose_seeds_trained_at_different_learning_rates_is_named():
    """A directory extended after the full-depth default changed (5e-4 -> 1e-4) mixes two recipes in a row."""
    from dataclasses import replace

    from edgecut.sweeps.sweep_report import mixed_learning_rates

    cut = [replace(_result(1, seed, 0.8), learning_rate=5e-4) for seed in (0, 42)]
    full = [replace(_result(30, 0, 0.86), learning_rate=5e-4), replace(_result(30, 42, 0.88), learning_rate=1e-4)]
    (line,) = mixed_learning_rates(cut + full)
    assert line.startswith("N = 30:") and "0: 0.0005, 42: 0.0001" in line and "--lr" in line
    assert mixed_learning_rates(cut) == [] and mixed_learning_rates([_result(1, 0, 0.8)]) == []  # old: unknown
    (line,) = mixed_learning_rates([*full, _result(30, 421, 0.87)])  # a manifest without the rate
    assert "0: 0.0005, 42: 0.0001, 421: unknown" in line


def test_recommendation_is_the_smallest_n_within_the_margin():
    results = [
        _result(1, 0, 0.80),
        _result(1, 1, 0.80),
        _result(2, 0, 0.80),
        _result(2, 1, 0.81),
        _result(4, 0, 0.82),
        _result(4, 1, 0.82),
    ]
    tight = summarize(results, margin_points=1.0)  # N=2 averages 80.5, below 82 - 1
    assert tight.best_layers == 4 and tight.recommended_layers == 4
    assert summarize(results, margin_points=1.6).recommended_layers == 2
    assert summarize(results, margin_points=2.5).recommended_layers == 1
    two = next(r for r in tight.rows if r.layers == 2)
    assert two.accuracy_mean == pytest.approx(0.805) and two.accuracy_sd == pytest.approx(0.00707, abs=1e-4)


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (["--layers", "0,2"], "--layers"),
        (["--seeds", "a"], "--seeds"),
        (["--margin", "-1"], "--margin"),
        (["--baselines", "bert"], "--baselines"),
        (["--shard", "3/2"], "--shard"),
        (["--shard", "1/2", "--report"], "--report"),
    ],
)
def test_bad_sweep_options_are_one_line_exit_2(args, match, tmp_path):
    result = runner.invoke(app, ["sweep", *args, "-o", str(tmp_path / "s")])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert result.output.strip().splitlines()[-1].startswith("error:") and match in result.output


def test_parse_layers_keeps_order_and_full():
    assert parse_layers("1, 2,full,2") == ["1", "2", "full"]


def test_results_figure_draws_one_panel_per_dataset_from_sweep_json(tmp_path):
    """scripts/results_figure.py (docs/results.md's picture) reads what `edgecut sweep` writes."""

    from edgecut.sweeps.baselines import BaselineResult
    from edgecut.sweeps.sweep_report import write_reports

    results = [_result(1, 0, 0.6), _result(2, 0, 0.7)]
    for data in ("a", "b"):
        for folder in ("lm", "cls"):
            floor = [BaselineResult("tfidf", 0, 0.65, 0.4, 1000)] if folder == "lm" else []
            write_reports(summarize(results, 1.0, {}, floor), tmp_path / data / folder)
    (tmp_path / "c" / "cls").mkdir(parents=True)  # no lm sweep: not a panel
    png = load_script("scripts/results_figure.py").draw(tmp_path)
    assert png == tmp_path / "results.png"
    from PIL import Image

    with Image.open(png) as image:
        assert image.size[0] > 1.8 * image.size[1]  # two panels side by side


def test_distill_runs_each_seeds_full_model_before_the_cuts_it_teaches(tmp_path):
    from edgecut.pipeline import ExportSettings
    from edgecut.sweeps.sweep import FULL, Run, SweepSettings, plan, run_dir, run_settings

    runs = plan(["1", "2", "full"], [0, 42], distill=True)
    for run in runs:
        if run.layers != FULL:  # the teacher of this cut comes earlier in the grid
            assert runs.index(Run(FULL, run.seed)) < runs.index(run)
    student = run_settings(ExportSettings(), tmp_path, Run("1", 42), distill=True)
    assert student.teacher == run_dir(tmp_path, Run(FULL, 42)) and student.seed == 42 and student.layers == 1
    assert run_settings(ExportSettings(), tmp_path, Run(FULL, 42), distill=True).teacher is None
    with pytest.raises(EdgecutError, match="add full to --layers"):
        SweepSettings(layers=("1", "2"), seeds=(0,), base=ExportSettings(), options={}, distill=True)


def _peer(name: str, accuracy: float, p50_ms: float, seed: int = 0):
    from edgecut.sweeps.baselines import BaselineResult

    return BaselineResult(name, seed, accuracy, p50_ms, 1000)


def test_the_recommendation_is_the_fastest_point_within_the_margin_peers_included():
    """The fastest point within X points of the best, cuts and peers alike; a peer that beats every cut on both
    accuracy and latency is recommended in plain words, and the front holds no cut."""
    from dataclasses import replace

    cuts = [replace(_result(n, s, acc), fp32_p50_ms=float(n)) for n, acc in ((1, 0.78), (2, 0.80)) for s in (0, 1)]
    tuned_tfidf = [_peer("tfidf", 0.81, 0.05, s) for s in (0, 1)]
    summary = summarize(cuts, margin_points=1.0, baselines=tuned_tfidf)
    assert summary.recommended == "TF-IDF + logistic regression" and summary.front == ["TF-IDF + logistic regression"]
    assert "A peer, not a cut: no cut is on the accuracy/latency front here, so ship the peer" in summary.recommendation
    weak = [_peer("tfidf", 0.70, 0.05, s) for s in (0, 1)]
    summary = summarize(cuts, margin_points=1.0, baselines=weak)
    assert summary.recommended == "N = 2" and "peer" not in summary.recommendation
    assert summary.front[0] == "TF-IDF + logistic regression" and "N = 2" in summary.front
    summary = summarize(cuts, margin_points=3.0, baselines=weak)  # both cuts within 3 points: the faster one
    assert summary.recommended == "N = 1"


def test_a_sweep_directory_of_the_older_options_format_resumes(tmp_path):
    """Older sweep-options.json files record every legacy option, None where not given; the options of today's
    command (only what was typed) compare equal to them, and a changed value is still refused."""
    from edgecut.sweeps.sweep import MANIFEST, OPTIONS, check_options

    legacy = dict.fromkeys(
        ("setting", "select", "model", "data", "labels", "label_words", "template", "recipe", "per_class_cap"), None
    )
    (tmp_path / "runs" / "n1-s0").mkdir(parents=True)
    (tmp_path / "runs" / "n1-s0" / MANIFEST).write_text("{}")
    (tmp_path / OPTIONS).write_text(json.dumps(legacy | {"epochs": 1.0, "test_size": 40, "time_budget": None}))
    check_options(tmp_path, {"epochs": 1.0, "test_size": 40})
    with pytest.raises(EdgecutError, match=r"made with --epochs 1.0"):
        check_options(tmp_path, {"epochs": 2.0, "test_size": 40})
    with pytest.raises(EdgecutError, match=r"--setting \(not given\)"):
        check_options(tmp_path, {"epochs": 1.0, "test_size": 40, "setting": "cls"})
