"""Deployment targets are data: one TOML file each in `targets/` (see `targets/cpu.toml`).

A target names the ONNX Runtime execution providers, their options, the precision and the graph
optimisation level. This module only reads and validates those files; it imports neither torch nor
onnxruntime.
"""

from __future__ import annotations

import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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
OPTIMIZATIONS = ("transformer-fusion", "ort-offline")
# key -> (type, required); the schema every target file is checked against.
_SCHEMA: dict[str, tuple[type, bool]] = {
    "name": (str, True),
    "description": (str, True),
    "providers": (list, True),
    "precision": (str, True),
    "allowed_precisions": (list, False),
    "graph_optimization": (str, False),
    "optimizations": (list, False),
    "io_binding": (bool, False),
    "requires": (str, False),
    "provider_options": (dict, False),
    "thresholds": (dict, False),
    "int8": (dict, False),
    "fp16": (dict, False),
}
# sub-table -> key -> type
_TABLES: dict[str, dict[str, type | tuple[type, ...]]] = {
    "thresholds": {"parity_atol": (float, int), "min_argmax_agreement": (float, int)},
    "int8": {"mode": str, "per_channel": bool, "reduce_range": (bool, str), "calibration_size": int},
    "fp16": {"keep_fp32_ops": list, "convert_graph": bool},
}
INT8_MODES = ("dynamic", "static")


@dataclass(frozen=True)
class Int8Settings:
    """How `int8` is produced. Static QDQ calibrates activations on training prompts."""

    mode: str = "dynamic"
    per_channel: bool = False
    reduce_range: bool | str = "auto"  # "auto": on when the CPU lacks VNNI (u8s8 overflow otherwise)
    calibration_size: int = 128


@dataclass(frozen=True)
class Fp16Settings:
    """Ops that stay fp32 in an fp16 graph because fp16 overflows or loses too much there."""

    keep_fp32_ops: tuple[str, ...] = ()
    convert_graph: bool = True  # False where the provider builds its own fp16 engine (TensorRT)


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
    min_argmax_agreement: float = 1.0  # of the shipped graph vs torch on the parity rows
    allowed_precisions: tuple[str, ...] = ()
    optimizations: tuple[str, ...] = ()
    io_binding: bool = False
    requires: str = ""
    int8: Int8Settings = field(default_factory=Int8Settings)
    fp16: Fp16Settings = field(default_factory=Fp16Settings)
    path: str = ""

    def resolve_precision(self, quantize: str | None) -> str:
        """The precision to build: the target's own, or what `--quantize` asks if this target allows it."""
        if quantize in (None, "none"):
            return self.precision
        if quantize not in PRECISIONS:
            raise TargetError(f"--quantize {quantize}: use none, {', '.join(p for p in PRECISIONS if p != 'fp32')}")
        if quantize in self.allowed_precisions:
            return quantize
        others = [n for n in available_targets() if n != self.name and _precision_of(n) == quantize]
        fix = f"use --target {others[0]}" if others else "no shipped target builds it"
        raise TargetError(
            f"target '{self.name}' does not build {quantize} (it allows {', '.join(self.allowed_precisions)}): {fix}"
        )

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
            "optimizations": list(self.optimizations),
            "int8": vars(self.int8),
            "fp16": {"keep_fp32_ops": list(self.fp16.keep_fp32_ops), "convert_graph": self.fp16.convert_graph},
            "io_binding": self.io_binding,
        }


def targets_dir() -> Path:
    """`targets/` of a source checkout, else the copy a wheel installs under `<prefix>/share`."""
    checkout = Path(__file__).resolve().parent.parent / "targets"
    if checkout.is_dir():
        return checkout
    return Path(sys.prefix) / "share" / "edgecut" / "targets"


def available_targets() -> dict[str, Path]:
    return {p.stem: p for p in sorted(targets_dir().glob("*.toml"))}


def _precision_of(name: str) -> str | None:
    try:
        return load_target(name).precision
    except TargetError:
        return None


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
    for table, keys in _TABLES.items():
        for key, value in raw.get(table, {}).items():
            if key not in keys:
                raise TargetError(f"{where}: unknown key '{table}.{key}' (allowed: {', '.join(keys)})")
            if not isinstance(value, keys[key]) or (isinstance(value, bool) and bool not in _as_tuple(keys[key])):
                raise TargetError(f"{where}: '{table}.{key}' has the wrong type ({type(value).__name__})")
    allowed = raw.get("allowed_precisions", [raw["precision"]])
    if raw["precision"] not in allowed or any(p not in PRECISIONS for p in allowed):
        raise TargetError(
            f"{where}: 'allowed_precisions' must list precisions from {', '.join(PRECISIONS)} and include 'precision'"
        )
    passes = raw.get("optimizations", [])
    for p in passes:
        if p not in OPTIMIZATIONS:
            raise TargetError(f"{where}: unknown optimization '{p}' (known: {', '.join(OPTIMIZATIONS)})")
    int8 = Int8Settings(**raw.get("int8", {}))
    if int8.mode not in INT8_MODES:
        raise TargetError(f"{where}: 'int8.mode' must be one of {', '.join(INT8_MODES)}")
    if isinstance(int8.reduce_range, str) and int8.reduce_range != "auto":
        raise TargetError(f"{where}: 'int8.reduce_range' must be true, false or \"auto\"")
    thresholds = raw.get("thresholds", {})
    return Target(
        name=raw["name"],
        description=raw["description"],
        providers=tuple(providers),
        precision=raw["precision"],
        graph_optimization=level,
        provider_options={p: dict(o) for p, o in options.items()},
        parity_atol=float(thresholds.get("parity_atol", 1e-4)),
        min_argmax_agreement=float(thresholds.get("min_argmax_agreement", 1.0)),
        allowed_precisions=tuple(allowed),
        optimizations=tuple(passes),
        io_binding=raw.get("io_binding", False),
        requires=raw.get("requires", ""),
        int8=int8,
        fp16=Fp16Settings(
            tuple(raw.get("fp16", {}).get("keep_fp32_ops", ())), raw.get("fp16", {}).get("convert_graph", True)
        ),
        path=str(path),
    )


def _as_tuple(kind) -> tuple:
    return kind if isinstance(kind, tuple) else (kind,)
