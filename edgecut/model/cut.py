"""The cut itself: choose N layers of a loaded model, keep only those, put the classification head on.

One public stage function, `cut_model`, used by the export recipe (`edgecut.pipeline`) and by the
benchmarks, so that a benchmark's model is built exactly as an export builds it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class CutModel:
    classifier: Any  # the torch classifier, ready to fine-tune
    selection: Any  # edgecut.model.select.Selection: which layers, and their scores
    pruned: Any  # edgecut.model.prune.PruneResult: depth and parameters before and after
    init: str  # "lm" (the LM head's rows of the label words) or "random"
    pooling: str  # what the head reads: "mean" or "last" (encoders: their own first token)


def cut_model(
    loaded,
    layers: int,
    labels: Sequence[str],
    label_words: Sequence[str],
    *,
    select: str = "first",
    setting: str = "lm",
    pooling: str = "auto",
    calibration: Sequence[Sequence[int]] = (),
) -> CutModel:
    """Keep `layers` layers of `loaded.model` (in place) chosen by `select`, then make the classifier.

    Args:
        loaded: an `edgecut.model.load.LoadedModel`.
        select: first (the paper), block-influence or angular; the last two score layers on `calibration`
            (token id sequences of training prompts).
        setting: lm starts the head from the label words' LM-head rows; pcls and cls from a random head
            (encoders have no LM head: always random).
        pooling: auto, mean or last (`edgecut.model.classifier.resolve_pooling`).
    """
    from edgecut.model.classifier import make_classifier, resolve_pooling
    from edgecut.model.prune import keep_layers
    from edgecut.model.select import select_layers

    tok = loaded.tokenizer
    selection = select_layers(loaded.model, layers, select, list(calibration), tok.pad_token_id)
    pruned = keep_layers(loaded.model, selection.kept)
    init = "lm" if setting == "lm" and not loaded.is_encoder else "random"
    pooling = resolve_pooling(pooling, loaded.is_encoder)
    classifier = make_classifier(loaded.model, tok, list(labels), list(label_words), init=init, pooling=pooling)
    return CutModel(classifier, selection, pruned, init, pooling)
