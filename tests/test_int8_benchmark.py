"""benchmarks/int8.py keeps what it measured: a report run writes nothing, and a run without --resume
never replaces a file of measured rows (a report call once emptied two results files)."""

import json

import pytest
from conftest import load_script


def _int8_benchmark():
    return load_script("benchmarks/int8.py", "int8_benchmark")


def _row(seed: int, variant: str, test: float, ms: float, **extra) -> dict:
    return {
        "artifact": f"/art/n1-s{seed}",
        "data": "bbc-news",
        "layers": [0],
        "seed": seed,
        "max_length": 512,
        "variant": variant,
        "tuning_seconds": 0.0,
        "validation_accuracy": 0.9,
        "test_accuracy": test,
        "p50_b1_ms": ms,
        "p50_b8_ms": 8 * ms,
        "bytes": 42_000_000,
        "batch_max_abs_diff": 0.0,
    } | extra


@pytest.fixture
def measured(tmp_path):
    """A results file of two seeds' measured rows (its own: the committed one may be rewritten by a run)."""
    rows = [
        row
        for seed in (0, 42)
        for row in (_row(seed, "fp32", 0.86, 80.0), _row(seed, "int8-tuned", 0.85, 60.0, kept="int8-embedding"))
    ]
    path = tmp_path / "int8.json"
    path.write_text(json.dumps({"machine": {}, "args": {}, "rows": rows}, indent=2) + "\n")
    return path


def test_a_report_prints_the_table_and_leaves_the_file_alone(measured, capsys):
    before = measured.read_bytes()
    _int8_benchmark().main(["--json", str(measured)])
    assert measured.read_bytes() == before
    out = capsys.readouterr().out
    assert "| bbc-news (512 tokens) | 1 | int8-tuned | 2 | 90.0 % | 85.0 % ± 0.0 | 85.0 / 85.0 | 0.75× |" in out


def test_measuring_into_a_file_of_rows_needs_resume(measured, tmp_path, capsys):
    before = measured.read_bytes()
    with pytest.raises(SystemExit) as exit_:
        _int8_benchmark().main([str(tmp_path / "some-artifact"), "--json", str(measured)])
    assert exit_.value.code == 2 and "add --resume" in capsys.readouterr().err
    assert measured.read_bytes() == before


def test_a_report_of_a_missing_file_is_an_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        _int8_benchmark().main(["--json", str(tmp_path / "none.json")])
    assert exit_.value.code == 2 and "does not exist" in capsys.readouterr().err
