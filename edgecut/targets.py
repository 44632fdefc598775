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
    "int8": {
        "mode": str,
        "per_channel": bool,
        "reduce_range": (bool, str),
        "calibration_size": int,
        "max_accuracy_drop": (float, int),
        "candidates": list,
    },
    "fp16": {"keep_fp32_ops": list, "convert_graph": bool, "max_accuracy_drop": (float, int), "candidates": list},
}
# Static only: dynamic int8 computes activation scales over the whole batch tensor (padding included), so a
# row's logits, and sometimes its class, depend on the rows it is batched with (docs/targets.md).
INT8_MODES = ("static",)
# The int8 graphs the accuracy search tries, in this order; the first within `max_accuracy_drop` ships
# (edgecut/graph/precision.py builds them). All keep a row's logits independent of its batch.
INT8_CANDIDATES = (
    "static",  # QDQ, activation ranges (MinMax) calibrated on training prompts, every MatMul/Gemm/Gather
    "static-fp32-head",  # the same with the classification head and the last weight MatMul before it in fp32
    "static-percentile-fp32-head",  # percentile (99.999) ranges instead of MinMax: outliers clipped
    "static-fp32-outliers",  # the head and every MatMul whose input range is an outlier stay fp32
    "int8-embedding",  # only the embedding table int8 (weights only): fp32 speed, about a third of the size
)
FP16_CANDIDATES = (
    "fp16",  # keep_fp32_ops of the target stay fp32
    "fp16-fp32-elementwise",  # ... and the element-wise ops of the residual stream (Add, Mul, Sub, Div)
    "fp16-fp32-head",  # ... and the classification head and the last weight MatMul before it
)
# Option names each provider reads (ONNX Runtime 1.2x-1.32 sources, *_execution_provider_info.cc and the
# OpenVINO provider's documentation). ORT ignores a misspelt name silently (CPU ignores every option), so a
# target file is checked against these lists. Providers not listed here are checked after session creation
# against what ORT reports back (check_reported_provider_options).
PROVIDER_OPTIONS: dict[str, frozenset[str]] = {
    "CPUExecutionProvider": frozenset(),
    "CUDAExecutionProvider": frozenset(
        "device_id has_user_compute_stream user_compute_stream gpu_mem_limit arena_extend_strategy "
        "cudnn_conv_algo_search do_copy_in_default_stream gpu_external_alloc gpu_external_free "
        "gpu_external_empty_cache cudnn_conv_use_max_workspace enable_cuda_graph cudnn_conv1d_pad_to_nc1d "
        "tunable_op_enable tunable_op_tuning_enable tunable_op_max_tuning_duration_ms "
        "enable_skip_layer_norm_strict_mode prefer_nhwc use_ep_level_unified_stream use_tf32 sdpa_kernel "
        "fuse_conv_bias".split()
    ),
    "TensorrtExecutionProvider": frozenset(
        "device_id has_user_compute_stream user_compute_stream trt_max_partition_iterations trt_min_subgraph_size "
        "trt_max_workspace_size trt_fp16_enable trt_bf16_enable trt_int8_enable trt_int8_calibration_table_name "
        "trt_int8_use_native_calibration_table trt_dla_enable trt_dla_core trt_dump_subgraphs "
        "trt_engine_cache_enable trt_engine_cache_path trt_engine_cache_prefix trt_weight_stripped_engine_enable "
        "trt_onnx_model_folder_path trt_engine_decryption_enable trt_engine_decryption_lib_path "
        "trt_force_sequential_engine_build trt_context_memory_sharing_enable trt_layer_norm_fp32_fallback "
        "trt_timing_cache_enable trt_timing_cache_path trt_force_timing_cache trt_detailed_build_log "
        "trt_build_heuristics_enable trt_sparsity_enable trt_builder_optimization_level trt_auxiliary_streams "
        "trt_tactic_sources trt_extra_plugin_lib_paths trt_profile_min_shapes trt_profile_max_shapes "
        "trt_profile_opt_shapes trt_cuda_graph_enable trt_dump_ep_context_model trt_ep_context_file_path "
        "trt_ep_context_embed_mode trt_engine_hw_compatible trt_op_types_to_exclude trt_preview_features "
        "trt_load_user_initializer".split()
    ),
    "OpenVINOExecutionProvider": frozenset(
        "device_type precision num_of_threads cache_dir context enable_opencl_throttling enable_qdq_optimizer "
        "disable_dynamic_shapes num_streams load_config model_priority reshape_input layout enable_causallm "
        "device_id device_luid enable_npu_fast_compile export_ep_ctx_blob".split()
    ),
}


@dataclass(frozen=True)
class Int8Settings:
    """How `int8` is produced. Static QDQ calibrates activations on training prompts.

    `mode` "dynamic" exists for comparisons (benchmarks/int8.py); target files may only ask for "static".
    """

    mode: str = "static"
    per_channel: bool = False
    reduce_range: bool | str = "auto"  # "auto": on when the CPU lacks VNNI (u8s8 overflow otherwise)
    calibration_size: int = 128
    max_accuracy_drop: float = 1.0  # points of validation accuracy the int8 graph may lose against fp32
    candidates: tuple[str, ...] = INT8_CANDIDATES  # tried in this order; the first within budget ships


