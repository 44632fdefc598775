"""Deployment targets are data: one TOML file each in `targets/` (see `targets/cpu.toml`).

A target names the ONNX Runtime execution providers, their options, the precision and the graph
optimisation level. This module only reads and validates those files; it imports neither torch nor
onnxruntime.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomllib

from edgecut.errors import TargetError

PRECISIONS = ("fp32", "fp16", "int8")
GRAPH_OPTIMIZATION_LEVELS = ("disable", "basic", "extended", "all")
KNOWN_PROVIDERS = (
    "CPUExecutionProvider",
    "CUDAExecutionProvider",
    "TensorrtExecutionProvider",
    "ROCMExecutionProvider",
    "MIGraphXExecutionProvider",
    "OpenVINOExecutionProvider",
    "DmlExecutionProvider",
    "CoreMLExecutionProvider",
    "QNNExecutionProvider",
    "XnnpackExecutionProvider",
)
# key -> (type, required); the schema every target file is checked against.
_SCHEMA: dict[str, tuple[type, bool]] = {
    "name": (str, True),
    "description": (str, True),
    "providers": (list, True),
    "precision": (str, True),
    "graph_optimization": (str, False),
    "provider_options": (dict, False),
    "thresholds": (dict, False),
}
_THRESHOLDS: dict[str, type] = {"parity_atol": float}


@dataclass(frozen=True)
class Target:
    """A validated target file."""

    name: str
    description: str
    providers: tuple[str, ...]
    precision: str
    graph_optimization: str = "all"
    provider_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    parity_atol: float = 1e-4
    path: str = ""

    def provider_list(self) -> list[tuple[str, dict[str, Any]]]:
        """Providers with their options, in the form `onnxruntime.InferenceSession` takes."""
        return [(p, dict(self.provider_options.get(p, {}))) for p in self.providers]

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "providers": list(self.providers),
            "precision": self.precision,
            "graph_optimization": self.graph_optimization,
            "provider_options": self.provider_options,
            "parity_atol": self.parity_atol,
        }


def targets_dir() -> Path:
    """`targets/` of a source checkout, else the copy a wheel installs under `<prefix>/share`."""
    checkout = Path(__file__).resolve().parent.parent / "targets"
    if checkout.is_dir():
        return checkout
    return Path(sys.prefix) / "share" / "edgecut" / "targets"


def available_targets() -> dict[str, Path]:
    return {p.stem: p for p in sorted(targets_dir().glob("*.toml"))}


def load_target(name_or_path: str | Path) -> Target:
    """Load a target by name (`cpu`, `cuda`) or by path to a TOML file.

    Raises:
        TargetError: unknown name, unreadable file, or a file that breaks the schema.
    """
    text = str(name_or_path)
    known = available_targets()
    if text in known:
        path = known[text]
    elif text.endswith(".toml") or "/" in text or Path(text).exists():
        path = Path(text)
        if not path.is_file():
            raise TargetError(f"target file {text} does not exist: give a path to a .toml file")
    else:
        raise TargetError(f"unknown target '{text}': choose one of {', '.join(known)} or give a .toml path")
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise TargetError(f"target file {path} is not valid TOML: {e}") from e
    return _validate(raw, path)


def _validate(raw: dict[str, Any], path: Path) -> Target:
    where = f"target file {path}"
    for key, value in raw.items():
        if key not in _SCHEMA:
            raise TargetError(f"{where}: unknown key '{key}' (allowed: {', '.join(_SCHEMA)})")
        kind = _SCHEMA[key][0]
        if not isinstance(value, kind):
            raise TargetError(f"{where}: '{key}' must be a {kind.__name__}, got {type(value).__name__}")
    for key, (_, required) in _SCHEMA.items():
        if required and key not in raw:
            raise TargetError(f"{where}: missing required key '{key}'")
    providers = raw["providers"]
    if not providers or not all(isinstance(p, str) for p in providers):
        raise TargetError(f"{where}: 'providers' must be a non-empty list of provider names")
    for p in providers:
        if p not in KNOWN_PROVIDERS:
            raise TargetError(f"{where}: unknown provider '{p}' (known: {', '.join(KNOWN_PROVIDERS)})")
    if raw["precision"] not in PRECISIONS:
        raise TargetError(f"{where}: 'precision' must be one of {', '.join(PRECISIONS)}")
    level = raw.get("graph_optimization", "all")
    if level not in GRAPH_OPTIMIZATION_LEVELS:
        raise TargetError(f"{where}: 'graph_optimization' must be one of {', '.join(GRAPH_OPTIMIZATION_LEVELS)}")
    options = raw.get("provider_options", {})
    for p, opts in options.items():
        if p not in providers:
            raise TargetError(f"{where}: provider_options names '{p}', which is not in 'providers'")
        if not isinstance(opts, dict):
            raise TargetError(f"{where}: provider_options.{p} must be a table")
    thresholds = raw.get("thresholds", {})
    for key, value in thresholds.items():
        if key not in _THRESHOLDS:
            raise TargetError(f"{where}: unknown key 'thresholds.{key}' (allowed: {', '.join(_THRESHOLDS)})")
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise TargetError(f"{where}: 'thresholds.{key}' must be a number")
    return Target(
        name=raw["name"],
        description=raw["description"],
        providers=tuple(providers),
        precision=raw["precision"],
        graph_optimization=level,
        provider_options={p: dict(o) for p, o in options.items()},
        parity_atol=float(thresholds.get("parity_atol", 1e-4)),
        path=str(path),
    )
