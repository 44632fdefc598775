"""Helpers for the check/predict/deploy tests: export a tiny artifact through the CLI, and edit copies of it."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

from typer.testing import CliRunner

from edgecut.cli import app
from edgecut.pipeline import ExportSettings, Progress

TEMPLATE = "Review: {text}\nSentiment:{label}"
# The CLI in a process of its own: `[sys.executable, "-c", RUN_CLI, *args]`.
RUN_CLI = "from edgecut.cli import main; main()"


def export_tiny(model_dir: Path, data: Path, out: Path, *extra: str) -> Path:
    """`edgecut export` of a 1-layer tiny model on the tiny CSV, as tests/test_cli.py does."""
    args = ["export", "--model", str(model_dir), "--data", str(data), "--layers", "1"]
    args += ["--labels", "negative,positive", "--template", TEMPLATE, "--lr", "2e-3", "--batch-size", "8"]
    args += ["--test-size", "40", "-o", str(out), *extra]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    return out


def tiny_settings(model_dir: Path, data: Path, out: Path, **changes) -> ExportSettings:
    """`ExportSettings` for a tiny model on the tiny CSV (the labels, batch and test size every Python-API
    test uses); `changes` sets the rest."""
    base = dict(labels=("negative", "positive"), batch_size=8, test_size=40)
    return ExportSettings(model=str(model_dir), data=str(data), output=out, **(base | changes))


def copy_artifact(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def edit_manifest(directory: Path, **changes) -> dict:
    path = directory / "edgecut.json"
    manifest = json.loads(path.read_text())
    manifest.update(changes)
    path.write_text(json.dumps(manifest, indent=2))
    return manifest


def rehash(directory: Path) -> None:
    """Record the current sha256 of every file, as if the export had written them (a 'valid' edit)."""
    from edgecut.artifacts.manifest import file_hashes

    edit_manifest(directory, files=file_hashes(directory))


def negate_logits(src: Path, dst: Path) -> Path:
    """A copy whose graph returns -logits: a self-consistent artifact that predicts the opposite class.

    Its golden logits and file hashes are rewritten, so it passes every integrity and parity check and
    only the quality gates can tell it is worse.
    """
    import numpy as np
    import onnx
    import onnxruntime as ort

    copy_artifact(src, dst)
    model = onnx.load(str(dst / "model.onnx"))
    (producer,) = [n for n in model.graph.node if "logits" in n.output]
    producer.output[list(producer.output).index("logits")] = "logits_raw"
    model.graph.node.append(onnx.helper.make_node("Neg", ["logits_raw"], ["logits"]))
    onnx.save(model, str(dst / "model.onnx"))
    golden = dict(np.load(dst / "golden.npz"))
    session = ort.InferenceSession(str(dst / "model.onnx"), providers=["CPUExecutionProvider"])
    feed = {"input_ids": golden["input_ids"], "attention_mask": golden["attention_mask"]}
    np.savez(dst / "golden.npz", **feed, logits=session.run(["logits"], feed)[0])
    rehash(dst)
    return dst


class StopAtFineTuning(Exception):
    """Raised by `NotesUntilFineTuning` as the fine-tune stage starts."""


class NotesUntilFineTuning(Progress):
    """A Progress that records every note and stops the export as fine-tuning starts: data, the cut, the
    vocabulary and the teacher's labelling are done by then, and what follows is what other tests check."""

    def __init__(self):
        self.notes: list[str] = []

    def note(self, text: str) -> None:
        self.notes.append(text)

    def stage(self, title: str):
        if title.startswith("fine-tune"):
            raise StopAtFineTuning
        return super().stage(title)


def export_args(model: Path, data: Path, out: Path) -> list[str]:
    """`edgecut export` of a 1-layer tiny model, as export_tiny runs it, for a CLI in a process of its own."""
    args = ["export", "--model", str(model), "--data", str(data), "--layers", "1"]
    args += ["--labels", "negative,positive", "--template", TEMPLATE, "--lr", "2e-3", "--batch-size", "8"]
    return [*args, "--test-size", "40", "--epochs", "1", "-o", str(out)]


def clean_env(**extra: str) -> dict[str, str]:
    """The environment of a user's shell, not pytest's: what the CLI sees when run by hand."""
    env = {k: os.environ[k] for k in ("PATH", "HOME", "LANG", "TMPDIR") if k in os.environ}
    return env | {"HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", **extra}


def user_dir(path: Path) -> Path:
    """A directory of the user's own work, which nothing edgecut does may touch."""
    path.mkdir(parents=True, exist_ok=True)
    (path / "thesis.tex").write_text("years of work", encoding="utf-8")
    return path


def snapshot(path: Path) -> dict[str, str]:
    """Every file under `path` with its sha256: equal before and after means nothing was touched."""
    if path.is_file():
        return {path.name: hashlib.sha256(path.read_bytes()).hexdigest()}
    return {
        p.relative_to(path).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(path.rglob("*"))
        if p.is_file()
    }


def dead_pid() -> int:
    """The pid of a process that has exited (reaped)."""
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid
