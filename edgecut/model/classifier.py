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
    """One token per label word, distinct across words: the token whose LM-head row scores that class.

    The classifier scores the position right after the prompt, which ends just before the label word
    (the template ends with `{label}`), so the natural choice is each word's first token: for " negative"
    and " positive" that is "Ġnegative"/"Ġpositive", exactly the token the LM would emit next, and the
    head equals the paper's "LM logits restricted to the label words".

    Some words share their first tokens. Scripts written without spaces (Chinese, Japanese, Thai) in a
    byte-level BPE start every " 正面" with the same "Ġ" token (or with a shared UTF-8 lead byte), and
    SentencePiece tokenizers start every " word" with "▁". A token all words share scores every class
    the same, so it cannot initialise a classifier. Each word therefore takes its token at the first
    position where its tokens differ from every other word's: the first token when they already differ
    (unchanged for ordinary words), the first token after a shared prefix otherwise. The score still
    comes from the last prompt position; for such a word its LM-head row is the LM's score for the
    distinguishing token one step early, which is a good initial direction and is fine-tuned from there
    (the space or lead byte it skips would be predicted for every class alike).

    Raises DataError when a word encodes to nothing, or two words have no token that tells them apart
    (identical words, or the chosen tokens coincide).
    """
    encoded = []
    for word in label_words:
        pieces = list(tokenizer(word, add_special_tokens=False)["input_ids"])
        if not pieces:
            raise DataError(f"label word {word!r} encodes to no tokens: choose another word")
        encoded.append(pieces)
    # The longest prefix a word shares with any other is the one it shares with a neighbour in sorted
    # order, so thousands of classes cost a sort rather than all pairs.
    order = sorted(range(len(encoded)), key=lambda i: encoded[i])
    shared = [0] * len(encoded)
    for a, b in zip(order, order[1:], strict=False):
        n = _common_prefix(encoded[a], encoded[b])
        shared[a], shared[b] = max(shared[a], n), max(shared[b], n)
    ids = [pieces[min(n, len(pieces) - 1)] for pieces, n in zip(encoded, shared, strict=True)]
    seen: dict[int, int] = {}
    for i, token in enumerate(ids):
        if token in seen:
            a, b = label_words[seen[token]], label_words[i]
            raise DataError(
                f"label words {a!r} and {b!r} share a first token and no later token tells them apart: "
                "choose words that start differently"
            )
        seen[token] = i
    return ids


def _common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = 0
    while n < len(a) and n < len(b) and a[n] == b[n]:
        n += 1
    return n


POOLINGS = ("last", "mean")
# `auto`, the default: mean for decoders, measured better than the last token on both built-in sets at N=1 and 2
# (docs/exporting.md, "Pooling"); encoders keep their own first-token pooling.
POOLING_CHOICES = ("auto", *POOLINGS)


def resolve_pooling(pooling: str, is_encoder: bool) -> str:
    """The pooling a classifier gets: `auto` is mean for a decoder and the model's own for an encoder ("last",
    which make_classifier leaves as the family's *ForSequenceClassification pools it)."""
    if pooling not in POOLING_CHOICES:
        raise EdgecutError(f"--pooling {pooling}: use one of {', '.join(POOLING_CHOICES)}")
    if pooling == "auto":
        return "last" if is_encoder else "mean"
    return pooling


def make_classifier(
    model,
    tokenizer,
    labels: Sequence[str],
    label_words: Sequence[str] | None,
    init: str = "lm",
    pooling: str = "last",
):
    """A sequence classifier sharing `model`'s (copied) body.

    Args:
        model: causal LM (or base encoder) already cut to its kept layers.
        labels: class names, stored as `id2label` in the config.
        label_words: words whose LM-head rows initialise the head (init="lm").
        init: "lm" (the paper's LM setting) or "random" (P-CLS / CLS, and encoders).
        pooling: for decoders, which hidden state the head reads: "last" (the last real token, as the
            paper and HF's *ForSequenceClassification) or "mean" (the mean over the real tokens).

    Raises:
        EdgecutError: an unknown init or pooling, mean pooling for an encoder, no LM head for init="lm".
    """
    from transformers import AutoModelForSequenceClassification

    from edgecut.model.load import ENCODER_TYPES

    if pooling not in POOLINGS:
        raise EdgecutError(f"--pooling {pooling}: use one of {', '.join(POOLINGS)}")
    if pooling != "last" and model.config.model_type in ENCODER_TYPES:
        raise EdgecutError(f"--pooling {pooling} is for decoders: {model.config.model_type} pools its first token")

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
    if pooling == "mean":
        classifier.__class__ = mean_pooled(type(classifier))
        classifier.config.edgecut_pooling = "mean"  # config.json says the head reads the mean, not the last token
    return classifier.eval()


def mean_pooled(cls: type) -> type:
    """`cls` (a decoder's *ForSequenceClassification) with a head that reads the mean of the real tokens'
    final hidden states instead of the last one's.

    A one-layer causal model sees the whole text at the last position through a single attention step; the
    mean carries every position's own state as well. The head is the same linear layer, so the `lm`
    initialisation applies unchanged. The forward takes exactly what the exporter passes (input_ids,
    attention_mask, position_ids), so it exports through torch.onnx to the same signature.
    """
    name = f"MeanPooled{cls.__name__}"
    if name not in globals():  # one subclass per class, importable by name (pickling, copying)
        globals()[name] = type(name, (cls,), {"forward": _mean_pooled_forward, "__module__": __name__})
    return globals()[name]


def _mean_pooled_forward(self, input_ids=None, attention_mask=None, position_ids=None, labels=None, **kwargs):
    import torch
    from transformers.modeling_outputs import SequenceClassifierOutput

    body = getattr(self, self.base_model_prefix)
    hidden = body(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids).last_hidden_state
    if attention_mask is None:
        attention_mask = torch.ones(hidden.shape[:2], dtype=torch.long, device=hidden.device)
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)  # [batch, hidden]; pads never count
    logits = self.score(pooled)
    loss = None
    if labels is not None:
        loss = torch.nn.functional.cross_entropy(logits.float(), labels.view(-1))
    return SequenceClassifierOutput(loss=loss, logits=logits)