@dataclass(frozen=True)
class Fp16Settings:
    """Ops that stay fp32 in an fp16 graph because fp16 overflows or loses too much there."""

    keep_fp32_ops: tuple[str, ...] = ()
    convert_graph: bool = True  # False where the provider builds its own fp16 engine (TensorRT)
    max_accuracy_drop: float = 1.0  # points of validation accuracy the fp16 graph may lose against fp32
    candidates: tuple[str, ...] = FP16_CANDIDATES


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
            "int8": {k: list(v) if isinstance(v, tuple) else v for k, v in vars(self.int8).items()},
            "fp16": {k: list(v) if isinstance(v, tuple) else v for k, v in vars(self.fp16).items()},
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


def fp32_target_for(target: Target) -> str:
    """The shipped fp32 target on the same first provider (`cuda` -> `cuda-fp32`), else `cpu`: where to go
    when a target's reduced precision is refused."""
    for name in available_targets():
        other = load_target(name)
        if other.precision == "fp32" and other.providers[0] == target.providers[0]:
            return name
    return "cpu"


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
        _check_option_names(where, p, opts)
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
    int8_raw, fp16_raw = dict(raw.get("int8", {})), dict(raw.get("fp16", {}))
    if int8_raw.get("mode", "static") == "dynamic":
        raise TargetError(
            f"{where}: 'int8.mode = \"dynamic\"' makes a text's logits depend on the other texts in its batch "
            '(activation scales over the whole batch): use "static"'
        )
    if int8_raw.get("mode", "static") not in INT8_MODES:
        raise TargetError(f"{where}: 'int8.mode' must be one of {', '.join(INT8_MODES)}")
    for table, known in (("int8", INT8_CANDIDATES), ("fp16", FP16_CANDIDATES)):
        names = (int8_raw if table == "int8" else fp16_raw).get("candidates", list(known))
        bad = [n for n in names if n not in known]
        if not names or bad:
            raise TargetError(
                f"{where}: '{table}.candidates' must list names from {', '.join(known)}"
                + (f" (unknown: {bad[0]!r})" if bad else "")
            )
    if "candidates" in int8_raw:
        int8_raw["candidates"] = tuple(int8_raw["candidates"])
    if "candidates" in fp16_raw:
        fp16_raw["candidates"] = tuple(fp16_raw["candidates"])
    int8 = Int8Settings(**int8_raw)
    if isinstance(int8.reduce_range, str) and int8.reduce_range != "auto":
        raise TargetError(f"{where}: 'int8.reduce_range' must be true, false or \"auto\"")
    thresholds = raw.get("thresholds", {})
    _check_ranges(where, thresholds, int8_raw, fp16_raw)
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
            tuple(fp16_raw.get("keep_fp32_ops", ())),
            fp16_raw.get("convert_graph", True),
            float(fp16_raw.get("max_accuracy_drop", 1.0)),
            tuple(fp16_raw.get("candidates", FP16_CANDIDATES)),
        ),
        path=str(path),
    )


# key -> (lowest, highest, lowest included): a value out of range would be blamed on the graph later.
_RANGES: dict[str, tuple[float, float, bool]] = {
    "thresholds.parity_atol": (0.0, float("inf"), False),
    "thresholds.min_argmax_agreement": (0.0, 1.0, True),
    "int8.calibration_size": (1, float("inf"), True),
    "int8.max_accuracy_drop": (0.0, 100.0, True),
    "fp16.max_accuracy_drop": (0.0, 100.0, True),
}


def _check_ranges(where: str, thresholds: dict, int8: dict, fp16: dict) -> None:
    tables = {"thresholds": thresholds, "int8": int8, "fp16": fp16}
    for name, (low, high, closed) in _RANGES.items():
        table, key = name.split(".")
        if key not in tables[table]:
            continue
        value = tables[table][key]
        if not (value >= low if closed else value > low) or value > high or value != value:  # NaN fails too
            interval = f"{'[' if closed else '('}{low:g}, {high:g}]" if high != float("inf") else None
            need = f"in {interval}" if interval else f"{'>=' if closed else '>'} {low:g}"
            raise TargetError(f"{where}: '{name}' is {value}; it must be {need}")


def _check_option_names(where: str, provider: str, options: dict[str, Any]) -> None:
    """Refuse option names the provider does not read: ONNX Runtime would ignore them without a word."""
    import difflib

    known = PROVIDER_OPTIONS.get(provider)
    if known is None:
        return
    for key in options:
        if key in known:
            continue
        if not known:
            raise TargetError(
                f"{where}: 'provider_options.{provider}.{key}': {provider} takes no options (ONNX Runtime would "
                "ignore it); remove it"
            )
        close = difflib.get_close_matches(key, sorted(known), n=1)
        hint = f"did you mean '{close[0]}'?" if close else f"{provider} reads {', '.join(sorted(known)[:8])}, ..."
        raise TargetError(
            f"{where}: unknown option 'provider_options.{provider}.{key}' (ONNX Runtime would ignore it): {hint}"
        )


def check_reported_provider_options(target: Target, reported: dict[str, dict[str, str]]) -> None:
    """After session creation: every option the target sets must be one ORT reports back for that provider.

    `reported` is `InferenceSession.get_provider_options()`. This covers providers without a list in
    PROVIDER_OPTIONS; ORT reports every option a provider read (CPU reports none and reads none).

    Raises:
        TargetError: an option the provider did not take, named with its provider.
    """
    for provider in target.providers:
        if provider not in reported:
            continue
        missing = [k for k in target.provider_options.get(provider, {}) if k not in reported[provider]]
        if missing:
            raise TargetError(
                f"target '{target.name}': {provider} did not take option '{missing[0]}' (ONNX Runtime ignored "
                f"it; it reads {', '.join(sorted(reported[provider])) or 'no options'}): fix the target file"
            )


def _as_tuple(kind) -> tuple:
    return kind if isinstance(kind, tuple) else (kind,)
