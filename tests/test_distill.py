"""Distillation from a teacher artifact, and fine-tuning's progress, log, scratch and time budget, on tiny models.

The teacher is a tiny GPT-2 with its own tokenizer, exported through the CLI; the student is a tiny Llama
with the shared test tokenizer: they differ in family, tokenizer and vocabulary, as `--teacher` allows.
"""

from __future__ import annotations

import json
import random
import shutil
import tempfile

import numpy as np
import pytest
import torch
from artifact_helpers import export_tiny, tiny_settings
from conftest import FILLER, NEGATIVE, POSITIVE, SwallowsSignal, tiny_model

from edgecut.artifacts.manifest import read_manifest, sha256_file
from edgecut.errors import ArtifactError, DataError, EdgecutError
from edgecut.model.data import Example, encode_examples
from edgecut.model.distill import read_unlabeled, teacher_logits, teacher_record
from edgecut.model.finetune import BudgetClock, Distillation, Recipe, finetune
from edgecut.model.prompt import PromptFormat
from edgecut.runtime import ArtifactClassifier, softmax

LABELS = ["negative", "positive"]
TEMPLATE = "Review: {text}\nSentiment:{label}"


def _rows(n: int, seed: int) -> list[Example]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        label = i % 2
        words = rng.sample(FILLER, 4) + rng.sample(POSITIVE if label else NEGATIVE, 2)
        rng.shuffle(words)
        out.append(Example(" ".join(words), label))
    return out


def _encode(tokenizer, examples: list[Example]) -> list[dict]:
    return encode_examples(tokenizer, PromptFormat(TEMPLATE, (), 64), examples)[0]


def _recipe(**changes) -> Recipe:
    base = dict(epochs=2, batch_size=8, learning_rate=3e-3, per_class_cap=1000, demonstrations=False)
    return Recipe("test", **(base | dict(max_length=64, patience=50) | changes))


def _student(tokenizer):
    from edgecut.model.classifier import make_classifier

    return make_classifier(tiny_model("llama", tokenizer, layers=1), tokenizer, LABELS, [" negative", " positive"])


def _logits(model, features: list[dict]) -> np.ndarray:
    from edgecut.graph.exporter import torch_logits

    return torch_logits(model, [f["input_ids"] for f in features], 0)


def _kl(student: np.ndarray, teacher: np.ndarray, t: float = 1.0) -> float:
    p, q = softmax(teacher / t), softmax(student / t)
    return float((p * (np.log(p) - np.log(q))).sum(-1).mean())


def _flipped(examples: list[Example], strength: float = 4.0) -> np.ndarray:
    """A teacher that says the opposite of the labels: whatever follows it cannot be following the labels."""
    return np.array([[strength, -strength] if ex.label else [-strength, strength] for ex in examples], np.float32)


# ---- fine-tuning with soft targets -----------------------------------------------------------------------


def test_alpha_one_trains_exactly_as_without_a_teacher(tokenizer, tmp_path):
    train, val = _encode(tokenizer, _rows(96, 1)), _encode(tokenizer, _rows(16, 2))
    runs = {}
    for name, distill in (
        ("plain", None),
        ("alpha1", Distillation(np.random.default_rng(0).normal(size=(96, 2)) * 5, alpha=1.0, temperature=3.0)),
    ):
        log = tmp_path / f"{name}.jsonl"
        result = finetune(_student(tokenizer), tokenizer, train, val, _recipe(), log_path=log, distillation=distill)
        losses = [r["loss"] for r in map(json.loads, log.read_text().splitlines()) if "loss" in r]
        runs[name] = (losses, result.model.state_dict())
    assert len(runs["plain"][0]) >= 2
    np.testing.assert_allclose(runs["alpha1"][0], runs["plain"][0], rtol=1e-5)
    for key, weight in runs["plain"][1].items():
        torch.testing.assert_close(runs["alpha1"][1][key], weight, rtol=1e-5, atol=1e-6)


