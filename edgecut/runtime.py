"""Run ONNX classifiers and artifacts with onnxruntime, numpy and tokenizers only (no torch).

Validation, checking and serving all create their sessions here, so the rule "run on the providers the
target names, or fail" lives in one place.
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import numpy as np

from edgecut.artifacts.manifest import TOKENIZER, Manifest, member, read_manifest, recorded_target, verify_files
from edgecut.errors import ArtifactError, DataError, EdgecutError, ProviderUnavailableError
from edgecut.targets import Target, load_target
from edgecut.textfile import decode_text, read_text, require_unicode

_INSTALL_HINT = {
    "CUDAExecutionProvider": "install onnxruntime-gpu instead of onnxruntime "
    "(pip uninstall -y onnxruntime && pip install 'edgecut[gpu]') on a machine with an NVIDIA GPU",
}


_GPU_PROVIDERS = {"CUDAExecutionProvider", "TensorrtExecutionProvider"}


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
        hint = target.requires or _INSTALL_HINT.get(wanted, f"install an onnxruntime build with {wanted}")
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


def preload_gpu_libraries(target: Target) -> None:
    """Load the CUDA/cuDNN libraries of pip's nvidia-* wheels before a GPU session, as onnxruntime-gpu asks.

    When CUDA comes from pip wheels rather than the system, nothing else loads them in a process without
    torch (checking, serving), and ORT's CUDA provider cannot start. ORT's messages go to stderr so that
    stdout stays the command's output.
    """
    ort = _ort()
    if not set(target.providers) & _GPU_PROVIDERS or not hasattr(ort, "preload_dlls"):
        return
    # Best effort: if CUDA still cannot start, check_session_providers says so in one line.
    with contextlib.redirect_stdout(sys.stderr), contextlib.suppress(OSError, RuntimeError):
        ort.preload_dlls()


def create_session(model_path: str | Path, target: Target):
    """An InferenceSession on exactly the target's providers, or a ProviderUnavailableError."""
    ort = _ort()
    check_target_available(target)
    preload_gpu_libraries(target)
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
    session,
    sequences: Sequence[Sequence[int]],
    pad_id: int,
    batch_size: int,
    warmup: int = 10,
    runs: int = 50,
    io_binding: bool = False,
) -> Latency:
    """Wall-clock latency of one run on real prompts: warm-up, then median and p90.

    With `io_binding`, inputs are copied to the session's device once and the output stays there, as a
    GPU server does; the time is then the graph's own, without host<->device copies of each call.
    """
    batches = [pad_batch(sequences[i : i + batch_size], pad_id) for i in range(0, len(sequences), batch_size)]
    batches = [b for b in batches if len(b["input_ids"]) == batch_size] or batches
    calls = [_bound_call(session, b) for b in batches] if io_binding else [_plain_call(session, b) for b in batches]
    for i in range(warmup):
        calls[i % len(calls)]()
    times = []
    for i in range(runs):
        call = calls[i % len(calls)]
        start = time.perf_counter()
        call()
        times.append((time.perf_counter() - start) * 1e3)
    return Latency(batch_size, float(np.percentile(times, 50)), float(np.percentile(times, 90)), runs)


def _plain_call(session, feed: dict[str, np.ndarray]) -> Callable[[], object]:
    return lambda: session.run(["logits"], feed)


def _bound_call(session, feed: dict[str, np.ndarray]) -> Callable[[], object]:
    ort = _ort()
    provider = session.get_providers()[0]
    device = "cuda" if provider in _GPU_PROVIDERS else "cpu"
    binding = session.io_binding()
    for name, array in feed.items():
        binding.bind_ortvalue_input(name, ort.OrtValue.ortvalue_from_numpy(array, device, 0))
    binding.bind_output("logits", device)
    return lambda: session.run_with_iobinding(binding)


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


@dataclass(frozen=True)
class Prediction:
    """One classified text.

    `latency_ms` is the model's share of the batch the text ran in: that batch's `session.run` wall time
    divided by the number of texts in it (tokenizing is not included). At batch size 1 it is the text's own
    run time; at larger sizes it is what one text cost in throughput terms, not the time it waited.
    """

    text: str
    label: str
    scores: dict[str, float]
    truncated: bool
    latency_ms: float


def load_tokenizer(path: Path):
    """A `tokenizers.Tokenizer` from tokenizer.json that encodes exactly as training did.

    A tokenizer.json may carry its own padding and truncation (all-MiniLM-L6's pads every text to 128 with
    [PAD]); transformers switches those off for an unpadded call, the `tokenizers` library applies them.
    Left on, every prompt would grow pad ids that the attention mask marks as text. PromptFormat does the
    truncation and `pad_batch` the padding, as at export.
    """
    from tokenizers import Tokenizer

    try:
        tokenizer = Tokenizer.from_file(str(path))
    except Exception as e:  # tokenizers raises a bare Exception for a file it cannot parse
        raise ArtifactError(f"{path} cannot be read ({e}): the artifact is damaged; re-export it") from e
    tokenizer.no_padding()
    tokenizer.no_truncation()
    return tokenizer


