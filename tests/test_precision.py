"""Targets beyond fp32: int8 (dynamic and static QDQ), fp16, graph optimisation, precision rules."""

import numpy as np
import onnx
import onnxruntime
import pytest
from conftest import _sentences, tiny_model

from edgecut.errors import ProviderUnavailableError, TargetError
from edgecut.graph.exporter import export_onnx, torch_logits
from edgecut.graph.optimize import optimize_graph
from edgecut.graph.quantize import (
    cpu_has_vnni,
    drop_fp16_round_trips,
    drop_repeated_nodes,
    resolve_reduce_range,
    to_fp16,
    to_int8,
)
from edgecut.model.classifier import make_classifier
from edgecut.model.prune import cut_to_first
from edgecut.runtime import check_target_available, create_session, measure_latency, pad_batch, run_logits
from edgecut.targets import Int8Settings, available_targets, load_target

WORDS = [" negative", " positive"]


@pytest.fixture(scope="module")
def graph(tmp_path_factory, tokenizer_dir):
    """A tiny Llama classifier exported to fp32 ONNX, with 120 real prompts and its torch logits."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    model = tiny_model("llama", tok, layers=3)
    cut_to_first(model, 2)
    clf = make_classifier(model, tok, ["neg", "pos"], WORDS)
    seqs = [tok(f"Review: {t}\nSentiment:")["input_ids"] for t, _ in _sentences(120, seed=5)]
    path = tmp_path_factory.mktemp("graph") / "fp32.onnx"
    export_onnx(clf, pad_batch(seqs[:2], tok.pad_token_id), path)
    return {
        "path": path,
        "seqs": seqs,
        "pad": tok.pad_token_id,
        "torch": torch_logits(clf, seqs, tok.pad_token_id),
        "config": clf.config,
    }


@pytest.mark.parametrize(
    "settings",
    [Int8Settings("dynamic", False), Int8Settings("dynamic", True), Int8Settings("static", True, False, 64)],
    ids=["dynamic", "dynamic-per-channel", "static-qdq-per-channel"],
)
def test_int8_keeps_argmax_agreement(settings, graph, tmp_path):
    calibration = [pad_batch([s], graph["pad"]) for s in graph["seqs"][:64]]
    result = to_int8(graph["path"], tmp_path / "int8.onnx", settings, calibration)
    assert result.bytes_after < result.bytes_before
    assert result.calibration_size == (64 if settings.mode == "static" else 0)
    logits = run_logits(create_session(result.path, load_target("cpu")), graph["seqs"], graph["pad"])
    agreement = (logits.argmax(-1) == graph["torch"].argmax(-1)).mean()
    assert agreement >= 0.95, agreement
    if settings.mode == "static":
        import onnx

        ops = {n.op_type for n in onnx.load(str(result.path)).graph.node}
        assert {"QuantizeLinear", "DequantizeLinear"} <= ops  # QDQ format


def test_reduce_range_follows_vnni():
    assert resolve_reduce_range("auto") is (not cpu_has_vnni())
    assert resolve_reduce_range(True) is True and resolve_reduce_range(False) is False


def test_fp16_graph_keeps_parity_where_ort_cpu_runs_it(graph, tmp_path):
    target = load_target("cuda")
    result = to_fp16(graph["path"], tmp_path / "fp16.onnx", target.fp16.keep_fp32_ops)
    import onnx

    def weight_bytes(path):
        return sum(len(t.raw_data) for t in onnx.load(str(path)).graph.initializer)

    assert weight_bytes(result.path) < 0.6 * weight_bytes(graph["path"])  # the weights really are fp16
    # ORT's CPU provider has the fp16 kernels this graph needs: a graph it cannot load fails here, not skips
    session = create_session(result.path, load_target("cpu"))
    logits = run_logits(session, graph["seqs"], graph["pad"])
    assert [i.type for i in session.get_inputs()] == ["tensor(int64)"] * 2
    assert session.get_outputs()[0].type == "tensor(float)"
    np.testing.assert_allclose(logits, graph["torch"], atol=target.parity_atol, rtol=0)
    assert (logits.argmax(-1) == graph["torch"].argmax(-1)).mean() >= target.min_argmax_agreement


def test_fp16_graph_passes_the_onnx_checker(graph, tmp_path):
    # `edgecut check` runs the ONNX checker on every artifact: nodes sorted, names unique.
    import onnx

    result = to_fp16(graph["path"], tmp_path / "fp16.onnx", load_target("cuda").fp16.keep_fp32_ops)
    model = onnx.load(str(result.path))
    onnx.checker.check_model(model)  # what `edgecut check` runs
    names = [node.name for node in model.graph.node]
    assert len(names) == len(set(names))


def test_repeated_casts_from_old_fp16_converters_are_dropped():
    # What onnxruntime-gpu 1.31's converter writes when one fp16 tensor feeds two kept-fp32 ops.
    from onnx import TensorProto, helper

    cast = helper.make_node("Cast", ["x"], ["x_cast_to_fp32"], to=TensorProto.FLOAT, name="x_cast_to_fp32_node")
    graph = helper.make_graph(
        [
            cast,
            helper.make_node("Softmax", ["x_cast_to_fp32"], ["a"], name="softmax"),
            cast,
            helper.make_node("Sqrt", ["x_cast_to_fp32"], ["b"], name="sqrt"),
            helper.make_node("Add", ["a", "b"], ["y"], name="add"),
        ],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT16, [1, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=10)
    cpu = ["CPUExecutionProvider"]
    with pytest.raises(Exception, match="same node name"):
        onnxruntime.InferenceSession(model.SerializeToString(), providers=cpu)
    assert drop_repeated_nodes(model.graph) == 1
    assert [n.name for n in model.graph.node] == ["x_cast_to_fp32_node", "softmax", "sqrt", "add"]
    x = np.array([[1.0, 4.0, 9.0]], dtype=np.float16)
    (y,) = onnxruntime.InferenceSession(model.SerializeToString(), providers=cpu).run(None, {"x": x})
    expected = np.exp(x.astype(np.float32)) / np.exp(x.astype(np.float32)).sum() + np.sqrt(x.astype(np.float32))
    np.testing.assert_allclose(y, expected, rtol=1e-6)
    assert drop_repeated_nodes(model.graph) == 0


def _rms_norm_graph(path):
    """x / sqrt(mean(x²) + eps), the norm of a decoder layer, as torch exports it (fp32)."""
    from onnx import TensorProto, helper

    nodes = [
        helper.make_node("Pow", ["x", "two"], ["squares"]),
        helper.make_node("ReduceMean", ["squares", "axes"], ["mean"], keepdims=1),
        helper.make_node("Add", ["mean", "eps"], ["shifted"]),
        helper.make_node("Sqrt", ["shifted"], ["rms"]),
        helper.make_node("Reciprocal", ["rms"], ["inverse"]),
        helper.make_node("Mul", ["x", "inverse"], ["y"]),
    ]
    constants = [
        helper.make_tensor("two", TensorProto.FLOAT, [], [2.0]),
        helper.make_tensor("axes", TensorProto.INT64, [1], [-1]),
        helper.make_tensor("eps", TensorProto.FLOAT, [], [1e-5]),
    ]
    graph = helper.make_graph(
        nodes,
        "rms_norm",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
        constants,
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=10), str(path))


def test_kept_fp32_ops_hand_each_other_fp32_tensors(tmp_path):
    # SmolLM2 at full depth carries a ~26,000 activation: its x² is inf in fp16. Pow and ReduceMean are
    # kept fp32, but the converter still sent x² through fp16 between them, the norm came out 0, and the
    # 30-layer teachers lost 17.6-30.8 points on a GPU.
    from onnxruntime.transformers.float16 import convert_float_to_float16

    _rms_norm_graph(tmp_path / "fp32.onnx")
    keep = load_target("cuda").fp16.keep_fp32_ops
    x = np.array([[30000.0, 1.0, -2.0, 3.0]], dtype=np.float32)
    expected = x / np.sqrt((x.astype(np.float64) ** 2).mean() + 1e-5)
    cpu = ["CPUExecutionProvider"]

    as_converted = convert_float_to_float16(
        onnx.load(str(tmp_path / "fp32.onnx")), keep_io_types=True, op_block_list=list(keep)
    )
    (broken,) = onnxruntime.InferenceSession(as_converted.SerializeToString(), providers=cpu).run(None, {"x": x})
    assert not np.allclose(broken, expected, rtol=1e-2)  # what the converter alone gives

    assert drop_fp16_round_trips(as_converted) > 0
    (repaired,) = onnxruntime.InferenceSession(as_converted.SerializeToString(), providers=cpu).run(None, {"x": x})
    np.testing.assert_allclose(repaired, expected, rtol=1e-2)

    result = to_fp16(tmp_path / "fp32.onnx", tmp_path / "fp16.onnx", keep)  # what the targets build
    (y,) = onnxruntime.InferenceSession(str(result.path), providers=cpu).run(None, {"x": x})
    np.testing.assert_allclose(y, expected, rtol=1e-2)
    onnx.checker.check_model(onnx.load(str(result.path)))


def test_an_integer_trip_through_fp16_is_not_bypassed(tmp_path):
    # ids (int64) -> Cast fp16 -> Cast fp32 -> a kept Mul: bypassing that pair would feed int64 to Mul.
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [
            helper.make_node("Cast", ["ids"], ["as_float"], to=TensorProto.FLOAT),
            helper.make_node("Mul", ["as_float", "x"], ["y"]),
        ],
        "ints",
        [
            helper.make_tensor_value_info("ids", TensorProto.INT64, [1, 3]),
            helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3]),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])],
    )
    onnx.save(
        helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=10), str(tmp_path / "a.onnx")
    )
    result = to_fp16(tmp_path / "a.onnx", tmp_path / "fp16.onnx", ["Mul"])
    session = onnxruntime.InferenceSession(str(result.path), providers=["CPUExecutionProvider"])
    (y,) = session.run(None, {"ids": np.array([[1, 2, 3]]), "x": np.full((1, 3), 0.5, dtype=np.float32)})
    np.testing.assert_allclose(y, [[0.5, 1.0, 1.5]])


def test_int8_of_a_gemm_head_with_torch_style_value_info(tmp_path):
    # torch.onnx records value_info for initializers; ORT < 1.32's dynamic quantizer transposes a
    # Gemm(transB=1) weight in place, and the stale record then stopped quantization (the BERT baseline).
    from onnx import TensorProto, helper, numpy_helper

    from edgecut.graph.quantize import _without_initializer_shapes

    rng = np.random.default_rng(0)
    weight = rng.normal(size=(2, 64)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("Gemm", ["x", "w", "b"], ["y"], transB=1, name="head")],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 64])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])],
        [numpy_helper.from_array(weight, "w"), numpy_helper.from_array(np.zeros(2, np.float32), "b")],
        value_info=[helper.make_tensor_value_info("w", TensorProto.FLOAT, [2, 64])],
    )
    source = tmp_path / "gemm.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=10), str(source))
    assert [v.name for v in _without_initializer_shapes(source).graph.value_info] == []
    result = to_int8(source, tmp_path / "int8.onnx", Int8Settings(mode="dynamic", per_channel=True))
    x = rng.normal(size=(1, 64)).astype(np.float32)
    session = onnxruntime.InferenceSession(str(result.path), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(session.run(None, {"x": x})[0], x @ weight.T, atol=0.3)


def _with_both_passes():
    """The shipped targets list no offline pass (benchmarks/optimizations.py); a target file may list both."""
    from dataclasses import replace

    from edgecut.targets import OPTIMIZATIONS

    return replace(load_target("cpu"), optimizations=OPTIMIZATIONS)


def test_optimisation_is_kept_only_with_parity(graph, tmp_path):
    cpu = _with_both_passes()
    ref = graph["torch"][:32]
    result = optimize_graph(graph["path"], tmp_path, cpu, graph["config"], graph["seqs"], graph["pad"], ref)
    assert set(result.passes) == {"transformer-fusion", "ort-offline"}
    for name, record in result.passes.items():
        assert record["kept"] == (name in result.applied)
    logits = run_logits(create_session(result.path, cpu), graph["seqs"][:32], graph["pad"])
    np.testing.assert_allclose(logits, ref, atol=cpu.parity_atol, rtol=0)


def test_a_pass_that_breaks_parity_is_dropped(graph, tmp_path, monkeypatch, tokenizer):
    import edgecut.graph.optimize as opt

    # what a broken pass would write: the same graph with other weights (cheaper than exporting another model)
    broken = onnx.load(str(graph["path"]))
    rng = np.random.default_rng(7)
    for init in broken.graph.initializer:
        weights = onnx.numpy_helper.to_array(init)
        if weights.dtype == np.float32 and weights.size > 1:
            noisy = weights + rng.normal(0, weights.std() + 1e-2, weights.shape).astype(np.float32)
            init.CopyFrom(onnx.numpy_helper.from_array(noisy, init.name))
    wrong = tmp_path / "wrong.onnx"
    onnx.save(broken, str(wrong))
    differ = run_logits(create_session(wrong, load_target("cpu")), graph["seqs"][:32], graph["pad"])
    assert np.abs(differ - graph["torch"][:32]).max() > 0.1  # the "pass" output really breaks parity

    def broken_pass(name, source, destination, target, config):
        destination.write_bytes(wrong.read_bytes())
        return "broken"

    monkeypatch.setattr(opt, "_run_pass", broken_pass)
    result = optimize_graph(
        graph["path"], tmp_path, _with_both_passes(), graph["config"], graph["seqs"], graph["pad"], graph["torch"][:32]
    )
    assert result.applied == [] and result.path == graph["path"]
    assert set(result.passes) == {"transformer-fusion", "ort-offline"}
    assert all(r["why"] == "parity" for r in result.passes.values())


def test_io_binding_latency_runs_on_cpu(graph):
    session = create_session(graph["path"], load_target("cpu"))
    lat = measure_latency(session, graph["seqs"], graph["pad"], 8, warmup=2, runs=5, io_binding=True)
    assert lat.runs == 5 and 0 < lat.p50_ms <= lat.p90_ms


@pytest.mark.parametrize(
    ("target", "ask", "match"),
    [("cuda", "int8", "use --target cpu-int8"), ("cpu", "fp16", "use --target cuda"), ("cpu", "bf16", "--quantize")],
)
def test_impossible_precision_is_refused_naming_the_target_that_does_it(target, ask, match):
    with pytest.raises(TargetError, match=match):
        load_target(target).resolve_precision(ask)


def test_precision_defaults_to_the_target():
    assert load_target("cpu").resolve_precision("none") == "fp32"
    assert load_target("cpu").resolve_precision("int8") == "int8"
    assert load_target("cpu-int8").resolve_precision(None) == "int8"
    assert load_target("cuda").resolve_precision(None) == "fp16"


def test_tensorrt_target_is_refused_without_tensorrt():
    import onnxruntime

    if "TensorrtExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("this ONNX Runtime has TensorRT")
    with pytest.raises(ProviderUnavailableError, match="TensorRT"):
        check_target_available(load_target("tensorrt"))


@pytest.mark.parametrize(
    ("extra", "match"),
    [
        ('optimizations = ["magic"]', "unknown optimization 'magic'"),
        ('[int8]\nmode = "fuzzy"', "int8.mode"),
        ("[int8]\ncalibration_size = true", "int8.calibration_size"),
        ('[fp16]\nkeep_fp32_ops = "Softmax"', "fp16.keep_fp32_ops"),
        ("[fp16]\nspeed = 1", "unknown key 'fp16.speed'"),
        ('allowed_precisions = ["int8"]', "allowed_precisions"),
    ],
)
def test_schema_rejects_bad_precision_settings(extra, match, tmp_path):
    path = tmp_path / "t.toml"
    path.write_text(f'name="t"\ndescription="d"\nproviders=["CPUExecutionProvider"]\nprecision="fp32"\n{extra}\n')
    with pytest.raises(TargetError, match=match):
        load_target(str(path))


@pytest.mark.cuda
def test_cuda_fp16_session_runs_on_cuda(graph, tmp_path):
    import onnxruntime

    if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
        pytest.skip("needs onnxruntime-gpu and a CUDA device")
    target = load_target("cuda")
    result = to_fp16(graph["path"], tmp_path / "fp16.onnx", target.fp16.keep_fp32_ops)
    session = create_session(result.path, target)
    assert session.get_providers()[0] == "CUDAExecutionProvider"
    logits = run_logits(session, graph["seqs"], graph["pad"])
    np.testing.assert_allclose(logits, graph["torch"], atol=target.parity_atol, rtol=0)


_BUILT: dict[tuple, object] = {}


def _shipped_graphs(target, graph, workdir):
    """(label, path) of every graph `target` can ship: fp32, each int8 candidate, each fp16 candidate."""
    from edgecut.graph.precision import build_fp16_candidate, build_int8_candidate

    calibration = [pad_batch([s], graph["pad"]) for s in graph["seqs"][64:]]
    graphs = []
    for precision in target.allowed_precisions:
        if precision == "fp32" or (precision == "fp16" and not target.fp16.convert_graph):
            graphs.append(("fp32", graph["path"]))  # TensorRT builds its fp16 engine from this graph itself
            continue
        names = target.int8.candidates if precision == "int8" else target.fp16.candidates
        for name in names:
            key = (precision, name, target.int8 if precision == "int8" else target.fp16.keep_fp32_ops)
            if key not in _BUILT:
                destination = workdir / f"{precision}-{name}-{len(_BUILT)}.onnx"
                if precision == "int8":
                    _BUILT[key] = build_int8_candidate(name, graph["path"], destination, target.int8, calibration).path
                else:
                    _BUILT[key] = build_fp16_candidate(name, graph["path"], destination, target.fp16.keep_fp32_ops).path
            graphs.append((f"{precision} {name}", _BUILT[key]))
    return graphs


@pytest.mark.parametrize("name", sorted(available_targets()))
def test_a_rows_logits_do_not_depend_on_its_batch(name, graph, tmp_path_factory):
    # A served model is batched with whatever else arrives (Triton dynamic batching, `check`'s batches of 16):
    # every graph a target can ship gives a row the same logits alone and in a padded batch of 32.
    from edgecut.graph.parity import POLICY
    from edgecut.graph.precision import batch_dependence

    target = load_target(name)
    rows = [s[: 4 + i % 14] for i, s in enumerate(graph["seqs"][:32])]  # mixed lengths: a padded batch
    cpu = load_target("cpu")
    checked = []
    shipped = _shipped_graphs(target, graph, tmp_path_factory.mktemp("shipped"))
    for label, path in shipped:
        session = create_session(path, cpu)  # every shipped graph, fp16 included, runs on ORT's CPU provider
        allowed = POLICY.tolerance(target.parity_atol, run_logits(session, rows, graph["pad"]))
        diff = batch_dependence(session, rows, graph["pad"])
        assert diff <= allowed, f"target {name}, {label}: a row's logits move by {diff:.2e} with its batch"
        checked.append(label)
    assert checked == [label for label, _ in shipped] and "fp32" in checked
    # a target that builds its own int8 or fp16 graphs has them checked too (TensorRT builds its fp16 engine
    # from the fp32 graph, cuda-fp32 ships fp32 only)
    builds = {"int8", "fp16"} & set(target.allowed_precisions) - ({"fp16"} if not target.fp16.convert_graph else set())
    assert len(set(checked)) >= 2 if builds else set(checked) == {"fp32"}, (name, checked)


def test_dynamic_int8_depends_on_the_batch(graph, tmp_path):
    # Why no target ships dynamic int8: its activation scale covers the whole batch tensor, padding included.
    from edgecut.graph.precision import batch_dependence

    result = to_int8(graph["path"], tmp_path / "dyn.onnx", Int8Settings("dynamic", True))
    session = create_session(result.path, load_target("cpu"))
    rows = [s[: 4 + i % 14] for i, s in enumerate(graph["seqs"][:32])]
    assert batch_dependence(session, rows, graph["pad"]) > load_target("cpu-int8").parity_atol * 10
