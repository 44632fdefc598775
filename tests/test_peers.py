"""The model2vec peer (benchmarks/peers.py, `sweep --baselines model2vec`).

model2vec's distill extra pins an older transformers, so it runs in its own environment made by
scripts/model2vec_env.sh. Here (edgecut's environment) it must be refused with the way to get it; the
slow test runs the real distillation from all-MiniLM-L6-v2 in that environment when EDGECUT_MODEL2VEC_PYTHON
names its python, and skips otherwise (CI does not build it).
"""

from __future__ import annotations

import importlib.util
import os
import sys
from argparse import Namespace
from pathlib import Path

import pytest
from conftest import ROOT, load_script

from edgecut.model.data import DataSpec
from edgecut.model.load import resolve_alias
from edgecut.sweeps.baselines import MODEL2VEC_LR, BaselineUnavailable, baseline_in_a_process, model2vec_baseline

MODEL2VEC_PYTHON = os.environ.get("EDGECUT_MODEL2VEC_PYTHON")


def _peers():
    return load_script("benchmarks/peers.py")


@pytest.mark.skipif(importlib.util.find_spec("model2vec") is not None, reason="model2vec is installed here")
def test_model2vec_outside_its_environment_names_the_script_that_makes_it(tmp_path):
    with pytest.raises(BaselineUnavailable, match=r"bash scripts/model2vec_env\.sh"):
        model2vec_baseline(None, 0, tmp_path)


@pytest.mark.skipif(importlib.util.find_spec("model2vec") is not None, reason="model2vec is installed here")
def test_model2vec_in_a_python_without_it_is_a_skip_not_a_crash(tmp_path):
    """A fresh process without model2vec answers BaselineUnavailable (a SKIP line) with the baseline's own
    reason; a process that fails is BaselineUnavailable too, with its last line."""
    spec = DataSpec("rotten-tomatoes", test_size=100, per_class_cap=50, demonstrations=False)
    with pytest.raises(BaselineUnavailable, match=r"bash scripts/model2vec_env\.sh"):
        baseline_in_a_process("model2vec", spec, sentence_model=tmp_path)
    with pytest.raises(BaselineUnavailable, match=r"nope in .* failed: KeyError: 'nope'"):
        baseline_in_a_process("nope", spec)


@pytest.mark.slow
@pytest.mark.skipif(not MODEL2VEC_PYTHON, reason="needs the model2vec environment: bash scripts/model2vec_env.sh")
def test_model2vec_distilled_from_the_installed_minilm_learns_rotten_tomatoes():
    spec = DataSpec("rotten-tomatoes", test_size=400, per_class_cap=500, demonstrations=False)
    model = resolve_alias("all-minilm-l6-v2")
    result = baseline_in_a_process("model2vec", spec, MODEL2VEC_PYTHON, ROOT, sentence_model=model)
    assert result.name == "model2vec" and result.test_rows == 400
    assert result.accuracy > 0.62  # the majority class is 58 %; 1000 training rows (seen: 68.3 %, tuned)
    assert result.p50_ms > 0 and result.texts_per_s > 0 and result.artifact_mb > 1
    # tuned by the one rule: every learning rate of the grid fitted, early stopping on validation (seen: 14, 9, 6
    # epochs), the best validation accuracy chosen
    grid = result.tuned["grid"]
    assert [g["lr"] for g in grid] == list(MODEL2VEC_LR) and all(g["epochs"] >= 1 for g in grid), grid
    assert result.tuned["chosen"] == max(grid, key=lambda g: g["validation_accuracy"])


def test_one_rule_chooses_the_first_best_validation_score_and_never_an_unscored_point():
    from edgecut.sweeps.baselines import TUNING_RULE, choose_on_validation

    grid = [
        {"lr": 0.1, "validation_accuracy": 0.7},
        {"lr": 0.5, "validation_accuracy": None, "diverged": True},
        {"lr": 1.0, "validation_accuracy": 0.8},
        {"lr": 2.0, "validation_accuracy": 0.8},
    ]
    tuned = choose_on_validation(grid)
    assert tuned == {"rule": TUNING_RULE, "chosen": grid[2], "grid": grid}
    with pytest.raises(ValueError, match="no grid point"):
        choose_on_validation([grid[1]])


