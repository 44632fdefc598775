"""The artifact's manifest (`edgecut.json`) and golden file (`golden.npz`): one schema, in one place.

Everything that reads or writes an artifact's description goes through here: the export writes it, the
runtime, `check`, `deploy` and `sweep` read it. Reading validates what the runtime relies on, and every
path taken from a manifest must stay inside the artifact: a hand-edited `files` entry such as
`../../etc/passwd` or an absolute `model_file` is a broken artifact, never a file read or written
elsewhere. Torch-free: json, hashlib and numpy.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import platform
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from edgecut import __version__
from edgecut.errors import ArtifactError, EdgecutError
from edgecut.model.prompt import PromptFormat
from edgecut.targets import Target

MANIFEST = "edgecut.json"
GOLDEN = "golden.npz"
TOKENIZER = "tokenizer.json"
TRAINING_LOG = "training-log.jsonl"
MANIFEST_VERSION = 1
# What the runtime and `edgecut check` need; older or hand-made manifests without them are refused.
REQUIRED = {
    "model_file": str,
    "signature": dict,
    "opset": int,
    "golden": dict,
    "files": dict,
    "labels": list,
    "prompt": dict,
    "pad_token_id": int,
    "target": dict,
}
DAMAGED = "the artifact is damaged; re-export it"
# Every top-level key an export writes, in the order it writes them, and what it holds. docs/reference/manifest.md
# is generated from this table (scripts/docs_gen.py), and a test fails when an export writes a key not listed here.
FIELDS = {
    "manifest_version": "The schema version; this edgecut reads version 1 and refuses any other.",
    "created": "When the export finished (ISO 8601, UTC).",
    "model_file": "The graph's file name inside the artifact (`model.onnx`; `model.ort` from `deploy --mobile`).",
    "source_model": "What `--model` named (`source`), the file read (`resolved`) and the sha256 of its weights.",
    "architecture": "The classifier's transformers class.",
    "layers": "`kept` (the layer indices), `total` (the model's depth), `select` and its per-layer `scores`.",
    "parameters": "Parameter counts `before` and `after` the cut.",
    "labels": "The class names, in the order of the logits.",
    "label_words": "The word each class's head row was initialised from (with its leading space).",
    "label_token_ids": "The token id of each label word that initialised the head.",
    "head_init": "`lm` (label-word rows of the LM head) or `random`.",
    "pooling": "What the head reads: `mean` (the real tokens' mean) or `last` (the last token; encoders: their own).",
    "setting": "The paper's setting: `lm`, `pcls` or `cls`.",
    "prompt": "`template`, `demonstrations`, `max_length` and `separator`: how serving builds the prompt.",
    "pad_token_id": "The id used to pad a batch.",
    "precision": "The shipped graph's precision: `fp32`, `int8` or `fp16`.",
    "quantization": "For int8 or fp16: mode, per-channel, reduce_range, calibration size and sizes; else null.",
    "precision_search": "Every int8/fp16 candidate tried on the validation split, and why the shipped one won.",
    "optimizations": "The offline passes the target lists: applied or why not, and what decided.",
    "target": "The resolved target file (providers, options, thresholds).",
    "providers_used": "The execution providers the shipped graph was validated on.",
    "signature": "Input and output names, shapes and types of the graph.",
    "opset": "The `ai.onnx` opset the graph imports.",
    "exporter": "The exporter and its torch version.",
    "external_data": "Whether the weights live in `model.onnx.data` (graphs above 2 GB).",
    "settings": "Every `ExportSettings` field, to rebuild the export.",
    "recipe": "The training recipe used, with every override (learning rate, epochs, batch, schedule).",
    "data": "The data source, labels, split sizes and how many test queries were cut to `max_length`.",
    "training": "Seconds, steps, why it stopped, validation accuracy per evaluation, whether it beat the majority.",
    "metrics": "Torch and ONNX Runtime accuracy, fp32 beside int8/fp16, latency p50/p90 at batch 1 and 8, parity.",
    "baseline": "TF-IDF + logistic regression fitted and scored on the same rows.",
    "golden": "The golden file's name and the tolerance `check` compares its logits with.",
    "vocabulary": "With `--vocab`: the choice, the ids kept, the fallback and the token coverage.",
    "distillation": "With `--teacher`: the teacher (path, sha256, model, accuracy), alpha, temperature; else null.",
    "text_model": "With `--with-tokenizer`: the raw-text graph's file, its check against the id graph, known limits.",
    "mobile": "Only from `deploy --mobile`: the artifact it came from, the ORT conversion style, operator count.",
    "versions": "The version of every library that made the artifact.",
    "files": "The sha256 of every other file in the directory.",
}


def member(directory: Path, name: object, what: str) -> Path:
    """`directory / name` for a path read from a manifest, refused unless it stays inside the artifact.

    Relative, POSIX, no `..`, no empty parts, and resolving (symlinks followed) inside `directory`.
    """
    if not isinstance(name, str) or not name or "\\" in name or "\x00" in name:
        raise ArtifactError(f"{what} {name!r} is not a relative file name: {DAMAGED}")
    parts = PurePosixPath(name).parts
    if PurePosixPath(name).is_absolute() or ".." in parts or any(p in ("", ".") for p in name.split("/")):
        raise ArtifactError(f"{what} {name!r} points outside the artifact: {DAMAGED}")
    root = Path(directory).resolve()
    path = (root / name).resolve()
    if root not in path.parents:
        raise ArtifactError(f"{what} {name!r} resolves outside the artifact: {DAMAGED}")
    return path


@dataclass(frozen=True)
class Manifest(Mapping):
    """A validated manifest. Typed fields for what the runtime needs; `record` holds everything written.

    It reads like the dict it was loaded from (`manifest["metrics"]`), so reports can show any field.
    """

    directory: Path
    record: dict[str, Any]

    @classmethod
    def from_dict(cls, directory: Path, record: object, where: str = MANIFEST) -> Manifest:
        """Validate `record` as read from `directory`/edgecut.json; ArtifactError names what is wrong."""
        if not isinstance(record, dict):
            raise ArtifactError(f"{where} is not a JSON object: {DAMAGED}")
        version = record.get("manifest_version")
        if version != MANIFEST_VERSION:
            newer = isinstance(version, int) and not isinstance(version, bool) and version > MANIFEST_VERSION
            fix = "upgrade edgecut" if newer else "re-export it with this edgecut"
            raise ArtifactError(
                f"{where} has manifest_version {version!r}; this edgecut reads version {MANIFEST_VERSION}: {fix}"
            )
        missing = [k for k in REQUIRED if k not in record]
        if missing:
            raise ArtifactError(f"{where} lacks {', '.join(missing)}: {DAMAGED}")
        wrong = [
            f"{k} is not a {kind.__name__}"
            for k, kind in REQUIRED.items()
            if not isinstance(record[k], kind) or (kind is int and isinstance(record[k], bool))
        ]
        if not wrong:
            wrong += _field_problems(record)
        if wrong:
            raise ArtifactError(f"{where}: {'; '.join(wrong)}: {DAMAGED}")
        manifest = cls(Path(directory), record)
        # Every path the manifest names must stay inside the artifact, checked before anything opens one.
        for name, what in ((manifest.model_file, "model_file"), (manifest.golden_file, "golden.file")):
            member(directory, name, what)
        for name in record["files"]:
            member(directory, name, f"{where}: files entry")
        manifest.prompt_format  # noqa: B018 (raises ArtifactError for an unusable prompt)
        return manifest

    # Mapping: read-only access to the whole record
    def __getitem__(self, key: str) -> Any:
        return self.record[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.record)

    def __len__(self) -> int:
        return len(self.record)

    @property
    def model_file(self) -> str:
        return self.record["model_file"]

    @property
    def model_path(self) -> Path:
        return member(self.directory, self.model_file, "model_file")

    @property
    def golden_file(self) -> str:
        return self.record["golden"].get("file", GOLDEN)

    @property
    def golden_path(self) -> Path:
        return member(self.directory, self.golden_file, "golden.file")

    @property
    def golden_atol(self) -> float:
        return float(self.record["golden"]["atol"])

    @property
    def labels(self) -> list[str]:
        return list(self.record["labels"])

    @property
    def pad_token_id(self) -> int:
        return int(self.record["pad_token_id"])

    @property
    def files(self) -> dict[str, str]:
        return dict(self.record["files"])

    @property
    def prompt_format(self) -> PromptFormat:
        try:
            return PromptFormat.from_dict(self.record["prompt"])
        except (EdgecutError, KeyError, TypeError, ValueError) as e:
            raise ArtifactError(f"the manifest's prompt cannot be used ({e}): {DAMAGED}") from e

    def data_files(self) -> list[str]:
        """The model file's external data files listed in the manifest (`model.onnx.data`)."""
        prefix = f"{self.model_file}."
        return sorted(f for f in self.record["files"] if f.startswith(prefix))

    def to_dict(self) -> dict[str, Any]:
        return dict(self.record)