def test_soft_targets_alone_make_the_student_follow_its_teacher(tokenizer):
    examples = _rows(96, 1)
    train = _encode(tokenizer, examples)
    teacher = _flipped(examples)
    # validation scored against the teacher's answers, so the kept checkpoint is the one that follows it best
    val = [f | {"labels": 1 - f["labels"]} for f in _encode(tokenizer, _rows(16, 2))]
    before = _kl(_logits(_student(tokenizer), train), teacher, 2.0)
    distilled = finetune(
        _student(tokenizer), tokenizer, train, val, _recipe(epochs=3), distillation=Distillation(teacher, 0.0, 2.0)
    ).model
    after = _logits(distilled, train)
    assert _kl(after, teacher, 2.0) < 0.75 * before
    # it learned the teacher's (flipped) answers, not the labels it never saw
    assert (after.argmax(-1) == teacher.argmax(-1)).mean() >= 0.9


def test_unlabeled_rows_are_trained_on_with_the_soft_targets(tokenizer):
    labelled, extra = _rows(8, 1), _rows(96, 3)
    train, unlabeled = _encode(tokenizer, labelled), _encode(tokenizer, extra)
    unlabeled = [{"input_ids": f["input_ids"], "attention_mask": f["attention_mask"]} for f in unlabeled]
    # a teacher that knows the task: its logits on the unlabeled texts are the only place the student can learn it
    teacher = -_flipped(extra)
    val = _encode(tokenizer, _rows(16, 2))
    recipe = _recipe(epochs=3)
    without = finetune(_student(tokenizer), tokenizer, train, val, recipe).model
    distill = Distillation(-_flipped(labelled), 0.5, 2.0, unlabeled=unlabeled, unlabeled_logits=teacher)
    with_unlabeled = finetune(_student(tokenizer), tokenizer, train, val, recipe, distillation=distill).model
    held_out = _encode(tokenizer, _rows(40, 9))
    truth = np.array([f["labels"] for f in held_out])
    assert (_logits(with_unlabeled, held_out).argmax(-1) == truth).mean() >= 0.9
    assert _kl(_logits(with_unlabeled, unlabeled), teacher) < _kl(_logits(without, unlabeled), teacher)


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"alpha": 1.5}, "between 0 and 1"),
        ({"alpha": -0.1}, "between 0 and 1"),
        ({"temperature": 0.0}, "positive"),
        ({"train_logits": np.zeros(4)}, r"\[rows, classes\]"),
        ({"unlabeled": [{"input_ids": [1], "attention_mask": [1]}]}, "unlabeled rows need teacher logits"),
    ],
)
def test_bad_distillation_settings_are_refused(changes, match):
    with pytest.raises(EdgecutError, match=match):
        Distillation(**({"train_logits": np.zeros((4, 2))} | changes))


def test_teacher_logits_for_other_rows_are_refused_before_training(tokenizer):
    train = _encode(tokenizer, _rows(8, 1))
    with pytest.raises(EdgecutError, match="7 teacher logits for 8 training rows"):
        finetune(None, tokenizer, train, train, _recipe(), distillation=Distillation(np.zeros((7, 2))))


# ---- progress, log, scratch, time budget -----------------------------------------------------------------


def test_progress_log_and_scratch_without_trainer_output(tokenizer, tmp_path, monkeypatch, capfd):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    seen = []
    train, val = _encode(tokenizer, _rows(48, 1)), _encode(tokenizer, _rows(16, 2))
    result = finetune(
        _student(tokenizer),
        tokenizer,
        train,
        val,
        _recipe(epochs=2),
        on_progress=seen.append,
        log_path=tmp_path / "log.jsonl",
        workdir=tmp_path / "work",
    )
    steps = [p.step for p in seen]
    assert steps == sorted(steps) and steps[-1] == result.steps == 12
    assert {p.total_steps for p in seen} == {12}
    assert seen[0].validation_accuracy is None and seen[-1].validation_accuracy == result.validation_accuracy[-1]
    assert seen[-1].loss is not None and seen[-1].epoch == pytest.approx(2.0)
    assert result.majority_rate == 0.5 and result.learned == (result.best_validation_accuracy > 0.5)
    records = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert [r["eval_accuracy"] for r in records if "eval_accuracy" in r] == result.validation_accuracy
    assert any("grad_norm" in r for r in records)
    # checkpoints lived under workdir and are gone; edgecut wrote nothing to TMPDIR (torch may keep caches there)
    assert list((tmp_path / "work").iterdir()) == []
    assert [p.name for p in (tmp_path / "tmp").iterdir() if p.name.startswith("edgecut")] == []
    printed = capfd.readouterr()
    assert "Writing model shards" not in printed.err + printed.out
    assert "'loss'" not in printed.err + printed.out and "eval_accuracy" not in printed.err + printed.out


