"""benchmarks/fp16_round_trips.py: the converter's graph against the shipped fp16 graph, on a real artifact."""

from __future__ import annotations

import json
import sys

from conftest import load_script


def test_the_benchmark_scores_both_fp16_graphs_of_an_artifact(tiny_artifact, tmp_path, monkeypatch, capsys):
    bench = load_script("benchmarks/fp16_round_trips.py")
    out = tmp_path / "fp16.json"
    monkeypatch.setattr(sys, "argv", ["fp16_round_trips.py", str(tiny_artifact), "--rows", "16", "--json", str(out)])
    bench.main()
    rows = json.loads(out.read_text())["results"]
    assert [r["graph"] for r in rows] == ["converter as written", "shipped (trips dropped)"]
    as_written, shipped = rows
    assert as_written["rows"] == shipped["rows"] == 16
    assert as_written["accuracy_fp32"] == shipped["accuracy_fp32"]  # one fp32 reference for both
    # A tiny model has no massive activation: both graphs follow fp32, and no x² overflows.
    assert shipped["argmax_agreement"] >= 0.95 and shipped["max_abs_logit_diff"] < 0.05
    assert shipped["inf_squares_in_fp16"] == 0
    assert "shipped (trips dropped)" in capsys.readouterr().out
