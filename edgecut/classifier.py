"""Turn a (slim) causal LM into a `*ForSequenceClassification` model.

The paper's LM setting scores the LM-head logits at the last position restricted to the first token of
each label word. A sequence-classification head whose rows are exactly those LM-head rows computes the
same numbers (tested), and it exports to ONNX, runs in ORT and loads in optimum as an ordinary
classifier. Encoders (BERT) have no LM head, so they get a freshly initialised head.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

from edgecut.errors import DataError, EdgecutError


def label_token_ids(tokenizer, label_words: Sequence[str]) -> list[int]:
    """First BPE token of each label word (with its leading space); they must be distinct."""
    ids = []
    for word in label_words:
        pieces = tokenizer(word, add_special_tokens=False)["input_ids"]
        if not pieces:
            raise DataError(f"label word {word!r} encodes to no tokens: choose another word")
        ids.append(pieces[0])
    if len(set(ids)) != len(ids):
        raise DataError(f"label words {list(label_words)} share a first token: choose words that start differently")
    return ids


def make_classifier(model, tokenizer, labels: Sequence[str], label_words: Sequence[str] | None, init: str = "lm"):
    """A sequence classifier sharing `model`'s (copied) body.

    Args:
        model: causal LM (or base encoder) already cut to its kept layers.
        labels: class names, stored as `id2label` in the config.
        label_words: words whose LM-head rows initialise the head (init="lm").
        init: "lm" (the paper's LM setting) or "random" (P-CLS / CLS, and encoders).
    """
    from transformers import AutoModelForSequenceClassification

    if tokenizer.pad_token_id is None:
        # The classifier finds each row's last real token by comparing with pad_token_id.
        tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
        if tokenizer.pad_token_id is None:
            raise EdgecutError("the tokenizer has no pad, eos or unk token to pad with")
    tokenizer.padding_side = "right"  # edgecut pads right everywhere (encoders pool the first token)
    config = copy.deepcopy(model.config)
    config.num_labels = len(labels)
    config.id2label = dict(enumerate(labels))
    config.label2id = {label: i for i, label in enumerate(labels)}
    config.pad_token_id = tokenizer.pad_token_id
    config.use_cache = False
    config.problem_type = "single_label_classification"
    classifier = AutoModelForSequenceClassification.from_config(config)
    classifier.config.architectures = [type(classifier).__name__]
    classifier.base_model.load_state_dict(model.base_model.state_dict())
    if init == "lm":
        head = model.get_output_embeddings()
        if head is None:
            raise EdgecutError(f"{type(model).__name__} has no LM head to initialise from: use the random init")
        import torch

        ids = label_token_ids(tokenizer, label_words or [])
        score = classifier.score
        with torch.no_grad():
            score.weight.copy_(head.weight[ids])
            if getattr(score, "bias", None) is not None:
                score.bias.copy_(head.bias[ids] if getattr(head, "bias", None) is not None else 0.0)
    elif init != "random":
        raise EdgecutError(f"unknown head init '{init}': use 'lm' or 'random'")
    return classifier.eval()
