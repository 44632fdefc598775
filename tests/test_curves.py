"""benchmarks/curves.py: the answers of the depth and data-size curves, the Pareto front, the epochs rule, and a
resumable run of the tuned peers on a toy task (no model loads here: the real curves are benchmark runs)."""

from __future__ import annotations

import importlib.util
import json
import math
import sys

import pytest
from conftest import ROOT, load_script


def _curves():
    load_script("benchmarks/peers.py")
    return load_script("benchmarks/curves.py")


def _row(name: str, accuracy: float, size: str = "full", p50: float = 1.0, sd: float = 0.01) -> dict:
    return {"name": name, "size": size, "accuracy_mean": accuracy, "accuracy_sd": sd, "p50_ms": p50, "seeds": 3}


def test_size_answer_finds_the_size_below_which_a_cut_beats_every_peer():
    curves = _curves()
    table = []
    for size, cut, peers in (("16", 0.70, (0.60, 0.65)), ("64", 0.78, (0.70, 0.77)), ("256", 0.80, (0.81, 0.70))):
        table += [_row("edgecut N=1", cut, size), _row("edgecut N=2", cut - 0.01, size)]
        table += [_row("TF-IDF + logistic regression", peers[0], size), _row("fastText (bigrams)", peers[1], size)]
    table.append(_row("edgecut N=1", 0.85, "full"))
    table.append(_row("all-MiniLM-L6-v2 (cls)", 0.86, "full"))
    answer = curves.size_answer(table)
    assert answer["cells"]["64"] == {
        "best_cut": "edgecut N=1",
        "cut_accuracy": 0.78,
        "best_peer": "fastText (bigrams)",
        "peer_accuracy": 0.77,
        "cut_wins": True,
    }
    assert [answer["cells"][s]["cut_wins"] for s in ("16", "64", "256", "full")] == [True, True, False, False]
    assert answer["text"].startswith("a cut beats every tuned peer below 256 training rows per class (full: the")
    assert "(at 16, 64); from 256 on, a peer is as good or better" in answer["text"]
    assert answer["text"].endswith("; full: N=1 85.0% against all-MiniLM-L6-v2 (cls) 86.0%)")


@pytest.mark.parametrize(
    ("cuts", "expected"),
    [
        ((0.5, 0.5), "a cut never beats every tuned peer"),
        ((0.9, 0.9), "a cut beats every tuned peer at every size measured"),
        ((0.5, 0.9), "no single threshold: a cut beats every tuned peer at 64, not at 16"),
    ],
)
def test_size_answer_says_never_always_or_no_threshold(cuts, expected):
    curves = _curves()
    table = [_row("edgecut N=1", cut, size) for cut, size in zip(cuts, ("16", "64"), strict=True)]
    table += [_row("fastText (bigrams)", 0.7, size) for size in ("16", "64")]
    assert curves.size_answer(table)["text"].startswith(expected)
    assert curves.size_answer(table[:2])["text"].startswith("not answered")  # no peer measured


def test_depth_answer_finds_the_smallest_n_within_two_points_and_whether_distillation_moves_it():
    curves = _curves()
    full = _row("full-depth (teacher)", 0.88)
    plain = [_row(f"edgecut N={n}", a) for n, a in ((1, 0.80), (2, 0.84), (4, 0.861), (8, 0.87))]
    distilled = [_row(f"edgecut N={n} from full", a) for n, a in ((1, 0.82), (2, 0.865), (4, 0.87), (8, 0.88))]
    answer = curves.depth_answer([full, *plain, *distilled])
    assert (answer["plain"], answer["distilled"]) == (4, 2)
    assert answer["text"].endswith("plain: N=4; distilled: N=2; distillation moves it from N=4 to N=2")
    answer = curves.depth_answer([full, *plain[:2], *distilled[:1]])
    assert answer["plain"] is None and answer["distilled"] is None
    assert "plain: none up to 2; distilled: none up to 1" in answer["text"] and "does not move it" in answer["text"]
    assert curves.depth_answer([full, *plain])["text"].endswith("plain: N=4")  # no distilled row: not compared
    assert curves.depth_answer(plain)["text"].startswith("not answered: no full-depth row")