def _field_problems(record: dict[str, Any]) -> list[str]:
    """Values of the right container type but unusable content (hand edits, truncation)."""
    problems = []
    labels = record["labels"]
    if len(labels) < 2 or not all(isinstance(x, str) for x in labels):
        problems.append("labels is not a list of at least two names")
    if record["pad_token_id"] < 0:
        problems.append("pad_token_id is negative")
    atol = record["golden"].get("atol")
    if isinstance(atol, bool) or not isinstance(atol, (int, float)) or not atol > 0:
        problems.append(f"golden.atol {atol!r} is not a positive number")
    prompt = record["prompt"]
    if not isinstance(prompt.get("template"), str):
        problems.append("prompt.template is missing")
    max_length = prompt.get("max_length")
    if isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < 1:
        problems.append(f"prompt.max_length {max_length!r} is not a positive integer")
    demos = prompt.get("demonstrations", [])
    if not isinstance(demos, list) or not all(
        isinstance(d, dict) and isinstance(d.get("text"), str) and isinstance(d.get("label_word"), str) for d in demos
    ):
        problems.append("prompt.demonstrations is not a list of {text, label_word}")
    if not all(isinstance(v, str) for v in record["files"].values()):
        problems.append("files maps a name to something that is not a sha256")
    return problems


