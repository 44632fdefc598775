"""Export the classifier to ONNX with torch.onnx (the dynamo exporter) and check parity with torch.

Signature: inputs `input_ids`, `attention_mask` (int64, [batch, sequence], both dynamic), output
`logits` [batch, classes]. The dynamo exporter was chosen over the legacy TorchScript one after
measuring both (benchmarks/exporters.py, docs/results/more.md): equal ORT speed, and it is the path torch maintains.
"""

from __future__ import annotations

import contextlib
import io
import logging
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

OPSET = 18
INPUT_NAMES = ("input_ids", "attention_mask")
OUTPUT_NAMES = ("logits",)
EXTERNAL_DATA_BYTES = 2 * 1024**3  # protobuf's hard limit: bigger graphs keep weights in model.onnx.data


@dataclass(frozen=True)
class ExportedGraph:
    """The ONNX graph torch wrote (not the artifact: that is pipeline.ExportResult)."""

    path: Path
    opset: int
    exporter: str
    external_data: bool
    seconds: float


def logits_only(classifier):
    """The classifier as a module of (input_ids, attention_mask) -> logits, as the graph computes it."""
    import inspect

    import torch

    # Decoders get position ids counted from the attention mask, so a server that left-pads gets the same
    # logits as one that right-pads (GPT-2's learned positions would otherwise shift). Encoders pool the
    # first token and must be right-padded anyway.
    from edgecut.model.load import ENCODER_TYPES

    positions = (
        "position_ids" in inspect.signature(classifier.forward).parameters
        and classifier.config.model_type not in ENCODER_TYPES
    )

    class LogitsOnly(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, input_ids, attention_mask):
            extra = {}
            if positions:
                extra["position_ids"] = (attention_mask.cumsum(-1) - 1).clamp(min=0)
            return self.inner(input_ids=input_ids, attention_mask=attention_mask, **extra).logits

    return LogitsOnly(classifier).eval()


def export_onnx(classifier, sample: dict[str, np.ndarray], path: Path, opset: int = OPSET) -> ExportedGraph:
    """Write `path` (plus `path.data` when the weights pass 2 GB). `sample` is a padded batch of ≥2 rows."""
    import torch

    start = time.monotonic()
    classifier = classifier.eval().float().to("cpu")
    size = sum(p.numel() * p.element_size() for p in classifier.parameters())
    external = size >= EXTERNAL_DATA_BYTES
    batch, seq = torch.export.Dim("batch"), torch.export.Dim("sequence")
    args = tuple(torch.from_numpy(np.ascontiguousarray(sample[name])) for name in INPUT_NAMES)
    # The exporter is chatty (progress lines, warnings about torchvision ops); keep the user's terminal clean.
    quiet = io.StringIO()
    with warnings.catch_warnings(), contextlib.redirect_stdout(quiet), torch.no_grad():
        warnings.simplefilter("ignore")
        logging.getLogger("torch.onnx").setLevel(logging.ERROR)
        torch.onnx.export(
            logits_only(classifier),
            args,
            str(path),
            input_names=list(INPUT_NAMES),
            output_names=list(OUTPUT_NAMES),
            dynamic_shapes={"input_ids": {0: batch, 1: seq}, "attention_mask": {0: batch, 1: seq}},
            opset_version=opset,
            dynamo=True,
            external_data=external,
            optimize=True,
        )
    return ExportedGraph(
        Path(path), opset, f"torch.onnx dynamo (torch {torch.__version__})", external, time.monotonic() - start
    )


def torch_logits(
    classifier, sequences: list[list[int]], pad_id: int, batch_size: int = 16, on_batch=None
) -> np.ndarray:
    """Logits from the torch model for token id lists, padded exactly as the runtime pads them."""
    import torch

    from edgecut.runtime import pad_batch

    out = []
    classifier = classifier.eval()
    with torch.no_grad():
        for start in range(0, len(sequences), batch_size):
            chunk = sequences[start : start + batch_size]
            feed = {k: torch.from_numpy(v) for k, v in pad_batch(chunk, pad_id).items()}
            out.append(classifier(**feed).logits.float().numpy())
            if on_batch:
                on_batch(len(chunk))
    return np.concatenate(out, axis=0)


def save_graph(source: Path, destination: Path) -> Path:
    """Copy a graph to `destination`, weights inline below 2 GB, else in `destination.data`."""
    import onnx

    model = onnx.load(str(source))
    external = sum(len(t.raw_data) for t in model.graph.initializer) >= EXTERNAL_DATA_BYTES
    onnx.save_model(model, str(destination), save_as_external_data=external, location=destination.name + ".data")
    return destination
