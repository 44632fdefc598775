"""Run ONNX classifiers and artifacts with onnxruntime, numpy and tokenizers only (no torch).

Validation, checking and serving all create their sessions here, so the rule "run on the providers the
target names, or fail" lives in one place.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgecut.errors import EdgecutError, ProviderUnavailableError
from edgecut.prompt import PromptFormat
from edgecut.targets import Target, load_target

MANIFEST = "edgecut.json"
_INSTALL_HINT = {
    "CUDAExecutionProvider": "install onnxruntime-gpu instead of onnxruntime "
    "(pip uninstall -y onnxruntime && pip install 'edgecut[gpu]') on a machine with an NVIDIA GPU",
    "TensorrtExecutionProvider": "install onnxruntime-gpu and TensorRT on a machine with an NVIDIA GPU",
}


def _ort():
    try:
        import onnxruntime
    except ImportError as e:
        raise EdgecutError("ONNX Runtime is not installed: pip install 'edgecut[cpu]' (or 'edgecut[gpu]')") from e
    return onnxruntime


def check_target_available(target: Target, available: Iterable[str] | None = None) -> None:
    """Fail early when this onnxruntime build lacks the target's first provider."""
    have = list(available) if available is not None else _ort().get_available_providers()
    wanted = target.providers[0]
    if wanted not in have:
        hint = _INSTALL_HINT.get(wanted, f"install an onnxruntime build with {wanted}")
        raise ProviderUnavailableError(
            f"target '{target.name}' needs {wanted}, which this ONNX Runtime lacks "
            f"(it has {', '.join(have)}): {hint}, or use --target cpu"
        )


def check_session_providers(target: Target, used: Sequence[str]) -> None:
    """ORT quietly falls back to CPU when a provider fails to initialise; refuse that."""
    wanted = target.providers[0]
    if not used or used[0] != wanted:
        raise ProviderUnavailableError(
            f"target '{target.name}' asked for {wanted} but ONNX Runtime started the session on "
            f"{', '.join(used) or 'nothing'} (driver or CUDA libraries missing?): fix the GPU setup "
            "or use --target cpu"
        )


def create_session(model_path: str | Path, target: Target):
    """An InferenceSession on exactly the target's providers, or a ProviderUnavailableError."""
    ort = _ort()
    check_target_available(target)
    options = ort.SessionOptions()
    options.graph_optimization_level = {
        "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    }[target.graph_optimization]
    session = ort.InferenceSession(str(model_path), options, providers=target.provider_list())
    check_session_providers(target, session.get_providers())
    return session


def pad_batch(sequences: Sequence[Sequence[int]], pad_id: int) -> dict[str, np.ndarray]:
    """Right-pad token id lists into the int64 `input_ids` / `attention_mask` the graph takes."""
    width = max(len(s) for s in sequences)
    ids = np.full((len(sequences), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(sequences), width), dtype=np.int64)
    for i, s in enumerate(sequences):
        ids[i, : len(s)] = s
        mask[i, : len(s)] = 1
    return {"input_ids": ids, "attention_mask": mask}


def run_logits(
    session,
    sequences: Sequence[Sequence[int]],
    pad_id: int,
    batch_size: int = 16,
    on_batch: Callable[[int], None] | None = None,
) -> np.ndarray:
    """Logits [n, classes] for token id lists, batched."""
    out = []
    for start in range(0, len(sequences), batch_size):
        chunk = sequences[start : start + batch_size]
        out.append(session.run(["logits"], pad_batch(chunk, pad_id))[0])
        if on_batch:
            on_batch(len(chunk))
    return np.concatenate(out, axis=0)


@dataclass(frozen=True)
class Latency:
    batch_size: int
    p50_ms: float
    p90_ms: float
    runs: int


def measure_latency(
    session, sequences: Sequence[Sequence[int]], pad_id: int, batch_size: int, warmup: int = 10, runs: int = 50
) -> Latency:
    """Wall-clock latency of one `session.run` on real prompts: warm-up, then median and p90."""
    batches = [pad_batch(sequences[i : i + batch_size], pad_id) for i in range(0, len(sequences), batch_size)]
    batches = [b for b in batches if len(b["input_ids"]) == batch_size] or batches
    for i in range(warmup):
        session.run(["logits"], batches[i % len(batches)])
    times = []
    for i in range(runs):
        feed = batches[i % len(batches)]
        start = time.perf_counter()
        session.run(["logits"], feed)
        times.append((time.perf_counter() - start) * 1e3)
    return Latency(batch_size, float(np.percentile(times, 50)), float(np.percentile(times, 90)), runs)


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


@dataclass(frozen=True)
class Prediction:
    text: str
    label: str
    scores: dict[str, float]
    truncated: bool
    latency_ms: float


class ArtifactClassifier:
    """Loads an edgecut artifact directory and classifies texts with it."""

    def __init__(self, directory: str | Path, target: str | Path | None = None):
        from tokenizers import Tokenizer

        self.directory = Path(directory)
        self.manifest: dict[str, Any] = json.loads((self.directory / MANIFEST).read_text(encoding="utf-8"))
        self.target = load_target(target or self.manifest["target"]["name"])
        self.session = create_session(self.directory / self.manifest["model_file"], self.target)
        self.tokenizer = Tokenizer.from_file(str(self.directory / "tokenizer.json"))
        self.prompt = PromptFormat.from_dict(self.manifest["prompt"])
        self.labels: list[str] = list(self.manifest["labels"])
        self.pad_id = int(self.manifest["pad_token_id"])

    def encode(self, text: str) -> tuple[list[int], bool]:
        tk = self.tokenizer
        return self.prompt.encode(
            text,
            encode=lambda s: tk.encode(s).ids,
            encode_plain=lambda s: tk.encode(s, add_special_tokens=False).ids,
            decode=lambda ids: tk.decode(list(ids)),
        )

    def predict(self, texts: Sequence[str]) -> list[Prediction]:
        results = []
        for text in texts:
            ids, truncated = self.encode(text)
            start = time.perf_counter()
            logits = self.session.run(["logits"], pad_batch([ids], self.pad_id))[0][0]
            elapsed = (time.perf_counter() - start) * 1e3
            probs = softmax(logits)
            scores = {label: float(p) for label, p in zip(self.labels, probs, strict=True)}
            results.append(Prediction(text, self.labels[int(np.argmax(logits))], scores, truncated, elapsed))
        return results
