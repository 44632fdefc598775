"""`edgecut deploy --triton`: a Triton Inference Server model repository for the onnxruntime backend.

    REPO/NAME/
    ├── config.pbtxt   # inputs, outputs, dims, batching, instance group and accelerator from the target
    ├── labels.txt     # class names, one a line: Triton's classification extension returns them
    └── 1/model.onnx   # (+ its external data) byte for byte the artifact's
                       # or, with strings=True (`--strings`), 1/model_text.onnx: raw text in
                       # (edgecut.graph.text_graph), and onnxruntime-extensions' library named in the config

The artifact's integrity checks run first. The model directory is written beside its destination and
renamed only when complete (`edgecut.artifacts.artifact.staging`), so a failed deploy leaves no half model that a
polling Triton could pick up. config.pbtxt is protobuf text written by hand: no tritonclient needed.
Torch-free: onnx and the standard library.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgecut import __version__
from edgecut.errors import ArtifactError, EdgecutError, OutputExistsError, TargetError
from edgecut.graph.text_graph import TEXT_MODEL

VERSION_DIR = "1"
CONFIG = "config.pbtxt"
LABELS = "labels.txt"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
# ONNX TensorProto element type -> Triton DataType.
_TRITON_TYPES = {
    1: "TYPE_FP32",
    2: "TYPE_UINT8",
    3: "TYPE_INT8",
    6: "TYPE_INT32",
    7: "TYPE_INT64",
    9: "TYPE_BOOL",
    10: "TYPE_FP16",
    11: "TYPE_FP64",
    16: "TYPE_BF16",
    8: "TYPE_STRING",
}
# Where `--strings` configs point Triton for onnxruntime-extensions' operator library (libortextensions.so,
# built from the onnxruntime-extensions sources; the Python wheel's module needs a Python process).
EXTENSIONS_LIBRARY = "/opt/ortextensions/libortextensions.so"
# Triton's onnxruntime backend takes the graph level as -1 (basic), 1 (extended) or 2 (all disabled); leaving it
# out means all (onnxruntime_backend README, "Model Config Options", and ModelState() in src/onnxruntime.cc).
_GRAPH_LEVEL = {"disable": 2, "basic": -1, "extended": 1, "all": None}
# CUDA provider options the backend reads as model parameters, with ORT's names for their values.
_CUDA_PARAMETERS = {
    "cudnn_conv_algo_search": {"EXHAUSTIVE": "0", "HEURISTIC": "1", "DEFAULT": "2"},
    "arena_extend_strategy": {"kNextPowerOfTwo": "0", "kSameAsRequested": "1"},
    "gpu_mem_limit": None,
    "do_copy_in_default_stream": None,
}
# TensorRT provider options -> the backend's tensorrt accelerator parameters.
_TRT_PARAMETERS = {
    "trt_max_workspace_size": "max_workspace_size_bytes",
    "trt_engine_cache_enable": "trt_engine_cache_enable",
    "trt_engine_cache_path": "trt_engine_cache_path",
}


@dataclass(frozen=True)
class TritonSettings:
    """Where and how to write the model. Validated here, before any work."""

    repository: Path
    name: str | None = None  # default: the artifact directory's name
    max_batch_size: int = 8
    instances: int = 1
    max_queue_delay_us: int = 100
    force: bool = False
    strings: bool = False  # serve model_text.onnx (text in) instead of the id graph
    extensions_library: str = EXTENSIONS_LIBRARY  # path on the server, for strings

    def __post_init__(self) -> None:
        if self.name is not None and not _NAME.match(self.name):
            raise EdgecutError(f"--name {self.name!r}: use letters, digits, '_', '-' and '.', starting with a letter")
        if self.max_batch_size < 1:
            raise EdgecutError(f"--max-batch-size {self.max_batch_size} must be at least 1")
        if self.instances < 1:
            raise EdgecutError(f"--instances {self.instances} must be at least 1")
        if self.max_queue_delay_us < 0:
            raise EdgecutError(f"--max-queue-delay-us {self.max_queue_delay_us} must be 0 or more")
        if self.strings and not str(self.extensions_library).startswith("/"):
            raise EdgecutError(
                f"--extensions-library {self.extensions_library!r} must be an absolute path on the Triton server"
            )


@dataclass(frozen=True)
class TritonDeployment:
    name: str
    path: Path  # REPO/NAME
    config: Path
    kind: str  # KIND_CPU or KIND_GPU
    accelerator: str | None  # "tensorrt FP16", "openvino", or None
    files: tuple[str, ...]  # what went into the version directory
    warnings: tuple[str, ...] = ()  # what the user must know about the served graph


def deploy_triton(artifact: str | Path, settings: TritonSettings) -> TritonDeployment:
    """Check the artifact, then write REPO/NAME for Triton's onnxruntime backend.

    Raises:
        ArtifactError: the artifact fails an integrity check.
        TargetError: the artifact's target runs on a provider Triton's onnxruntime backend lacks.
        OutputExistsError: REPO/NAME exists and force is off.
    """
    import onnx

    from edgecut.artifacts.artifact import check_destination, file_starts_with, staging
    from edgecut.artifacts.check import integrity_checks
    from edgecut.artifacts.manifest import read_manifest

    artifact = Path(artifact)
    manifest = read_manifest(artifact)
    for r in integrity_checks(artifact):
        if r.passed is False:
            raise ArtifactError(f"{artifact} is broken ({r.name}: {r.detail}): run `edgecut check {artifact}`")
    name = settings.name or _default_name(artifact)
    dest = Path(settings.repository) / name
    # --force replaces only a model directory edgecut deploy wrote, never the artifact being deployed.
    destination = dict(
        protected=[artifact],
        is_replaceable=file_starts_with(CONFIG, "# Triton model configuration written by `edgecut deploy`"),
    )
    if dest.exists() and not settings.force:
        raise OutputExistsError(f"{dest} already exists: choose another --name or pass --force to replace it")
    check_destination(dest, settings.force, **destination)

    model_file = manifest["model_file"]
    model = onnx.load(str(artifact / model_file), load_external_data=False)
    placement = _placement(manifest["target"])
    config = triton_config(name, model, manifest, settings, placement, source=artifact.resolve())
    files = [model_file, *sorted(_external_files(model) | _listed_data_files(manifest))]
    if settings.strings:
        from edgecut.graph.text_graph import build_front_graph

        build_front_graph(artifact)  # an unsupported tokenizer fails here, before anything is written
        files = []

    warnings: tuple[str, ...] = ()
    with staging(dest, settings.force, **destination) as tmp:
        (tmp / VERSION_DIR).mkdir()
        for f in files:
            shutil.copy2(artifact / f, tmp / VERSION_DIR / f)
        if settings.strings:
            from edgecut.graph.text_graph import build_text_graph

            built = build_text_graph(artifact, tmp / VERSION_DIR / TEXT_MODEL)
            warnings = (f"{TEXT_MODEL}: {built.known_divergences}",) if built.known_divergences else ()
            files = [TEXT_MODEL, *([built.external_data] if built.external_data else [])]
            graph = onnx.load(str(built.path), load_external_data=False)
            config = triton_config(name, graph, manifest, settings, placement, source=artifact.resolve())
        (tmp / LABELS).write_text("".join(f"{label}\n" for label in manifest["labels"]), encoding="utf-8")
        (tmp / CONFIG).write_text(config, encoding="utf-8")
    dest = dest.resolve()
    return TritonDeployment(name, dest, dest / CONFIG, placement.kind, placement.accelerator, tuple(files), warnings)


def _default_name(artifact: Path) -> str:
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", artifact.resolve().name).lstrip("._-")
    return name or "edgecut"


def _external_files(model) -> set[str]:
    """Files the graph's tensors point to (external data), relative to the model file."""
    import onnx

    tensors = list(model.graph.initializer)
    tensors += [a.t for n in model.graph.node for a in n.attribute if a.type == onnx.AttributeProto.TENSOR]
    out = set()
    for t in tensors:
        if t.data_location == onnx.TensorProto.EXTERNAL:
            location = {e.key: e.value for e in t.external_data}.get("location")
            if location:
                out.add(location)
    return out


def _listed_data_files(manifest: dict[str, Any]) -> set[str]:
    prefix = f"{manifest['model_file']}."
    return {f for f in manifest["files"] if f.startswith(prefix)}


@dataclass(frozen=True)
class _Placement:
    kind: str
    gpus: tuple[int, ...] = ()
    accelerator: str | None = None
    accelerator_block: str = ""  # the optimization.execution_accelerators text, if any
    parameters: tuple[tuple[str, str], ...] = ()  # model-level backend parameters


def _placement(target: dict[str, Any]) -> _Placement:
    """Instance kind, GPUs and execution accelerator that follow the artifact's target."""
    provider = target["providers"][0]
    options = dict(target.get("provider_options", {}).get(provider, {}))
    if provider == "CPUExecutionProvider":
        return _Placement("KIND_CPU")
    if provider == "OpenVINOExecutionProvider":
        block = _accelerators("cpu_execution_accelerator", "openvino", {})
        return _Placement("KIND_CPU", accelerator="openvino", accelerator_block=block)
    gpus = (int(options.get("device_id", 0)),)
    if provider == "CUDAExecutionProvider":
        params = []
        for key, values in _CUDA_PARAMETERS.items():
            if key in options:
                value = _parameter_value(options[key])
                params.append((key, values.get(value, value) if values else value))
        # Every other CUDA option (use_tf32 of cuda-fp32, say) goes through the backend's "cuda" accelerator,
        # which hands its parameters to the CUDA provider: none may be dropped on the way to the server.
        rest = {k: _parameter_value(v) for k, v in options.items() if k != "device_id" and k not in _CUDA_PARAMETERS}
        if rest:
            block = _accelerators("gpu_execution_accelerator", "cuda", rest)
            return _Placement("KIND_GPU", gpus, "cuda", block, tuple(params))
        return _Placement("KIND_GPU", gpus, parameters=tuple(params))
    if provider == "TensorrtExecutionProvider":
        precision = target.get("precision", "fp32")
        if precision == "int8":
            raise TargetError(
                "a TensorRT int8 target needs a calibration table, which edgecut does not make: "
                "re-export for an fp16 or fp32 TensorRT target"
            )
        params = {"precision_mode": "FP16" if precision == "fp16" else "FP32"}
        params |= {ours: _parameter_value(options[t]) for t, ours in _TRT_PARAMETERS.items() if t in options}
        block = _accelerators("gpu_execution_accelerator", "tensorrt", params)
        return _Placement("KIND_GPU", gpus, f"tensorrt {params['precision_mode']}", block)
    raise TargetError(
        f"Triton's onnxruntime backend runs on CPU, CUDA, TensorRT or OpenVINO; target '{target.get('name')}' "
        f"uses {provider}: re-export for one of those (--target cpu or cuda)"
    )


def _parameter_value(value: object) -> str:
    """A provider option as the backend's string parameter: booleans as "1"/"0", which both the backend's
    ParseBoolValue and ONNX Runtime's provider options read (Python's str(True) is "True")."""
    if isinstance(value, bool):
        return "1" if value else "0"
    return str(value)


def _accelerators(field: str, name: str, parameters: dict[str, str]) -> str:
    lines = [f"    {field}: [", "      {", f'        name: "{name}"']
    lines += [f'        parameters {{ key: "{k}" value: "{v}" }}' for k, v in parameters.items()]
    lines += ["      }", "    ]"]
    return "\n".join(lines)


def _tensor_block(field: str, values, extra: dict[str, str]) -> list[str]:
    """`input [...]` / `output [...]` from the graph's value infos, minus the batch dimension."""
    lines = [f"{field} ["]
    for i, v in enumerate(values):
        tensor = v.type.tensor_type
        dims = list(tensor.shape.dim)
        if not dims or dims[0].HasField("dim_value"):
            raise ArtifactError(f"{field} {v.name} has no dynamic batch dimension: Triton cannot batch it")
        rest = [str(d.dim_value) if d.HasField("dim_value") else "-1" for d in dims[1:]]
        dtype = _TRITON_TYPES.get(tensor.elem_type)
        if dtype is None:
            raise ArtifactError(f"{field} {v.name} has ONNX element type {tensor.elem_type}, which Triton lacks")
        lines += ["  {", f'    name: "{v.name}"', f"    data_type: {dtype}"]
        # a [batch] tensor (one string per request): Triton wants a dims of [ 1 ] that the model sees as [ ]
        lines += [f"    dims: [ {', '.join(rest)} ]"] if rest else ["    dims: [ 1 ]", "    reshape: { shape: [ ] }"]
        lines += [f'    {k}: "{val}"' for k, val in extra.get(v.name, {}).items()]
        lines.append("  }," if i < len(values) - 1 else "  }")
    lines.append("]")
    return lines


