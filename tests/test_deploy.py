"""`edgecut deploy --triton`: the generated config.pbtxt parses as Triton's ModelConfig and matches the graph."""

from __future__ import annotations

import json

import onnx
import pytest
from artifact_helpers import copy_artifact, edit_manifest, export_tiny
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, text_format
from typer.testing import CliRunner

from edgecut.artifact import sha256_file
from edgecut.cli import app

runner = CliRunner()
F = descriptor_pb2.FieldDescriptorProto
ONNX_TO_TRITON = {onnx.TensorProto.INT64: "TYPE_INT64", onnx.TensorProto.FLOAT: "TYPE_FP32"}


def _model_config_class():
    """The subset of Triton's `inference.ModelConfig` (model_config.proto) that edgecut writes.

    Field names, numbers and enum values are Triton's, so text_format rejects any field or value Triton
    would reject; the full schema ships in tritonclient (checked by hand against tritonclient 2.73.0).
    """
    fdp = descriptor_pb2.FileDescriptorProto(name="edgecut_test_model_config.proto", package="inference")
    fdp.syntax = "proto3"
    data_type = fdp.enum_type.add(name="DataType")
    for number, name in enumerate(
        "INVALID BOOL UINT8 UINT16 UINT32 UINT64 INT8 INT16 INT32 INT64 FP16 FP32 FP64 STRING BF16".split()
    ):
        data_type.value.add(name=f"TYPE_{name}", number=number)

    def message(name, fields, parent=None):
        msg = (parent.nested_type if parent else fdp.message_type).add(name=name)
        for fname, number, ftype, label, type_name in fields:
            added = msg.field.add(name=fname, number=number, type=ftype, label=label)
            if type_name:
                added.type_name = type_name
        return msg

    def map_entry(parent, name, value_type, value_type_name=None):
        fields = [
            ("key", 1, F.TYPE_STRING, F.LABEL_OPTIONAL, None),
            ("value", 2, value_type, F.LABEL_OPTIONAL, value_type_name),
        ]
        entry = message(name, fields, parent)
        entry.options.map_entry = True

    opt, rep = F.LABEL_OPTIONAL, F.LABEL_REPEATED
    message(
        "ModelInput",
        [
            ("name", 1, F.TYPE_STRING, opt, None),
            ("data_type", 2, F.TYPE_ENUM, opt, ".inference.DataType"),
            ("dims", 4, F.TYPE_INT64, rep, None),
        ],
    )
    message(
        "ModelOutput",
        [
            ("name", 1, F.TYPE_STRING, opt, None),
            ("data_type", 2, F.TYPE_ENUM, opt, ".inference.DataType"),
            ("dims", 3, F.TYPE_INT64, rep, None),
            ("label_filename", 4, F.TYPE_STRING, opt, None),
        ],
    )
    group = message(
        "ModelInstanceGroup",
        [
            ("name", 1, F.TYPE_STRING, opt, None),
            ("count", 2, F.TYPE_INT32, opt, None),
            ("gpus", 3, F.TYPE_INT32, rep, None),
            ("kind", 4, F.TYPE_ENUM, opt, ".inference.ModelInstanceGroup.Kind"),
        ],
    )
    kind = group.enum_type.add(name="Kind")
    for number, name in enumerate(["KIND_AUTO", "KIND_GPU", "KIND_CPU", "KIND_MODEL"]):
        kind.value.add(name=name, number=number)
    message(
        "ModelDynamicBatching",
        [
            ("preferred_batch_size", 1, F.TYPE_INT32, rep, None),
            ("max_queue_delay_microseconds", 2, F.TYPE_UINT64, opt, None),
        ],
    )
    policy = message(
        "ModelOptimizationPolicy",
        [
            ("graph", 1, F.TYPE_MESSAGE, opt, ".inference.ModelOptimizationPolicy.Graph"),
            (
                "execution_accelerators",
                4,
                F.TYPE_MESSAGE,
                opt,
                ".inference.ModelOptimizationPolicy.ExecutionAccelerators",
            ),
        ],
    )
    message("Graph", [("level", 1, F.TYPE_INT32, opt, None)], policy)
    accelerator_type = ".inference.ModelOptimizationPolicy.ExecutionAccelerators.Accelerator"
    accelerators = message(
        "ExecutionAccelerators",
        [
            ("gpu_execution_accelerator", 1, F.TYPE_MESSAGE, rep, accelerator_type),
            ("cpu_execution_accelerator", 2, F.TYPE_MESSAGE, rep, accelerator_type),
        ],
        policy,
    )
    accelerator = message(
        "Accelerator",
        [
            ("name", 1, F.TYPE_STRING, opt, None),
            (
                "parameters",
                2,
                F.TYPE_MESSAGE,
                rep,
                ".inference.ModelOptimizationPolicy.ExecutionAccelerators.Accelerator.ParametersEntry",
            ),
        ],
        accelerators,
    )
    map_entry(accelerator, "ParametersEntry", F.TYPE_STRING)
    message("ModelParameter", [("string_value", 1, F.TYPE_STRING, opt, None)])
    config = message(
        "ModelConfig",
        [
            ("name", 1, F.TYPE_STRING, opt, None),
            ("platform", 2, F.TYPE_STRING, opt, None),
            ("max_batch_size", 4, F.TYPE_INT32, opt, None),
            ("input", 5, F.TYPE_MESSAGE, rep, ".inference.ModelInput"),
            ("output", 6, F.TYPE_MESSAGE, rep, ".inference.ModelOutput"),
            ("instance_group", 7, F.TYPE_MESSAGE, rep, ".inference.ModelInstanceGroup"),
            ("dynamic_batching", 11, F.TYPE_MESSAGE, opt, ".inference.ModelDynamicBatching"),
            ("optimization", 12, F.TYPE_MESSAGE, opt, ".inference.ModelOptimizationPolicy"),
            ("parameters", 14, F.TYPE_MESSAGE, rep, ".inference.ModelConfig.ParametersEntry"),
            ("backend", 17, F.TYPE_STRING, opt, None),
        ],
    )
    map_entry(config, "ParametersEntry", F.TYPE_MESSAGE, ".inference.ModelParameter")
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fdp)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("inference.ModelConfig"))


