"""The Python API (`edgecut.export(ExportSettings)`), its validation, a golden training loss, multi-process
training under `accelerate launch`, and a CI script that cannot hide a failing test."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from artifact_helpers import edit_manifest, tiny_settings

from edgecut.errors import EdgecutError
from edgecut.pipeline import ExportSettings

ROOT = Path(__file__).resolve().parents[1]


def test_the_python_api_imports_without_torch():
    code = (
        "import sys, edgecut.runtime; from edgecut import export, ExportSettings, ExportResult; "
        "assert callable(export), export; "
        "ExportSettings(layers=2, labels=('a', 'b')); "
        "print(sorted(m for m in ('torch', 'transformers', 'onnxruntime') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]", done.stderr


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"layers": 0}, "--layers 0"),
        ({"layers": "two"}, "--layers two"),
        ({"select": "middle"}, "--select middle"),
        ({"setting": "prefix"}, "--setting prefix"),
        ({"setting": "cls", "template": "Q: {text}\nA:{label}"}, "drop --template"),
        ({"quantize": "int4"}, "--quantize int4"),
        ({"test_size": 0}, "--test-size 0"),
        ({"recipe": "fast"}, "unknown recipe"),
        ({"epochs": -1}, "--epochs"),
        ({"pooling": "max"}, "--pooling max: use one of auto, last, mean"),
    ],
)
def test_settings_are_validated_where_they_come_in(changes, match):
    with pytest.raises(EdgecutError, match=match):
        ExportSettings(**changes)


def test_settings_map_the_papers_settings_to_template_and_demonstrations():
    cls = ExportSettings(setting="cls", demos=True).data_spec()
    assert cls.template == "{text}{label}" and cls.demonstrations is False
    lm = ExportSettings(setting="lm", demos=True, template="Q: {text}\nA:{label}").data_spec()
    assert lm.template == "Q: {text}\nA:{label}" and lm.demonstrations is True
    assert ExportSettings(layers="full").layers == "full" and ExportSettings(layers="3").layers == 3


def test_the_python_api_exports_an_artifact_and_records_its_pooling(tiny_artifact, tiny_model_dirs, tiny_csv, tmp_path):
    """What the CLI does, from Python: the same settings, an ExportResult, a valid artifact.

    Pooling: the default (`auto`) reads the mean of the real tokens in a decoder (the shared artifact was
    exported with it); `last` (the paper's, asked for here) reads the last real token; the manifest and
    config.json say what the graph does. An encoder keeps its own first-token pooling (test_sweep: the tiny
    BERT's run)."""
    from edgecut import export
    from edgecut.artifacts.manifest import read_manifest

    settings = tiny_settings(
        tiny_model_dirs["qwen2"],
        tiny_csv,
        tmp_path / "api",
        template="Review: {text}\nSentiment:{label}",
        epochs=2,
        lr=3e-3,
        pooling="last",
    )
    result = export(settings)
    assert result.path == (tmp_path / "api").resolve() and result.layers == 1 and result.depth == 3
    manifest = read_manifest(result.path)
    assert manifest["metrics"]["onnx_accuracy"] == result.onnx_accuracy >= 0.75
    assert manifest["settings"]["model"] == str(tiny_model_dirs["qwen2"])
    for path, recorded in ((tiny_artifact, "mean"), (result.path, "last")):
        assert read_manifest(path)["pooling"] == recorded
        assert json.loads((path / "config.json").read_text()).get("edgecut_pooling", "last") == recorded


@pytest.mark.parametrize(
    ("how", "rate"),
    [
        ({"layers": "full"}, 1e-4),  # finetune.FULL_DEPTH_MAX_LEARNING_RATE
        ({"layers": 3}, 1e-4),  # every layer, said as a number
        ({"layers": "full", "setting": "cls"}, 5e-4),  # a random head: the recipe's rate, as cuts
        ({"layers": 1}, 5e-4),
        ({"layers": "full", "lr": 3e-3}, 3e-3),  # an explicit --lr always wins
        ({"layers": 1, "lr": "auto"}, 5e-4),  # auto searches around the rules' rate, which comes first
    ],
)
def test_a_full_depth_lm_run_trains_at_the_capped_learning_rate(tokenizer, how, rate):
    """`--layers full` without `--lr` trains at 1e-4 in the `lm` setting; a full-depth `cls` run (random
    head) at the recipe's 5e-4, as cuts do (test_families_learn). The export records `plan.recipe`."""
    from conftest import tiny_config

    config = tiny_config("llama", len(tokenizer), tokenizer.pad_token_id, layers=3)
    assert ExportSettings(**how).training_recipe(config).learning_rate == rate


# Recorded with torch 2.13.0 (CPU): the mean training loss over the first 10 steps and the 10 after them of
# a tiny Llama with seeded initialisation on the toy task. A change to the recipe, the classifier, the
# data order or the collator moves these numbers; rounding across machines does not move them by 1e-3.
GOLDEN_LOSSES = [0.6707, 0.3579]


def test_golden_training_loss(tokenizer, tiny_csv, tmp_path):
    from conftest import tiny_model

    from edgecut.model.classifier import make_classifier
    from edgecut.model.data import DataSpec, encode_examples, load_dataset
    from edgecut.model.finetune import finetune, get_recipe
    from edgecut.model.prompt import PromptFormat
    from edgecut.model.prune import cut_to_first

    model = tiny_model("llama", tokenizer, layers=3, seed=0)
    cut_to_first(model, 1)
    dataset = load_dataset(DataSpec(str(tiny_csv), labels=("negative", "positive"), test_size=40))
    prompt = PromptFormat(dataset.template, (), 64)
    train, _ = encode_examples(tokenizer, prompt, dataset.train)
    val, _ = encode_examples(tokenizer, prompt, dataset.validation)
    clf = make_classifier(model, tokenizer, dataset.labels, dataset.label_words)
    recipe = get_recipe("cpu", epochs=1, batch_size=8, learning_rate=3e-3, seed=0)
    log = tmp_path / "log.jsonl"
    finetune(clf, tokenizer, train, val, recipe, workdir=tmp_path / "w", log_path=log)
    losses = [json.loads(line)["loss"] for line in log.read_text().splitlines() if '"loss"' in line]
    assert len(losses) >= 2, losses
    assert losses[:2] == pytest.approx(GOLDEN_LOSSES, abs=1e-3)


def test_ci_script_fails_when_a_test_fails(tmp_path):
    """`.ci/run` must exit non-zero when the default suite fails, and must not go on to the next step."""
    repo = tmp_path / "repo"
    (repo / ".ci").mkdir(parents=True)
    shutil.copy(ROOT / ".ci" / "run", repo / ".ci" / "run")
    (repo / "scripts").mkdir()
    (repo / "scripts" / "setup.sh").write_text("exit 0\n")
    (repo / "scripts" / "check_optimum.sh").write_text("echo OPTIMUM-RAN\n")
    venv = repo / ".venv" / "bin"
    venv.mkdir(parents=True)
    # a python whose default pytest run fails, like `1 failed, 236 passed`
    (venv / "python").write_text('#!/usr/bin/env bash\necho "PYTEST $*"\n[ "$*" = "-m pytest" ] && exit 1\nexit 0\n')
    (venv / "python").chmod(0o755)
    done = subprocess.run(["bash", ".ci/run"], cwd=repo, capture_output=True, text=True, env=dict(os.environ))
    assert done.returncode != 0, done.stdout
    assert "PYTEST -m pytest -m slow" not in done.stdout and "OPTIMUM-RAN" not in done.stdout
    (venv / "python").write_text('#!/usr/bin/env bash\necho "PYTEST $*"\nexit 0\n')
    passing = subprocess.run(["bash", ".ci/run"], cwd=repo, capture_output=True, text=True)
    assert passing.returncode == 0 and "OPTIMUM-RAN" in passing.stdout, passing.stdout + passing.stderr


def test_ci_script_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    steps = ["bash scripts/setup.sh", ".venv/bin/python -m pytest", ".venv/bin/python -m pytest -m slow"]
    steps += [".venv/bin/python -m pytest -m browser", ".venv/bin/python -m pytest -m ray"]
    steps.append(".venv/bin/python -m mkdocs build --strict")
    block = readme.split("Set up and run the tests", 1)[1].split("```bash", 1)[1].split("```", 1)[0]
    assert [line.strip() for line in block.strip().splitlines()] == steps
    assert [line.strip() for line in ci.splitlines() if line.strip() in steps] == steps


@pytest.mark.slow
@pytest.mark.parametrize("layers", ["1", "full"])  # a cut, and a full-depth teacher (what a sweep distils from)
def test_accelerate_launch_with_two_processes_writes_one_artifact(layers, tiny_model_dirs, tiny_csv, tmp_path):
    """Every process trains (DDP on the CPU); only the main process exports, validates and writes."""
    out = tmp_path / "out"
    launcher = Path(sys.executable).with_name("accelerate")
    args = [str(launcher), "launch", "--cpu", "--num_processes", "2", "--num_machines", "1"]
    args += ["--mixed_precision", "no", "--dynamo_backend", "no", "-m", "edgecut.cli", "export"]
    args += ["--model", str(tiny_model_dirs["llama"]), "--data", str(tiny_csv), "--layers", layers]
    args += ["--labels", "negative,positive", "--epochs", "2", "--lr", "3e-3", "--batch-size", "8"]
    args += ["--test-size", "40", "-o", str(out)]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    done = subprocess.run(args, cwd=tmp_path, capture_output=True, text=True, env=env, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # one artifact, no partial left
    from edgecut.artifacts.manifest import read_manifest, verify_files

    manifest = read_manifest(out)
    verify_files(manifest)
    assert manifest["metrics"]["onnx_accuracy"] >= 0.75
    kept = len(manifest["layers"]["kept"])
    assert kept == (manifest["layers"]["total"] if layers == "full" else 1) and manifest["layers"]["total"] == 3
    assert done.stdout.count("edgecut export") == 1  # one summary table: only the main process reports


def test_a_trimmed_vocabulary_artifact_works_with_check_predict_and_deploy(tiny_model_dirs, tiny_csv, tmp_path):
    """--vocab 40 keeps the 40 most frequent ids (and the template's, label words', specials'): the graph
    still takes the tokenizer's ids, and words it never saw go to their nearest kept row. The same export
    also writes the raw-text graph (--with-tokenizer), which check compares with the id graph."""
    from edgecut import export
    from edgecut.artifacts.check import CheckSettings, check_artifact
    from edgecut.artifacts.manifest import read_manifest
    from edgecut.runtime import ArtifactClassifier
    from edgecut.serving.deploy import TritonSettings, deploy_triton

    settings = tiny_settings(
        tiny_model_dirs["gpt2"], tiny_csv, tmp_path / "trimmed", epochs=2, lr=3e-3, vocab="40", with_tokenizer=True
    )
    result = export(settings)
    record = read_manifest(result.path)["vocabulary"]
    assert record["vocab"] == "40" and record["kept"] < record["vocab_size"] and record["fallback"] == "nearest"
    assert record["parameters"]["after"] < record["parameters"]["before"]
    clf = ArtifactClassifier(result.path)
    unseen = "zebra quantum xylophone"  # byte-level pieces outside the 40 kept ids
    (pred,) = clf.predict([unseen])
    assert pred.label in ("negative", "positive") and abs(sum(pred.scores.values()) - 1) < 1e-5
    report = check_artifact(result.path, CheckSettings(data=tiny_csv))
    assert report.exit_code == 0 and "text_parity" in [r.name for r in report.results]
    text_model = read_manifest(result.path)["text_model"]
    assert text_model["parity"]["ids_equal"] == text_model["parity"]["texts"] > 0
    # NUL is the one recorded divergence: check probes it (and the odd inputs) and fails once it is not recorded
    assert text_model["divergent_characters"] == ["\x00"] and "NUL" in text_model["known_divergences"]
    (parity,) = [r for r in report.results if r.name == "text_parity"]
    assert parity.passed and "differ, as the manifest records" in parity.detail, parity.detail
    edit_manifest(result.path, text_model=text_model | {"divergent_characters": []})
    (parity,) = [r for r in check_artifact(result.path, CheckSettings()).results if r.name == "text_parity"]
    assert parity.passed is False and "probe texts (odd inputs included)" in parity.detail, parity.detail
    edit_manifest(result.path, text_model=text_model)
    deployed = deploy_triton(result.path, TritonSettings(tmp_path / "repo", "trimmed"))
    assert (deployed.path / "1" / "model.onnx").is_file()
    strings = deploy_triton(result.path, TritonSettings(tmp_path / "repo", "trimmed-text", strings=True))
    assert (strings.path / "1" / "model_text.onnx").is_file() and "TYPE_STRING" in strings.config.read_text()


def test_a_teacher_with_other_labels_is_refused_before_the_model_loads(
    tiny_artifact, tiny_model_dirs, tiny_csv, tmp_path
):
    from typer.testing import CliRunner

    from edgecut.cli import app

    args = ["export", "--model", str(tiny_model_dirs["llama"]), "--data", str(tiny_csv)]
    args += ["--labels", "positive,negative", "--teacher", str(tiny_artifact), "-o", str(tmp_path / "out")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2 and "Traceback" not in result.output, result.output
    assert result.output.strip().splitlines()[-1].startswith("error: --teacher") and "another order" in result.output
    assert not (tmp_path / "out").exists()


def _edgecut_imports() -> dict[str, set[tuple[str, str]]]:
    """module -> {(imported edgecut module, imported name)}, function-level imports included."""
    import ast

    package = ROOT / "edgecut"
    modules = {
        ".".join(p.relative_to(package).with_suffix("").parts).removesuffix(".__init__"): p
        for p in package.rglob("*.py")
        if p != package / "__init__.py"
    }  # subpackages too: "text_graph" (its __init__), "text_graph.bpe"
    found: dict[str, set[tuple[str, str]]] = {m: set() for m in modules}
    for name, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("edgecut."):
                target = node.module.removeprefix("edgecut.")
                # `from edgecut.sweeps import sweep`: the module imported is sweeps.sweep, not the package
                found[name] |= {
                    (f"{target}.{alias.name}", "") if f"{target}.{alias.name}" in modules else (target, alias.name)
                    for alias in node.names
                }
    return found


def test_no_import_cycle_and_no_private_name_across_modules():
    imports = _edgecut_imports()
    private = sorted(f"{m} imports {t}.{n}" for m, pairs in imports.items() for t, n in pairs if n.startswith("_"))
    assert private == []
    graph = {m: {t for t, _ in pairs if t != m} for m, pairs in imports.items()}
    state: dict[str, int] = {}

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for target in graph.get(module, ()):
            assert state.get(target) != 1, f"import cycle: {' -> '.join([*path, module, target])}"
            if target not in state:
                visit(target, [*path, module])
        state[module] = 2

    for module in graph:
        if module not in state:
            visit(module, [])


def test_the_cli_stays_thin():
    assert len((ROOT / "edgecut" / "cli.py").read_text().splitlines()) < 500


def test_no_module_over_600_lines():
    """The project's standard: a longer module is split by what it serves (tests too)."""
    modules = [
        p for folder in ("edgecut", "benchmarks", "scripts", "examples", "tests") for p in (ROOT / folder).rglob("*.py")
    ]
    lines = {p.relative_to(ROOT).as_posix(): len(p.read_text(encoding="utf-8").splitlines()) for p in modules}
    assert len(lines) > 100 and {name: n for name, n in lines.items() if n > 600} == {}


def test_vocab_auto_trimming_with_select_and_int8(tiny_model_dirs, tiny_csv, tmp_path, monkeypatch):
    """`--vocab auto` trims as `task` when the training ids cover AUTO_MIN_COVERAGE of the validation tokens
    (here lowered to 0.5), combined with a chosen (not first) layer and the int8 search: the trimmed table is
    quantized, the remap stays int64, and a text of dropped ids still gets an answer."""
    import edgecut.model.vocab
    from edgecut import export
    from edgecut.artifacts.manifest import read_manifest
    from edgecut.runtime import ArtifactClassifier

    monkeypatch.setattr(edgecut.model.vocab, "AUTO_MIN_COVERAGE", 0.5)
    settings = tiny_settings(
        tiny_model_dirs["qwen3"],
        tiny_csv,
        tmp_path / "trimmed-int8",
        layers=1,
        select="block-influence",
        vocab="auto",
        quantize="int8",
        epochs=3,
        lr=3e-3,
    )
    result = export(settings)
    manifest = read_manifest(result.path)
    record = manifest["vocabulary"]
    assert record["vocab"] == "auto" and 0.5 < record["validation_coverage"] <= 1.0
    assert record["kept"] < record["vocab_size"]
    # the parameters the artifact holds are the trimmed ones, in the manifest and the summary
    assert manifest["parameters"]["after"] == record["parameters"]["after"] == result.params_after
    assert manifest["parameters"]["after"] < record["parameters"]["before"]
    assert manifest["precision"] == "int8" and manifest["precision_search"]["kept"]
    (pred,) = ArtifactClassifier(result.path).predict(["ZEBRA QUIXOTIC 1234567890 #@%&"])
    assert pred.label in ("negative", "positive")


def test_vocab_auto_keeps_the_whole_table_when_the_training_ids_do_not_cover_validation(
    tiny_model_dirs, tiny_csv, tmp_path, monkeypatch
):
    """Under AUTO_MIN_COVERAGE (here raised past 1) `--vocab auto` keeps the whole table, and the manifest
    says so with the coverage it saw."""
    import edgecut.model.vocab
    from edgecut import export
    from edgecut.artifacts.manifest import read_manifest

    monkeypatch.setattr(edgecut.model.vocab, "AUTO_MIN_COVERAGE", 1.01)
    settings = tiny_settings(tiny_model_dirs["llama"], tiny_csv, tmp_path / "auto", epochs=1, vocab="auto")
    record = read_manifest(export(settings).path)["vocabulary"]
    assert 0.5 < record["validation_coverage"] <= 1.0
    assert record == {"vocab": "all", "requested": "auto", "validation_coverage": record["validation_coverage"]}


@pytest.mark.slow  # three trainings and an export
def test_lr_auto_trains_a_grid_and_keeps_the_best_on_validation(tiny_model_dirs, tiny_csv, tmp_path):
    """`--lr auto`: one run per rate of the grid from the same untrained cut, the best validation accuracy wins;
    the manifest records the rule, every run's validation curve (lr x epochs) and the time; the artifact's
    training log is the winner's."""
    from edgecut import export
    from edgecut.artifacts.manifest import read_manifest
    from edgecut.model.finetune import learning_rate_grid

    settings = tiny_settings(tiny_model_dirs["llama"], tiny_csv, tmp_path / "auto", epochs=2, lr="auto")
    result = export(settings)
    manifest = read_manifest(result.path)
    search = manifest["training"]["learning_rate"]
    rates = [run["learning_rate"] for run in search["grid"]]
    assert rates == learning_rate_grid(settings.training_recipe()) and len(rates) == 3
    best = max(search["grid"], key=lambda run: run["best_validation_accuracy"])
    assert search["chosen"] == best["learning_rate"] == manifest["recipe"]["learning_rate"]
    assert manifest["recipe"]["learning_rate_rule"] == "auto" and "auto" in search["rule"]
    assert all(len(run["validation_accuracy"]) >= 1 for run in search["grid"])
    assert manifest["training"]["validation_accuracy"] == best["validation_accuracy"]
    logged = [json.loads(line) for line in (result.path / "training-log.jsonl").read_text().splitlines()]
    peak = max(r["learning_rate"] for r in logged if "learning_rate" in r)  # warm-up, then linear decay
    assert best["learning_rate"] * 0.5 < peak <= best["learning_rate"] * (1 + 1e-6)  # the grid's rates are 2x apart
    with pytest.raises(EdgecutError, match="give a learning rate"):
        ExportSettings(lr="fast")