def test_the_pareto_front_keeps_the_points_nothing_beats_on_both_axes():
    curves = _curves()
    points = [(1.0, 70.0), (2.0, 80.0), (3.0, 75.0), (2.0, 80.0), (10.0, 90.0), (float("nan"), 99.0), (0.5, 60.0)]
    # (3, 75) is slower and worse than (2, 80); the untimed point has no place on the latency axis; ties both stay
    assert curves.pareto_front(points) == [6, 0, 1, 3, 4]


def test_tiny_training_sets_take_at_least_32_steps_in_smaller_batches_first():
    curves = _curves()
    rows = (32, 80, 128, 512, 2048, 8000)
    assert [curves.schedule_for(n) for n in rows] == [(4, 4.0), (5, 2.0), (8, 2.0), (32, 2.0), (32, 2.0), (32, 2.0)]
    assert curves.size_key("full") == math.inf and sorted(["full", "256", "16"], key=curves.size_key)[0] == "16"


def test_the_grid_shows_every_row_at_every_size_and_a_missing_cell_as_a_dash():
    curves = _curves()
    table = [_row("edgecut N=1", 0.7, "16"), _row("edgecut N=1", 0.8, "64"), _row("fastText (bigrams)", 0.6, "64")]
    lines = curves.grid_markdown(table).splitlines()
    assert lines[0] == "| model | 16 / class | 64 / class |"
    assert lines[2] == "| edgecut N=1 | 70.0% ± 1.0 (3) | 80.0% ± 1.0 (3) |"
    assert lines[3] == "| fastText (bigrams) | – | 60.0% ± 1.0 (3) |"


@pytest.mark.skipif(importlib.util.find_spec("fasttext") is None, reason="fastText is not installed (edgecut[bench])")
def test_a_size_curve_of_the_peers_writes_its_results_and_a_rerun_skips_finished_runs(tiny_csv, tmp_path, monkeypatch):
    """Two sizes of TF-IDF and fastText on the toy task: the JSON has every run (with the tuning each
    chose), the summary per size, the answer (no cut ran: not answered), machine and versions; the markdown and
    the plot are written; a second call reads the finished runs from --out instead of training again."""
    curves = _curves()
    argv = ["curves.py", "--curve", "size", "--data", str(tiny_csv), "--per-class", "16,full", "--seeds", "0"]
    argv += ["--kinds", "tfidf,fasttext", "--test-size", "40", "--out", str(tmp_path / "o")]
    monkeypatch.setattr(sys, "argv", [*argv, "--results", str(tmp_path), "--note", "shared machine"])
    assert curves.main() == 0
    record = json.loads((tmp_path / f"curve-size-{tiny_csv.stem}.json").read_text())
    assert len(record["runs"]) == 4 and record["missing"] == [] and record["note"] == "shared machine"
    assert {r["train_rows"] for r in record["runs"] if r["size"] == "16"} == {32}
    assert all(row["tuning"].endswith("(validation)") for r in record["runs"] for row in r["rows"])
    assert {(r["size"], r["name"], r["seeds"]) for r in record["table"]} == {
        (s, n, 1) for s in ("16", "full") for n in ("TF-IDF + logistic regression", "fastText (bigrams)")
    }
    fronts = {(r["size"], r["name"]): r["front"] for r in record["table"]}
    assert any(fronts[("16", n)] for n in ("TF-IDF + logistic regression", "fastText (bigrams)"))
    assert record["answer"]["text"].startswith("not answered") and "fasttext-numpy2-wheel" in record["versions"]
    assert (tmp_path / f"curve-size-{tiny_csv.stem}.png").read_bytes()[:4] == b"\x89PNG"
    assert "| fastText (bigrams) |" in (tmp_path / f"curve-size-{tiny_csv.stem}.md").read_text()

    def refuse(*args, **kwargs):
        raise AssertionError("a finished run was trained again")

    monkeypatch.setattr(curves, "tfidf_baseline", refuse)
    monkeypatch.setattr(curves, "baseline_in_a_process", refuse)
    assert curves.main() == 0
    again = json.loads((tmp_path / f"curve-size-{tiny_csv.stem}.json").read_text())
    assert again["runs"] == record["runs"]
    # --cached-only: a size not finished in --out is listed as missing, not trained
    monkeypatch.setattr(sys, "argv", [*argv, "--results", str(tmp_path), "--cached-only", "--per-class", "16,64"])
    assert curves.main() == 0
    partial = json.loads((tmp_path / f"curve-size-{tiny_csv.stem}.json").read_text())
    assert partial["missing"] == ["tfidf seed 0 at 64/class", "fasttext seed 0 at 64/class"]
    # a study of --lr auto's grid has its own results file, title and runs: nothing of the default grid's is reused
    monkeypatch.undo()  # the peers may run again (another grid's runs are other runs)
    monkeypatch.setattr(sys, "argv", [*argv, "--results", str(tmp_path), "--lr-auto", "--lr-grid", "4,0.2,1,2"])
    assert curves.main() == 0
    study = json.loads((tmp_path / f"curve-size-{tiny_csv.stem}-grid-0p2-1-2-4.json").read_text())
    assert study["title"].endswith("--lr auto over x0.2, x1, x2, x4 the family's rate")
    assert study["settings"]["lr_grid"] == [0.2, 1.0, 2.0, 4.0] and len(study["runs"]) == 4
    assert (tmp_path / "o" / f"{tiny_csv.stem}-grid-0p2-1-2-4" / "16").is_dir()