ModelConfig = _model_config_class()


def _parse(path):
    return text_format.Parse(path.read_text(encoding="utf-8"), ModelConfig())


def _kind(config, group=0):
    return (
        config.DESCRIPTOR.fields_by_name["instance_group"]
        .message_type.enum_types_by_name["Kind"]
        .values_by_number[config.instance_group[group].kind]
        .name
    )


def _dtype(tensor):
    return tensor.DESCRIPTOR.fields_by_name["data_type"].enum_type.values_by_number[tensor.data_type].name


@pytest.fixture(scope="module")
def artifact(tiny_model_dirs, tiny_csv, tmp_path_factory):
    out = tmp_path_factory.mktemp("deploy") / "tiny"
    return export_tiny(tiny_model_dirs["gpt2"], tiny_csv, out, "--epochs", "1")


def _deploy(*args):
    return runner.invoke(app, ["deploy", *map(str, args)])


def _with_target(artifact, tmp_path, target):
    copy = copy_artifact(artifact, tmp_path / target["name"])
    manifest = json.loads((copy / "edgecut.json").read_text())
    edit_manifest(copy, target={**manifest["target"], **target})  # the manifest is not in its own hash list
    return copy


def test_cpu_repository_matches_the_onnx_graph(artifact, tmp_path):
    repo = tmp_path / "repo"
    result = _deploy(artifact, "--triton", repo, "--name", "sentiment", "--max-batch-size", "16")
    assert result.exit_code == 0, result.output
    model_dir = repo / "sentiment"
    assert sorted(p.relative_to(model_dir).as_posix() for p in model_dir.rglob("*")) == [
        "1",
        "1/model.onnx",
        "config.pbtxt",
        "labels.txt",
    ]
    assert [p.name for p in repo.iterdir()] == ["sentiment"]  # no partial directory left behind
    manifest = json.loads((artifact / "edgecut.json").read_text())
    assert sha256_file(model_dir / "1" / "model.onnx") == manifest["files"]["model.onnx"]
    assert (model_dir / "labels.txt").read_text().splitlines() == manifest["labels"]

    config = _parse(model_dir / "config.pbtxt")
    graph = onnx.load(str(artifact / "model.onnx")).graph
    assert config.name == "sentiment" and config.backend == "onnxruntime" and config.max_batch_size == 16
    for declared, actual in ((config.input, graph.input), (config.output, graph.output)):
        assert [t.name for t in declared] == [v.name for v in actual]
        for tensor, value in zip(declared, actual, strict=True):
            assert _dtype(tensor) == ONNX_TO_TRITON[value.type.tensor_type.elem_type]
            dims = value.type.tensor_type.shape.dim
            assert dims[0].dim_param  # batch: dynamic in the graph, implicit in Triton (max_batch_size)
            expected = [d.dim_value if d.HasField("dim_value") else -1 for d in dims[1:]]
            assert list(tensor.dims) == expected
    assert [list(t.dims) for t in config.input] == [[-1], [-1]]  # sequence stays dynamic
    assert list(config.output[0].dims) == [len(manifest["labels"])]
    assert config.output[0].label_filename == "labels.txt"
    assert config.HasField("dynamic_batching") and config.dynamic_batching.max_queue_delay_microseconds == 100
    assert len(config.instance_group) == 1 and _kind(config) == "KIND_CPU" and config.instance_group[0].count == 1
    assert not config.HasField("optimization")
    assert "KIND_CPU" in result.output