@pytest.mark.filterwarnings("error::pytest.PytestUnraisableExceptionWarning")  # no "Exception ignored"
def test_training_stops_at_the_next_step_after_a_sigterm_a_finaliser_swallowed(tokenizer):
    import signal

    from edgecut.errors import Terminated
    from edgecut.signals import terminate_as_interrupt

    seen = []

    def on_progress(progress):
        seen.append(progress.step)
        if progress.step == 1:
            SwallowsSignal(signal.SIGTERM)  # Python prints the handler's Terminated and drops it

    train = _encode(tokenizer, _rows(48, 1))
    with pytest.raises(Terminated), terminate_as_interrupt():
        finetune(_student(tokenizer), tokenizer, train, train[:8], _recipe(epochs=3), on_progress=on_progress)
    assert seen and max(seen) == 1  # of 18 steps: the next step's end raised it again


def test_a_model_no_better_than_the_majority_class_has_not_learned(tokenizer):
    train = _encode(tokenizer, _rows(16, 1))
    one_class = [f for f in _encode(tokenizer, _rows(12, 2)) if f["labels"] == 1]
    result = finetune(_student(tokenizer), tokenizer, train, one_class, _recipe(epochs=1))
    assert result.majority_rate == 1.0 and not result.learned


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_budget_counts_evaluations_and_stops_before_one_would_not_fit():
    clock = FakeClock()
    budget = BudgetClock(20.0, eval_rows=80, batch_size=8, clock=clock)  # estimate: 10 steps' worth / 2
    stops = []
    for step in range(1, 100):
        budget.step_begin()
        clock.now += 1.0  # one training step
        stops.append(budget.step_end())
        if stops[-1]:
            break
        if step == 4:  # an epoch ends: the evaluation and save take 6 s
            budget.evaluated()
            clock.now += 6.0
    # steps 1-4 take 4 s, the evaluation 6 s (measured from then on); stop when 1 s + 6 s no longer fit in 20 s
    assert budget.eval_s == pytest.approx(6.0)
    assert len(stops) == 8 and stops[-1] and not any(stops[:-1])
    assert clock.now + budget.eval_s <= 20.0


def test_budget_estimates_the_first_evaluation_from_the_step_time():
    clock = FakeClock()
    budget = BudgetClock(10.0, eval_rows=160, batch_size=8, clock=clock)
    budget.step_begin()
    clock.now += 1.0
    # 160 rows at batch 8 is 20 steps' worth of rows; evaluation counted as half of that: 1 s + 10 s > 9 s left
    assert budget.step_end() and budget.hit
    assert budget.eval_estimate() == pytest.approx(10.0)


def test_a_time_budget_stops_training_and_evaluates_the_stopping_step_once(tokenizer):
    train, val = _encode(tokenizer, _rows(64, 1)), _encode(tokenizer, _rows(200, 2))
    result = finetune(_student(tokenizer), tokenizer, train, val, _recipe(epochs=500, time_budget_s=1.0))
    assert result.stopped_by == "time-budget"
    assert result.steps < 500 * 8
    # at least one evaluation (the stopping step's), never two at the same step
    assert result.evaluations and result.evaluations == sorted(set(result.evaluations))
    assert result.evaluations[-1] == result.steps and len(result.validation_accuracy) == len(result.evaluations)


# ---- a teacher artifact of another family and tokenizer --------------------------------------------------


