"""`edgecut predict` and the torch-free runtime: texts from arguments, a file or stdin; JSONL out."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from artifact_helpers import copy_artifact, rehash
from typer.testing import CliRunner

from edgecut.cli import app

runner = CliRunner()
MAX_LENGTH = 80  # the two demonstrations take ~60 tokens: room for short queries, long ones get cut
LONG = " ".join(["good lovely film and the cast was superb"] * 30)
KEYS = {"text", "label", "scores", "truncated", "latency_ms"}


@pytest.fixture(scope="module")
def artifact(tiny_artifact):
    return tiny_artifact  # the shared one (demonstrations, max_length 80); read only


def _predict(*args, input=None):
    return runner.invoke(app, ["predict", *map(str, args)], input=input)


def _records(result):
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.stdout.splitlines() if line.strip()]


def test_texts_from_arguments(artifact):
    from edgecut.runtime import ArtifactClassifier

    records = _records(_predict(artifact, "good great lovely film", "bad awful dull plot"))
    assert [r["text"] for r in records] == ["good great lovely film", "bad awful dull plot"]
    reference = ArtifactClassifier(artifact).predict([r["text"] for r in records])
    for record, ref in zip(records, reference, strict=True):
        assert set(record) == KEYS
        assert record["label"] == ref.label == max(record["scores"], key=record["scores"].get)
        assert list(record["scores"]) == ["negative", "positive"]
        assert record["scores"] == pytest.approx(ref.scores, abs=1e-6)
        assert sum(record["scores"].values()) == pytest.approx(1.0, abs=1e-5)
        assert record["truncated"] is False and record["latency_ms"] > 0


def test_texts_from_a_plain_file_and_a_jsonl_file(artifact, tmp_path):
    plain = tmp_path / "texts.txt"
    plain.write_text("good film\n\nbad film\n  \nlovely cast\n", encoding="utf-8")
    assert [r["text"] for r in _records(_predict(artifact, "--file", plain))] == [
        "good film",
        "bad film",
        "lovely cast",
    ]
    jsonl = tmp_path / "texts.jsonl"
    jsonl.write_text('{"text": "good film", "id": 1}\n{"text": "bad film", "id": 2}\n', encoding="utf-8")
    assert [r["text"] for r in _records(_predict(artifact, "-f", jsonl))] == ["good film", "bad film"]
    review = tmp_path / "reviews.jsonl"
    review.write_text('{"review": "dull plot"}\n', encoding="utf-8")
    assert [r["text"] for r in _records(_predict(artifact, "-f", review, "--text-field", "review"))] == ["dull plot"]


def test_texts_from_stdin(artifact):
    assert [r["text"] for r in _records(_predict(artifact, input="good film\nbad film\n"))] == ["good film", "bad film"]
    # "-" reads stdin at its place among the arguments
    got = [r["text"] for r in _records(_predict(artifact, "first", "-", "last", input="middle\n"))]
    assert got == ["first", "middle", "last"]
    got = _records(_predict(artifact, "--jsonl", input='{"text": "as json"}\n'))
    assert [r["text"] for r in got] == ["as json"]


def test_long_input_is_truncated_like_training_and_flagged(artifact, tokenizer_dir):
    from transformers import AutoTokenizer

    from edgecut.model.data import Example, encode_examples
    from edgecut.runtime import ArtifactClassifier

    result = _predict(artifact, LONG, "good film")
    long, short = _records(result)
    assert long["truncated"] is True and short["truncated"] is False
    assert long["text"] == LONG  # the output echoes the input, the model saw the cut prompt
    assert f"max_length ({MAX_LENGTH} tokens)" in result.output and "truncated" in result.output
    # serving (tokenizers only) cuts exactly as training (transformers tokenizer) did
    clf = ArtifactClassifier(artifact)
    served, cut = clf.encode(LONG)
    trained, n_cut = encode_examples(AutoTokenizer.from_pretrained(artifact), clf.prompt, [Example(LONG, 1)])
    assert cut and n_cut == 1 and served == trained[0]["input_ids"]
    assert len(served) <= MAX_LENGTH
    # the demonstrations survive; the query was cut
    text = clf.tokenizer.decode(served)
    for demo in clf.manifest["prompt"]["demonstrations"]:
        assert demo["text"] in text
    assert clf.manifest["prompt"]["max_length"] == MAX_LENGTH


def test_runtime_imports_neither_torch_nor_transformers(artifact, tmp_path):
    repo = tmp_path / "repo"
    code = f"""
import sys
from edgecut.runtime import ArtifactClassifier
clf = ArtifactClassifier({str(artifact)!r})
(p,) = clf.predict(["good great lovely film"])
assert p.label in ("negative", "positive") and abs(sum(p.scores.values()) - 1) < 1e-5
from edgecut.cli import app
for args in (
    ["predict", {str(artifact)!r}, "a film"],
    ["check", {str(artifact)!r}, "--json"],
    ["deploy", {str(artifact)!r}, "--triton", {str(repo)!r}],
):
    try:
        app(args)
    except SystemExit as e:
        assert e.code == 0, e.code
print("torch" in sys.modules, "transformers" in sys.modules)
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "False False"
    assert (repo / artifact.name / "config.pbtxt").is_file()


def test_golden_prompts_reproduce_through_the_runtime(artifact):
    from edgecut.runtime import ArtifactClassifier, pad_batch

    clf = ArtifactClassifier(artifact)
    golden = np.load(artifact / "golden.npz")
    rows = [list(ids[mask == 1]) for ids, mask in zip(golden["input_ids"], golden["attention_mask"], strict=True)]
    got = clf.session.run(["logits"], pad_batch(rows, clf.pad_id))[0]
    np.testing.assert_allclose(got, golden["logits"], atol=1e-4, rtol=0)