def test_cuda_target_gets_gpu_instances(artifact, tmp_path):
    cuda = _with_target(
        artifact,
        tmp_path,
        {
            "name": "cuda",
            "providers": ["CUDAExecutionProvider"],
            "provider_options": {"CUDAExecutionProvider": {"device_id": 1, "cudnn_conv_algo_search": "HEURISTIC"}},
        },
    )
    assert _deploy(cuda, "--triton", tmp_path / "repo", "--instances", "2").exit_code == 0
    config = _parse(tmp_path / "repo" / "cuda" / "config.pbtxt")
    assert _kind(config) == "KIND_GPU" and list(config.instance_group[0].gpus) == [1]
    assert config.instance_group[0].count == 2
    assert config.parameters["cudnn_conv_algo_search"].string_value == "1"  # HEURISTIC
    assert not config.optimization.HasField("execution_accelerators")


def test_tensorrt_fp16_target_gets_the_tensorrt_accelerator(artifact, tmp_path):
    trt = _with_target(
        artifact,
        tmp_path,
        {
            "name": "tensorrt-fp16",
            "providers": ["TensorrtExecutionProvider", "CUDAExecutionProvider"],
            "precision": "fp16",
            "graph_optimization": "basic",
            "provider_options": {"TensorrtExecutionProvider": {"trt_max_workspace_size": 2147483648}},
        },
    )
    result = _deploy(trt, "--triton", tmp_path / "repo")
    assert result.exit_code == 0, result.output
    config = _parse(tmp_path / "repo" / "tensorrt-fp16" / "config.pbtxt")
    assert _kind(config) == "KIND_GPU"
    (accelerator,) = config.optimization.execution_accelerators.gpu_execution_accelerator
    assert accelerator.name == "tensorrt"
    assert dict(accelerator.parameters) == {"precision_mode": "FP16", "max_workspace_size_bytes": "2147483648"}
    assert config.optimization.graph.level == -1
    assert "tensorrt FP16" in result.output


def test_existing_model_needs_force(artifact, tmp_path):
    repo = tmp_path / "repo"
    assert _deploy(artifact, "--triton", repo, "--name", "m").exit_code == 0
    (repo / "m" / "config.pbtxt").write_text("# edited by hand\n")
    result = _deploy(artifact, "--triton", repo, "--name", "m")
    assert result.exit_code == 2 and result.output.strip().splitlines()[-1].startswith("error:")
    assert "--force" in result.output
    assert (repo / "m" / "config.pbtxt").read_text() == "# edited by hand\n"
    assert _deploy(artifact, "--triton", repo, "--name", "m", "--force").exit_code == 0
    assert _parse(repo / "m" / "config.pbtxt").name == "m"
    assert sorted(p.name for p in repo.iterdir()) == ["m"]


@pytest.mark.parametrize(
    ("setup", "args", "match"),
    [
        ("tampered", [], "is broken (files"),
        ("coreml", [], "CoreMLExecutionProvider"),
        ("none", ["--name", "../escape"], "--name"),
        ("none", ["--max-batch-size", "0"], "--max-batch-size"),
    ],
)
def test_bad_input_writes_nothing_and_exits_2(setup, args, match, artifact, tmp_path):
    source = artifact
    if setup == "tampered":
        source = copy_artifact(artifact, tmp_path / "tampered")
        (source / "model.onnx").write_bytes((artifact / "model.onnx").read_bytes()[:-10])
    elif setup == "coreml":
        source = _with_target(artifact, tmp_path, {"name": "coreml", "providers": ["CoreMLExecutionProvider"]})
    repo = tmp_path / "repo"
    result = _deploy(source, "--triton", repo, *args)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    lines = [line for line in result.output.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and match in lines[0], result.output
    assert not repo.exists() or list(repo.iterdir()) == []