def test_model2vec_is_tuned_on_the_validation_rows_by_the_one_rule():
    """Every learning rate of the grid fits a fresh classifier with early stopping on the dataset's validation
    rows (not a split of the training rows, not the test rows) at the run's seed; the epochs each point trained
    are counted from its training batches; the best validation accuracy wins and its classifier is returned. A
    stand-in classifier answers, so this runs without model2vec's environment (the slow test runs the real one)."""
    import torch

    from edgecut.sweeps.baselines import fit_model2vec_on_validation

    texts = {y: [f"word{y} token{i}" for i in range(10)] for y in range(2)}
    dataset = _dataset(texts)
    epochs_at = {3e-4: 7, 1e-3: 4, 3e-3: 2}  # where the stand-in's early stopping stops
    fits = []

    class StandIn(torch.nn.Module):  # right on every text at lr 1e-3, a constant answer elsewhere
        def forward(self, x):
            return x

        def fit(self, X, y, learning_rate, early_stopping_patience, X_val, y_val, random_seed):
            fits.append((learning_rate, X, y, X_val, y_val, random_seed, early_stopping_patience))
            self.lr = learning_rate
            self.train()
            for _ in range(epochs_at[learning_rate]):
                for start in range(0, len(X), 5):  # batches of 5, the last one short
                    self(torch.zeros(len(X[start : start + 5]), 2))
            self.eval()
            return self

        def predict(self, X):
            self(torch.zeros(len(X), 2))  # an eval-mode pass: not a training epoch
            return [("a" if "word0" in t else "b") if self.lr == 1e-3 else "a" for t in X]

    def labelled(split):
        return [ex.text for ex in split], [dataset.labels[ex.label] for ex in split]

    classifier, tuned = fit_model2vec_on_validation(StandIn, labelled(dataset.train), labelled(dataset.validation), 7)
    val_texts, val_labels = labelled(dataset.validation)
    assert [f[0] for f in fits] == [3e-4, 1e-3, 3e-3]
    assert all(f[1:] == (*labelled(dataset.train), val_texts, val_labels, 7, 5) for f in fits)
    assert tuned["grid"] == [
        {"lr": 3e-4, "epochs": 7, "validation_accuracy": 0.5},
        {"lr": 1e-3, "epochs": 4, "validation_accuracy": 1.0},
        {"lr": 3e-3, "epochs": 2, "validation_accuracy": 0.5},
    ]
    assert tuned["chosen"] == tuned["grid"][1] and classifier.lr == 1e-3


@pytest.mark.skipif(importlib.util.find_spec("fasttext") is None, reason="fastText is not installed (edgecut[bench])")
def test_fasttext_is_tuned_on_validation_and_a_diverged_point_is_left_out(tiny_csv, monkeypatch):
    """The one tuning rule: every lr x epochs point trains, the best validation accuracy wins (recorded with the
    grid), and the test split is scored with the winner only. fastText stops with "Encountered NaN" when its
    SGD diverges (seen in long processes): that point is recorded as diverged and named in the note, and only a
    grid where every point diverges is a SKIP. Which points train and which wins is what is tested, so a stand-in
    model answers (in a pytest worker that had run other files even a gentle real epoch diverged, which is why
    the sweep and peers.py train fastText in a fresh process; its real training is checked there)."""
    import fasttext
    import numpy as np

    from edgecut.model.data import DataSpec, load_dataset
    from edgecut.sweeps.baselines import fasttext_baseline

    dataset = load_dataset(DataSpec(str(tiny_csv), labels=("negative", "positive"), test_size=40))
    truth = {ex.text: ex.label for ex in dataset.validation + dataset.test}
    tried = []

    class Trained:  # right on every text at lr 0.5 x 25 epochs, a constant answer elsewhere
        def __init__(self, lr, epoch):
            self.perfect = (lr, epoch) == (0.5, 25)

        def predict(self, lines):
            return [[f"__label__{truth[t] if self.perfect else 1}"] for t in lines], None

        def save_model(self, path):
            Path(path).write_bytes(bytes(1000))

        def get_input_matrix(self):
            return np.zeros((10, 5))

        get_output_matrix = get_input_matrix

    def train(**kwargs):
        tried.append((kwargs["lr"], kwargs["epoch"]))
        if kwargs["lr"] == 1.0 and kwargs["epoch"] == 25:
            raise RuntimeError("Encountered NaN.")
        return Trained(kwargs["lr"], kwargs["epoch"])

    monkeypatch.setattr(fasttext, "train_supervised", train)
    result = fasttext_baseline(dataset, seed=0, runs=5)
    assert tried == [(0.1, 5), (0.1, 25), (0.5, 5), (0.5, 25), (1.0, 5), (1.0, 25)]
    assert result.tuned["chosen"] == {"lr": 0.5, "epochs": 25, "validation_accuracy": 1.0}
    assert len(result.tuned["grid"]) == 6 and result.tuned["grid"][-1]["diverged"]
    assert result.accuracy == 1.0 and result.artifact_mb == 0.001
    assert result.note == "diverged (NaN), left out of the choice: lr 1 x 25 epochs"
    assert result.as_manifest()["tuned"]["chosen"]["lr"] == 0.5

    def always_diverges(**kwargs):
        raise RuntimeError("Encountered NaN.")

    monkeypatch.setattr(fasttext, "train_supervised", always_diverges)
    with pytest.raises(BaselineUnavailable, match=r"diverged \(NaN\) at every grid point: lr 0\.1 x 5 epochs"):
        fasttext_baseline(dataset, seed=0, runs=5, learning_rates=(0.1,))


