"""What a user would pick instead of a cut LLM, measured on the same split: the floor for every export and sweep.

- `tfidf`: TF-IDF (word 1–2-grams, sublinear tf) + logistic regression, scikit-learn. Cheap enough (seconds)
  that every `edgecut export` fits it on its own training rows and reports it beside the model.
- `fasttext`: fastText supervised (word bigrams), lr and epochs chosen on validation from a small grid, from a
  wheel on the package index (`pip install fasttext-numpy2-wheel`); the published MR result (the source of
  rotten-tomatoes) is ~76 %.
- `model2vec`: a static model distilled from a local sentence-transformer directory (all-MiniLM-L6-v2) with
  model2vec's own distillation, then its classifier trained on the same rows, the learning rate chosen on
  validation from a small grid and the epochs by early stopping on the same validation rows. Its `distill`
  extra pins transformers < 5.4, so it runs in its own environment (benchmarks/peers.py --model2vec-python).

A baseline whose package is missing raises `BaselineUnavailable`: callers print one `SKIP:` line and go on.
fastText and model2vec train in a fresh process (`baseline_in_a_process`), TF-IDF in the caller's.
They all see the same training rows (after the per-class cap) and the same test rows as the exports. The
other baseline, all-MiniLM-L6, is an ordinary export of an encoder (see `edgecut.sweeps.sweep.ENCODER_BASELINES`).
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import pickle
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgecut.errors import EdgecutError
from edgecut.model.data import Dataset, DataSpec, load_dataset

THROUGHPUT_BATCH = 32


class BaselineUnavailable(EdgecutError):
    """A baseline whose package is not installed here; the message says how to get it."""


@dataclass(frozen=True)
class BaselineResult:
    name: str
    seed: int
    accuracy: float
    p50_ms: float  # one text at a time, like batch 1, end to end (text in, label out)
    parameters: int  # weights of the model (for TF-IDF: features x classes + biases)
    runtime: str = "scikit-learn"
    artifact_mb: float | None = None  # the model as it would ship (pickle, .bin, ONNX)
    int8_mb: float | None = None  # the rest: only baselines exported as ONNX artifacts
    int8_p50_ms: float | None = None
    train_seconds: float | None = None  # fitting, on the training rows
    texts_per_s: float | None = None  # throughput at THROUGHPUT_BATCH texts per call
    test_rows: int | None = None
    note: str | None = None  # what a reader of the number must know (fastText retried at a lower lr)
    tuned: dict[str, Any] | None = None  # the tuning rule, the grid with each point's validation score, the winner

    def as_manifest(self, description: str = "") -> dict[str, Any]:
        """The manifest's `baseline` record (None fields left out)."""
        record = {k: v for k, v in asdict(self).items() if v is not None and k not in ("int8_mb", "int8_p50_ms")}
        return record | ({"description": description} if description else {})


# The one tuning rule every model in a comparison follows: a few hyper-parameters from a small stated grid,
# chosen on the validation split, scored once on the test split. For TF-IDF + logistic regression: the features
# (word 1-2-grams, or character 1-3-grams for text without spaces between words) and the inverse
# regularisation C. The grid and the winner go into the result (and the manifest).
TFIDF_FEATURES: dict[str, dict[str, Any]] = {
    "word 1-2-grams": {"analyzer": "word", "ngram_range": (1, 2)},
    "char 1-3-grams": {"analyzer": "char", "ngram_range": (1, 3)},
}
TFIDF_C = (0.3, 3.0, 30.0)
TFIDF_DESCRIPTION = (
    "TF-IDF (word 1-2-grams or char 1-3-grams, sublinear tf) + logistic regression on the same training rows, "
    f"features and C in {{{', '.join(f'{c:g}' for c in TFIDF_C)}}} chosen on the validation rows"
)
TUNING_RULE = "validation accuracy over the grid"


