"""A teacher for task distillation: any edgecut artifact, run on ONNX Runtime with its own tokenizer and prompt.

Teacher and student need to agree only on the classes (names and order), so a full-depth export of the
same model, a deeper cut or a MiniLM export can all teach a one-layer cut. The teacher's logits on the
training texts (and on extra unlabeled texts) become the soft targets of `edgecut.model.finetune.Distillation`.
Torch-free.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edgecut.errors import DataError, EdgecutError, ProviderUnavailableError
from edgecut.textfile import read_text

TEACHER_KIND = "a teacher must be an intact edgecut artifact with the same labels (export one with --layers full)"


class Teacher:
    """An opened teacher artifact, passed through the stages: its manifest read once, its model hashed once
    (when it is opened, before any student model loads), one ONNX Runtime session for every text it labels."""

    def __init__(self, artifact_dir: Path, labels: Sequence[str] | None = None):
        """Args:
            artifact_dir: what `edgecut export -o` wrote for the teacher.
            labels: the student's class names, in class order (None: do not compare).

        Raises:
            ArtifactError: not an artifact, damaged (a file changed since export), or unloadable; the message
                names --teacher and says what a teacher must be.
            EdgecutError: the teacher's labels differ from `labels`.
        """
        from edgecut.errors import ArtifactError

        self.directory = Path(artifact_dir)
        try:
            self.classifier = _open_on_this_machine(self.directory)
        except ArtifactError as e:
            raise ArtifactError(f"--teacher {self.directory}: {_reason(e)}; {TEACHER_KIND}") from e
        if labels is not None:
            check_teacher_labels(self.classifier.labels, labels, self.directory)

    def logits(self, texts: Sequence[str], batch_size: int = 32, on_batch: Callable[[int], None] | None = None):
        """The teacher's logits [len(texts), classes] for raw texts, in input order.

        Each text goes through the teacher's own prompt (template, demonstrations, max_length) and tokenizer;
        texts are batched by prompt length so little compute goes to padding.
        """
        from edgecut.runtime import pad_batch

        if batch_size < 1:
            raise EdgecutError(f"batch size {batch_size} must be at least 1")
        teacher = self.classifier
        encoded = [teacher.encode(text)[0] for text in texts]
        order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))
        out = np.zeros((len(encoded), len(teacher.labels)), dtype=np.float32)
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            feed = pad_batch([encoded[i] for i in rows], teacher.pad_id)
            out[rows] = teacher.session.run(["logits"], feed)[0]
            if on_batch:
                on_batch(len(rows))
        return out

    def record(self) -> dict[str, Any]:
        """What the student's manifest records about its teacher: where it was, which model file exactly
        (the sha256 verified when it was opened), and how good it was on its own test rows."""
        manifest = self.classifier.manifest
        metrics = manifest.get("metrics") or {}
        layers = manifest.get("layers") or {}
        return {
            "path": str(self.directory.resolve()),
            "model_file": manifest.model_file,
            "sha256": manifest["files"][manifest.model_file],
            "source_model": (manifest.get("source_model") or {}).get("source"),
            "architecture": manifest.get("architecture"),
            "layers": len(layers.get("kept", [])) or None,
            "precision": manifest.get("precision"),
            "accuracy": metrics.get("onnx_accuracy"),
            "test_rows": metrics.get("rows", (manifest.get("data") or {}).get("test")),
        }


def _open_on_this_machine(artifact_dir: Path):
    """The artifact on its recorded target, or on the CPU when this machine lacks that target's provider
    (the logits are the same numbers either way; only the speed differs). Files are verified first."""
    from edgecut.runtime import ArtifactClassifier

    try:
        return ArtifactClassifier(artifact_dir)
    except ProviderUnavailableError:
        return ArtifactClassifier(artifact_dir, target="cpu")


def _reason(error: Exception) -> str:
    """An artifact error's first clause, without its own advice (the teacher's advice replaces it)."""
    text = str(error)
    for advice in (": it is not an edgecut artifact", ": give the artifact directory", ": the artifact is"):
        text = text.split(advice)[0] if advice in text else text
    return text.replace(" (re-export it)", "").strip()


def check_teacher_labels(teacher_labels: Sequence[str], labels: Sequence[str], artifact_dir: Path) -> None:
    """Refuse a teacher whose classes differ from the student's in names or order.

    Raises:
        EdgecutError: the label lists differ.
    """
    if list(teacher_labels) != list(labels):
        same_set = sorted(teacher_labels) == sorted(labels)
        how = "the same labels in another order" if same_set else "other labels"
        raise EdgecutError(
            f"--teacher {artifact_dir} has {how} ({', '.join(teacher_labels)}) than this export "
            f"({', '.join(labels)}): export the teacher with --labels {','.join(labels)}"
        )


def teacher_logits(
    artifact_dir: Path,
    texts: Sequence[str],
    labels: Sequence[str],
    batch_size: int = 32,
    on_batch: Callable[[int], None] | None = None,
) -> np.ndarray:
    """`Teacher(artifact_dir, labels).logits(texts)`: for a caller with one batch of texts.

    Raises:
        ArtifactError: not a readable artifact.
        EdgecutError: the teacher's labels differ from `labels`; batch_size below 1.
    """
    return Teacher(Path(artifact_dir), labels).logits(texts, batch_size, on_batch)


def teacher_record(artifact_dir: Path) -> dict[str, Any]:
    """`Teacher(artifact_dir).record()`.

    Raises:
        ArtifactError: not a readable artifact, or its model file is missing or changed.
    """
    return Teacher(Path(artifact_dir)).record()


def read_unlabeled(path: Path, text_column: str = "text") -> list[str]:
    """Unlabeled texts for the teacher to label: one per line, or the `text_column` of a CSV/TSV/JSONL file.

    Blank lines and empty texts are skipped.

    Raises:
        DataError: a missing or non-UTF-8 file, a CSV/JSONL without the column, a bad JSON line, no texts.
    """
    from edgecut.runtime import read_texts

    path = Path(path)
    content = read_text(path, f"--unlabeled {path}", "a text file (one text a line), CSV or JSONL")
    suffix = path.suffix.lower()
    if suffix in (".csv", ".tsv"):
        reader = csv.DictReader(io.StringIO(content), delimiter="\t" if suffix == ".tsv" else ",")
        columns = reader.fieldnames or []
        if text_column not in columns:
            raise DataError(
                f"--unlabeled {path} has no column '{text_column}' (columns: {', '.join(columns) or 'none'}): "
                "set --text-column"
            )
        texts = [str(row[text_column]).strip() for row in reader if row.get(text_column)]
    else:
        jsonl = suffix in (".jsonl", ".ndjson", ".json")
        texts = [t.strip() for t in read_texts(content.splitlines(), jsonl, text_column, f"--unlabeled {path}")]
    texts = [t for t in texts if t]
    if not texts:
        raise DataError(f"--unlabeled {path} has no texts: give one text a line (or a CSV/JSONL text column)")
    return texts