@pytest.mark.skipif(importlib.util.find_spec("fasttext") is None, reason="fastText is not installed (edgecut[bench])")
def test_fasttext_in_fresh_processes_is_reproducible(tiny_csv):
    """peers.py and the sweep run fastText alone (a long benchmark process once changed its result); alone
    it is reproducible: two fresh processes give exactly the same number. (Not compared with a run in this
    process: a pytest worker that has run other files is such a long process.)"""
    spec = DataSpec(str(tiny_csv), labels=("negative", "positive"), test_size=40, per_class_cap=100)
    first, second = (baseline_in_a_process("fasttext", spec) for _ in range(2))
    assert first.name == "fasttext" and first.seed == 0 and first.note is None
    assert first.accuracy == second.accuracy >= 0.5 and first.tuned == second.tuned
    assert first.tuned["chosen"] in first.tuned["grid"] and len(first.tuned["grid"]) == 6


def test_the_plot_numbers_every_row_and_names_it_in_the_key(tmp_path):
    table = [  # two rows on the same spot: their names once ran over each other
        {"name": "TF-IDF + logistic regression", "p50_ms": 1.0, "accuracy_mean": 0.969, "mb": 12.0},
        {"name": "model2vec (from MiniLM)", "p50_ms": 1.0, "accuracy_mean": 0.969, "mb": 30.9},
        {"name": "edgecut N=1, int8", "p50_ms": 3.6, "accuracy_mean": 0.955, "mb": 32.1},
    ]
    key = _peers().plot(table, tmp_path / "plot.png", "title")
    assert key == [
        "1  TF-IDF + logistic regression (12 MB)",
        "2  model2vec (from MiniLM) (31 MB)",
        "3  edgecut N=1, int8 (32 MB)",
        "Pareto front",
    ]
    assert (tmp_path / "plot.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_plot_draws_each_row_s_spread_and_the_pareto_front(tmp_path, monkeypatch):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    drawn = []
    monkeypatch.setattr(plt, "close", drawn.append)  # keep the figure to read it back
    nan = float("nan")
    rows = [(1.0, 0.70, 0.01), (2.0, 0.80, 0.02), (3.0, 0.75, 0.03), (nan, 0.90, 0.0), (0.5, 0.60, 0.04)]
    table = [
        {"name": f"row {i}", "p50_ms": ms, "accuracy_mean": acc, "accuracy_sd": sd, "mb": 10.0}
        for i, (ms, acc, sd) in enumerate(rows)
    ]
    _peers().plot(table, tmp_path / "p.png", "t")
    ax = drawn[0].axes[0]
    (front,) = [line for line in ax.get_lines() if line.get_label() == "Pareto front"]
    # (3 ms, 75 %) is slower and worse than (2 ms, 80 %); the untimed row is a dashed line, not a point
    assert list(front.get_xdata()) == [0.5, 1.0, 2.0] and list(front.get_ydata()) == [60.0, 70.0, 80.0]
    bars = [c for c in ax.containers if type(c).__name__ == "ErrorbarContainer"]
    assert len(bars) == 4
    heights = sorted(round(float(seg[1][1] - seg[0][1]), 6) for b in bars for seg in b.lines[2][0].get_segments())
    assert heights == [2.0, 4.0, 6.0, 8.0]  # each timed row's bar spans its sd either side, in points


def test_replot_draws_the_png_again_from_the_results_json(tmp_path, monkeypatch):
    import json

    table = [{"name": "TF-IDF + logistic regression", "p50_ms": 1.0, "accuracy_mean": 0.9, "accuracy_sd": 0.01}]
    (tmp_path / "peers-x.json").write_text(json.dumps({"title": "t", "table": [table[0] | {"mb": 1.0}]}))
    argv = ["peers.py", "--data", "x", "--replot", "--results", str(tmp_path), "--out", str(tmp_path / "o")]
    monkeypatch.setattr(sys, "argv", argv)
    assert _peers().main() == 0
    assert (tmp_path / "peers-x.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not (tmp_path / "o").exists()  # nothing ran
    (tmp_path / "peers-x.json").write_text("{}")
    with pytest.raises(SystemExit) as raised:
        _peers().main()
    assert raised.value.code == 2


def test_merge_folds_one_seeds_runs_into_the_earlier_results(tiny_csv, tmp_path, monkeypatch):
    """`--kinds baselines --merge`: only the baseline rows run, a new run replaces the earlier run of its row
    and seed, the other seeds' runs stay, and the table counts them (the long rows land a seed at a time)."""
    import json

    peers = _peers()
    stem = f"peers-{tiny_csv.stem}"
    earlier = [
        {"name": "TF-IDF + logistic regression", "seed": s, "accuracy": 0.1, "p50_ms": 1.0, "texts_per_s": 9.0}
        | {"mb": 1.0, "train_seconds": 0.5, "detail": ""}
        for s in (0, 42)
    ]
    (tmp_path / f"{stem}.json").write_text(json.dumps({"settings": {"seeds": "0,42"}, "runs": earlier}))
    argv = ["peers.py", "--data", str(tiny_csv), "--seeds", "0", "--test-size", "40", "--kinds", "baselines"]
    monkeypatch.setattr(sys, "argv", [*argv, "--merge", "--results", str(tmp_path), "--out", str(tmp_path / "o")])
    assert peers.main() == 0
    record = json.loads((tmp_path / f"{stem}.json").read_text())
    tfidf = {r["seed"]: r["accuracy"] for r in record["runs"] if r["name"] == "TF-IDF + logistic regression"}
    assert tfidf[42] == 0.1 and tfidf[0] > 0.5  # seed 0 measured again, seed 42 kept
    (row,) = [r for r in record["table"] if r["name"] == "TF-IDF + logistic regression"]
    assert row["seeds"] == 2
    assert record["earlier_settings"] == [{"seeds": "0,42"}]
    assert not any((tmp_path / "o").rglob("edgecut.json"))  # no export ran


def test_a_merged_run_takes_the_place_of_the_run_it_replaces():
    """The table keeps its order when rows are re-run (the plain cuts stay above their students and peers);
    a row the earlier file did not have comes last."""
    peers = _peers()
    fields = {"accuracy": 0.5, "p50_ms": 1.0, "texts_per_s": 9.0, "mb": 1.0, "train_seconds": 0.5, "detail": ""}
    earlier = [{"name": name, "seed": seed} | fields for name, seed in (("a", 0), ("b", 0), ("a", 42))]
    new = [peers.Row("c", 0, 0.9, 1.0, 9.0, 1.0, 0.5), peers.Row("a", 0, 0.8, 1.0, 9.0, 1.0, 0.5)]
    merged = peers.merge_runs(earlier, new)
    assert [(r.name, r.seed, r.accuracy) for r in merged] == [
        ("a", 0, 0.8),
        ("b", 0, 0.5),
        ("a", 42, 0.5),
        ("c", 0, 0.9),
    ]


def test_kinds_model2vec_runs_model2vec_alone(tiny_csv, tmp_path, monkeypatch, capsys):
    """`--kinds model2vec`: the model2vec row alone (here, without its environment, its SKIP line), no TF-IDF or
    fastText row and no export, folded into the written results."""
    import json

    stem = tmp_path / f"peers-{tiny_csv.stem}.json"
    earlier = [
        {"name": "TF-IDF + logistic regression", "seed": 0, "accuracy": 0.1, "p50_ms": 1.0, "texts_per_s": 9.0}
        | {"mb": 1.0, "train_seconds": 0.5, "detail": "", "note": "", "tuning": ""}
    ]
    stem.write_text(json.dumps({"settings": {"seeds": "0"}, "runs": earlier}))
    argv = ["peers.py", "--data", str(tiny_csv), "--seeds", "0", "--test-size", "40", "--kinds", "model2vec"]
    monkeypatch.setattr(sys, "argv", [*argv, "--merge", "--results", str(tmp_path), "--out", str(tmp_path / "o")])
    assert _peers().main() == 0
    assert "SKIP: model2vec: give --model2vec-python" in capsys.readouterr().out
    assert json.loads(stem.read_text())["runs"] == earlier and not any((tmp_path / "o").rglob("edgecut.json"))


def test_runs_from_another_machine_join_the_table_untimed(tmp_path, monkeypatch):
    """`--kinds none --merge --merge-from`: the runs of a peers JSON written on a lent GPU machine (`--no-timing`:
    NaN timings) join the written results; their row shows "–" for the timings, the timed rows keep theirs,
    the plot draws the untimed row as a dashed line at its accuracy, and the other machine's settings are kept."""
    import json

    peers = _peers()
    row = {"seed": 0, "accuracy": 0.8, "mb": 1.0, "train_seconds": 0.5, "detail": ""}
    timed = [row | {"name": "edgecut N=1", "p50_ms": 1.5, "texts_per_s": 400.0}]
    untimed = [
        row
        | {"name": "edgecut N=1 from full", "seed": s, "accuracy": a, "p50_ms": float("nan")}
        | {"texts_per_s": float("nan"), "detail": "untimed, on NVIDIA H200"}
        for s, a in ((0, 0.78), (42, 0.80))
    ]
    # an int8 row whose seeds shipped different candidates; the old files kept the note inside `detail`
    untimed += [
        row
        | {"name": "edgecut N=1 from full, int8", "seed": s, "p50_ms": float("nan"), "texts_per_s": float("nan")}
        | {"detail": f"{candidate}, untimed, on NVIDIA H200"}
        for s, candidate in ((0, "static"), (42, "static-fp32-head"))
    ]
    (tmp_path / "peers-rotten-tomatoes.json").write_text(json.dumps({"settings": {"seeds": "0"}, "runs": timed}))
    gpu = tmp_path / "gpu.json"
    gpu.write_text(json.dumps({"settings": {"seeds": "0,42"}, "machine": {"cores": 16}, "runs": untimed}))
    argv = ["peers.py", "--kinds", "none", "--merge", "--merge-from", str(gpu), "--results", str(tmp_path)]
    monkeypatch.setattr(sys, "argv", [*argv, "--out", str(tmp_path / "o")])
    assert peers.main() == 0
    record = json.loads((tmp_path / "peers-rotten-tomatoes.json").read_text())
    assert len(record["runs"]) == 5
    assert record["earlier_settings"] == [{"seeds": "0"}, {"seeds": "0,42", "machine": {"cores": 16}}]
    md = (tmp_path / "peers-rotten-tomatoes.md").read_text()
    assert "| edgecut N=1 | 1 | 80.0% ± 0.0 | 1.50 | 400 |" in md
    assert "| edgecut N=1 from full (untimed, on NVIDIA H200) | 2 | 79.0% ± 1.4 | – | – |" in md
    assert "| edgecut N=1 from full, int8 (static, static-fp32-head, untimed, on NVIDIA H200) | 2 |" in md
    key = peers.plot(record["table"], tmp_path / "key.png", "t")
    assert key[1] == "2  edgecut N=1 from full (1 MB, untimed: dashed at its accuracy)"


def test_the_teacher_target_goes_to_the_full_depth_export_alone(tmp_path):
    peers = _peers()
    args = Namespace(
        data="rotten-tomatoes", model="smollm2-135m", test_size=100, time_budget=None, pooling="auto",
        alpha=0.5, temperature=2.0, unlabeled=None, teacher_target="cuda",
    )  # fmt: skip
    targets = {kind: peers.settings_for(peers.Run(kind, "1", 0), args, tmp_path).target for kind in peers.KINDS[:5]}
    assert targets == {"full": "cuda", "minilm": "cpu", "plain": "cpu", "from-full": "cpu", "from-minilm": "cpu"}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--kinds", "full,teacher"], "--kinds: unknown teacher"),
        (["--kinds", "none", "--merge-from", "other.json"], "--merge-from folds runs into"),
        (["--kinds", "none", "--merge", "--merge-from", "missing.json"], "--merge-from missing.json: not a peers"),
        # a table of some rows must not replace the written one of every row
        (["--kinds", "full,from-full"], "add --merge to fold them into"),
    ],
)
def test_bad_kinds_are_one_usage_error_and_the_results_stay(tmp_path, monkeypatch, capsys, args, message):
    written = tmp_path / "peers-rotten-tomatoes.json"
    written.write_text('{"runs": []}')
    monkeypatch.setattr(sys, "argv", ["peers.py", *args, "--results", str(tmp_path), "--out", str(tmp_path / "o")])
    with pytest.raises(SystemExit) as stop:
        _peers().main()
    assert stop.value.code == 2 and message in capsys.readouterr().err
    assert written.read_text() == '{"runs": []}' and not (tmp_path / "o").exists()


