"""`edgecut deploy --mobile`: the ORT-format bundle loads in ONNX Runtime, passes `check`, predicts as the
artifact does, and its operator config lists every operator of the graph."""

from __future__ import annotations

import json

import onnx
import pytest
from artifact_helpers import copy_artifact, rehash
from typer.testing import CliRunner

from edgecut.cli import app
from edgecut.runtime import ArtifactClassifier
from edgecut.serving.mobile import CLASSIFIER, MODEL, OPERATORS, graph_op_types, read_operator_config

runner = CliRunner()


@pytest.fixture(scope="module")
def bundle(tiny_artifact, tmp_path_factory):
    out = tmp_path_factory.mktemp("mobile") / "bundle"
    result = runner.invoke(app, ["deploy", str(tiny_artifact), "--mobile", str(out)])
    assert result.exit_code == 0, result.output
    assert f"operators in {OPERATORS}" in result.output
    return out


def test_bundle_files(bundle, tiny_artifact):
    names = sorted(p.name for p in bundle.iterdir())
    expected = ["README.md", CLASSIFIER, "edgecut.json", "golden.npz", MODEL, OPERATORS, "tokenizer.json"]
    assert names == sorted(expected)
    manifest = json.loads((bundle / "edgecut.json").read_text())
    assert manifest["model_file"] == MODEL and manifest["mobile"]["optimization_style"] == "Runtime"
    assert (bundle / MODEL).read_bytes()[4:8] == b"ORTM"  # the ORT format's flatbuffer identifier
    classifier = json.loads((bundle / CLASSIFIER).read_text())
    source = json.loads((tiny_artifact / "edgecut.json").read_text())
    assert classifier["labels"] == source["labels"] and classifier["prompt"] == source["prompt"]
    readme = (bundle / "README.md").read_text()
    assert "onnxruntime-android" in readme and "onnxruntime-objc" in readme and "Tokenizing is the app's job" in readme


def test_operator_config_lists_every_op_of_the_graph(bundle, tiny_artifact):
    graph = onnx.load(str(tiny_artifact / "model.onnx"))
    needed = graph_op_types(graph)
    listed = {(key.split(";")[0], op) for key, ops in read_operator_config(bundle / OPERATORS).items() for op in ops}
    assert needed and needed <= listed, sorted(needed - listed)


def test_graph_op_types_walks_nested_graphs():
    """An op used only inside an If branch is found (a minimal build without it could not run the branch)."""
    h = onnx.helper
    branch = h.make_graph([h.make_node("Neg", ["x"], ["y"])], "then", [], [h.make_tensor_value_info("y", 1, [1])])
    other = h.make_graph([h.make_node("Abs", ["x"], ["z"])], "else", [], [h.make_tensor_value_info("z", 1, [1])])
    node = h.make_node("If", ["c"], ["out"], then_branch=branch, else_branch=other)
    inputs = [h.make_tensor_value_info("c", 9, []), h.make_tensor_value_info("x", 1, [1])]
    graph = h.make_graph([node], "g", inputs, [h.make_tensor_value_info("out", 1, [1])])
    assert graph_op_types(h.make_model(graph)) == {("ai.onnx", "If"), ("ai.onnx", "Neg"), ("ai.onnx", "Abs")}


def test_check_passes_on_the_bundle_and_it_predicts_as_the_artifact(bundle, tiny_artifact):
    result = runner.invoke(app, ["check", str(bundle), "--json", "--latency-runs", "5"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    by_name = {r["name"]: r for r in report["checks"]}
    assert by_name["ort_format"]["passed"] and by_name["parity"]["passed"]
    texts = ["great film fine", "awful bland", "", "中文 😀 " * 60]
    mobile = ArtifactClassifier(bundle).predict(texts, batch_size=1)
    onnx_ = ArtifactClassifier(tiny_artifact).predict(texts, batch_size=1)
    assert [p.label for p in mobile] == [p.label for p in onnx_]
    for a, b in zip(mobile, onnx_, strict=True):
        assert a.scores == pytest.approx(b.scores, abs=1e-5)


def test_damaged_ort_fails_check(bundle, tmp_path):
    broken = copy_artifact(bundle, tmp_path / "broken")
    data = bytearray((broken / MODEL).read_bytes())
    data[8:4096] = bytes(4088)  # the flatbuffer's tables
    (broken / MODEL).write_bytes(bytes(data))
    assert runner.invoke(app, ["check", str(broken)]).exit_code == 2  # the sha256 no longer matches
    rehash(broken)  # a consistent manifest: now ONNX Runtime itself must refuse the file
    result = runner.invoke(app, ["check", str(broken), "--json"])
    assert result.exit_code == 2, result.output
    by_name = {r["name"]: r for r in json.loads(result.stdout)["checks"]}
    assert by_name["ort_format"]["passed"] is False and "cannot load" in by_name["ort_format"]["detail"]


def test_refusals(bundle, tiny_artifact, tmp_path):
    again = runner.invoke(app, ["deploy", str(bundle), "--mobile", str(tmp_path / "x")])
    assert again.exit_code == 2 and "already an ORT-format bundle" in again.output
    exists = runner.invoke(app, ["deploy", str(tiny_artifact), "--mobile", str(bundle)])
    assert exists.exit_code == 2 and "--force" in exists.output
    assert not (tmp_path / "x").exists()


@pytest.mark.slow
def test_int8_bundle_lists_the_fused_operators_and_passes_check(tiny_model_dirs, tiny_csv, tmp_path):
    """An int8 (QDQ) graph: the config lists its ops and the fused ones the phone may replay (QLinearMatMul or
    QGemm), and the bundle passes `check`."""
    from artifact_helpers import export_tiny

    art = export_tiny(tiny_model_dirs["llama"], tiny_csv, tmp_path / "int8", "--target", "cpu-int8")
    out = tmp_path / "bundle"
    assert runner.invoke(app, ["deploy", str(art), "--mobile", str(out)]).exit_code == 0
    listed = {(k.split(";")[0], op) for k, ops in read_operator_config(out / OPERATORS).items() for op in ops}
    needed = graph_op_types(onnx.load(str(art / "model.onnx")))
    assert ("ai.onnx", "QuantizeLinear") in needed and needed <= listed, sorted(needed - listed)
    assert {op for _, op in listed} & {"QLinearMatMul", "QGemm", "MatMulIntegerToFloat", "DynamicQuantizeMatMul"}
    assert runner.invoke(app, ["check", str(out), "--latency-runs", "5"]).exit_code == 0