@pytest.fixture(scope="module")
def teacher_dir(tmp_path_factory, tiny_csv):
    """A 1-layer GPT-2 export with its own tokenizer (other vocabulary, other special tokens)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tk = Tokenizer(models.BPE())
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=330, special_tokens=["<s>", "</s>", "<p>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    corpus = [" ".join(POSITIVE + NEGATIVE + FILLER)] * 30 + ["Review: Sentiment: negative positive"] * 10
    tk.train_from_iterator(corpus, trainer)
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, pad_token="<p>", eos_token="</s>", unk_token="<s>")
    root = tmp_path_factory.mktemp("teacher")
    model = tiny_model("gpt2", tok, layers=2)
    model.save_pretrained(root / "model")
    tok.save_pretrained(root / "model")
    return export_tiny(root / "model", tiny_csv, root / "artifact", "--epochs", "3")


def test_teacher_logits_are_the_teachers_own_predictions(teacher_dir, tokenizer):
    texts = [ex.text for ex in _rows(20, 5)]
    logits = teacher_logits(teacher_dir, texts, LABELS, batch_size=7)
    assert logits.shape == (20, 2) and logits.dtype == np.float32
    # the same numbers the runtime gives for each text, in input order, whatever the batching
    scores = [[p.scores[label] for label in LABELS] for p in ArtifactClassifier(teacher_dir).predict(texts)]
    np.testing.assert_allclose(softmax(logits), scores, atol=1e-5)
    # another tokenizer than the student's: the teacher really encoded the texts itself
    assert ArtifactClassifier(teacher_dir).tokenizer.get_vocab_size() != len(tokenizer)


@pytest.mark.parametrize(("labels", "match"), [(["positive", "negative"], "another order"), (["bad", "good"], "other")])
def test_a_teacher_with_other_labels_is_refused(teacher_dir, labels, match):
    with pytest.raises(EdgecutError, match=match) as caught:
        teacher_logits(teacher_dir, ["a text"], labels)
    assert "\n" not in str(caught.value) and f"--labels {','.join(labels)}" in str(caught.value)


def test_a_missing_teacher_is_an_artifact_error(tmp_path):
    with pytest.raises(ArtifactError):
        teacher_logits(tmp_path / "nope", ["a text"], LABELS)


def test_teacher_record_names_the_exact_model(teacher_dir):
    from edgecut.artifacts.manifest import read_manifest, sha256_file

    record = teacher_record(teacher_dir)
    manifest = read_manifest(teacher_dir)
    assert record["sha256"] == sha256_file(teacher_dir / manifest.model_file)
    assert record["accuracy"] == manifest["metrics"]["onnx_accuracy"]
    assert record["path"] == str(teacher_dir.resolve()) and record["layers"] == 1
    json.dumps(record)  # goes into the student's manifest as is


def test_a_student_distilled_from_the_teacher_moves_towards_it(teacher_dir, tokenizer):
    examples = _rows(96, 1)
    train, val = _encode(tokenizer, examples), _encode(tokenizer, _rows(16, 2))
    teacher = teacher_logits(teacher_dir, [ex.text for ex in examples], LABELS)
    before = _kl(_logits(_student(tokenizer), train), teacher, 2.0)
    distilled = finetune(
        _student(tokenizer), tokenizer, train, val, _recipe(epochs=3), distillation=Distillation(teacher, 0.0, 2.0)
    ).model
    assert _kl(_logits(distilled, train), teacher, 2.0) < 0.75 * before


# ---- unlabeled texts -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("u.txt", "first text\n\n  second text  \r\nthird\n", ["first text", "second text", "third"]),
        ("u.csv", 'id,text\n1,"a, quoted text"\n2,\n3,plain\n', ["a, quoted text", "plain"]),
        ("u.tsv", "text\tid\nuno\t1\ndos\t2\n", ["uno", "dos"]),
        ("u.jsonl", '{"text": "alpha"}\n\n{"text": "中文 评论"}\n', ["alpha", "中文 评论"]),
    ],
)
def test_read_unlabeled_reads_lines_csv_and_jsonl(tmp_path, name, content, expected):
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    assert read_unlabeled(path) == expected


def test_read_unlabeled_uses_the_text_column(tmp_path):
    path = tmp_path / "u.jsonl"
    path.write_text('{"body": "x", "text": "y"}\n', encoding="utf-8")
    assert read_unlabeled(path, text_column="body") == ["x"]


@pytest.mark.parametrize(
    ("name", "content", "match"),
    [
        ("missing.txt", None, "does not exist"),
        ("u.txt", b"caf\xe9\n", "not UTF-8"),
        ("u.csv", "id,body\n1,x\n", "no column 'text'"),
        ("u.jsonl", '{"text": "ok"}\nnot json\n', ":2 is not a JSON object"),
        ("u.jsonl", '{"body": "x"}\n', "no string field 'text'"),
        ("u.txt", "\n  \n", "has no texts"),
    ],
)
def test_read_unlabeled_refuses_bad_files_in_one_line(tmp_path, name, content, match):
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content, encoding="utf-8")
    with pytest.raises(DataError, match=match) as caught:
        read_unlabeled(path)
    assert "\n" not in str(caught.value)


def test_vocab_task_keeps_the_ids_of_the_unlabeled_texts(teacher_dir, tiny_model_dirs, tiny_csv, tmp_path):
    """The unlabeled texts a teacher labels are trained on: `--vocab task` must keep their ids too, or the
    student would learn them on fallback rows. The pipeline is stopped as fine-tuning starts: the trimming
    and the teacher's labelling are done by then, and the export after it is what other tests check."""
    from artifact_helpers import NotesUntilFineTuning, StopAtFineTuning

    from edgecut import export

    extra = tmp_path / "unlabeled.txt"
    extra.write_text("ZEBRA QUIXOTIC XYLOPHONE 1234567890\nJUKEBOX WALTZ #@%&\n", encoding="utf-8")

    def notes(unlabeled) -> list[str]:
        out = tmp_path / f"out-{unlabeled is not None}"
        settings = tiny_settings(
            tiny_model_dirs["llama"], tiny_csv, out, epochs=1, vocab="task", teacher=teacher_dir, unlabeled=unlabeled
        )
        progress = NotesUntilFineTuning()
        with pytest.raises(StopAtFineTuning):
            export(settings, progress)
        assert not out.exists()
        return progress.notes

    def kept(notes: list[str]) -> int:
        (line,) = [n for n in notes if n.startswith("kept ") and " token ids " in n]
        return int(line.split()[1])

    with_extra, without = notes(extra), notes(None)
    assert kept(with_extra) > kept(without)
    # the fine-tuning line counts the rows the teacher labelled, which train too
    training = [n for n in with_extra + without if n.startswith("fine-tuning (")]
    assert len(training) == 2 and "+ 2 teacher-labelled" in training[0] and "teacher-labelled" not in training[1]


