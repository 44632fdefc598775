"""The artifact directory: written in a temp dir beside the destination and renamed at the end.

An interrupted export leaves no half artifact and never clobbers a good one; replacing an existing
directory needs force=True. Layout (Hugging Face / optimum ONNX): model.onnx [+ model.onnx.data],
config.json, tokenizer files, plus edgecut.json (manifest) and golden.npz (inputs + expected logits).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import platform
import shutil
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

import numpy as np

from edgecut import __version__
from edgecut.errors import OutputExistsError
from edgecut.runtime import MANIFEST

MANIFEST_VERSION = 1
GOLDEN = "golden.npz"


def check_destination(out: Path, force: bool) -> None:
    """Fail before any work when the destination is taken."""
    if out.exists() and not force:
        raise OutputExistsError(f"{out} already exists: choose another -o/--output or pass --force to replace it")
    if out.exists() and not out.is_dir():
        raise OutputExistsError(f"{out} exists and is not a directory: choose another -o/--output")


@contextlib.contextmanager
def staging(out: Path, force: bool) -> Iterator[Path]:
    """Yield an empty temp dir; on success it becomes `out`, on any failure it disappears."""
    out = Path(out).resolve()
    check_destination(out, force)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = None
    if out.exists():  # --force: move the old one aside first so `out` is never missing or mixed
        old = out.with_name(f".{out.name}.old-{os.getpid()}")
        out.rename(old)
    tmp.rename(out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def file_hashes(directory: Path) -> dict[str, str]:
    return {
        p.relative_to(directory).as_posix(): sha256_file(p)
        for p in sorted(directory.rglob("*"))
        if p.is_file() and p.name != MANIFEST
    }


def write_golden(directory: Path, feed: dict[str, np.ndarray], logits: np.ndarray) -> Path:
    path = directory / GOLDEN
    np.savez(path, input_ids=feed["input_ids"], attention_mask=feed["attention_mask"], logits=logits)
    return path


def save_tokenizer(tokenizer, directory: Path) -> None:
    """Save tokenizer files that transformers 4.x (optimum's) loads too.

    transformers 5 records `tokenizer_class: "TokenizersBackend"`, a class 4.x does not have; the same
    tokenizer.json loads in both as the plain `PreTrainedTokenizerFast`.
    """
    tokenizer.save_pretrained(directory)
    path = directory / "tokenizer_config.json"
    config = json.loads(path.read_text(encoding="utf-8"))
    if config.get("tokenizer_class") == "TokenizersBackend":
        config["tokenizer_class"] = "PreTrainedTokenizerFast"
        path.write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def library_versions() -> dict[str, str]:
    out = {"edgecut": __version__, "python": platform.python_version()}
    for name in ("torch", "transformers", "onnx", "onnxruntime", "onnxruntime-gpu", "tokenizers", "numpy"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            out[name] = metadata.version(name)
    return out


def write_manifest(directory: Path, manifest: dict) -> Path:
    """Add version, time, library versions and the sha256 of every file, then write edgecut.json."""
    full = {
        "manifest_version": MANIFEST_VERSION,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        **manifest,
        "versions": library_versions(),
        "files": file_hashes(directory),
    }
    path = directory / MANIFEST
    path.write_text(json.dumps(full, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    return path
