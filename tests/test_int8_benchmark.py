"""benchmarks/int8.py keeps what it measured: a report run writes nothing, and a run without --resume
never replaces a file of measured rows (a report call once emptied two results files)."""

import importlib.util
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]


def _int8_benchmark():
    spec = importlib.util.spec_from_file_location("int8_benchmark", ROOT / "benchmarks" / "int8.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("int8_benchmark", module)
    spec.loader.exec_module(sys.modules["int8_benchmark"])
    return sys.modules["int8_benchmark"]


@pytest.fixture
def measured(tmp_path):
    path = tmp_path / "int8.json"
    shutil.copy(ROOT / "benchmarks" / "results" / "int8-long-text.json", path)
    return path


def test_a_report_prints_the_table_and_leaves_the_file_alone(measured, capsys):
    before = measured.read_bytes()
    _int8_benchmark().main(["--json", str(measured)])
    assert measured.read_bytes() == before
    assert "| bbc-news (512 tokens) | 1 | int8-tuned |" in capsys.readouterr().out


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