def test_a_bad_size_or_kind_is_one_usage_error(tmp_path, monkeypatch, capsys):
    curves = _curves()
    cases = [
        (["--per-class", "16,lots"], "--per-class 16,lots"),
        (["--kinds", "bert"], "unknown bert"),
        (["--lr-grid", "0.2,1,4"], "add --lr-auto"),
        (["--lr-auto", "--lr-grid", "4"], "at least two distinct positive factors"),
    ]
    for args, message in cases:
        monkeypatch.setattr(sys, "argv", ["curves.py", "--curve", "size", *args, "--out", str(tmp_path / "o")])
        with pytest.raises(SystemExit) as stop:
            curves.main()
        assert stop.value.code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_the_manual_shows_each_curve_with_its_answer_tables_and_plot(tmp_path):
    """scripts/docs_gen.py's curves page: for every curve file, its provenance, the answer and tables curves.py
    wrote (each row's tuning included) and its plot beside the page."""
    docs_gen = load_script("scripts/docs_gen.py")
    page = docs_gen.curves_page(tmp_path)
    for path in sorted((ROOT / "benchmarks" / "results").glob("curve-*.json")):
        record = json.loads(path.read_text())
        assert f"*Source: `benchmarks/results/{path.name}`." in page and record["answer"]["text"] in page
        assert (tmp_path / path.with_suffix(".png").name).read_bytes() == path.with_suffix(".png").read_bytes()
    assert "| tuned (rule: choice) |" in page and "\n#### " in page


def test_a_peers_table_joins_the_depth_curve_with_its_full_set_rows_only():
    """`--merge-from peers-<data>.json`: the full model, the fp32 plain and from-full cuts and the tuned peers join
    as full-set runs; int8 rows, MiniLM's students, and a peer without a recorded tuning stay out."""
    curves = _curves()
    names = [
        "full-depth (teacher)",
        "edgecut N=1",
        "edgecut N=1, int8",
        "edgecut N=2 from full",
        "edgecut N=1 from MiniLM",
    ]
    names += ["all-MiniLM-L6-v2 (cls)", "TF-IDF + logistic regression", "fastText (bigrams)"]
    rows = [{"name": n, "seed": 0, "tuning": "C=3" if n.startswith("TF") else ""} for n in names]
    runs = curves.runs_from_peers({"runs": rows})
    assert [r["rows"][0]["name"] for r in runs] == [
        "full-depth (teacher)",
        "edgecut N=1",
        "edgecut N=2 from full",
        "TF-IDF + logistic regression",
    ]
    assert {r["size"] for r in runs} == {"full"}
    plain_n2 = curves.runs_from_peers({"runs": rows}, depths=["2"], distilled=False)
    assert [r["rows"][0]["name"] for r in plain_n2] == ["full-depth (teacher)", "TF-IDF + logistic regression"]
    # re-run by the one rule, MiniLM (an encoder's rate) and model2vec record their tuning: then they join
    tuned = {"all-MiniLM-L6-v2 (cls)": "lr 5e-05 (encoder rule), epoch 2/2", "model2vec (from MiniLM)": "lr 0.001"}
    rows += [{"name": "model2vec (from MiniLM)", "seed": 0, "tuning": ""}]
    rows = [r | {"tuning": tuned.get(r["name"], r["tuning"])} for r in rows]
    joined = [r["rows"][0]["name"] for r in curves.runs_from_peers({"runs": rows})]
    assert "all-MiniLM-L6-v2 (cls)" in joined and "model2vec (from MiniLM)" in joined
    assert "edgecut N=1 from MiniLM" not in joined