@pytest.mark.parametrize(
    ("args", "input", "match"),
    [
        (["{nowhere}", "text"], None, "is not a directory"),
        (["{artifact}"], "", "no texts"),
        (["{artifact}", "--file", "{nowhere}"], None, "does not exist"),
        (["{artifact}", "--file", "{bad_jsonl}"], None, "is not a JSON object"),
        (["{artifact}", "--file", "{surrogate_jsonl}"], None, "unpaired surrogate (U+D800)"),
        (["{artifact}", "--file", "{latin1}"], None, "not UTF-8"),
        (["{artifact}", "x", "--target", "tpu"], None, "unknown target"),
        (["{truncated}", "x"], None, "does not match its sha256"),  # hashed before ONNX Runtime reads it
        (["{truncated_rehashed}", "x"], None, "cannot load"),
        (["{no_tokenizer}", "x"], None, "tokenizer.json is missing"),
    ],
)
def test_bad_input_is_one_line_exit_2(args, input, match, artifact, tmp_path):
    bad_jsonl = tmp_path / "bad.jsonl"
    bad_jsonl.write_text('{"text": "ok"}\nnot json\n')
    surrogate_jsonl = tmp_path / "surrogate.jsonl"
    surrogate_jsonl.write_text('{"text": "ok"}\n{"text": "half \\ud800 a pair"}\n')
    latin1 = tmp_path / "latin1.txt"
    latin1.write_bytes("caf\xe9 good\n".encode("latin-1"))
    truncated = copy_artifact(artifact, tmp_path / "truncated")
    (truncated / "model.onnx").write_bytes((artifact / "model.onnx").read_bytes()[:1000])
    truncated_rehashed = copy_artifact(truncated, tmp_path / "truncated_rehashed")
    rehash(truncated_rehashed)
    no_tokenizer = copy_artifact(artifact, tmp_path / "no_tokenizer")
    (no_tokenizer / "tokenizer.json").unlink()
    values = {
        "artifact": artifact,
        "nowhere": tmp_path / "nope",
        "bad_jsonl": bad_jsonl,
        "surrogate_jsonl": surrogate_jsonl,
        "latin1": latin1,
        "truncated": truncated,
        "truncated_rehashed": truncated_rehashed,
        "no_tokenizer": no_tokenizer,
    }
    result = _predict(*[a.format(**values) for a in args], input=input)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and result.stdout == ""
    lines = [line for line in result.output.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and match in lines[0], result.output


# Lengths vary (a word, a sentence, a truncated review) and are interleaved, so sorting matters.
MIXED = [
    "good",
    LONG,
    "bad awful dull boring plot and the cast was weak",
    "lovely",
    "the film was a moving and charming story of a cast",
    " ".join(["dull"] * 40),
    "great",
    "tedious clumsy bland",
]


class _RecordingSession:
    """Wraps an InferenceSession and records the shape of every input_ids it is fed."""

    def __init__(self, session):
        self.session, self.shapes = session, []

    def run(self, names, feed):
        self.shapes.append(feed["input_ids"].shape)
        return self.session.run(names, feed)


@pytest.mark.parametrize("batch_size", [3, 32])
def test_batched_predict_matches_one_at_a_time_in_input_order(artifact, batch_size):
    from edgecut.runtime import ArtifactClassifier

    clf = ArtifactClassifier(artifact)
    one = clf.predict(MIXED, batch_size=1)
    many = clf.predict(MIXED, batch_size=batch_size)
    assert [p.text for p in many] == MIXED == [p.text for p in one]
    assert [p.label for p in many] == [p.label for p in one]
    assert [p.truncated for p in many] == [p.truncated for p in one]
    assert any(p.truncated for p in many) and not all(p.truncated for p in many)
    for a, b in zip(many, one, strict=True):
        assert list(a.scores) == clf.labels
        assert a.scores == pytest.approx(b.scores, abs=1e-5, rel=0)


def test_batches_are_cut_from_texts_sorted_by_token_length(artifact):
    from edgecut.runtime import ArtifactClassifier

    clf = ArtifactClassifier(artifact)
    lengths = sorted(len(clf.encode(t)[0]) for t in MIXED)
    clf.session = _RecordingSession(clf.session)
    predictions = clf.predict(MIXED, batch_size=3)
    # 8 texts in batches of 3, 3, 2, each padded to the longest of its slice of the sorted lengths
    assert clf.session.shapes == [(3, lengths[2]), (3, lengths[5]), (2, lengths[7])]
    # latency_ms is per batch divided by its size: texts of one batch share it
    by_length = sorted(predictions, key=lambda p: len(clf.encode(p.text)[0]))
    assert len({p.latency_ms for p in by_length[:3]}) == 1 and len({p.latency_ms for p in by_length[6:]}) == 1
    assert all(p.latency_ms > 0 for p in predictions)


def test_batched_predict_of_nothing_and_of_one_text(artifact):
    from edgecut.runtime import ArtifactClassifier

    clf = ArtifactClassifier(artifact)
    clf.session = _RecordingSession(clf.session)
    assert clf.predict([], batch_size=32) == []
    assert clf.session.shapes == []  # no empty batch reaches ONNX Runtime
    (single,) = clf.predict(["good film"], batch_size=32)
    (reference,) = clf.predict(["good film"], batch_size=1)
    assert single.text == "good film" and single.label == reference.label
    assert single.scores == pytest.approx(reference.scores, abs=1e-5, rel=0)


def test_batch_size_below_one_is_refused(artifact):
    from edgecut.errors import EdgecutError
    from edgecut.runtime import ArtifactClassifier

    with pytest.raises(EdgecutError, match="--batch-size 0 must be at least 1"):
        ArtifactClassifier(artifact).predict(["good film"], batch_size=0)
