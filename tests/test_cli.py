"""The `edgecut` command end to end on tiny models, and every bad input ending in one line and exit 2."""

import json
import subprocess
import sys

import numpy as np
import pytest
from typer.testing import CliRunner

from edgecut.artifacts.manifest import sha256_file
from edgecut.cli import app

runner = CliRunner()
TEMPLATE = "Review: {text}\nSentiment:{label}"


def _export(model_dir, data, out, *extra, template=TEMPLATE):
    args = ["export", "--model", str(model_dir), "--data", str(data), "--layers", "1"]
    args += ["--labels", "negative, positive", "--test-size", "40", "-o", str(out)]  # spaces are stripped
    args += ["--template", template] if template else []
    # a short, hot schedule: the tiny model learns the toy task in a second
    args += ["--epochs", "4", "--lr", "3e-3", "--batch-size", "8", *extra]
    return runner.invoke(app, args)


def _one_line_error(result, code=2, match=""):
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    lines = [line for line in result.output.strip().splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error:")]
    # progress lines may come first; the error itself is exactly one line, and the last one
    assert len(errors) == 1 and lines[-1] == errors[0], result.output
    assert match.lower() in errors[0].lower(), errors[0]
    return errors[0]


@pytest.fixture(scope="module")
def artifact(tiny_artifact, tmp_path_factory):
    """A copy of the shared tiny artifact: these tests export onto it (and must leave it untouched)."""
    from artifact_helpers import copy_artifact

    return copy_artifact(tiny_artifact, tmp_path_factory.mktemp("artifacts") / "llama-1")


def test_export_writes_a_complete_self_describing_artifact(artifact):
    manifest = json.loads((artifact / "edgecut.json").read_text())
    names = {p.name for p in artifact.iterdir()}
    assert {"model.onnx", "config.json", "tokenizer.json", "edgecut.json", "golden.npz"} <= names
    assert manifest["layers"] == {"kept": [0], "total": 3, "select": "first", "scores": []}
    assert manifest["labels"] == ["negative", "positive"]
    assert manifest["label_words"] == [" negative", " positive"]
    assert manifest["prompt"]["template"] == TEMPLATE and len(manifest["prompt"]["demonstrations"]) == 2
    assert manifest["precision"] == "fp32" and manifest["target"]["name"] == "cpu"
    assert manifest["providers_used"][0] == "CPUExecutionProvider"
    assert manifest["parameters"]["after"] < manifest["parameters"]["before"]
    assert manifest["opset"] >= 18 and len(manifest["source_model"]["sha256"]) == 64
    assert manifest["metrics"]["onnx_accuracy"] == manifest["metrics"]["torch_accuracy"] >= 0.75
    assert manifest["baseline"]["name"] == "tfidf" and manifest["baseline"]["accuracy"] >= 0.75  # the toy task
    # the floor is tuned on validation: its grid, each point's score and the winner are recorded
    tuned = manifest["baseline"]["tuned"]
    assert len(tuned["grid"]) == 6 and tuned["chosen"] == max(tuned["grid"], key=lambda g: g["validation_accuracy"])
    assert manifest["settings"]["layers"] == 1 and manifest["settings"]["labels"] == ["negative", "positive"]
    assert manifest["recipe"]["learning_rate"] == 3e-3 and manifest["recipe"]["epochs"] == 4  # as trained
    log = [json.loads(line) for line in (artifact / manifest["training"]["log"]).read_text().splitlines()]
    assert any("loss" in entry for entry in log) and any("eval_accuracy" in entry for entry in log)
    assert set(manifest["metrics"]["latency"]) == {"batch_1", "batch_8"}
    config = json.loads((artifact / "config.json").read_text())
    assert config["id2label"] == {"0": "negative", "1": "positive"}
    # every file is hashed, and the hashes are right; no scratch (checkpoints, graphs) is left inside
    on_disk = {p.name for p in artifact.iterdir() if p.name != "edgecut.json"}
    assert not any(name.startswith(".") for name in on_disk), on_disk
    assert set(manifest["files"]) == on_disk
    for name, digest in manifest["files"].items():
        assert sha256_file(artifact / name) == digest


def test_fine_tuning_learns_the_tiny_task(artifact):
    manifest = json.loads((artifact / "edgecut.json").read_text())
    assert manifest["metrics"]["torch_accuracy"] >= 0.75, manifest["metrics"]


def test_golden_logits_reproduce_with_the_torch_free_runtime(artifact):
    from edgecut.runtime import ArtifactClassifier

    clf = ArtifactClassifier(artifact)
    golden = np.load(artifact / "golden.npz", allow_pickle=False)
    got = clf.session.run(["logits"], {"input_ids": golden["input_ids"], "attention_mask": golden["attention_mask"]})[0]
    np.testing.assert_allclose(got, golden["logits"], atol=1e-4, rtol=0)
    (pred,) = clf.predict(["good great lovely film"])
    assert pred.label in ("negative", "positive") and abs(sum(pred.scores.values()) - 1) < 1e-5


def test_existing_output_needs_force(artifact, tiny_model_dirs, tiny_csv):
    before = sha256_file(artifact / "edgecut.json")
    _one_line_error(_export(tiny_model_dirs["llama"], tiny_csv, artifact), match="--force")
    assert sha256_file(artifact / "edgecut.json") == before


@pytest.mark.parametrize("error", [KeyboardInterrupt, RuntimeError])
def test_interrupted_export_leaves_nothing_and_keeps_the_old_artifact(
    error, artifact, tiny_model_dirs, tiny_csv, monkeypatch, tmp_path
):
    import edgecut.model.load

    def boom(*args, **kwargs):  # fails right after the partial directory was made: nothing to train first
        raise error("killed halfway")

    monkeypatch.setattr(edgecut.model.load, "load_model", boom)
    before = {p.name: sha256_file(p) for p in artifact.iterdir()}
    siblings = set(artifact.parent.iterdir())
    result = _export(tiny_model_dirs["llama"], tiny_csv, artifact, "--force")
    assert result.exit_code == (130 if error is KeyboardInterrupt else 1)
    assert {p.name: sha256_file(p) for p in artifact.iterdir()} == before  # old artifact untouched
    assert set(artifact.parent.iterdir()) == siblings  # no .partial dir left behind
    fresh = tmp_path / "new"
    assert _export(tiny_model_dirs["llama"], tiny_csv, fresh).exit_code != 0
    assert not fresh.exists() and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "how",
    [
        # the same search and manifest, asked of the `cpu` target: a repeat of the export, run with -m slow
        pytest.param(["--quantize", "int8"], marks=pytest.mark.slow),
        ["--target", "cpu-int8"],
    ],
)
def test_int8_export_reports_the_accuracy_drop(how, tiny_model_dirs, tiny_csv, tmp_path):
    result = _export(tiny_model_dirs["gpt2"], tiny_csv, tmp_path / "q", *how)
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "q" / "edgecut.json").read_text())
    assert manifest["precision"] == "int8" and manifest["quantization"]["mode"] == "static"  # batch-independent
    assert manifest["quantization"]["per_channel"] is True
    assert manifest["target"]["name"] == ("cpu" if how[0] == "--quantize" else "cpu-int8")
    assert manifest["metrics"]["onnx_fp32_accuracy"] is not None
    search = manifest["precision_search"]  # chosen on the validation split, within the target's budget
    assert search["kept"] in [c["name"] for c in search["candidates"]] and search["validation_rows"] > 0
    assert search["drop_points"] <= search["max_accuracy_drop"] == manifest["target"]["int8"]["max_accuracy_drop"]
    assert manifest["optimizations"]["applied"] == list(manifest["target"]["optimizations"])  # the target decides
    assert "drop" in result.output and f"shipped {search['kept']}" in result.output
    changed, rows = search["changed_answers"], search["validation_rows"]
    said = f"{changed} of {rows} answers changed" if changed else f"none of {rows} answers changed"
    assert said in " ".join(result.output.split())
    assert search["drop_uncertainty_points"] == pytest.approx(196 * changed**0.5 / rows)