def test_a_later_merged_file_replaces_an_earlier_ones_runs_of_the_same_row_and_seed(tmp_path, monkeypatch):
    """`--kinds none --merge-from curve.json peers.json`: the peers table's re-run row replaces the curve's
    earlier run of the same row and seed (counted once, its new accuracy), the curve's other runs stay."""
    curves = _curves()

    def run(name: str, seed: int, accuracy: float) -> dict:
        row = {"name": name, "seed": seed, "accuracy": accuracy, "p50_ms": 1.0, "texts_per_s": 100.0, "mb": 1.0}
        return {"size": "full", "kind": "peers.py", "seed": seed, "rows": [row | {"train_seconds": 1.0}]}

    earlier = [run("edgecut N=1", 0, 0.70), run("edgecut N=4", 0, 0.75), run("full-depth (teacher)", 0, 0.90)]
    (tmp_path / "curve.json").write_text(json.dumps({"curve": "depth", "runs": earlier}))
    rerun = [run("edgecut N=1", 0, 0.80)["rows"][0], run("full-depth (teacher)", 0, 0.90)["rows"][0]]
    (tmp_path / "peers.json").write_text(json.dumps({"runs": rerun}))
    argv = ["curves.py", "--curve", "depth", "--data", "toy", "--kinds", "none", "--seeds", "0"]
    argv += ["--merge-from", str(tmp_path / "curve.json"), str(tmp_path / "peers.json"), "--results", str(tmp_path)]
    monkeypatch.setattr(sys, "argv", [*argv, "--out", str(tmp_path / "o")])
    assert curves.main() == 0
    record = json.loads((tmp_path / "curve-depth-toy.json").read_text())
    runs = sorted((r["rows"][0]["name"], r["rows"][0]["accuracy"]) for r in record["runs"])
    assert runs == [("edgecut N=1", 0.80), ("edgecut N=4", 0.75), ("full-depth (teacher)", 0.90)]
    assert {r["name"]: r["seeds"] for r in record["table"]}["edgecut N=1"] == 1


def test_merged_runs_on_another_test_split_are_refused_unless_re_run(tiny_csv, tmp_path, monkeypatch, capsys):
    """--test-size moves the validation and training rows too: a merged curve's TF-IDF runs at 16 rows per class
    measured at --test-size 40 cannot share a column with runs at 1000. Refused before anything trains, with
    the fix; the same --test-size, one that leaves the same test rows (500 and 1000 both hit the toy set's cap
    of a fifth), or re-running that kind, passes; a size this call does not measure is not checked."""
    curves = _curves()
    row = {"name": "TF-IDF + logistic regression", "seed": 0, "accuracy": 0.6, "p50_ms": 1.0, "texts_per_s": 1.0}
    earlier = [{"size": "16", "kind": "tfidf", "seed": 0, "rows": [row | {"mb": 0.1, "train_seconds": 1.0}]}]
    base = ["curves.py", "--curve", "size", "--data", str(tiny_csv), "--seeds", "0", "--cached-only"]
    base += [
        "--merge-from",
        str(tmp_path / "curve.json"),
        "--results",
        str(tmp_path / "r"),
        "--out",
        str(tmp_path / "o"),
    ]
    for merged_at, args, refused in (
        (40, ["--per-class", "16", "--kinds", "plain", "--test-size", "1000"], True),
        (40, ["--per-class", "16", "--kinds", "plain", "--test-size", "40"], False),
        (500, ["--per-class", "16", "--kinds", "plain", "--test-size", "1000"], False),
        (40, ["--per-class", "16", "--kinds", "tfidf,plain", "--test-size", "1000"], False),
        (40, ["--per-class", "64", "--kinds", "plain", "--test-size", "1000"], False),
    ):
        record = {"curve": "size", "settings": {"test_size": merged_at}, "runs": earlier}
        (tmp_path / "curve.json").write_text(json.dumps(record))
        monkeypatch.setattr(sys, "argv", [*base, *args])
        if refused:
            with pytest.raises(SystemExit) as stop:
                curves.main()
            error = capsys.readouterr().err
            assert stop.value.code == 2 and "at 16 rows per class (tfidf) used --test-size 40" in error
            assert not (tmp_path / "r").exists()
        else:
            assert curves.main() == 0, (merged_at, args)
