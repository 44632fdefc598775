"""Every supported family, cut to one layer, learns a trivially separable task in a few steps.

A family whose one-layer cut cannot learn this is not supported: the test is the guard (a Gemma 3 cut
once predicted the majority class for every text). Settings: `lm` (prompt + label-word head; BERT has no
LM head and takes the random one) and `cls` (plain text + random head), and mean pooling for a decoder.
"""

from __future__ import annotations

import random

import numpy as np
import pytest
from conftest import FAMILIES, FILLER, NEGATIVE, POSITIVE, tiny_model

from edgecut.graph.exporter import torch_logits
from edgecut.model.classifier import make_classifier
from edgecut.model.data import Example, encode_examples
from edgecut.model.finetune import FinetuneResult, Recipe, finetune, get_recipe, train_with_rate_search
from edgecut.model.prompt import PromptFormat
from edgecut.model.prune import cut_to_first
from edgecut.progress import Progress

TEMPLATES = {"lm": "Review: {text}\nSentiment:{label}", "cls": "{text}{label}"}
RECIPE = Recipe(
    "families",
    epochs=4,
    batch_size=8,
    learning_rate=3e-3,
    per_class_cap=1000,
    demonstrations=False,
    max_length=64,
    patience=10,
)


def _rows(n: int, seed: int) -> list[Example]:
    """Two sentiment words among three fillers: the class is in the words, wherever they stand."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        label = i % 2
        words = rng.sample(FILLER, 3) + rng.sample(POSITIVE if label else NEGATIVE, 2)
        rng.shuffle(words)
        rows.append(Example(" ".join(words), label))
    return rows


def _accuracy_after_training(family: str, setting: str, tokenizer, pooling: str = "last") -> float:
    model = tiny_model(family, tokenizer, layers=3)
    cut_to_first(model, 1)
    init = "lm" if setting == "lm" and family != "bert" else "random"
    clf = make_classifier(model, tokenizer, ["negative", "positive"], [" negative", " positive"], init, pooling)
    prompt = PromptFormat(TEMPLATES[setting], (), 64)
    train = encode_examples(tokenizer, prompt, _rows(96, 1))[0]
    val = encode_examples(tokenizer, prompt, _rows(16, 2))[0]
    test = encode_examples(tokenizer, prompt, _rows(64, 3))[0]
    tuned = finetune(clf, tokenizer, train, val, RECIPE).model
    logits = torch_logits(tuned, [f["input_ids"] for f in test], tokenizer.pad_token_id)
    return float((logits.argmax(-1) == np.array([f["labels"] for f in test])).mean())


@pytest.mark.parametrize("setting", ["lm", "cls"])
@pytest.mark.parametrize("family", FAMILIES)
def test_a_one_layer_cut_learns_a_separable_task(family, setting, tokenizer):
    assert _accuracy_after_training(family, setting, tokenizer) >= 0.9


@pytest.mark.parametrize("family", ["llama", "gemma3_text"])
def test_mean_pooling_learns_too(family, tokenizer):
    assert _accuracy_after_training(family, "lm", tokenizer, pooling="mean") >= 0.9


def test_gemma_families_get_the_learning_rate_their_cuts_learn_at():
    assert get_recipe("cpu", model_type="gemma3_text").learning_rate == 1e-4
    assert get_recipe("cpu", model_type="llama").learning_rate == get_recipe("cpu").learning_rate == 5e-4
    assert get_recipe("cpu", model_type="gemma3_text", learning_rate=3e-4).learning_rate == 3e-4  # --lr wins
    assert get_recipe("paper", model_type="gemma3_text").learning_rate == 5e-5  # already below the cap


def test_each_family_s_rule_chooses_its_learning_rate_and_says_which():
    """An encoder (BERT-like) trains at an encoder's rate, not a decoder cut's 5e-4 (MiniLM at 5e-4 was the peers
    table's unfair row); the recipe records which rule chose the value; `--lr auto`'s grid surrounds it."""
    from edgecut.model.finetune import ENCODER_LEARNING_RATE, LEARNING_RATE_RULES, learning_rate_grid

    cases = {
        ("llama", False, False, None): (5e-4, "recipe"),
        ("bert", True, False, None): (ENCODER_LEARNING_RATE, "encoder"),
        ("bert", True, False, 2e-3): (2e-3, "given"),
        ("gemma3_text", False, False, None): (1e-4, "family"),
        ("llama", False, True, None): (1e-4, "full-depth"),
    }
    for (family, encoder, full, lr), (rate, rule) in cases.items():
        recipe = get_recipe("cpu", model_type=family, full_depth=full, encoder=encoder, learning_rate=lr)
        assert (recipe.learning_rate, recipe.learning_rate_rule) == (rate, rule), family
        assert rule in LEARNING_RATE_RULES
    assert 2e-5 <= ENCODER_LEARNING_RATE <= 1e-4
    assert learning_rate_grid(get_recipe("cpu", model_type="bert", encoder=True)) == [1e-5, 5e-5, 1e-4]
    assert learning_rate_grid(get_recipe("cpu")) == [1e-4, 5e-4, 1e-3]


class _Heard(Progress):
    def __init__(self):
        self.warnings: list[str] = []

    def warn(self, text: str) -> None:
        self.warnings.append(text)


def _search(scores: dict[float, float]) -> tuple[dict, list[str]]:
    """`--lr auto` over the cpu recipe's grid where the run at each rate scores `scores[rate]` on validation."""

    def train_one(classifier, recipe, run_name):
        score = scores[recipe.learning_rate]
        return FinetuneResult(classifier, [score], score, steps=1, seconds=1.0)

    heard = _Heard()
    _, winner, record = train_with_rate_search(get_recipe("cpu"), True, object(), train_one, heard)
    assert winner.learning_rate == record["chosen"]
    return record, heard.warnings


def test_lr_auto_says_when_the_best_rate_is_an_end_of_its_grid():
    """A winner at the grid's highest (or lowest) rate that beat its neighbour means a better rate may lie beyond
    the grid: the user is told which --lr to try and the manifest's record says so; a winner inside the grid,
    or a flat curve, gives no warning."""
    record, warnings = _search({1e-4: 0.55, 5e-4: 0.60, 1e-3: 0.62})
    assert (record["chosen"], record["edge"]) == (1e-3, "highest")
    assert len(warnings) == 1 and "highest" in warnings[0] and "--lr 0.002" in warnings[0]
    record, warnings = _search({1e-4: 0.70, 5e-4: 0.60, 1e-3: 0.50})
    assert (record["chosen"], record["edge"]) == (1e-4, "lowest")
    assert "--lr 5e-05" in warnings[0]
    record, warnings = _search({1e-4: 0.55, 5e-4: 0.65, 1e-3: 0.62})
    assert (record["chosen"], record["edge"], warnings) == (5e-4, None, [])
    record, warnings = _search({1e-4: 0.5, 5e-4: 0.5, 1e-3: 0.5})  # nothing learnt: no direction to follow
    assert (record["chosen"], record["edge"], warnings) == (1e-4, None, [])


def test_a_full_depth_run_trains_at_a_lower_learning_rate_unless_lr_is_given():
    """Every layer kept (the sweep's `full`, a teacher): at most 1e-4, measured on SmolLM2's 30 layers."""
    assert get_recipe("cpu", model_type="llama", full_depth=True).learning_rate == 1e-4
    assert get_recipe("cpu", model_type="llama", full_depth=False).learning_rate == 5e-4
    assert get_recipe("cpu", full_depth=True, learning_rate=3e-4).learning_rate == 3e-4  # --lr wins
    assert get_recipe("paper", full_depth=True).learning_rate == 5e-5  # already below the cap