class ArtifactClassifier:
    """Loads an edgecut artifact directory and classifies texts with it."""

    def __init__(self, directory: str | Path, target: str | Path | None = None, verify: bool = True):
        """Args:
            directory: what `edgecut export -o` wrote.
            target: a target name or .toml path; default: the target recorded in the manifest.
            verify: check the model and tokenizer files against their sha256 first (about 0.5 s per
                128 MB here); off only where the caller just did it (`edgecut check`).

        Raises:
            ArtifactError: not an artifact, a manifest this edgecut cannot read, or a file missing, changed
                since export or unloadable.
            TargetError: the target is unknown, or its provider is not available here.
        """

        self.directory = Path(directory)
        self.manifest: Manifest = read_manifest(self.directory)
        self.target = load_target(target) if target else recorded_target(self.manifest)
        model = self.manifest.model_path
        tokenizer = member(self.directory, TOKENIZER, "tokenizer")
        for path in (model, tokenizer):
            if not path.is_file():
                raise ArtifactError(f"{path} is missing: the artifact is incomplete; re-export it")
        if verify:  # hashed once here, so a model changed after export is never used
            verify_files(self.manifest, (self.manifest.model_file, TOKENIZER))
        self.session = _open_session(model, self.target)
        self.tokenizer = load_tokenizer(tokenizer)
        self.prompt = self.manifest.prompt_format
        self.labels: list[str] = self.manifest.labels
        self.pad_id = self.manifest.pad_token_id

    def encode(self, text: str) -> tuple[list[int], bool]:
        """Token ids of the prompt for `text` (template, demonstrations, query cut to max_length), and
        whether the query was cut.

        Raises:
            DataError: `text` holds a lone surrogate (JSON can escape one): it is not Unicode text.
        """
        require_unicode(text, "a text")
        return self.prompt.encode_with(self.tokenizer, text)

    def predict(self, texts: Sequence[str], batch_size: int = 32) -> list[Prediction]:
        """Classify `texts`, `batch_size` at a time; results come back in input order.

        Texts are sorted by prompt length (in tokens) before they are cut into batches, so each batch pads
        to a length close to all of its rows and little compute goes to padding. Each prediction's
        `latency_ms` is its batch's `session.run` time divided by the batch's size.

        Raises:
            EdgecutError: batch_size below 1.
        """
        if batch_size < 1:
            raise EdgecutError(f"--batch-size {batch_size} must be at least 1")
        encoded = [self.encode(text) for text in texts]
        # A stable sort: equal lengths keep input order, so a batch's rows are deterministic.
        order = sorted(range(len(texts)), key=lambda i: len(encoded[i][0]))
        results: list[Prediction | None] = [None] * len(texts)
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            feed = pad_batch([encoded[i][0] for i in rows], self.pad_id)
            began = time.perf_counter()
            logits = self.session.run(["logits"], feed)[0]
            per_text_ms = (time.perf_counter() - began) * 1e3 / len(rows)
            for i, row in zip(rows, logits, strict=True):
                scores = {label: float(p) for label, p in zip(self.labels, softmax(row), strict=True)}
                label = self.labels[int(np.argmax(row))]
                results[i] = Prediction(texts[i], label, scores, encoded[i][1], per_text_ms)
        return [r for r in results if r is not None]


def _open_session(model: Path, target: Target):
    """create_session, with ONNX Runtime's load errors for a damaged file turned into an ArtifactError."""
    from onnxruntime.capi import onnxruntime_pybind11_state as ort_errors

    load_errors = (ort_errors.Fail, ort_errors.InvalidProtobuf, ort_errors.InvalidGraph, ort_errors.NoSuchFile)
    try:
        return create_session(model, target)
    except load_errors as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ArtifactError(
            f"ONNX Runtime cannot load {model} ({first}): the artifact is damaged; `edgecut check` says what is wrong"
        ) from e


def read_texts(lines: Iterable[str], jsonl: bool, field: str = "text", source: str = "input") -> list[str]:
    """Texts to classify: one per non-empty line, or the `field` of one JSON object per line.

    Raises:
        DataError: a JSONL line that is not an object with a string `field`.
    """
    texts = []
    for n, line in enumerate(lines, 1):
        line = line.rstrip("\r\n")
        if not line.strip():
            continue
        if not jsonl:
            texts.append(line)
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            raise DataError(f"{source}:{n} is not a JSON object ({e.msg}): write one object per line") from e
        if not isinstance(record, dict) or not isinstance(record.get(field), str):
            raise DataError(f"{source}:{n} has no string field '{field}': set --text-field or fix the line")
        texts.append(require_unicode(record[field], f"{source}:{n}"))
    return texts


def read_inputs(texts: Sequence[str], file: Path | None, jsonl: bool, field: str, stdin: IO[str]) -> list[str]:
    """What `edgecut predict` classifies: arguments ("-" reads stdin there), a file, or stdin alone.

    Raises:
        DataError: no texts, text that is not UTF-8 (arguments, file or stdin), a file that cannot be read.
    """
    out: list[str] = []
    for n, t in enumerate(texts, 1):  # "-" reads stdin at its place among the arguments
        if t == "-":
            out += _stdin_texts(jsonl, field, stdin)
            continue
        try:
            t.encode("utf-8")
        except UnicodeEncodeError:  # bytes that were not UTF-8 reach argv as lone surrogates
            raise DataError(f"text argument {n} is not valid UTF-8: pass UTF-8 text, or use --file") from None
        out.append(t)
    if file is not None:
        content = read_text(file, f"--file {file}", "a text or JSONL file")
        out += read_texts(content.splitlines(), jsonl or _is_jsonl(file), field, str(file))
    if not texts and file is None:
        out += _stdin_texts(jsonl, field, stdin)
    if not out:
        raise DataError("no texts to classify: the input was empty")
    return out


def _is_jsonl(file: Path) -> bool:
    return file.suffix.lower() in (".jsonl", ".ndjson")


def _stdin_texts(jsonl: bool, field: str, stdin: IO[str]) -> list[str]:
    if stdin.isatty():
        raise DataError("no texts: give them as arguments, with --file, or on stdin (one a line)")
    stream = getattr(stdin, "buffer", None)
    text = decode_text(stream.read(), "stdin", "UTF-8 text") if stream is not None else stdin.read()
    return read_texts(text.splitlines(), jsonl, field, "stdin")