def triton_config(
    name: str, model, manifest: dict[str, Any], settings: TritonSettings, placement: _Placement, source: Path
) -> str:
    """config.pbtxt text for Triton's onnxruntime backend, from the graph and the manifest."""
    sha = manifest["files"].get(manifest["model_file"], "?")
    target = manifest["target"]
    pad = manifest.get("pad_token_id")
    lines = [
        f"# Triton model configuration written by `edgecut deploy` (edgecut {__version__}).",
        f"# Artifact: {source}",
        f"#   {manifest['model_file']} sha256 {sha}; target {target.get('name')}, "
        f"graph precision {manifest.get('precision', 'fp32')}",
    ]
    if settings.strings:
        lines += [
            "# Requests: text, one string per request (BYTES [1]); the prompt, tokenizer, query truncation and",
            "#   padding run inside model_text.onnx. Outputs: logits, label (string) and truncated (bool).",
            f"# Needs onnxruntime-extensions' operator library on the server at {settings.extensions_library}.",
        ]
    else:
        lines += [
            f"# Requests: input_ids and attention_mask, int64 [batch, sequence], right-padded with pad_token_id {pad},",
            "#   built with the artifact's prompt (edgecut.runtime.ArtifactClassifier.encode).",
            "# The dynamic batcher merges only requests of equal shape: pad to a common length to batch them.",
        ]
    lines += [f'name: "{name}"', 'backend: "onnxruntime"', f"max_batch_size: {settings.max_batch_size}"]
    if settings.strings:
        lines.append(f'default_model_filename: "{TEXT_MODEL}"')
    lines += _tensor_block("input", list(model.graph.input), {})
    lines += _tensor_block("output", list(model.graph.output), {"logits": {"label_filename": LABELS}})
    lines += ["dynamic_batching {", f"  max_queue_delay_microseconds: {settings.max_queue_delay_us}", "}"]
    group = ["instance_group [", "  {", f"    count: {settings.instances}", f"    kind: {placement.kind}"]
    if placement.gpus:
        group.append(f"    gpus: [ {', '.join(map(str, placement.gpus))} ]")
    lines += [*group, "  }", "]"]
    level = _GRAPH_LEVEL.get(target.get("graph_optimization", "all"))
    if level is not None or placement.accelerator_block:
        lines.append("optimization {")
        if level is not None:
            lines.append(f"  graph {{ level: {level} }}")
        if placement.accelerator_block:
            lines += ["  execution_accelerators {", placement.accelerator_block, "  }"]
        lines.append("}")
    for key, value in placement.parameters:
        lines.append(f'parameters {{ key: "{key}" value: {{ string_value: "{value}" }} }}')
    if settings.strings:
        lines += ["model_operations {", f'  op_library_filename: [ "{settings.extensions_library}" ]', "}"]
    return "\n".join(lines) + "\n"
