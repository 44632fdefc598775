"""`edgecut deploy --triton`: the generated config.pbtxt parses as Triton's ModelConfig and matches the graph."""

from __future__ import annotations

import json

import onnx
import pytest
from artifact_helpers import copy_artifact, edit_manifest, rehash
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2  # Triton's own model_config.proto (tritonclient is a test dependency)
from typer.testing import CliRunner

from edgecut.artifacts.manifest import sha256_file
from edgecut.cli import app
from edgecut.errors import EdgecutError

runner = CliRunner()
ONNX_TO_TRITON = {onnx.TensorProto.INT64: "TYPE_INT64", onnx.TensorProto.FLOAT: "TYPE_FP32"}


def _parse(path):
    """config.pbtxt as Triton reads it: text_format fails on any field, value or enum name Triton lacks."""
    return text_format.Parse(path.read_text(encoding="utf-8"), model_config_pb2.ModelConfig())


def _kind(config, group=0):
    return model_config_pb2.ModelInstanceGroup.Kind.Name(config.instance_group[group].kind)


def _dtype(tensor):
    return model_config_pb2.DataType.Name(tensor.data_type)


@pytest.fixture(scope="module")
def artifact(tiny_artifact):
    return tiny_artifact  # the shared one; read only (tests that edit it edit a copy)


def _deploy(*args):
    return runner.invoke(app, ["deploy", *map(str, args)])


def _with_target(artifact, tmp_path, target):
    copy = copy_artifact(artifact, tmp_path / target["name"])
    manifest = json.loads((copy / "edgecut.json").read_text())
    edit_manifest(copy, target={**manifest["target"], **target})  # the manifest is not in its own hash list
    return copy


def _assert_tensors_match_the_graph(config, artifact):
    """Input and output names, Triton dtypes and dims (batch left out) equal the id graph's; labels.txt named."""
    graph = onnx.load(str(artifact / "model.onnx")).graph
    for declared, actual in ((config.input, graph.input), (config.output, graph.output)):
        assert [t.name for t in declared] == [v.name for v in actual]
        for tensor, value in zip(declared, actual, strict=True):
            assert _dtype(tensor) == ONNX_TO_TRITON[value.type.tensor_type.elem_type]
            dims = value.type.tensor_type.shape.dim
            assert dims[0].dim_param  # batch: dynamic in the graph, implicit in Triton (max_batch_size)
            expected = [d.dim_value if d.HasField("dim_value") else -1 for d in dims[1:]]
            assert list(tensor.dims) == expected
    assert [t.name for t in config.input] == ["input_ids", "attention_mask"]
    assert [_dtype(t) for t in config.input] == ["TYPE_INT64", "TYPE_INT64"]
    assert [list(t.dims) for t in config.input] == [[-1], [-1]]  # sequence stays dynamic
    labels = json.loads((artifact / "edgecut.json").read_text())["labels"]
    assert [t.name for t in config.output] == ["logits"] and _dtype(config.output[0]) == "TYPE_FP32"
    assert list(config.output[0].dims) == [len(labels)]
    assert config.output[0].label_filename == "labels.txt"


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
    assert config.name == "sentiment" and config.backend == "onnxruntime" and config.max_batch_size == 16
    _assert_tensors_match_the_graph(config, artifact)
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
            "graph_optimization": "disable",
            "provider_options": {
                "CUDAExecutionProvider": {
                    "device_id": 1,
                    "cudnn_conv_algo_search": "HEURISTIC",
                    "do_copy_in_default_stream": False,
                }
            },
        },
    )
    assert _deploy(cuda, "--triton", tmp_path / "repo", "--instances", "2").exit_code == 0
    config = _parse(tmp_path / "repo" / "cuda" / "config.pbtxt")
    _assert_tensors_match_the_graph(config, cuda)
    assert _kind(config) == "KIND_GPU" and list(config.instance_group[0].gpus) == [1]
    assert config.instance_group[0].count == 2
    # the backend's values: HEURISTIC is 1, booleans "1"/"0"; level 2 switches ORT's graph optimisation off
    assert {k: v.string_value for k, v in config.parameters.items()} == {
        "cudnn_conv_algo_search": "1",
        "do_copy_in_default_stream": "0",
    }
    assert config.optimization.graph.level == 2
    assert not config.optimization.HasField("execution_accelerators")