@pytest.mark.parametrize("kind", ["damaged", "model directory", "missing"])
def test_a_bad_teacher_is_named_and_refused_before_any_model_loads(
    kind, teacher_dir, tiny_model_dirs, tiny_csv, tmp_path
):
    """--teacher at a damaged artifact named neither the option nor what a teacher must be, and only after the
    student had loaded; at a model directory it said "re-export it". Now: one line naming --teacher and what a
    teacher must be, before any model loads (the student --model here does not even exist)."""
    from typer.testing import CliRunner

    from edgecut.cli import app

    if kind == "damaged":
        teacher = shutil.copytree(teacher_dir, tmp_path / "teacher")
        model = teacher / read_manifest(teacher).model_file
        model.write_bytes(model.read_bytes()[:-8] + b"\0" * 8)
        reason = "does not match its sha256"
    elif kind == "model directory":
        teacher, reason = tiny_model_dirs["llama"], "has no edgecut.json"
    else:
        teacher, reason = tmp_path / "nope", "is not a directory"
    args = ["export", "--model", str(tmp_path / "no-model"), "--data", str(tiny_csv), "--labels", ",".join(LABELS)]
    result = CliRunner().invoke(app, [*args, "--teacher", str(teacher), "-o", str(tmp_path / "out")])
    assert result.exit_code == 2 and "Traceback" not in result.output, result.output
    last = result.output.strip().splitlines()[-1]
    assert last.startswith(f"error: --teacher {teacher}") and reason in last, last
    assert "a teacher must be an intact edgecut artifact" in last and "--layers full" in last, last
    assert not (tmp_path / "out").exists()


def test_one_teacher_is_opened_once_for_labels_and_record(teacher_dir, monkeypatch):
    """The teacher's files are hashed once (when it is opened), and its record reuses the verified sha256."""
    import edgecut.runtime as runtime
    from edgecut.model.distill import Teacher

    calls = []
    real = runtime.verify_files
    monkeypatch.setattr(runtime, "verify_files", lambda *a, **k: calls.append(a) or real(*a, **k))
    teacher = Teacher(teacher_dir, LABELS)
    logits = teacher.logits(["good film", "bad film"])
    record = teacher.record()
    assert len(calls) == 1 and logits.shape == (2, len(LABELS))
    assert record["sha256"] == sha256_file(teacher_dir / read_manifest(teacher_dir).model_file)
