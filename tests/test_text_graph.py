"""model_text.onnx: raw text in, the ids `tokenizers` gives, the id graph's logits out (onnxruntime-extensions)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import onnx
import pytest
from artifact_helpers import copy_artifact
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgecut.graph.text_graph import NUL_DIVERGENCE

MAX_LENGTH = 80  # the two demonstrations take ~60 tokens: short queries fit, long ones get cut
LONG = " ".join(["good lovely film and the cast was superb"] * 30)
SHORT = [
    "good film",
    "",
    "bad awful dull boring plot",
    "  two  spaces\tand a tab\nand a newline",
    "Amélie's café — “quoted”",
    "a <eos> inside and <pad> too",
]
# Long texts whose query is cut; the emoji and accents make some cuts fall inside a multi-byte character,
# where `tokenizers` decodes the partial bytes to U+FFFD and the graph must do the same.
CUT = [LONG, "🎉" * 80, *("dull " * j + "🎬é" * 60 for j in range(1, 8)), "café " * 70]


@pytest.fixture(scope="module")
def artifact(tiny_artifact):
    """The suite's shared tiny Llama artifact (demonstrations, max_length 80); only read here."""
    assert json.loads((tiny_artifact / "edgecut.json").read_text())["prompt"]["max_length"] == MAX_LENGTH
    return tiny_artifact


@pytest.fixture(scope="module")
def text_model(artifact, tmp_path_factory):
    from edgecut.graph.text_graph import build_text_graph

    result = build_text_graph(artifact, tmp_path_factory.mktemp("text_model") / "model_text.onnx")
    assert result.path.is_file() and result.external_data is None and result.max_length == MAX_LENGTH
    assert result.known_divergences == NUL_DIVERGENCE and result.divergent_characters == ("\x00",)
    return result.path


# Arbitrary Unicode but NUL (the recorded divergence) and lone surrogates (no Unicode text; hypothesis leaves them
# out: codec utf-8): the string graph must give `tokenizers`' ids, whatever the text, cut or not.
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=120), min_size=1, max_size=4))
def test_property_the_string_graph_gives_tokenizers_ids_for_any_unicode(artifact, text_model, texts):
    clf = _classifier(artifact)
    ids, mask, truncated = _session(text_model, ["input_ids", "attention_mask"]).run(
        ["input_ids", "attention_mask", "truncated"], {"text": np.array(texts, dtype=object)}
    )
    for text, row, m, cut in zip(texts, ids, mask, truncated, strict=True):
        expected, was_cut = clf.encode(text)
        assert row[m == 1].tolist() == expected and bool(cut) == was_cut, repr(text)


_CLASSIFIERS: dict = {}


def _classifier(artifact):
    """One ArtifactClassifier per artifact for the property test's many examples (opening one takes ~0.1 s)."""
    from edgecut.runtime import ArtifactClassifier

    return _CLASSIFIERS.setdefault(str(artifact), ArtifactClassifier(artifact))


def test_a_text_holding_nul_is_the_recorded_divergence_and_nothing_else(artifact, text_model):
    """The graph cuts a text at its first NUL (onnxruntime-extensions reads C strings): it answers for the text
    before it, which is why the manifest records it; the same text without the NUL is exact."""
    from edgecut.runtime import ArtifactClassifier

    clf = ArtifactClassifier(artifact)
    texts = ["good\x00film", "\x00\x00\x00", "goodfilm"]
    ids, mask, _ = _session(text_model, ["input_ids", "attention_mask"]).run(
        ["input_ids", "attention_mask", "truncated"], {"text": np.array(texts, dtype=object)}
    )
    got = [row[m == 1].tolist() for row, m in zip(ids, mask, strict=True)]
    assert got[0] != clf.encode(texts[0])[0] and got[1] != clf.encode(texts[1])[0]
    assert got[2] == clf.encode(texts[2])[0]
    assert got[0] == clf.encode("good")[0] and got[1] == clf.encode("")[0]


