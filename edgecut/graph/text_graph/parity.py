"""The string graph against `tokenizers` and against the artifact's id graph, on the same texts."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgecut.graph.text_graph.probes import PROBES
from edgecut.graph.text_graph.session import session_options
from edgecut.graph.text_graph.spec import TokenizerSpec, UnsupportedTokenizerError


def check_ids(front, tokenizer_path: Path, prompt, spec: TokenizerSpec) -> int:
    """The front graph's ids for the probes, the demonstrations and a query long enough to be cut must be
    exactly `tokenizers`' (PromptFormat.encode); otherwise the tokenizer is refused, naming the text."""
    import onnxruntime as ort

    from edgecut.runtime import load_tokenizer

    tk = load_tokenizer(tokenizer_path)
    texts = [*PROBES, *spec.probes, *(t for t, _ in prompt.demonstrations)]
    texts.append(" ".join(["a long review of a film that goes on and on, café 🎬"] * (prompt.max_length // 4 + 8)))
    session = ort.InferenceSession(front.SerializeToString(), session_options(), providers=["CPUExecutionProvider"])
    ids, mask, truncated = session.run(None, {"text": np.array(texts, dtype=object)})
    for text, row, m, cut in zip(texts, ids, mask, truncated, strict=True):
        expected, was_cut = prompt.encode_with(tk, text)
        if row[m == 1].tolist() != expected or bool(cut) != was_cut:
            raise UnsupportedTokenizerError(
                f"the artifact's tokenizer ({spec.description}) gives other ids in the graph than `tokenizers` "
                f"for {text[:60]!r}: the string graph cannot reproduce it; serve the artifact with token ids"
            )
    return len(texts)


@dataclass(frozen=True)
class TextGraphParity:
    texts: int
    ids_equal: int  # texts whose in-graph ids are exactly `ArtifactClassifier.encode`'s
    labels_equal: int  # texts with the same label from model_text.onnx and the id graph
    max_abs_logit_diff: float


def compare_text_graph(
    artifact_dir: Path, text_model: Path, texts: Sequence[str], providers: Sequence[str] = ("CPUExecutionProvider",)
) -> TextGraphParity:
    """model_text.onnx against the artifact's id graph on the same texts: ids, labels and logits.

    For `edgecut check` on an artifact with a string graph (pass the golden or test texts): the ids must
    all be equal and the logits within the target's parity tolerance.
    """
    import onnx
    import onnxruntime as ort

    from edgecut.runtime import ArtifactClassifier, pad_batch

    clf = ArtifactClassifier(artifact_dir, target="cpu" if list(providers) == ["CPUExecutionProvider"] else None)
    model = onnx.load(str(text_model))
    model.graph.output.extend(
        onnx.helper.make_tensor_value_info(name, onnx.TensorProto.INT64, None)
        for name in ("input_ids", "attention_mask")
    )
    session = ort.InferenceSession(model.SerializeToString(), session_options(), providers=list(providers))
    ids_equal = labels_equal = 0
    worst = 0.0
    for start in range(0, len(texts), 32):
        chunk = list(texts[start : start + 32])
        logits, labels, ids, mask = session.run(
            ["logits", "label", "input_ids", "attention_mask"], {"text": np.array(chunk, dtype=object)}
        )
        encoded = [clf.encode(t)[0] for t in chunk]
        reference = clf.session.run(["logits"], pad_batch(encoded, clf.pad_id))[0]
        ids_equal += sum(row[m == 1].tolist() == e for row, m, e in zip(ids, mask, encoded, strict=True))
        labels_equal += sum(str(a) == clf.labels[int(b)] for a, b in zip(labels, reference.argmax(-1), strict=True))
        worst = max(worst, float(np.abs(logits.astype(np.float64) - reference).max()))
    return TextGraphParity(len(texts), ids_equal, labels_equal, worst)