def test_cuda_options_beyond_the_model_parameters_go_through_the_cuda_accelerator(artifact, tmp_path):
    """cuda-fp32's use_tf32 = 0 must reach the server's CUDA provider, or Triton would serve it in TF32."""
    from edgecut.targets import load_target

    fp32 = load_target("cuda-fp32")
    served = _with_target(artifact, tmp_path, fp32.as_dict())
    assert _deploy(served, "--triton", tmp_path / "repo").exit_code == 0
    config = _parse(tmp_path / "repo" / "cuda-fp32" / "config.pbtxt")
    assert _kind(config) == "KIND_GPU" and list(config.instance_group[0].gpus) == [0]
    (accelerator,) = config.optimization.execution_accelerators.gpu_execution_accelerator
    assert accelerator.name == "cuda" and dict(accelerator.parameters) == {"use_tf32": "0"}
    assert {k: v.string_value for k, v in config.parameters.items()} == {"cudnn_conv_algo_search": "1"}


def test_tensorrt_fp16_target_gets_the_tensorrt_accelerator(artifact, tmp_path):
    trt = _with_target(
        artifact,
        tmp_path,
        {
            "name": "tensorrt-fp16",
            "providers": ["TensorrtExecutionProvider", "CUDAExecutionProvider"],
            "precision": "fp16",
            "graph_optimization": "basic",
            "provider_options": {
                "TensorrtExecutionProvider": {"trt_max_workspace_size": 2147483648, "trt_engine_cache_enable": True}
            },
        },
    )
    result = _deploy(trt, "--triton", tmp_path / "repo")
    assert result.exit_code == 0, result.output
    config = _parse(tmp_path / "repo" / "tensorrt-fp16" / "config.pbtxt")
    _assert_tensors_match_the_graph(config, trt)
    assert _kind(config) == "KIND_GPU" and list(config.instance_group[0].gpus) == [0]
    assert not config.optimization.execution_accelerators.cpu_execution_accelerator
    (accelerator,) = config.optimization.execution_accelerators.gpu_execution_accelerator
    assert accelerator.name == "tensorrt"
    assert dict(accelerator.parameters) == {
        "precision_mode": "FP16",
        "max_workspace_size_bytes": "2147483648",
        "trt_engine_cache_enable": "1",
    }
    assert config.optimization.graph.level == -1
    assert "tensorrt FP16" in result.output


def test_openvino_target_gets_the_openvino_cpu_accelerator(artifact, tmp_path):
    openvino = _with_target(
        artifact,
        tmp_path,
        {"name": "openvino", "providers": ["OpenVINOExecutionProvider"], "graph_optimization": "extended"},
    )
    result = _deploy(openvino, "--triton", tmp_path / "repo")
    assert result.exit_code == 0, result.output
    config = _parse(tmp_path / "repo" / "openvino" / "config.pbtxt")
    _assert_tensors_match_the_graph(config, openvino)
    assert _kind(config) == "KIND_CPU" and not config.instance_group[0].gpus
    (accelerator,) = config.optimization.execution_accelerators.cpu_execution_accelerator
    assert accelerator.name == "openvino" and not accelerator.parameters
    assert not config.optimization.execution_accelerators.gpu_execution_accelerator
    assert config.optimization.graph.level == 1
    assert not config.parameters


def test_string_input_repository_serves_raw_text(artifact, tmp_path):
    """`--strings`: model_text.onnx takes one string per request; Triton's schema accepts the config."""
    import numpy as np
    import onnxruntime as ort

    from edgecut.graph.text_graph import session_options
    from edgecut.runtime import ArtifactClassifier
    from edgecut.serving.deploy import EXTENSIONS_LIBRARY, TritonSettings, deploy_triton

    deployment = deploy_triton(artifact, TritonSettings(tmp_path / "repo", name="text", strings=True))
    model_dir = tmp_path / "repo" / "text"
    assert deployment.files == ("model_text.onnx",)
    assert sorted(p.relative_to(model_dir).as_posix() for p in model_dir.rglob("*")) == [
        "1",
        "1/model_text.onnx",
        "config.pbtxt",
        "labels.txt",
    ]
    config = _parse(model_dir / "config.pbtxt")
    assert config.default_model_filename == "model_text.onnx" and config.backend == "onnxruntime"
    assert list(config.model_operations.op_library_filename) == [EXTENSIONS_LIBRARY]
    (text,) = config.input
    assert (text.name, _dtype(text), list(text.dims)) == ("text", "TYPE_STRING", [1])
    assert text.HasField("reshape") and list(text.reshape.shape) == []  # the graph's input is [batch]
    assert [(o.name, _dtype(o)) for o in config.output] == [
        ("logits", "TYPE_FP32"),
        ("label", "TYPE_STRING"),
        ("truncated", "TYPE_BOOL"),
    ]
    labels = json.loads((artifact / "edgecut.json").read_text())["labels"]
    assert list(config.output[0].dims) == [len(labels)] and config.output[0].label_filename == "labels.txt"
    assert all(list(o.dims) == [1] and list(o.reshape.shape) == [] for o in config.output[1:])
    assert _kind(config) == "KIND_CPU"

    texts = ["good great lovely film", "bad awful dull plot"]
    session = ort.InferenceSession(
        str(model_dir / "1" / "model_text.onnx"), session_options(), providers=["CPUExecutionProvider"]
    )
    got = session.run(["label"], {"text": np.array(texts, dtype=object)})[0]
    assert [str(x) for x in got] == [p.label for p in ArtifactClassifier(artifact).predict(texts)]