def _session(path, extra_outputs=()):
    import onnxruntime as ort

    from edgecut.graph.text_graph import session_options

    model = onnx.load(str(path))
    for name in extra_outputs:  # expose the ids the classifier is fed
        model.graph.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.INT64, None))
    return ort.InferenceSession(model.SerializeToString(), session_options(), providers=["CPUExecutionProvider"])


@pytest.mark.parametrize("texts", [SHORT, SHORT + CUT, CUT], ids=["all-fit", "mixed", "all-cut"])
def test_ids_in_the_graph_are_tokenizers_ids(artifact, text_model, texts):
    from edgecut.runtime import ArtifactClassifier

    clf = ArtifactClassifier(artifact)
    session = _session(text_model, ["input_ids", "attention_mask"])
    ids, mask, truncated = session.run(
        ["input_ids", "attention_mask", "truncated"], {"text": np.array(texts, dtype=object)}
    )
    assert ids.shape == mask.shape and ids.shape[0] == len(texts)
    for text, row, m, cut in zip(texts, ids, mask, truncated, strict=True):
        expected, was_cut = clf.encode(text)
        assert row[m == 1].tolist() == expected, text
        assert bool(cut) == was_cut and (row[m == 0] == clf.pad_id).all()
        assert list(m) == sorted(m, reverse=True)  # right padding
    assert ids.shape[1] == max(len(clf.encode(t)[0]) for t in texts)  # padded to the batch's longest
    if texts is not SHORT:
        assert truncated.any() and max(len(clf.encode(t)[0]) for t in texts) <= MAX_LENGTH


def test_a_cut_inside_a_character_decodes_like_tokenizers(artifact):
    """The CUT texts exercise the U+FFFD path: at least one `tokenizers` prompt carries it."""
    from edgecut.runtime import ArtifactClassifier

    clf = ArtifactClassifier(artifact)
    assert any("\ufffd" in clf.tokenizer.decode(clf.encode(t)[0]) for t in CUT)


def test_logits_labels_and_truncation_equal_the_id_graph(artifact, text_model):
    from edgecut.runtime import ArtifactClassifier, pad_batch

    clf = ArtifactClassifier(artifact)
    texts = SHORT + CUT
    logits, labels, truncated = _session(text_model).run(
        ["logits", "label", "truncated"], {"text": np.array(texts, dtype=object)}
    )
    encoded = [clf.encode(t) for t in texts]
    reference = clf.session.run(["logits"], pad_batch([ids for ids, _ in encoded], clf.pad_id))[0]
    np.testing.assert_allclose(logits, reference, atol=1e-4, rtol=0)
    predictions = clf.predict(texts)
    assert [str(label) for label in labels] == [p.label for p in predictions]
    assert truncated.tolist() == [p.truncated for p in predictions]
    assert logits.dtype == np.float32 and logits.shape == (len(texts), len(clf.labels))


