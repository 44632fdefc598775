"""`edgecut check` on a tiny artifact: integrity failures exit 2, gate failures exit 1, reports parse."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import numpy as np
import pytest
from artifact_helpers import copy_artifact, edit_manifest, negate_logits, rehash
from typer.testing import CliRunner

from edgecut.cli import app

runner = CliRunner()
INTEGRITY = ["manifest", "files", "onnx_checker", "signature", "opset"]
RUNTIME = ["parity", "latency_p50", "latency_p90"]
# Sub-millisecond timings of a tiny model on a shared 2-core box jitter by tens of percent, and a p90 taken
# while other processes hold both cores can be ten times a quiet one: tests not about latency allow 1000×.
NOISY_LATENCY = ["--latency-margin", "100000"]


@pytest.fixture(scope="module")
def artifact(tiny_artifact):
    return tiny_artifact  # read only: every test that breaks it breaks a copy


@pytest.fixture(scope="module")
def worse(artifact, tmp_path_factory):
    return negate_logits(artifact, tmp_path_factory.mktemp("check-worse") / "worse")


def _check(*args):
    return runner.invoke(app, ["check", *map(str, args)])


def _report(*args):
    result = _check(*args, "--json")
    return result, json.loads(result.stdout)


def _status(report):
    return {c["name"]: c["status"] for c in report["checks"]}


def test_all_checks_pass_exit_0(artifact, tiny_csv):
    result, report = _report(
        artifact, "--data", tiny_csv, "--min-accuracy", "0.75", "--max-latency-ms", "1000", "--max-p90-ms", "1000"
    )
    assert result.exit_code == 0, result.output
    assert report["verdict"] == "pass" and report["providers"][0] == "CPUExecutionProvider"
    assert [c["name"] for c in report["checks"]] == [*INTEGRITY, "parity", "accuracy", "latency_p50", "latency_p90"]
    assert set(_status(report).values()) == {"pass"}
    by_name = {c["name"]: c for c in report["checks"]}
    assert by_name["parity"]["measured"] <= by_name["parity"]["threshold"] == 1e-4
    assert 0.75 <= by_name["accuracy"]["measured"] <= 1.0 and "240 rows" in by_name["accuracy"]["detail"]
    assert 0 < by_name["latency_p50"]["measured"] <= by_name["latency_p90"]["measured"] <= 1000


def test_table_lists_every_check(artifact):
    result = _check(artifact)
    assert result.exit_code == 0, result.output
    for name in [*INTEGRITY, *RUNTIME]:
        assert name in result.stdout
    assert "all 8 checks passed" in result.output


def test_junit_has_one_testcase_per_check(artifact, tiny_csv, tmp_path):
    junit = tmp_path / "reports" / "check.xml"
    result, report = _report(artifact, "--data", tiny_csv, "--max-latency-ms", "0.000001", "--junit", junit)
    assert result.exit_code == 1
    root = ET.parse(junit).getroot()
    cases = root.findall("./testsuite/testcase")
    assert [c.get("name") for c in cases] == [c["name"] for c in report["checks"]]
    failed = [c.get("name") for c in cases if c.find("failure") is not None]
    assert failed == ["latency_p50"]
    assert root.get("tests") == str(len(cases)) and root.get("failures") == "1"
    suite = root.find("testsuite")
    props = {p.get("name"): p.get("value") for p in suite.findall("./properties/property")}
    assert props["latency_margin_percent"] == "20.0" and props["accuracy_margin_points"] == "1.0"


@pytest.mark.parametrize(
    ("args", "failed"),
    [
        (["--max-latency-ms", "0.000001"], "latency_p50"),
        (["--max-p90-ms", "0.000001"], "latency_p90"),
        (["--min-accuracy", "1.0"], "accuracy"),
    ],
)
def test_a_failed_gate_exits_1(args, failed, worse, tiny_csv):
    # `worse` predicts the opposite class: its accuracy on the tiny data is far below 100 %.
    result, report = _report(worse, "--data", tiny_csv, *args)
    assert result.exit_code == 1, result.output
    assert report["verdict"] == "gate failed"
    assert [n for n, s in _status(report).items() if s == "fail"] == [failed]
    assert f"failed: 1 gate(s): {failed}" in result.output


# --- a broken artifact: exit 2 and the failing check is named ---------------------------------------


def _tamper_model(d):
    data = bytearray((d / "model.onnx").read_bytes())
    data[-100] ^= 0xFF  # inside the weights: still a valid ONNX file, only the sha256 tells
    (d / "model.onnx").write_bytes(bytes(data))


def _truncate_model(d):
    data = (d / "model.onnx").read_bytes()
    (d / "model.onnx").write_bytes(data[: len(data) // 2])
    rehash(d)  # even with a matching sha256, onnx.checker must catch it


def _unknown_op(d):
    import onnx

    model = onnx.load(str(d / "model.onnx"))
    next(n for n in model.graph.node if n.op_type == "MatMul").op_type = "NoSuchOp"
    onnx.save(model, str(d / "model.onnx"))
    rehash(d)


def _unknown_op_beside_fused_ops(d):
    """The graph as onnxruntime's transformer optimizer leaves it (fused ops such as
    SimplifiedLayerNormalization in the default domain, where onnx.checker knows no schema), plus one op
    nobody defines: check must name that one (the old check named the first fused op instead, so the
    verdict depended on whether a timing had kept the fusion)."""
    import onnx
    from onnxruntime.transformers.optimizer import optimize_model

    fused = optimize_model(str(d / "model.onnx"), model_type="gpt2", num_heads=4, hidden_size=32, opt_level=0)
    model = fused.model
    assert any(n.op_type == "SimplifiedLayerNormalization" and n.domain == "" for n in model.graph.node)
    next(n for n in model.graph.node if n.op_type == "MatMul").op_type = "NoSuchOp"
    onnx.save(model, str(d / "model.onnx"))
    rehash(d)


def _shift_golden(d):
    golden = dict(np.load(d / "golden.npz"))
    golden["logits"] = golden["logits"] + 0.5
    np.savez(d / "golden.npz", **golden)
    rehash(d)


BREAKAGES = {
    "tampered model file": (_tamper_model, "files", "model.onnx does not match its sha256"),
    "missing file": (lambda d: (d / "tokenizer.json").unlink(), "files", "tokenizer.json is missing"),
    "wrong manifest version": (lambda d: edit_manifest(d, manifest_version=2), "manifest", "upgrade edgecut"),
    "manifest not JSON": (lambda d: (d / "edgecut.json").write_text("{"), "manifest", "not valid JSON"),
    "truncated onnx": (_truncate_model, "onnx_checker", "model.onnx"),
    "unknown op": (_unknown_op, "onnx_checker", "NoSuchOp"),
    "unknown op beside ORT's fused ops": (_unknown_op_beside_fused_ops, "onnx_checker", "unknown op(s) NoSuchOp"),
    "wrong opset": (lambda d: edit_manifest(d, opset=13), "opset", "manifest records 13"),
    "wrong signature": (
        lambda d: edit_manifest(
            d, signature={**json.loads((d / "edgecut.json").read_text())["signature"], "outputs": {"scores": [1, 2]}}
        ),
        "signature",
        "scores",
    ),
    "golden mismatch": (_shift_golden, "parity", "argmax"),
}


@pytest.mark.parametrize("breakage", list(BREAKAGES))
def test_broken_artifact_exits_2(breakage, artifact, tmp_path):
    damage, check, words = BREAKAGES[breakage]
    broken = copy_artifact(artifact, tmp_path / "broken")
    damage(broken)
    junit = tmp_path / "check.xml"
    result, report = _report(broken, "--junit", junit)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert report["verdict"] == "broken"
    failed = [c for c in report["checks"] if c["status"] == "fail"]
    assert failed[0]["name"] == check and words in failed[0]["detail"], failed
    assert result.output.strip().splitlines()[-1].startswith("error: the artifact is broken: " + check)
    # what cannot mean anything after the failure is reported as skipped, not as passed
    assert [c["status"] for c in report["checks"][-2:]] == ["skip", "skip"]
    assert ET.parse(junit).getroot().get("failures") == str(len(failed))


# --- wrong input: one line, exit 2 --------------------------------------------------------------------


@pytest.fixture()
def unknown_labels_csv(tmp_path):
    path = tmp_path / "other.csv"
    path.write_text("text,label\ngood film,positive\nbad film,neutral\n")
    return path


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (["{nowhere}"], "is not a directory"),
        (["{artifact}", "--min-accuracy", "0.9"], "needs --data"),
        (["{artifact}", "--data", "{csv}", "--min-accuracy", "85"], "give 0..1"),
        (["{artifact}", "--data", "{unknown}"], "neutral"),
        (["{artifact}", "--data", "{nowhere}"], "does not exist"),
        (["{artifact}", "--target", "tpu"], "unknown target"),
        (["{artifact}", "--baseline", "{nowhere}"], "--baseline"),
    ],
)
def test_wrong_input_is_one_line_exit_2(args, match, artifact, tiny_csv, unknown_labels_csv, tmp_path):
    values = {"artifact": artifact, "csv": tiny_csv, "unknown": unknown_labels_csv, "nowhere": tmp_path / "nope"}
    junit = tmp_path / "check.xml"
    result = _check(*[a.format(**values) for a in args], "--junit", junit)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    lines = [line for line in result.output.strip().splitlines() if line.strip()]
    assert lines[-1].startswith("error:") and match in lines[-1], result.output
    case = ET.parse(junit).getroot().find("./testsuite/testcase")
    assert case.get("name") == "input" and case.find("failure") is not None


# --- baseline -----------------------------------------------------------------------------------------


def test_baseline_regression_fails_the_gate(artifact, worse, tiny_csv):
    result, report = _report(worse, "--baseline", artifact, "--data", tiny_csv, *NOISY_LATENCY)
    assert result.exit_code == 1, result.output
    status = _status(report)
    assert status["baseline_accuracy"] == "fail"
    assert status["baseline_latency_p50"] == status["baseline_latency_p90"] == "pass"
    acc = {c["name"]: c for c in report["checks"]}["baseline_accuracy"]
    assert "1 percentage points" in acc["detail"] and acc["measured"] < acc["threshold"]


def test_baseline_improvement_passes(artifact, worse, tiny_csv):
    result, report = _report(artifact, "--baseline", worse, "--data", tiny_csv, *NOISY_LATENCY)
    assert result.exit_code == 0, result.output
    assert {"baseline_accuracy", "baseline_latency_p50", "baseline_latency_p90"} <= set(_status(report))
    assert report["settings"]["latency_margin_percent"] == 100000


def test_baseline_without_data_compares_recorded_accuracy(artifact, tmp_path):
    older = copy_artifact(artifact, tmp_path / "older")
    manifest = json.loads((older / "edgecut.json").read_text())
    edit_manifest(older, metrics={**manifest["metrics"], "onnx_accuracy": manifest["metrics"]["onnx_accuracy"] + 0.05})
    result, report = _report(artifact, "--baseline", older, *NOISY_LATENCY)
    assert result.exit_code == 1, result.output
    acc = {c["name"]: c for c in report["checks"]}["baseline_accuracy"]
    assert acc["status"] == "fail" and "recorded at export" in acc["detail"]
    # within the margin it passes
    result, report = _report(artifact, "--baseline", older, "--accuracy-margin", "6", *NOISY_LATENCY)
    assert result.exit_code == 0, result.output


def test_broken_baseline_is_wrong_input(artifact, tmp_path):
    old = copy_artifact(artifact, tmp_path / "old")
    (old / "golden.npz").unlink()
    result = _check(artifact, "--baseline", old)
    assert result.exit_code == 2
    assert result.output.strip().splitlines()[-1].startswith(f"error: --baseline {old} is broken")


def test_example_workflow_gates_with_real_options():
    import re
    from pathlib import Path

    import typer
    import yaml

    workflow = yaml.safe_load((Path(__file__).parent.parent / "examples" / "github-actions.yml").read_text())
    steps = workflow["jobs"]["export-and-gate"]["steps"]
    commands = typer.main.get_command(app).commands
    used = {}
    for step in steps:
        for name in ("export", "check", "deploy"):
            if f"edgecut {name}" in step.get("run", ""):
                used.setdefault(name, set()).update(re.findall(r"(--[a-z][a-z0-9-]*)", step["run"]))
    assert set(used) == {"export", "check", "deploy"}
    for name, options in used.items():
        known = {opt for param in commands[name].params for opt in param.opts}
        assert options <= known, (name, options - known)
    assert "--junit" in used["check"]
    uploads = [s for s in steps if s.get("uses", "").startswith("actions/upload-artifact")]
    assert any(s.get("if") == "always()" and "edgecut-check.xml" in s["with"]["path"] for s in uploads)