def read_manifest(directory: str | Path) -> Manifest:
    """The validated manifest of an artifact directory.

    Raises:
        ArtifactError: no such directory, no or unparsable edgecut.json, another manifest version, missing or
            malformed keys, or a path that leaves the artifact.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise ArtifactError(f"{directory} is not a directory: give the artifact directory `edgecut export -o` wrote")
    path = directory / MANIFEST
    if not path.is_file():
        raise ArtifactError(f"{directory} has no {MANIFEST}: it is not an edgecut artifact (re-export it)")
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ArtifactError(f"{path} is not valid JSON ({e}): {DAMAGED}") from e
    return Manifest.from_dict(directory, record, where=str(path))


def recorded_target(manifest: Manifest) -> Target:
    """The target the artifact was exported for, rebuilt from the manifest (its .toml may not exist here)."""
    t = manifest["target"]
    try:
        return Target(
            name=t["name"],
            description=f"recorded in the artifact ({t['name']})",
            providers=tuple(t["providers"]),
            precision=t["precision"],
            graph_optimization=t.get("graph_optimization", "all"),
            provider_options={p: dict(o) for p, o in t.get("provider_options", {}).items()},
            parity_atol=float(t.get("parity_atol", 1e-4)),
            io_binding=bool(t.get("io_binding", False)),
            requires=str(t.get("requires", "")),
        )
    except (KeyError, TypeError, AttributeError, ValueError) as e:
        raise ArtifactError(f"the manifest's target record is damaged ({e!r}): pass --target or re-export") from e


def verify_files(manifest: Manifest, names: Sequence[str] | None = None) -> None:
    """Refuse files that changed since export: each of `names` (default: all listed) must match its sha256.

    The runtime hashes what it loads once, at load time, so `predict` never classifies with a model that
    `check` calls broken.

    Raises:
        ArtifactError: a file is not listed, missing, or does not match its sha256.
    """
    listed = manifest.files
    wanted = list(listed) if names is None else [*names, *manifest.data_files()]
    for name in dict.fromkeys(wanted):
        if name not in listed:
            raise ArtifactError(f"{name} is not listed in the manifest's files: {DAMAGED}")
        path = member(manifest.directory, name, "file")
        if not path.is_file():
            raise ArtifactError(f"{name} is missing: the artifact is incomplete; re-export it")
        if sha256_file(path) != listed[name]:
            raise ArtifactError(
                f"{name} does not match its sha256 (changed after export): {DAMAGED} (`edgecut check` says more)"
            )


def is_artifact(directory: Path) -> bool:
    """A directory with a readable edgecut manifest (of any version): what `--force` may replace."""
    try:
        record = json.loads((Path(directory) / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(record, dict) and "manifest_version" in record


# --- writing -------------------------------------------------------------------------------------------


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with Path(path).open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def file_hashes(directory: Path, exclude: Sequence[str] = ()) -> dict[str, str]:
    """sha256 of every file of the artifact but the manifest itself (and top-level `exclude` entries)."""
    directory = Path(directory)
    return {
        p.relative_to(directory).as_posix(): sha256_file(p)
        for p in sorted(directory.rglob("*"))
        if p.is_file() and p.name != MANIFEST and p.relative_to(directory).parts[0] not in exclude
    }


def library_versions() -> dict[str, str]:
    out = {"edgecut": __version__, "python": platform.python_version()}
    for name in ("torch", "transformers", "onnx", "onnxruntime", "onnxruntime-gpu", "tokenizers", "numpy"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            out[name] = metadata.version(name)
    return out


def write_manifest(directory: Path, record: dict[str, Any], exclude: Sequence[str] = ()) -> Path:
    """Add version, time, library versions and the sha256 of every file, then write edgecut.json."""
    full = {
        "manifest_version": MANIFEST_VERSION,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        **record,
        "versions": library_versions(),
        "files": file_hashes(directory, exclude),
    }
    path = Path(directory) / MANIFEST
    path.write_text(json.dumps(full, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


# --- golden file -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Golden:
    """Padded prompts and the logits the shipped graph gave for them at export."""

    input_ids: np.ndarray
    attention_mask: np.ndarray
    logits: np.ndarray

    @property
    def feed(self) -> dict[str, np.ndarray]:
        return {"input_ids": self.input_ids, "attention_mask": self.attention_mask}

    def sequences(self) -> list[list[int]]:
        """The unpadded prompts."""
        return [ids[mask == 1].tolist() for ids, mask in zip(self.input_ids, self.attention_mask, strict=True)]


def write_golden(directory: Path, feed: dict[str, np.ndarray], logits: np.ndarray) -> Path:
    path = Path(directory) / GOLDEN
    np.savez(path, input_ids=feed["input_ids"], attention_mask=feed["attention_mask"], logits=logits)
    return path


def read_golden(manifest: Manifest) -> Golden:
    """golden.npz, checked: int64 ids ≥ 0 and a 0/1 mask of one shape, float logits one row per prompt.

    Raises:
        ArtifactError: unreadable, pickled, or with arrays of the wrong kind.
    """
    path = manifest.golden_path
    try:
        with np.load(path, allow_pickle=False) as g:
            ids, mask, logits = g["input_ids"], g["attention_mask"], g["logits"]
    except (OSError, KeyError, ValueError, EOFError) as e:
        raise ArtifactError(f"{manifest.golden_file} cannot be read ({type(e).__name__}: {e}): {DAMAGED}") from e
    problems = []
    if ids.dtype != np.int64 or mask.dtype != np.int64:
        problems.append(f"input_ids/attention_mask are {ids.dtype}/{mask.dtype}, not int64")
    elif ids.ndim != 2 or ids.shape != mask.shape:
        problems.append(f"input_ids {ids.shape} and attention_mask {mask.shape} are not one [batch, sequence] shape")
    elif ids.size and (ids.min() < 0 or not np.isin(mask, (0, 1)).all()):
        problems.append("input_ids has negative ids or attention_mask values other than 0/1")
    if not np.issubdtype(logits.dtype, np.floating) or logits.ndim != 2 or len(logits) != len(ids):
        problems.append(f"logits {logits.dtype} {logits.shape} is not one float row per prompt")
    if problems:
        raise ArtifactError(f"{manifest.golden_file}: {'; '.join(problems)}: {DAMAGED}")
    return Golden(ids, mask, logits)
