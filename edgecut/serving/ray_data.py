"""Batch prediction in Ray Data: one `ArtifactClassifier` per worker, over a dataset of any size.

    import ray
    from edgecut.serving.ray_data import ArtifactPredictor

    ds = ray.data.read_csv("reviews.csv")
    labelled = ds.map_batches(
        ArtifactPredictor, fn_constructor_args=("artifact/",), concurrency=2, num_cpus=0.5, batch_size=256
    )
    labelled.write_parquet("labelled/")

Ray builds one `ArtifactPredictor` per actor (`concurrency`), so the artifact is verified and its ONNX Runtime
session opened once per worker, not per batch. Torch-free, like `edgecut.runtime`: the workers need only
`pip install 'edgecut[cpu,ray]'` (no torch is imported) and a path to the artifact every node can read.
Reserve fewer CPUs for the predictors than the cluster has (`num_cpus`): reading and writing need some.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from edgecut.errors import DataError
from edgecut.runtime import ArtifactClassifier

LABEL = "predicted"
SCORE = "score"  # the predicted label's probability
SCORE_OF = "score_{}"  # one column per class, in the artifact's label order


class ArtifactPredictor:
    """A Ray Data batch function: adds `predicted`, `score` and `score_<label>` columns to each batch.

    Each text goes through `ArtifactClassifier.predict`, so a row gets exactly what `edgecut predict` prints
    for it (the same label and scores).
    """

    def __init__(
        self,
        artifact: str | Path,
        text_column: str = "text",
        batch_size: int = 32,
        target: str | None = None,
    ):
        self.classifier = ArtifactClassifier(artifact, target=target)
        self.text_column = text_column
        self.batch_size = batch_size

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, Any]:
        if self.text_column not in batch:
            raise DataError(
                f"the dataset has no {self.text_column!r} column (it has {', '.join(batch) or 'none'}): "
                "pass text_column= in fn_constructor_kwargs"
            )
        texts = [str(text) for text in batch[self.text_column]]
        predictions = self.classifier.predict(texts, batch_size=self.batch_size)
        out = dict(batch)
        out[LABEL] = np.array([p.label for p in predictions], dtype=object)
        out[SCORE] = np.array([p.scores[p.label] for p in predictions], dtype=np.float64)
        for label in self.classifier.labels:
            out[SCORE_OF.format(label)] = np.array([p.scores[label] for p in predictions], dtype=np.float64)
        return out
