"""The fault suite for artifacts: every hand-edited, tampered or hostile artifact and every bad
`predict` input ends in one `error:` line and exit 2, reads nothing outside the artifact and writes
nothing anywhere. One row per case; none trains a model (they edit copies of the shared tiny artifact)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from artifact_helpers import copy_artifact, edit_manifest, rehash
from typer.testing import CliRunner

from edgecut.cli import app

runner = CliRunner()


def _one_error_line(result, code: int, words: str) -> str:
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    lines = [line for line in result.output.strip().splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error:")]
    assert len(errors) == 1 and lines[-1] == errors[0], result.output
    assert words.lower() in errors[0].lower(), errors[0]
    return errors[0]


def _manifest(d):
    return json.loads((d / "edgecut.json").read_text())


def _files_entry_outside(d):
    secret = d.parent / "secret.txt"
    secret.write_text("not yours")
    files = _manifest(d)["files"] | {"../secret.txt": __import__("hashlib").sha256(b"not yours").hexdigest()}
    edit_manifest(d, files=files)


def _absolute_files_entry(d):
    edit_manifest(d, files=_manifest(d)["files"] | {"/etc/hostname": "0" * 64})


def _model_file_outside(d):
    (d.parent / "elsewhere").mkdir()
    (d / "model.onnx").rename(d.parent / "elsewhere" / "model.onnx")
    edit_manifest(d, model_file="../elsewhere/model.onnx")


def _golden(d, **arrays):
    golden = dict(np.load(d / "golden.npz"))
    golden.update(arrays)
    np.savez(d / "golden.npz", **golden)
    rehash(d)


def _golden_float_ids(d):
    golden = dict(np.load(d / "golden.npz"))
    _golden(d, input_ids=golden["input_ids"].astype(np.float32))


def _golden_ids_beyond_vocabulary(d):
    golden = dict(np.load(d / "golden.npz"))
    _golden(d, input_ids=golden["input_ids"] + 10**6)


def _prompt_without_template(d):
    prompt = dict(_manifest(d)["prompt"])
    del prompt["template"]
    edit_manifest(d, prompt=prompt)


HOSTILE = {
    # name: (how to damage the copy, words in the error line)
    "files entry ../secret.txt": (_files_entry_outside, "outside the artifact"),
    "absolute files entry": (_absolute_files_entry, "outside the artifact"),
    "model_file ../elsewhere": (_model_file_outside, "outside the artifact"),
    "golden.file ../x.npz": (lambda d: edit_manifest(d, golden={"file": "../x.npz", "atol": 1e-4}), "outside"),
    "template missing": (_prompt_without_template, "template"),
    "atol 'abc'": (lambda d: edit_manifest(d, golden={"file": "golden.npz", "atol": "abc"}), "atol"),
    "pad_token_id 'x'": (lambda d: edit_manifest(d, pad_token_id="x"), "pad_token_id"),
    "labels not a list": (lambda d: edit_manifest(d, labels="negative"), "labels"),
    "golden ids are floats": (_golden_float_ids, "int64"),
    "golden ids beyond the vocabulary": (_golden_ids_beyond_vocabulary, "golden"),
}


@pytest.mark.parametrize("case", list(HOSTILE))
def test_check_predict_and_deploy_refuse_a_hostile_or_damaged_manifest(case, tiny_artifact, tmp_path):
    damage, words = HOSTILE[case]
    broken = copy_artifact(tiny_artifact, tmp_path / "art")
    damage(broken)
    before = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*"))
    check = runner.invoke(app, ["check", str(broken)])
    _one_error_line(check, 2, "the artifact is broken")
    assert words.lower() in check.output.lower(), check.output
    runtime_reads_it = case not in ("golden ids are floats", "golden ids beyond the vocabulary")
    if runtime_reads_it:  # predict and deploy read the manifest too (the golden file is check's alone)
        _one_error_line(runner.invoke(app, ["predict", str(broken), "fine film"]), 2, "")
        deploy = runner.invoke(app, ["deploy", str(broken), "--triton", str(tmp_path / "repo")])
        _one_error_line(deploy, 2, "")
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*")) == before  # nothing written


def test_predict_refuses_a_model_changed_after_export(tiny_artifact, tmp_path):
    changed = copy_artifact(tiny_artifact, tmp_path / "art")
    with (changed / "model.onnx").open("ab") as f:
        f.write(b"\0")
    _one_error_line(runner.invoke(app, ["predict", str(changed), "fine film"]), 2, "sha256")


@pytest.mark.parametrize(
    ("args", "stdin", "words"),
    [
        (["\udcff\udcfe broken bytes"], None, "not valid UTF-8"),  # argv bytes that were not UTF-8
        ([], b"caf\xe9 latin-1\n", "stdin is not UTF-8"),
        (["--file", "{dir}"], None, "is a directory"),
        (["--file", "{dir}/missing.txt"], None, "does not exist"),
        (["--batch-size", "0", "fine"], None, "--batch-size"),
        ([], b"\n\n", "no texts"),
    ],
)
def test_bad_predict_input_is_one_line_exit_2(args, stdin, words, tiny_artifact, tmp_path):
    args = [a.replace("{dir}", str(tmp_path)) for a in args]
    result = runner.invoke(app, ["predict", str(tiny_artifact), *args], input=stdin)
    _one_error_line(result, 2, words)


def test_hints_with_brackets_are_printed_literally(tiny_model_dirs, tiny_csv, tmp_path):
    """Rich markup must not eat user text or hints: `'edgecut[gpu]'` stays the package to install."""
    import onnxruntime

    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("this ONNX Runtime has CUDA")
    args = ["export", "--model", str(tiny_model_dirs["llama"]), "--data", str(tiny_csv), "--target", "cuda"]
    line = _one_error_line(runner.invoke(app, [*args, "-o", str(tmp_path / "o[/x]")]), 2, "onnxruntime-gpu")
    assert "'edgecut[gpu]'" in line
    missing = runner.invoke(app, ["check", str(tmp_path / "no[/such]dir")])
    assert "no[/such]dir" in _one_error_line(missing, 2, "not a directory")


def _config_only(d, tiny):
    (d / "config.json").write_text((tiny / "config.json").read_text())


def _invalid_config(d, tiny):
    (d / "config.json").write_text('{"model_type": ')


def _pickled_weights(d, tiny):
    """A directory whose only weights are a pickle: it must never be unpickled (arbitrary code)."""
    import pickle

    for name in ("config.json", "tokenizer.json", "tokenizer_config.json"):
        (d / name).write_text((tiny / name).read_text())
    (d / "pytorch_model.bin").write_bytes(pickle.dumps({"not": "weights"}))


MODELS = {
    "fake .gguf": (lambda d, tiny: (d / "m.gguf").write_bytes(b"not a gguf file at all"), "m.gguf", "cannot be loaded"),
    "config.json only": (_config_only, "", "cannot be loaded"),
    "invalid config.json": (_invalid_config, "", "cannot be loaded"),
    "pickled pytorch_model.bin": (_pickled_weights, "", "cannot be loaded"),
}


@pytest.mark.parametrize("case", list(MODELS))
def test_a_model_path_that_is_not_a_model_is_one_line_exit_2(case, tiny_model_dirs, tiny_csv, tmp_path):
    make, name, words = MODELS[case]
    model = tmp_path / "model"
    model.mkdir()
    make(model, tiny_model_dirs["llama"])
    args = ["export", "--model", str(model / name), "--data", str(tiny_csv), "--labels", "negative,positive"]
    result = runner.invoke(app, [*args, "-o", str(tmp_path / "out")])
    _one_error_line(result, 2, words)
    assert not (tmp_path / "out").exists()


def test_a_tokenizer_json_that_pads_on_its_own_encodes_as_at_export(tiny_artifact, tmp_path):
    """all-MiniLM-L6's tokenizer.json pads every text to 128 [PAD] ids; the runtime must encode the prompt
    exactly as training did (transformers ignores that padding), or every served text changes."""
    from tokenizers import Tokenizer

    from edgecut.runtime import ArtifactClassifier

    padded = copy_artifact(tiny_artifact, tmp_path / "padded")
    tk = Tokenizer.from_file(str(padded / "tokenizer.json"))
    tk.enable_padding(length=64, pad_id=0, pad_token="<pad>")
    tk.enable_truncation(max_length=5)
    tk.save(str(padded / "tokenizer.json"))
    rehash(padded)
    texts = ["good great lovely film", "dull boring bad plot and weak cast"]
    plain, edited = ArtifactClassifier(tiny_artifact), ArtifactClassifier(padded)
    assert [edited.encode(t) for t in texts] == [plain.encode(t) for t in texts]
    assert [p.scores for p in edited.predict(texts)] == [p.scores for p in plain.predict(texts)]