def test_strings_for_an_unsupported_tokenizer_writes_nothing(artifact, tmp_path):
    from edgecut.graph.text_graph import UnsupportedTokenizerError
    from edgecut.serving.deploy import TritonSettings, deploy_triton

    copy = copy_artifact(artifact, tmp_path / "metaspace")
    data = json.loads((copy / "tokenizer.json").read_text())
    data["pre_tokenizer"] = {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "always"}
    (copy / "tokenizer.json").write_text(json.dumps(data))
    rehash(copy)
    with pytest.raises(UnsupportedTokenizerError, match="pre-tokenizer Metaspace"):
        deploy_triton(copy, TritonSettings(tmp_path / "repo", strings=True))
    assert not (tmp_path / "repo").exists() or list((tmp_path / "repo").iterdir()) == []
    with pytest.raises(EdgecutError, match="absolute path"):
        TritonSettings(tmp_path / "repo", strings=True, extensions_library="libortextensions.so")


def test_the_schema_check_catches_an_unknown_field_and_a_wrong_enum(artifact, tmp_path):
    """The parse above is strict: what Triton would refuse at load time fails here."""
    assert _deploy(artifact, "--triton", tmp_path / "repo", "--name", "m").exit_code == 0
    text = (tmp_path / "repo" / "m" / "config.pbtxt").read_text()
    text_format.Parse(text, model_config_pb2.ModelConfig())
    for broken in (
        text + "max_sequence_length: 128\n",  # not a ModelConfig field
        text.replace("kind: KIND_CPU", "kind: KIND_CPUS"),  # not a Kind
        text.replace("data_type: TYPE_INT64", "data_type: INT64", 1),  # Triton's enum names carry TYPE_
        text.replace("max_queue_delay_microseconds: 100", 'max_queue_delay_microseconds: "100"'),  # a number
    ):
        assert broken != text
        with pytest.raises(text_format.ParseError):
            text_format.Parse(broken, model_config_pb2.ModelConfig())


def test_existing_model_needs_force(artifact, tmp_path):
    repo = tmp_path / "repo"
    assert _deploy(artifact, "--triton", repo, "--name", "m").exit_code == 0
    config = repo / "m" / "config.pbtxt"
    edited = config.read_text() + "# edited by hand\n"  # still edgecut's header: --force may replace it
    config.write_text(edited)
    result = _deploy(artifact, "--triton", repo, "--name", "m")
    assert result.exit_code == 2 and result.output.strip().splitlines()[-1].startswith("error:")
    assert "--force" in result.output
    assert config.read_text() == edited
    assert _deploy(artifact, "--triton", repo, "--name", "m", "--force").exit_code == 0
    assert _parse(repo / "m" / "config.pbtxt").name == "m"
    assert sorted(p.name for p in repo.iterdir()) == ["m"]


@pytest.mark.parametrize(
    ("setup", "args", "match"),
    [
        ("tampered", [], "is broken (files"),
        ("coreml", [], "CoreMLExecutionProvider"),
        ("tensorrt-int8", [], "calibration table"),
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
    elif setup == "tensorrt-int8":
        trt = {"name": "trt-int8", "providers": ["TensorrtExecutionProvider"], "precision": "int8"}
        source = _with_target(artifact, tmp_path, trt)
    repo = tmp_path / "repo"
    result = _deploy(source, "--triton", repo, *args)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    lines = [line for line in result.output.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and match in lines[0], result.output
    assert not repo.exists() or list(repo.iterdir()) == []