def _dataset(texts_by_label: dict[int, list[str]], labels=("a", "b")):
    """A Dataset with the rows split 60/20/20 per label, in a fixed order."""
    from edgecut.model.data import Dataset, Example

    splits: dict[str, list] = {"train": [], "validation": [], "test": []}
    for label, texts in texts_by_label.items():
        n = len(texts)
        cut = (int(n * 0.6), int(n * 0.8))
        splits["train"] += [Example(t, label) for t in texts[: cut[0]]]
        splits["validation"] += [Example(t, label) for t in texts[cut[0] : cut[1]]]
        splits["test"] += [Example(t, label) for t in texts[cut[1] :]]
    return Dataset(
        name="synthetic",
        labels=list(labels),
        label_words=list(labels),
        template="{text}{label}",
        train=splits["train"],
        validation=splits["validation"],
        test=splits["test"],
        demonstrations=[],
    )


def test_the_tfidf_floor_picks_character_ngrams_for_text_without_spaces():
    """Text without spaces between words (Chinese reviews): every text is one unseen word to word n-grams, so
    the untuned floor sat at chance; the grid has character n-grams too, and validation picks them."""
    import random

    from edgecut.sweeps.baselines import tfidf_baseline

    rng = random.Random(0)
    pools = {0: "好棒喜欢精彩感人", 1: "差烂无聊失望难看"}
    filler = "电影故事演员剧情这部的了是"
    texts = {
        y: ["".join(rng.choice(pool + filler * 2) for _ in range(12)) for _ in range(150)] for y, pool in pools.items()
    }
    result = tfidf_baseline(_dataset(texts), seed=0, runs=5)
    chosen = result.tuned["chosen"]
    assert chosen["features"] == "char 1-3-grams", result.tuned
    word_best = max(g["validation_accuracy"] for g in result.tuned["grid"] if g["features"].startswith("word"))
    assert chosen["validation_accuracy"] > word_best + 0.2 and result.accuracy > 0.8