def test_export_with_block_influence_selection_records_it(tiny_model_dirs, tiny_csv, tmp_path):
    result = _export(
        tiny_model_dirs["qwen3"], tiny_csv, tmp_path / "bi", "--select", "block-influence", "--baseline", "none"
    )
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "bi" / "edgecut.json").read_text())
    # --baseline none: no floor fitted, recorded or printed (and check's margin gate says why it cannot pass)
    assert manifest["baseline"] is None and "TF-IDF floor" not in result.output
    layers = manifest["layers"]
    assert layers["select"] == "block-influence" and len(layers["scores"]) == 3
    # the one kept layer is the one that changes the residual stream most
    assert layers["kept"] == [max(range(3), key=lambda i: layers["scores"][i])]


@pytest.mark.parametrize("setting", ["pcls", "cls"])
def test_paper_settings_with_a_random_head(setting, tiny_model_dirs, tiny_csv, tmp_path):
    """pcls keeps the prompt, cls classifies the bare text; both start from a random head."""
    template = None if setting == "cls" else TEMPLATE
    result = _export(
        tiny_model_dirs["llama"], tiny_csv, tmp_path / "s", "--setting", setting, "--demos", template=template
    )
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "s" / "edgecut.json").read_text())
    assert manifest["setting"] == setting and manifest["head_init"] == "random"
    assert manifest["label_token_ids"] is None
    prompt = manifest["prompt"]
    if setting == "cls":
        assert prompt["template"] == "{text}{label}" and prompt["demonstrations"] == []
    else:
        assert prompt["template"] != "{text}{label}" and len(prompt["demonstrations"]) == 2
    assert manifest["metrics"]["torch_accuracy"] >= 0.75