def test_raw_text_through_onnxruntime_alone(artifact, text_model):
    """A client with onnxruntime and onnxruntime-extensions' library only: no tokenizers, edgecut or torch."""
    from edgecut.runtime import ArtifactClassifier

    texts = ["good great lovely film", "bad awful dull plot", LONG]
    code = f"""
import importlib.machinery, importlib.util, json, pathlib, sys
import numpy as np
import onnxruntime as ort

# onnxruntime-extensions' compiled operator library, registered by path: importing the package's Python
# layer would pull in transformers and tokenizers for its converters, which a client does not need
folder = pathlib.Path(importlib.util.find_spec("onnxruntime_extensions").submodule_search_locations[0])
(library,) = [folder / f"_extensions_pydll{{s}}" for s in importlib.machinery.EXTENSION_SUFFIXES
              if (folder / f"_extensions_pydll{{s}}").is_file()]
options = ort.SessionOptions()
options.register_custom_ops_library(str(library))
session = ort.InferenceSession({str(text_model)!r}, options, providers=["CPUExecutionProvider"])
logits, labels, truncated = session.run(None, {{"text": np.array({texts!r}, dtype=object)}})
loaded = [m for m in ("tokenizers", "transformers", "torch", "edgecut") if m in sys.modules]
print(json.dumps({{"labels": [str(x) for x in labels], "truncated": truncated.tolist(), "loaded": loaded}}))
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    got = json.loads(done.stdout.strip().splitlines()[-1])
    assert got["loaded"] == []
    predictions = ArtifactClassifier(artifact).predict(texts)
    assert got["labels"] == [p.label for p in predictions]
    assert got["truncated"] == [False, False, True]


def _cased(data: dict) -> dict:
    """The tiny WordPiece tokenizer made cased (lowercase false): the op cannot keep case, so it is refused."""
    return {**_wordpiece_json(), "normalizer": {**_wordpiece_json()["normalizer"], "lowercase": False}}


def _metaspace(data: dict) -> dict:
    return {**data, "pre_tokenizer": {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "always"}}


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (_cased, "WordPiece model, normalizer BertNormalizer.*lowercase"),
        (_metaspace, "BPE model, pre-tokenizer Metaspace"),
        (lambda data: {**data, "post_processor": {"type": "BertProcessing"}}, "post-processor BertProcessing"),
    ],
    ids=["cased-wordpiece", "metaspace", "bert-processing"],
)
def test_an_unsupported_tokenizer_is_refused_naming_its_type(artifact, tmp_path, edit, match):
    from edgecut.graph.text_graph import UnsupportedTokenizerError, build_text_graph, check_tokenizer

    assert "GPT2Tokenizer" in check_tokenizer(artifact / "tokenizer.json")
    copy = copy_artifact(artifact, tmp_path / "copy")
    data = json.loads((copy / "tokenizer.json").read_text())
    (copy / "tokenizer.json").write_text(json.dumps(edit(data)))
    destination = tmp_path / "out" / "model_text.onnx"
    with pytest.raises(UnsupportedTokenizerError, match=match):
        check_tokenizer(copy / "tokenizer.json")
    with pytest.raises(UnsupportedTokenizerError, match=match) as raised:
        build_text_graph(copy, destination)
    assert "serve" in str(raised.value) and "\n" not in str(raised.value)
    assert not destination.exists()


def test_compare_text_graph_reports_parity_and_sees_a_broken_graph(artifact, text_model, tmp_path):
    from edgecut.graph.text_graph import compare_text_graph

    texts = SHORT + CUT
    parity = compare_text_graph(artifact, text_model, texts)
    assert (parity.texts, parity.ids_equal, parity.labels_equal) == (len(texts), len(texts), len(texts))
    assert parity.max_abs_logit_diff <= 1e-4
    # a graph whose prompt lost its suffix: other ids for every text, and check must see it
    model = onnx.load(str(text_model))
    (suffix,) = [t for t in model.graph.initializer if t.name == "text/SUFFIX"]
    suffix.string_data[0] = b""
    broken = tmp_path / "broken.onnx"
    onnx.save(model, str(broken))
    assert compare_text_graph(artifact, broken, texts).ids_equal == 0


def _with_tokenizer_of(artifact, tmp_path, tokenizer):
    """A copy of the tiny artifact carrying a real model's tokenizer (the text side only needs the
    tokenizer, the prompt and the pad id; its classifier is never run here)."""
    from artifact_helpers import rehash

    from edgecut.artifacts.artifact import save_tokenizer

    copy = copy_artifact(artifact, tmp_path / "copy")
    save_tokenizer(tokenizer, tmp_path / "tok")
    (copy / "tokenizer.json").write_bytes((tmp_path / "tok" / "tokenizer.json").read_bytes())
    rehash(copy)
    return copy


@pytest.mark.slow
def test_smollm2_ids_in_the_graph_on_real_texts(artifact, tmp_path):
    """SmolLM2's byte-level BPE on 1000 rotten-tomatoes texts and whole BBC articles (every query cut)."""
    import onnxruntime as ort
    from tokenizers import Tokenizer

    from edgecut.graph.text_graph import build_front_graph, session_options
    from edgecut.model.data import DataSpec, load_dataset
    from edgecut.model.load import load_model
    from edgecut.model.prompt import PromptFormat

    copy = _with_tokenizer_of(artifact, tmp_path, load_model("smollm2-135m").tokenizer)
    session = ort.InferenceSession(
        build_front_graph(copy).SerializeToString(), session_options(), providers=["CPUExecutionProvider"]
    )
    tk = Tokenizer.from_file(str(copy / "tokenizer.json"))
    prompt = PromptFormat.from_dict(json.loads((copy / "edgecut.json").read_text())["prompt"])
    texts = [ex.text for source in ("rotten-tomatoes", "bbc-news") for ex in load_dataset(DataSpec(source)).test]
    cut = 0
    for start in range(0, len(texts), 32):
        chunk = texts[start : start + 32]
        ids, mask, truncated = session.run(None, {"text": np.array(chunk, dtype=object)})
        for text, row, m, was in zip(chunk, ids, mask, truncated, strict=True):
            expected, flag = prompt.encode_with(tk, text)
            assert row[m == 1].tolist() == expected and bool(was) == flag, text[:80]
            cut += flag
    assert cut >= 400  # the BBC articles