def test_the_tfidf_floor_is_bounded_and_says_where_it_stopped():
    """With no time left, the floor fits one grid point (the best so far is the floor) and says so, instead of
    running the whole grid (10,000 classes sat silent for minutes in the solver)."""
    from edgecut.sweeps.baselines import grid_size, tfidf_baseline

    texts = {y: [f"word{y} token{i % 7} filler{i % 3}" for i in range(30)] for y in range(2)}
    seen = []
    result = tfidf_baseline(_dataset(texts), seed=0, runs=5, seconds=0.0, on_point=seen.append)
    assert len(result.tuned["grid"]) == len(seen) == 1 < grid_size()
    assert result.note and "time limit (0 s)" in result.note
    unbounded = tfidf_baseline(_dataset(texts), seed=0, runs=5, seconds=None)
    assert len(unbounded.tuned["grid"]) == grid_size() and unbounded.note is None


def test_every_row_says_which_rule_tuned_it_and_what_it_chose():
    """The table's last column: a cut at its family's rate and the epoch validation kept, MiniLM at an encoder's
    rate, an `--lr auto` export's grid and winner, TF-IDF's C and features, fastText's lr x epochs; seeds that
    chose differently are counted, and a row of an older file says it was not recorded."""
    from edgecut.sweeps.baselines import BaselineResult

    peers = _peers()
    manifest = {
        "recipe": {"learning_rate": 5e-05, "learning_rate_rule": "encoder"},
        "training": {"validation_accuracy": [0.7, 0.8, 0.75]},
    }
    assert peers.tuning_of_manifest(manifest) == "lr 5e-05 (encoder rule), epoch 2/3 (validation)"
    auto = {
        "recipe": {"learning_rate": 1e-3, "learning_rate_rule": "auto"},
        "training": {
            "validation_accuracy": [0.9],
            "learning_rate": {"chosen": 1e-3, "grid": [{"learning_rate": r} for r in (1e-4, 5e-4, 1e-3)]},
        },
    }
    assert peers.tuning_of_manifest(auto) == "lr 0.001 of {0.0001, 0.0005, 0.001} (validation), epoch 1/1 (validation)"
    auto["training"] |= {"seconds": 40.0}
    auto["training"]["learning_rate"] |= {"seconds": 130.0}  # the whole grid's training, not the winner's alone
    assert peers.training_seconds_of_manifest(auto) == 130.0
    assert peers.training_seconds_of_manifest({"training": {"seconds": 40.0}}) == 40.0
    tfidf, fasttext = (
        BaselineResult(name, 0, 0.8, 1.0, 10, tuned={"chosen": chosen})
        for name, chosen in (
            ("tfidf", {"features": "word 1-2-grams", "C": 3.0}),
            ("fasttext", {"lr": 0.5, "epochs": 25}),
        )
    )
    assert peers.baseline_row(tfidf, "t").tuning == "C=3, word 1-2-grams (validation)"
    assert peers.baseline_row(fasttext, "f").tuning == "lr 0.5 x 25 epochs (validation)"
    rows = [peers.Row("t", s, 0.8, 1.0, 9.0, 1.0, 0.5, tuning=t) for s, t in ((0, "C=3"), (1, "C=30"), (2, "C=3"))]
    rows.append(peers.Row("old", 0, 0.7, 1.0, 9.0, 1.0, 0.5))
    table = peers.summarize(rows)
    assert [r["tuning"] for r in table] == ["C=3 (x2); C=30 (x1)", ""]
    md = peers.markdown(table, "title")
    assert md.splitlines()[4].endswith("| C=3 (x2); C=30 (x1) |") and md.splitlines()[5].endswith("| not recorded |")