# --- bad input: one line, exit 2, nothing written -------------------------------------------------


@pytest.fixture()
def bad_csvs(tmp_path):
    files = {
        "empty": b"text,label\n",
        "nocolumn": b"sentence,label\nhello,positive\n",
        "latin1": "text,label\ncaf\xe9 good,positive\n".encode("latin-1"),
        "extra_label": b"text,label\ngood,positive\nbad,negative\nmeh,neutral\n",
    }
    out = {}
    for name, content in files.items():
        out[name] = tmp_path / f"{name}.csv"
        out[name].write_bytes(content)
    return out


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (["--model", "./no/such/model"], "does not exist"),
        (["--model", "smollm9-unknown"], "not a known alias"),
        (["--layers", "0"], "out of range"),
        (["--layers", "99"], "out of range"),
        (["--target", "tpu"], "unknown target"),
        (["--target", "./nope.toml"], "does not exist"),
        (["--label-words", "bad"], "label words"),
        (["--quantize", "int4"], "--quantize"),
        (["--recipe", "fast"], "unknown recipe"),
        (["--select", "middle"], "--select"),
        (["--setting", "prefix"], "--setting"),
        (["--setting", "cls", "--template", "Q: {text}\nA:{label}"], "drop --template"),
        (["--data", "no-such-file.csv"], "does not exist"),
        (["--layers", "4"], "this model has 3 layers"),  # from the config, before the weights load
        (["--max-length", "300"], "use --max-length 256 or less"),  # the tiny model has 256 positions
        (["--test-size", "0"], "--test-size"),
        (["--labels", "negative,negative"], "negative"),
        (["--template", "Review: [/x] {text}"], "{label}"),  # user text with rich markup, printed literally
        (["-o", "/proc/edgecut-out"], "/proc/edgecut-out"),
    ],
)
def test_bad_option_is_one_line_exit_2(args, match, tiny_model_dirs, tiny_csv, tmp_path):
    base = {
        "--model": str(tiny_model_dirs["llama"]),
        "--data": str(tiny_csv),
        "--layers": "1",
        "--labels": "negative,positive",
        "-o": str(tmp_path / "out"),
    }
    for key, value in zip(args[::2], args[1::2], strict=True):
        base[key] = value
    flat = [x for kv in base.items() for x in kv]
    _one_line_error(runner.invoke(app, ["export", *flat, "--epochs", "1"]), match=match)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (["check", "{art}", "--min-margin-over-baseline", "abc"], "Invalid value for '--min-margin-over-baseline'"),
        (["check", "{art}", "--latency-runs", "1.5x"], "Invalid value for '--latency-runs'"),
        (["check", "{art}", "--min-margin-over-baseline", "nan"], "give a finite number"),
        (["check", "{art}", "--min-margin-over-baseline", "-inf"], "give a finite number"),
        (["check", "{art}", "--min-margin-over-baseline", "150"], "give -100..100"),
        (["check", "{art}", "--min-accuracy", "nan", "--data", "x.csv"], "give a finite number"),
        (["check"], "Missing argument"),
        (["predict", "{art}", "x", "--batch-size", "two"], "Invalid value for '--batch-size'"),
        (["export", "--epochs", "many"], "Invalid value for '--epochs'"),
        (["export", "--no-such-option"], "No such option"),
        (["deploy", "{art}", "--max-batch-size", "8.5"], "Invalid value for '--max-batch-size'"),
        (["sweep", "--margin", "wide"], "Invalid value for '--margin'"),
    ],
)
def test_every_commands_bad_option_value_is_one_error_line_exit_2(args, match, tiny_artifact):
    """A typo'd number printed click's usage box (and nan reached a gate that then failed with exit 1): every
    command now ends a bad value in the one-line `error:` form, exit 2, naming the option."""
    result = runner.invoke(app, [a.format(art=tiny_artifact) for a in args])
    _one_line_error(result, match=match)


