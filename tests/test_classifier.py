import numpy as np
import pytest
import torch
from conftest import DECODERS, tiny_model

from edgecut.errors import DataError, EdgecutError
from edgecut.model.classifier import label_token_ids, make_classifier
from edgecut.model.prune import cut_to_first

WORDS = [" negative", " positive"]


PROMPTS = [
    "Review: good great film\nSentiment:",
    "Review: the plot was dull and boring and bad\nSentiment:",
    "Review: fine\nSentiment:",
]


def _lm_scores(lm, batch, ids):
    """The paper's LM setting: LM-head logits at the last real token, restricted to the label words."""
    with torch.no_grad():
        logits = lm(**batch).logits
    mask = batch["attention_mask"]
    if mask[:, -1].all():  # left padding (or none): the last position is real everywhere
        last = torch.full((len(mask),), mask.shape[1] - 1)
    else:
        last = mask.sum(1) - 1
    return logits[torch.arange(len(mask)), last][:, ids]


@pytest.mark.parametrize("family", DECODERS)
@pytest.mark.parametrize("side", ["left", "right"])
def test_classifier_equals_lm_scoring_of_label_words(family, side, tokenizer):
    lm = tiny_model(family, tokenizer, layers=3)
    cut_to_first(lm, 2)
    clf = make_classifier(lm, tokenizer, ["neg", "pos"], WORDS, init="lm")
    tokenizer.padding_side = side
    batch = tokenizer(PROMPTS, return_tensors="pt", padding=True)
    with torch.no_grad():
        got = clf(**batch).logits
    torch.testing.assert_close(got, _lm_scores(lm, batch, label_token_ids(tokenizer, WORDS)), rtol=0, atol=1e-5)


@pytest.mark.parametrize("family", ["llama", "qwen3", "opt"])
def test_left_and_right_padding_give_the_same_logits(family, tokenizer):
    # Relative (RoPE) or mask-counted (OPT) positions: torch itself is padding-side independent.
    # GPT-2's absolute positions are handled in the exported graph (see test_export.py).
    lm = tiny_model(family, tokenizer, layers=2)
    clf = make_classifier(lm, tokenizer, ["neg", "pos"], WORDS)
    out = {}
    for side in ("left", "right"):
        tokenizer.padding_side = side
        with torch.no_grad():
            out[side] = clf(**tokenizer(PROMPTS, return_tensors="pt", padding=True)).logits
    torch.testing.assert_close(out["left"], out["right"], rtol=0, atol=1e-5)


def test_classifier_config_names_the_labels(tokenizer):
    clf = make_classifier(tiny_model("llama", tokenizer), tokenizer, ["rotten", "fresh"], WORDS)
    assert clf.config.id2label == {0: "rotten", 1: "fresh"}
    assert clf.config.pad_token_id == tokenizer.pad_token_id
    assert clf.config.architectures == ["LlamaForSequenceClassification"]


def test_label_words_with_the_same_first_token_are_refused(tokenizer):
    with pytest.raises(DataError, match="share a first token"):
        label_token_ids(tokenizer, [" good", " good"])


def _lm_mean_scores(lm, batch, ids):
    """Mean pooling in LM terms: the label words' LM-head logits averaged over each row's real tokens."""
    with torch.no_grad():
        logits = lm(**batch).logits[..., ids]
    mask = batch["attention_mask"].unsqueeze(-1).float()
    return (logits * mask).sum(1) / mask.sum(1)


@pytest.mark.parametrize("family", DECODERS)
def test_mean_pooling_averages_the_real_tokens_with_the_lm_head_rows(family, tokenizer):
    lm = tiny_model(family, tokenizer, layers=3)
    cut_to_first(lm, 1)
    clf = make_classifier(lm, tokenizer, ["neg", "pos"], WORDS, init="lm", pooling="mean")
    batch = tokenizer(PROMPTS, return_tensors="pt", padding=True)  # right padding: rows of three lengths
    with torch.no_grad():
        got = clf(**batch).logits
    torch.testing.assert_close(got, _lm_mean_scores(lm, batch, label_token_ids(tokenizer, WORDS)), rtol=0, atol=1e-5)
    # and it is not the last-token classifier
    last = make_classifier(lm, tokenizer, ["neg", "pos"], WORDS, init="lm")
    with torch.no_grad():
        assert not torch.allclose(last(**batch).logits, got, atol=1e-3)
    assert clf.config.edgecut_pooling == "mean"


def test_mean_pooling_trains_with_the_models_loss_and_copies(tokenizer):
    import copy

    clf = make_classifier(tiny_model("qwen3", tokenizer), tokenizer, ["neg", "pos"], WORDS, pooling="mean")
    batch = tokenizer(PROMPTS, return_tensors="pt", padding=True)
    out = clf(**batch, labels=torch.tensor([1, 0, 1]))
    expected = torch.nn.functional.cross_entropy(out.logits, torch.tensor([1, 0, 1]))
    torch.testing.assert_close(out.loss, expected)
    twin = copy.deepcopy(clf)
    with torch.no_grad():
        torch.testing.assert_close(twin(**batch).logits, out.logits.detach())


def test_last_token_classifier_exports_with_parity_left_or_right_padded(tokenizer, tmp_path):
    """`--pooling last`, the paper's; test_export exports the default (mean) for every family."""
    from edgecut.graph.exporter import export_onnx, torch_logits
    from edgecut.graph.parity import compare_logits, require_parity
    from edgecut.runtime import create_session, pad_batch, run_logits
    from edgecut.targets import load_target

    lm = tiny_model("llama", tokenizer, layers=2)
    clf = make_classifier(lm, tokenizer, ["neg", "pos"], WORDS, pooling="last")
    seqs = [tokenizer(p)["input_ids"] for p in PROMPTS]
    pad = tokenizer.pad_token_id
    export_onnx(clf, pad_batch(seqs[:2], pad), tmp_path / "model.onnx")
    session = create_session(tmp_path / "model.onnx", load_target("cpu"))
    assert [o.name for o in session.get_outputs()] == ["logits"]
    expected = torch_logits(clf, seqs, pad)
    require_parity(compare_logits(expected, run_logits(session, seqs, pad), atol=1e-4))
    # each row alone (no padding) gives its batched logits: the pads are never read
    alone = np.concatenate([run_logits(session, [s], pad) for s in seqs])
    np.testing.assert_allclose(alone, expected, atol=1e-4)
    # left padding, as some servers do, gives the same logits too
    width = max(map(len, seqs))
    left = {
        "input_ids": np.array([[pad] * (width - len(s)) + s for s in seqs], dtype=np.int64),
        "attention_mask": np.array([[0] * (width - len(s)) + [1] * len(s) for s in seqs], dtype=np.int64),
    }
    np.testing.assert_allclose(session.run(["logits"], left)[0], expected, atol=1e-4)


def test_pooling_choices_are_checked(tokenizer):
    with pytest.raises(EdgecutError, match="--pooling max: use one of last, mean"):
        make_classifier(tiny_model("llama", tokenizer), tokenizer, ["neg", "pos"], WORDS, pooling="max")
    with pytest.raises(EdgecutError, match="is for decoders"):
        make_classifier(tiny_model("bert", tokenizer), tokenizer, ["neg", "pos"], WORDS, "random", pooling="mean")