def test_minilm_trains_at_an_encoders_rate_unless_lr_auto_is_asked():
    """No explicit rate reaches the MiniLM export (its encoder rule applies, never the cut's 5e-4); --lr-auto
    gives every neural row the validation grid."""
    from edgecut.model.finetune import ENCODER_LEARNING_RATE, get_recipe

    peers = _peers()
    args = Namespace(
        data="rotten-tomatoes", model="smollm2-135m", test_size=100, time_budget=None, pooling="auto",
        alpha=0.5, temperature=2.0, unlabeled=None, teacher_target="cpu",
    )  # fmt: skip
    settings = peers.settings_for(peers.Run("minilm", "full", 0), args, Path("o"))
    assert settings.lr is None and get_recipe("cpu", encoder=True).learning_rate == ENCODER_LEARNING_RATE
    args.lr_auto = True
    assert {peers.settings_for(peers.Run(k, "1", 0), args, Path("o")).lr for k in ("minilm", "plain")} == {"auto"}


def test_the_tfidf_floor_caps_its_features_when_classes_times_features_would_not_fit(monkeypatch):
    """10,000 classes over 200k n-grams would be a 16 GB linear model (the fault run's export sat in the solver
    for minutes): the features are capped so classes x features stays under TFIDF_MAX_WEIGHTS, and it says so."""
    import edgecut.sweeps.baselines as baselines

    monkeypatch.setattr(baselines, "TFIDF_MAX_WEIGHTS", 30 * 1000)  # 30 classes -> at most 1000 features
    texts = {
        y: [f"tok{y} shared{i % 5} " + " ".join(f"w{y}x{i}x{k}" for k in range(6)) for i in range(10)]
        for y in range(30)
    }
    result = baselines.tfidf_baseline(_dataset(texts, labels=[f"c{y}" for y in range(30)]), seed=0, runs=2)
    assert result.parameters <= 30 * 1000 + 30 and "the 1000 most frequent" in (result.note or ""), result.note