def test_a_leading_special_token_from_the_post_processor(artifact, tmp_path):
    """A Llama-style BOS (TemplateProcessing `<eos> $A`): in the graph as `tokenizers` adds it, cuts too."""
    import onnxruntime as ort
    from artifact_helpers import rehash
    from tokenizers import Tokenizer

    from edgecut.graph.text_graph import build_front_graph, session_options
    from edgecut.model.prompt import PromptFormat

    copy = copy_artifact(artifact, tmp_path / "bos")
    data = json.loads((copy / "tokenizer.json").read_text())
    data["post_processor"] = {
        "type": "TemplateProcessing",
        "single": [{"SpecialToken": {"id": "<eos>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
        "pair": [{"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}],
        "special_tokens": {"<eos>": {"id": "<eos>", "ids": [1], "tokens": ["<eos>"]}},
    }
    (copy / "tokenizer.json").write_text(json.dumps(data))
    rehash(copy)
    session = ort.InferenceSession(
        build_front_graph(copy).SerializeToString(), session_options(), providers=["CPUExecutionProvider"]
    )
    tk = Tokenizer.from_file(str(copy / "tokenizer.json"))
    prompt = PromptFormat.from_dict(json.loads((copy / "edgecut.json").read_text())["prompt"])
    texts = SHORT + CUT
    ids, mask, truncated = session.run(None, {"text": np.array(texts, dtype=object)})
    for text, row, m, cut in zip(texts, ids, mask, truncated, strict=True):
        expected, was_cut = prompt.encode_with(tk, text)
        assert expected[0] == 1 and row[m == 1].tolist() == expected and bool(cut) == was_cut


# --- WordPiece (BERT, all-MiniLM-L6): BertTokenizer, one row at a time -----------------------------------

WORDPIECE_TEXTS = [
    *SHORT,
    "Don't! CAFÉ, naïve ÀÉÎÕ — the DVD's (2h) cut, 中文",
    "h" * 100 + " and " + "m" * 101,  # BERT's 100-character word limit
    "loved it🎉, a∀b 2024",  # unknown characters inside words: one [UNK] per word
]
WORDPIECE_CUT = [LONG, "Amélie's café — “quoted” " * 30, "dull " * 5 + "isn't it, 3.5/10 " * 40, "🎉 " * 90]


def _wordpiece_json() -> dict:
    """A tiny uncased BERT tokenizer as all-MiniLM-L6's is built: BertNormalizer, BertPreTokenizer, WordPiece,
    `[CLS] $A [SEP]`, trained here on the test sentences (every ASCII character in its alphabet)."""
    import string

    from conftest import FILLER, NEGATIVE, POSITIVE
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

    tk = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tk.normalizer = normalizers.BertNormalizer(lowercase=True)
    tk.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tk.decoder = decoders.WordPiece()
    corpus = [" ".join(FILLER + POSITIVE + NEGATIVE)] * 20 + ["Review: Sentiment: negative positive. It's a café!"] * 20
    trainer = trainers.WordPieceTrainer(
        vocab_size=300,
        special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"],
        initial_alphabet=list(string.ascii_lowercase + string.digits + string.punctuation),
    )
    tk.train_from_iterator(corpus, trainer)
    tk.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", tk.token_to_id("[CLS]")), ("[SEP]", tk.token_to_id("[SEP]"))]
    )
    return json.loads(tk.to_str())


@pytest.fixture(scope="module")
def wordpiece_artifact(artifact, tmp_path_factory):
    """The tiny artifact with the tiny BERT tokenizer ([PAD] = 0 = its pad id). The classifier only sees ids,
    all below its vocabulary size, so its logits check the string graph as well as a BERT classifier would."""
    from artifact_helpers import rehash

    copy = copy_artifact(artifact, tmp_path_factory.mktemp("wordpiece") / "artifact")
    data = _wordpiece_json()
    assert data["model"]["vocab"]["[PAD]"] == json.loads((copy / "edgecut.json").read_text())["pad_token_id"]
    (copy / "tokenizer.json").write_text(json.dumps(data, ensure_ascii=False))
    rehash(copy)
    return copy


@pytest.fixture(scope="module")
def wordpiece_text_model(wordpiece_artifact, tmp_path_factory):
    from edgecut.graph.text_graph import build_text_graph

    result = build_text_graph(wordpiece_artifact, tmp_path_factory.mktemp("wp_text") / "model_text.onnx")
    assert "WordpieceTokenizer" in result.tokenizer and result.checked_texts > 10
    assert "Latin-1" in result.known_divergences  # said to the user: export and deploy print it
    return result.path


@pytest.mark.parametrize(
    "texts",
    [WORDPIECE_TEXTS, WORDPIECE_TEXTS + WORDPIECE_CUT, WORDPIECE_CUT, WORDPIECE_TEXTS[:1]],
    ids=["all-fit", "mixed", "all-cut", "one"],
)
def test_wordpiece_ids_in_the_graph_are_tokenizers_ids(wordpiece_artifact, wordpiece_text_model, texts):
    from edgecut.runtime import ArtifactClassifier

    clf = ArtifactClassifier(wordpiece_artifact)
    ids, mask, truncated = _session(wordpiece_text_model, ["input_ids", "attention_mask"]).run(
        ["input_ids", "attention_mask", "truncated"], {"text": np.array(texts, dtype=object)}
    )
    expected = [clf.encode(t) for t in texts]
    assert ids.shape == mask.shape == (len(texts), max(len(e) for e, _ in expected))  # padded to the longest
    for text, row, m, cut, (want, was_cut) in zip(texts, ids, mask, truncated, expected, strict=True):
        assert row[m == 1].tolist() == want, text[:60]
        assert want[0] == clf.tokenizer.token_to_id("[CLS]") and want[-1] == clf.tokenizer.token_to_id("[SEP]")
        assert bool(cut) == was_cut and (row[m == 0] == clf.pad_id).all()
        assert list(m) == sorted(m, reverse=True)  # right padding
    assert all(cut for text, cut in zip(texts, truncated, strict=True) if text in WORDPIECE_CUT)


def test_wordpiece_logits_labels_and_truncation_equal_the_id_graph(wordpiece_artifact, wordpiece_text_model):
    from edgecut.graph.text_graph import check_tokenizer, compare_text_graph
    from edgecut.runtime import ArtifactClassifier, pad_batch

    assert "WordpieceTokenizer" in check_tokenizer(wordpiece_artifact / "tokenizer.json")
    clf = ArtifactClassifier(wordpiece_artifact)
    texts = WORDPIECE_TEXTS + WORDPIECE_CUT
    logits, labels, truncated = _session(wordpiece_text_model).run(
        ["logits", "label", "truncated"], {"text": np.array(texts, dtype=object)}
    )
    reference = clf.session.run(["logits"], pad_batch([clf.encode(t)[0] for t in texts], clf.pad_id))[0]
    np.testing.assert_allclose(logits, reference, atol=1e-4, rtol=0)
    predictions = clf.predict(texts)
    assert [str(label) for label in labels] == [p.label for p in predictions]
    assert truncated.tolist() == [p.truncated for p in predictions]
    parity = compare_text_graph(wordpiece_artifact, wordpiece_text_model, texts)
    assert parity.ids_equal == parity.labels_equal == len(texts)


@pytest.mark.slow
def test_minilm_ids_in_the_graph_on_real_texts(artifact, tmp_path):
    """all-MiniLM-L6's tokenizer with its export's prompt (the text alone, max_length 128): rotten-tomatoes
    test texts (all fit) and whole BBC articles (every query cut), then the divergences the README lists."""
    import onnxruntime as ort
    from artifact_helpers import edit_manifest, rehash
    from tokenizers import Tokenizer
    from transformers import AutoTokenizer

    from edgecut.graph.text_graph import build_front_graph, session_options
    from edgecut.model.data import DataSpec, load_dataset
    from edgecut.model.load import resolve_alias
    from edgecut.model.prompt import PromptFormat

    copy = _with_tokenizer_of(artifact, tmp_path, AutoTokenizer.from_pretrained(resolve_alias("all-minilm-l6-v2")))
    edit_manifest(copy, prompt={"template": "{text}{label}", "demonstrations": [], "max_length": 128})
    rehash(copy)
    session = ort.InferenceSession(
        build_front_graph(copy).SerializeToString(), session_options(), providers=["CPUExecutionProvider"]
    )
    tk = Tokenizer.from_file(str(copy / "tokenizer.json"))
    tk.no_padding()
    tk.no_truncation()
    prompt = PromptFormat.from_dict(json.loads((copy / "edgecut.json").read_text())["prompt"])

    def graph_and_tokenizers(texts):
        for start in range(0, len(texts), 32):
            chunk = texts[start : start + 32]
            ids, mask, truncated = session.run(None, {"text": np.array(chunk, dtype=object)})
            for text, row, m, was in zip(chunk, ids, mask, truncated, strict=True):
                yield text, (row[m == 1].tolist(), bool(was)), prompt.encode_with(tk, text)

    texts = [ex.text for source in ("rotten-tomatoes", "bbc-news") for ex in load_dataset(DataSpec(source)).test]
    cut = 0
    for text, got, expected in graph_and_tokenizers(texts):
        assert got == expected, text[:80]
        assert expected[0][0] == 101 and expected[0][-1] == 102 and len(expected[0]) <= 128
        cut += expected[1]
    assert cut >= 400  # the BBC articles
    # known divergences (onnxruntime-extensions 0.15.2's BertTokenizer),
    # documented in edgecut/graph/text_graph/wordpiece.py
    known = ["[CLS] inside [SEP] text", "ελληνικά", "Dvořák", "が", "й", "a（b）", "a⟨b⟩", "a\u2028b", "a\ufeffb"]
    assert all(got != expected for _, got, expected in graph_and_tokenizers(known))


def test_deploy_strings_warns_about_the_wordpiece_divergences(wordpiece_artifact, tmp_path):
    from typer.testing import CliRunner

    from edgecut.cli import app

    result = CliRunner().invoke(
        app, ["deploy", str(wordpiece_artifact), "--triton", str(tmp_path / "repo"), "--strings"]
    )
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.output.splitlines() if line.startswith("warning: model_text.onnx:")]
    assert len(warnings) == 1 and "Latin-1" in warnings[0]
