import numpy as np
import pytest
import torch
from conftest import DECODERS, FAMILIES, tiny_model, with_repeats_slow

from edgecut.errors import ParityError
from edgecut.graph.exporter import export_onnx, torch_logits
from edgecut.graph.parity import POLICY, compare_logits, require_parity
from edgecut.graph.quantize import to_int8
from edgecut.model.classifier import make_classifier
from edgecut.model.prune import cut_to_first
from edgecut.runtime import create_session, pad_batch, run_logits
from edgecut.targets import Int8Settings, load_target

WORDS = [" negative", " positive"]
TEXTS = [
    "Review: good great film\nSentiment:",
    "Review: the plot was dull and boring and bad\nSentiment:",
    "Review: fine\nSentiment:",
    "Review: a lovely moving story, the cast is superb and charming\nSentiment:",
    "Review: awful\nSentiment:",
]


def _classifier(family, tokenizer, layers=1):
    """What an export builds by default: a decoder reads the mean of its tokens (`--pooling auto`), an encoder
    its own first token with a random head (test_classifier exports the last-token pooling)."""
    model = tiny_model(family, tokenizer, layers=3)
    cut_to_first(model, layers)
    init, pooling = ("random", "last") if family == "bert" else ("lm", "mean")
    torch.manual_seed(1)
    return make_classifier(model, tokenizer, ["neg", "pos"], WORDS, init=init, pooling=pooling)


def _ids(tokenizer, texts):
    return [tokenizer(t)["input_ids"] for t in texts]


@pytest.fixture(scope="module")
def exported(tokenizer_dir, tmp_path_factory):
    """family -> (classifier, export result, CPU session): one 2-layer export per family, shared by the two
    parity tests below (exporting is the slow part of this file)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    done = {}

    def get(family):
        if family not in done:
            clf = _classifier(family, tokenizer, layers=2)
            seqs = _ids(tokenizer, TEXTS)
            path = tmp_path_factory.mktemp(family) / "model.onnx"
            result = export_onnx(clf, pad_batch(seqs[:2], tokenizer.pad_token_id), path)
            done[family] = (clf, result, create_session(result.path, load_target("cpu")))
        return done[family]

    return get


@pytest.mark.parametrize("family", with_repeats_slow(FAMILIES))
def test_onnx_matches_torch(family, tokenizer, exported):
    clf, result, session = exported(family)
    seqs = _ids(tokenizer, TEXTS)
    pad = tokenizer.pad_token_id
    assert result.path.exists() and not result.external_data
    assert [i.name for i in session.get_inputs()] == ["input_ids", "attention_mask"]
    assert [o.name for o in session.get_outputs()] == ["logits"]
    # Other batch sizes and lengths than the export sample: the axes are really dynamic.
    for batch in (seqs[:1], seqs, seqs[2:] * 3):
        expected = torch_logits(clf, batch, pad)
        parity = require_parity(compare_logits(expected, run_logits(session, batch, pad), atol=1e-4))
        assert parity.ok and parity.rows == len(batch)


@pytest.mark.parametrize("family", with_repeats_slow(DECODERS))
def test_exported_graph_gives_the_same_logits_left_or_right_padded(family, tokenizer, exported):
    _, _, session = exported(family)
    seqs = _ids(tokenizer, TEXTS)
    pad = tokenizer.pad_token_id
    right = pad_batch(seqs, pad)
    width = right["input_ids"].shape[1]
    left = {
        "input_ids": np.full_like(right["input_ids"], pad),
        "attention_mask": np.zeros_like(right["attention_mask"]),
    }
    for i, s in enumerate(seqs):
        left["input_ids"][i, width - len(s) :] = s
        left["attention_mask"][i, width - len(s) :] = 1
    a = session.run(["logits"], right)[0]
    b = session.run(["logits"], left)[0]
    np.testing.assert_allclose(a, b, atol=1e-4, rtol=0)
    # each row alone (no padding at all) gives its batched logits: pads never enter the mean
    alone = np.concatenate([run_logits(session, [s], pad) for s in seqs])
    np.testing.assert_allclose(alone, a, atol=1e-4, rtol=0)


def test_parity_check_fails_on_a_real_difference():
    expected = np.array([[0.0, 1.0], [2.0, 0.0]], dtype=np.float32)
    with pytest.raises(ParityError, match="does not match"):
        require_parity(compare_logits(expected, expected + np.float32(1e-3), atol=1e-4))
    with pytest.raises(ParityError, match="argmax"):
        require_parity(compare_logits(expected, expected[:, ::-1].copy(), atol=10.0))


def test_scaled_tolerance_grows_with_the_logits_only_above_one():
    small = np.array([[0.2, -0.9]], dtype=np.float32)
    large = np.array([[15.0, -3.0]], dtype=np.float32)
    assert POLICY.tolerance(POLICY.export_atol, small) == POLICY.export_atol
    assert POLICY.tolerance(POLICY.export_atol, large) == pytest.approx(15 * POLICY.export_atol)
    atol = POLICY.tolerance(POLICY.export_atol, large)
    require_parity(compare_logits(large, large + np.float32(2e-4), atol))  # fp32 noise, deep model
    with pytest.raises(ParityError, match="allowed 1.5e-03"):
        require_parity(compare_logits(large, large + np.float32(1e-2), atol))  # an export bug


@pytest.mark.parametrize("family", ["llama", "gpt2"])
def test_int8_runs_smaller_and_keeps_most_argmaxes(family, tokenizer, tmp_path, tiny_csv, exported):
    import csv

    pad = tokenizer.pad_token_id
    with tiny_csv.open(encoding="utf-8") as f:
        texts = [f"Review: {r['text']}\nSentiment:" for r in csv.DictReader(f)][:100]
    seqs = _ids(tokenizer, texts)
    fp32 = exported(family)[1].path  # the parity tests' 2-layer export, quantized into tmp_path
    q = to_int8(fp32, tmp_path / "model_int8.onnx", Int8Settings(), [pad_batch([s], pad) for s in seqs[:32]])
    assert q.bytes_after < q.bytes_before
    cpu = load_target("cpu")
    a = run_logits(create_session(fp32, cpu), seqs, pad)
    b = run_logits(create_session(q.path, cpu), seqs, pad)
    assert b.shape == a.shape and np.isfinite(b).all()
    assert (a.argmax(-1) == b.argmax(-1)).mean() >= 0.9