@pytest.mark.parametrize(
    ("name", "match"),
    [
        ("empty", "no rows"),
        ("nocolumn", "no column 'text'"),
        ("latin1", "not UTF-8"),
        ("extra_label", "not in --labels"),
    ],
)
def test_bad_data_file_is_one_line_exit_2(name, match, bad_csvs, tiny_model_dirs, tmp_path):
    result = _export(tiny_model_dirs["llama"], bad_csvs[name], tmp_path / "out")
    _one_line_error(result, match=match)
    assert not (tmp_path / "out").exists()


def test_cuda_target_without_cuda_is_refused(tiny_model_dirs, tiny_csv, tmp_path):
    import onnxruntime

    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("this ONNX Runtime has CUDA")
    result = _export(tiny_model_dirs["llama"], tiny_csv, tmp_path / "out", "--target", "cuda")
    line = _one_line_error(result, match="CUDAExecutionProvider")
    assert "onnxruntime-gpu" in line
    assert not (tmp_path / "out").exists()


@pytest.mark.cuda
@pytest.mark.parametrize(("target", "precision"), [("cuda", "fp16"), ("cuda-fp32", "fp32")])
def test_export_target_cuda_runs_on_the_gpu(tiny_model_dirs, tiny_csv, tmp_path, target, precision):
    # The whole road on a GPU machine: training on the GPU (when torch sees one), reference logits and
    # export on the CPU, validation on CUDA; then the artifact served by the runtime alone, without torch.
    import onnxruntime

    if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
        pytest.skip("needs onnxruntime-gpu and a CUDA device")
    out = tmp_path / "out"
    result = _export(tiny_model_dirs["llama"], tiny_csv, out, "--target", target)
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "edgecut.json").read_text())
    assert manifest["target"]["name"] == target and manifest["precision"] == precision
    assert manifest["providers_used"][0] == "CUDAExecutionProvider"
    code = (
        "import sys; from edgecut.runtime import ArtifactClassifier; "
        f"c = ArtifactClassifier({str(out)!r}); c.predict(['a fine film']); "
        "print(c.session.get_providers()[0], 'torch' in sys.modules)"
    )
    served = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert served.stdout.split() == ["CUDAExecutionProvider", "False"], served.stderr


def test_targets_command_lists_shipped_targets():
    from edgecut.targets import available_targets

    result = runner.invoke(app, ["targets"])
    assert result.exit_code == 0
    listed = [line.split()[0] for line in result.output.splitlines() if line.strip()]
    assert listed == list(available_targets()) and {"cpu", "cpu-int8", "cuda", "tensorrt"} <= set(listed)


def test_bad_data_fails_before_the_model_config_is_read(bad_csvs, tmp_path):
    """Data and template errors took 7-10 s because the model's config (and transformers) was read first: the
    data is now read first, so a bad file is reported even when --model names nothing at all."""
    result = _export(tmp_path / "no-such-model", bad_csvs["nocolumn"], tmp_path / "out")
    _one_line_error(result, match="no column 'text'")
    bad_template = ["--template", "no label placeholder {text}"]
    result = runner.invoke(app, ["export", "--model", str(tmp_path / "nope"), *bad_template, "-o", str(tmp_path / "o")])
    _one_line_error(result, match="{label}")


@pytest.mark.parametrize("command", ["check", "predict", "deploy"])
def test_check_predict_and_deploy_share_the_exit_codes_of_export(command, tiny_artifact, tmp_path, monkeypatch):
    """Ctrl-C during check, predict or deploy ends in one line and exit 130, as export and sweep do (they
    used to handle only edgecut's own errors)."""
    import edgecut.artifacts.check as check
    import edgecut.runtime as runtime
    import edgecut.serving.deploy as deploy

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(check, "check_artifact", interrupted)
    monkeypatch.setattr(runtime.ArtifactClassifier, "predict", interrupted)
    monkeypatch.setattr(deploy, "deploy_triton", interrupted)
    args = {
        "check": ["check", str(tiny_artifact)],
        "predict": ["predict", str(tiny_artifact), "a text"],
        "deploy": ["deploy", str(tiny_artifact), "--triton", str(tmp_path / "repo")],
    }[command]
    result = runner.invoke(app, args)
    _one_line_error(result, code=130, match="interrupted: nothing was")