def choose_on_validation(grid: list[dict[str, Any]]) -> dict[str, Any]:
    """The one tuning rule's record (a result's `tuned`): the grid with each point's `validation_accuracy`, and
    the winner, the first point with the best one. A point without a score (fastText's diverged ones) is
    recorded but never chosen, so every baseline is chosen the same way.

    Raises:
        ValueError: no point of the grid has a score.
    """
    scored = [g for g in grid if g.get("validation_accuracy") is not None]
    if not scored:
        raise ValueError("no grid point has a validation accuracy")
    return {"rule": TUNING_RULE, "chosen": max(scored, key=lambda g: g["validation_accuracy"]), "grid": grid}


TFIDF_DEFAULT_SECONDS = 120.0  # the floor's time limit when the export has no --time-budget
# The linear model holds classes x features weights: 10,000 classes over 200k n-grams would be 16 GB. Features
# are capped (the most frequent kept) so the model stays under this many weights, and the result says so.
TFIDF_MAX_WEIGHTS = 20_000_000


def _split_texts(dataset: Dataset) -> tuple[list[str], list[int], list[str], np.ndarray]:
    train_texts = [ex.text for ex in dataset.train]
    train_labels = [ex.label for ex in dataset.train]
    test_texts = [ex.text for ex in dataset.test]
    return train_texts, train_labels, test_texts, np.array([ex.label for ex in dataset.test])


