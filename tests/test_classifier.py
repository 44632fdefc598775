import pytest
import torch
from conftest import DECODERS, tiny_model

from edgecut.classifier import label_token_ids, make_classifier
from edgecut.errors import DataError
from edgecut.prune import cut_to_first

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
