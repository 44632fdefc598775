"""What a user would pick instead of a cut LLM, measured on the same split: the floor for the sweep table.

`tfidf`: TF-IDF (word 1–2-grams, sublinear tf) + logistic regression, scikit-learn. It sees the same
training rows (after the per-class cap) and the same test rows as the sweep's exports. The other baseline,
all-MiniLM-L6, is an ordinary export of an encoder (see `edgecut.sweep.ENCODER_BASELINES`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from edgecut.data import Dataset
from edgecut.errors import EdgecutError


@dataclass(frozen=True)
class BaselineResult:
    name: str
    seed: int
    accuracy: float
    p50_ms: float  # one text at a time, like batch 1
    parameters: int  # weights of the model (for TF-IDF: features x classes + biases)
    runtime: str = "scikit-learn"
    artifact_mb: float | None = None  # the rest: only baselines exported as ONNX artifacts
    int8_mb: float | None = None
    int8_p50_ms: float | None = None


def tfidf_baseline(dataset: Dataset, seed: int, runs: int = 200) -> BaselineResult:
    """Fit on `dataset.train`, score on `dataset.test`, time single-text predictions."""
    try:
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
    except ImportError as e:
        raise EdgecutError("the tfidf baseline needs scikit-learn: pip install scikit-learn") from e

    model = make_pipeline(
        TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=1),
        LogisticRegression(max_iter=2000, random_state=seed),
    )
    model.fit([ex.text for ex in dataset.train], [ex.label for ex in dataset.train])
    texts = [ex.text for ex in dataset.test]
    predicted = model.predict(texts)
    accuracy = float((predicted == np.array([ex.label for ex in dataset.test])).mean())
    times = []
    for i in range(runs):
        start = time.perf_counter()
        model.predict([texts[i % len(texts)]])
        times.append((time.perf_counter() - start) * 1e3)
    linear = model[-1]
    return BaselineResult(
        "tfidf", seed, accuracy, float(np.median(times)), int(linear.coef_.size + linear.intercept_.size)
    )