def _timings(predict: Callable[[Sequence[str]], object], texts: Sequence[str], runs: int) -> tuple[float, float]:
    """p50 ms per single text, and texts/s at THROUGHPUT_BATCH, on real test texts (after one warm-up call)."""
    predict(texts[:1])
    single = []
    for i in range(runs):
        start = time.perf_counter()
        predict([texts[i % len(texts)]])
        single.append((time.perf_counter() - start) * 1e3)
    batch = [texts[i % len(texts)] for i in range(THROUGHPUT_BATCH)]
    calls = max(1, runs // 10)
    start = time.perf_counter()
    for _ in range(calls):
        predict(batch)
    per_call = (time.perf_counter() - start) / calls
    return float(np.median(single)), THROUGHPUT_BATCH / per_call


def tfidf_baseline(
    dataset: Dataset,
    seed: int,
    runs: int = 200,
    seconds: float | None = TFIDF_DEFAULT_SECONDS,
    on_point: Callable[[str], None] | None = None,
) -> BaselineResult:
    """The tuned floor: every point of the features x C grid fitted on `dataset.train`, the one with the best
    validation accuracy scored on `dataset.test` and timed. A few seconds per point on 8000 rows.

    Bounded: fitting stops at `seconds` (None: no limit), between points or between solver epochs within
    one, and the best point so far is kept, with a note saying what was left out. `on_point` is called with
    a short description after each grid point (a progress bar).

    Raises:
        BaselineUnavailable: scikit-learn is not installed.
    """
    try:
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression
    except ImportError as e:
        raise BaselineUnavailable("the tfidf baseline needs scikit-learn: pip install scikit-learn") from e

    train_texts, train_labels, test_texts, truth = _split_texts(dataset)
    val_texts, val_truth = [ex.text for ex in dataset.validation], np.array([ex.label for ex in dataset.validation])
    start = time.perf_counter()
    deadline = None if seconds is None else start + seconds
    grid: list[dict[str, Any]] = []
    best: tuple[float, Any, Any] | None = None  # (validation accuracy, vectorizer, classifier)
    stopped = None
    classes = max(2, len(set(train_labels)))
    cap = max(1000, TFIDF_MAX_WEIGHTS // classes)
    # many classes make each solver epoch long: check the clock after every epoch, not every 50
    chunk = 50 if classes <= 20 else 1
    capped = []
    for features, kwargs in TFIDF_FEATURES.items():
        vectorizer = TfidfVectorizer(sublinear_tf=True, min_df=1, dtype=np.float32, max_features=cap, **kwargs)
        x_train = vectorizer.fit_transform(train_texts)
        if len(vectorizer.vocabulary_) >= cap:
            capped.append(features)
        x_val = vectorizer.transform(val_texts) if val_texts else None
        for c in TFIDF_C:
            if deadline is not None and time.perf_counter() >= deadline and best is not None:
                stopped = f"the time limit ({seconds:g} s) stopped the grid after {len(grid)} of {grid_size()} points"
                break
            linear, converged = _fit_bounded(LogisticRegression, x_train, train_labels, c, seed, deadline, chunk=chunk)
            if not converged:
                stopped = f"the time limit ({seconds:g} s) stopped the solver at C={c:g} ({features}) unconverged"
            score = float((linear.predict(x_val) == val_truth).mean()) if x_val is not None else 0.0
            grid.append({"features": features, "C": c, "validation_accuracy": score})
            if best is None or score > best[0]:
                best = (score, vectorizer, linear)
            if on_point:
                on_point(f"{features}, C={c:g}: validation {score:.1%}")
            if not converged:
                break
        if stopped:
            break
    assert best is not None
    if capped:
        limit = f"{classes} classes x features <= {TFIDF_MAX_WEIGHTS:,} weights"
        kept = f"the {cap} most frequent {' and '.join(capped)} kept ({limit})"
        stopped = f"{stopped}; {kept}" if stopped else kept
    train_seconds = time.perf_counter() - start
    _, vectorizer, linear = best

    def predict(texts: Sequence[str]):
        return linear.predict(vectorizer.transform(texts))

    accuracy = float((predict(test_texts) == truth).mean())
    p50, throughput = _timings(predict, test_texts, runs)
    return BaselineResult(
        "tfidf",
        seed,
        accuracy,
        p50,
        int(linear.coef_.size + linear.intercept_.size),
        artifact_mb=(len(pickle.dumps(vectorizer)) + len(pickle.dumps(linear))) / 1e6,
        train_seconds=train_seconds,
        texts_per_s=throughput,
        test_rows=len(test_texts),
        note=stopped,
        tuned=choose_on_validation(grid),
    )


def grid_size() -> int:
    """Points of the TF-IDF floor's grid."""
    return len(TFIDF_FEATURES) * len(TFIDF_C)


def _fit_bounded(estimator, x, y, c: float, seed: int, deadline: float | None, epochs: int = 200, chunk: int = 50):
    """saga logistic regression for at most `epochs` epochs, `chunk` at a time (warm start), stopping at
    `deadline`: (classifier, whether it converged). saga: single-threaded and fast on sparse n-grams; lbfgs
    took 17-36 s on bbc-news's 281k features (2 loaded cores) for the same accuracy."""
    import warnings

    from sklearn.exceptions import ConvergenceWarning

    model = estimator(C=c, solver="saga", tol=1e-3, max_iter=chunk, warm_start=True, random_state=seed)
    done = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        while done < epochs:
            model.fit(x, y)
            done += chunk
            if int(np.max(model.n_iter_)) < chunk:  # converged within this chunk
                return model, True
            if deadline is not None and time.perf_counter() >= deadline:
                return model, False
    return model, True  # the epoch cap, as max_iter=200 before


# fastText's grid under the one tuning rule: learning rate x epochs, word bigrams fixed (its paper's setting).
FASTTEXT_LR = (0.1, 0.5, 1.0)
FASTTEXT_EPOCHS = (5, 25)
FASTTEXT_DESCRIPTION = (
    "fastText supervised (word bigrams) on the same training rows, "
    f"lr in {{{', '.join(f'{lr:g}' for lr in FASTTEXT_LR)}}} x epochs in "
    f"{{{', '.join(str(e) for e in FASTTEXT_EPOCHS)}}} chosen on the validation rows"
)


def fasttext_baseline(
    dataset: Dataset,
    seed: int,
    learning_rates: Sequence[float] = FASTTEXT_LR,
    epochs: Sequence[int] = FASTTEXT_EPOCHS,
    word_ngrams: int = 2,
    dim: int = 50,
    buckets: int = 200_000,
    runs: int = 200,
) -> BaselineResult:
    """fastText supervised on the same rows (word bigrams, the setting of its text-classification paper), tuned
    by the one rule: every point of `learning_rates` x `epochs` trained on `dataset.train`, the one with the best
    validation accuracy scored on `dataset.test` and timed.

    Trains on one thread with a fixed seed so a seed gives one number. fastText's default 2 M hash buckets
    for the bigrams make an 800 MB model; 200 k buckets of 50 dimensions make a 40 MB one.

    fastText stops with "Encountered NaN" when its SGD diverges (seen at high learning rates, and once in a
    long benchmark process at lr 0.5): such a point is recorded as diverged and left out of the choice, and the
    result's `note` names it. Only when every point diverges is the baseline unavailable.

    Raises:
        BaselineUnavailable: no fastText module (pip install fasttext-numpy2-wheel), or every grid point diverged.
    """
    if importlib.util.find_spec("fasttext") is None:
        raise BaselineUnavailable("fastText is not installed: pip install fasttext-numpy2-wheel")
    import fasttext

    train_texts, train_labels, test_texts, truth = _split_texts(dataset)
    val_texts, val_truth = [ex.text for ex in dataset.validation], np.array([ex.label for ex in dataset.validation])

    def line(text: str) -> str:  # fastText reads one example a line, and refuses newlines in predict
        return " ".join(text.split())

    def predict_with(trained, texts: Sequence[str]) -> list[int]:
        labels, _ = trained.predict([line(t) for t in texts])
        return [int(found[0].removeprefix("__label__")) for found in labels]

    grid: list[dict[str, Any]] = []
    best: tuple[float, Any] | None = None  # (validation accuracy, model)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="edgecut-fasttext-") as scratch:
        data = Path(scratch) / "train.txt"
        data.write_text("".join(f"__label__{y} {line(t)}\n" for t, y in zip(train_texts, train_labels, strict=True)))
        for lr in learning_rates:
            for epoch in epochs:
                try:
                    trained = fasttext.train_supervised(
                        input=str(data),
                        epoch=epoch,
                        lr=lr,
                        wordNgrams=word_ngrams,
                        dim=dim,
                        bucket=buckets,
                        minCount=1,
                        thread=1,
                        seed=seed,
                        verbose=0,
                    )
                    score = (
                        float((np.array(predict_with(trained, val_texts)) == val_truth).mean()) if val_texts else 0.0
                    )
                except RuntimeError as e:
                    if "NaN" not in str(e):
                        raise
                    grid.append({"lr": lr, "epochs": epoch, "validation_accuracy": None, "diverged": True})
                    continue
                grid.append({"lr": lr, "epochs": epoch, "validation_accuracy": score})
                if best is None or score > best[0]:
                    best = (score, trained)
        diverged = [f"lr {g['lr']:g} x {g['epochs']} epochs" for g in grid if g.get("diverged")]
        if best is None:
            raise BaselineUnavailable(f"fastText diverged (NaN) at every grid point: {', '.join(diverged)}")
        train_seconds = time.perf_counter() - start
        model = best[1]
        accuracy = float((np.array(predict_with(model, test_texts)) == truth).mean())
        model.save_model(str(Path(scratch) / "model.bin"))
        size_mb = (Path(scratch) / "model.bin").stat().st_size / 1e6

    p50, throughput = _timings(lambda texts: predict_with(model, texts), test_texts, runs)
    parameters = int(model.get_input_matrix().size + model.get_output_matrix().size)
    note = f"diverged (NaN), left out of the choice: {', '.join(diverged)}" if diverged else None
    return BaselineResult(
        "fasttext",
        seed,
        accuracy,
        p50,
        parameters,
        runtime="fasttext",
        artifact_mb=size_mb,
        train_seconds=train_seconds,
        texts_per_s=throughput,
        test_rows=len(test_texts),
        note=note,
        tuned=choose_on_validation(grid),
    )


# model2vec's grid under the one tuning rule: its default learning rate (1e-3) and a factor of about 3 either side.
# Three points are enough because the epochs need no grid: model2vec's early stopping chooses them on the same
# validation rows (patience 5; the weights of the best validation check are kept). Each point is a whole fit
# (tens of seconds); the distillation runs once for all of them.
MODEL2VEC_LR = (3e-4, 1e-3, 3e-3)
MODEL2VEC_PATIENCE = 5
MODEL2VEC_DESCRIPTION = (
    "model2vec distilled from all-MiniLM-L6-v2, its classifier trained on the same training rows, "
    f"lr in {{{', '.join(f'{lr:g}' for lr in MODEL2VEC_LR)}}} chosen on the validation rows, "
    f"epochs by early stopping on them (patience {MODEL2VEC_PATIENCE})"
)


def fit_model2vec_on_validation(
    make: Callable[[], Any],
    train: tuple[Sequence[str], Sequence[str]],
    validation: tuple[Sequence[str], Sequence[str]],
    seed: int,
    learning_rates: Sequence[float] = MODEL2VEC_LR,
) -> tuple[Any, dict[str, Any]]:
    """model2vec's classifier tuned by the one rule: a fresh classifier from `make` fitted on the (texts, labels)
    of `train` at each learning rate, early stopping on `validation`; returns the winner and its `tuned` record.

    model2vec does not report how many epochs early stopping let it train, so each point counts them from the
    training rows its forward passes saw (a torch forward hook); the weights kept are those of the best
    validation check within them.
    """
    texts, labels = train
    val_texts, val_labels = validation
    grid: list[dict[str, Any]] = []
    fitted = []
    for lr in learning_rates:
        classifier = make()
        seen = [0]

        def count(module: Any, _inputs: Any, output: Any, seen: list[int] = seen) -> None:
            if module.training:  # a training batch; validation and predict run in eval mode
                seen[0] += len(output)

        hook = classifier.register_forward_hook(count)
        try:
            classifier.fit(
                list(texts),
                list(labels),
                learning_rate=lr,
                early_stopping_patience=MODEL2VEC_PATIENCE,
                X_val=list(val_texts) or None,  # None: model2vec would split its own off the training rows
                y_val=list(val_labels) or None,
                random_seed=seed,
            )
        finally:
            hook.remove()
        predicted = [str(p) for p in classifier.predict(list(val_texts))] if val_texts else []
        score = float(np.mean([p == str(y) for p, y in zip(predicted, val_labels, strict=True)])) if predicted else 0.0
        grid.append({"lr": lr, "epochs": math.ceil(seen[0] / max(1, len(texts))), "validation_accuracy": score})
        fitted.append(classifier)
    tuned = choose_on_validation(grid)
    return fitted[next(i for i, g in enumerate(grid) if g is tuned["chosen"])], tuned


def model2vec_baseline(
    dataset: Dataset, seed: int, sentence_model: Path, runs: int = 200, learning_rates: Sequence[float] = MODEL2VEC_LR
) -> BaselineResult:
    """model2vec: distil a static model from `sentence_model` (a local sentence-transformer directory) once, train
    its classifier on the same rows at each of `learning_rates` (`fit_model2vec_on_validation`), score the test
    rows with the one validation chose.

    model2vec's distillation needs transformers < 5.4, so this runs in its own environment (see
    benchmarks/peers.py, which calls it there through --model2vec-python).

    Raises:
        BaselineUnavailable: model2vec (with its distill and train extras) is not installed here.
    """
    missing = [m for m in ("model2vec", "sklearn") if importlib.util.find_spec(m) is None]
    if missing or importlib.util.find_spec("model2vec.distill") is None:
        raise BaselineUnavailable(
            "model2vec is not installed here; it needs its own environment (its distill extra pins "
            "transformers < 5.4): bash scripts/model2vec_env.sh, then benchmarks/peers.py --model2vec-python "
            ".venv-model2vec/bin/python"
        )
    import torch
    from model2vec.distill import distill
    from model2vec.train import StaticModelForClassification

    train_texts, train_labels, test_texts, truth = _split_texts(dataset)
    torch.manual_seed(seed)
    start = time.perf_counter()
    static = distill(model_name=str(sentence_model), pca_dims=256)
    classifier, tuned = fit_model2vec_on_validation(
        lambda: StaticModelForClassification.from_static_model(model=static),
        (train_texts, [dataset.labels[y] for y in train_labels]),
        ([ex.text for ex in dataset.validation], [dataset.labels[ex.label] for ex in dataset.validation]),
        seed,
        learning_rates,
    )
    train_seconds = time.perf_counter() - start
    index = {label: i for i, label in enumerate(dataset.labels)}

    def predict(texts: Sequence[str]) -> list[int]:
        return [index[str(label)] for label in classifier.predict(list(texts))]

    accuracy = float((np.array(predict(test_texts)) == truth).mean())
    p50, throughput = _timings(predict, test_texts, runs)
    parameters = int(sum(p.numel() for p in classifier.parameters()))
    return BaselineResult(
        "model2vec",
        seed,
        accuracy,
        p50,
        parameters,
        runtime="model2vec",
        artifact_mb=parameters * 4 / 1e6,
        train_seconds=train_seconds,
        texts_per_s=throughput,
        test_rows=len(test_texts),
        tuned=tuned,
    )


BASELINES: dict[str, Callable[..., BaselineResult]] = {
    "tfidf": tfidf_baseline,
    "fasttext": fasttext_baseline,
    "model2vec": model2vec_baseline,
}


def baseline_in_a_process(
    name: str, spec: DataSpec, python: str | None = None, pythonpath: Path | None = None, **options: Any
) -> BaselineResult:
    """`BASELINES[name]` on `spec`'s splits, trained in a fresh process of `python` (default: this interpreter).

    fastText, trained inside a long process that had exported and timed models, gave another accuracy (88.2
    instead of 93.2 % at bbc-news seed 42) or stopped with "Encountered NaN"; alone it is reproducible, so
    `sweep` and benchmarks/peers.py train it alone. model2vec runs with the interpreter of its own environment
    (its distill extra pins an older transformers); `pythonpath` makes edgecut importable there.

    Raises:
        BaselineUnavailable: the baseline cannot run there (its package is missing), or its process failed.
    """
    request = {"name": name, "spec": asdict(spec), "options": {k: str(v) for k, v in options.items()}}
    env = os.environ | ({"PYTHONPATH": str(pythonpath)} if pythonpath else {})
    python = python or sys.executable
    code = "from edgecut.sweeps.baselines import answer_request; answer_request()"
    done = subprocess.run(
        [python, "-c", code], input=json.dumps(request), capture_output=True, text=True, env=env, check=False
    )
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise BaselineUnavailable(f"{name} in {python} failed: {last}")
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    if "unavailable" in answer:
        raise BaselineUnavailable(answer["unavailable"])
    return BaselineResult(**answer["result"])


def answer_request() -> None:
    """The fresh process's side of `baseline_in_a_process`: the request on stdin, one JSON line on stdout."""
    request = json.loads(sys.stdin.read())
    spec = DataSpec(**{k: tuple(v) if isinstance(v, list) else v for k, v in request["spec"].items()})
    options = {k: Path(v) for k, v in request["options"].items()}  # the options are paths (sentence_model)
    try:
        result = BASELINES[request["name"]](load_dataset(spec), spec.seed, **options)
    except BaselineUnavailable as e:
        print(json.dumps({"unavailable": str(e)}))
        return
    print(json.dumps({"result": asdict(result)}))
