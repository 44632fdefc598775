"""model_text.onnx: raw text in, the ids `tokenizers` gives, the id graph's logits out (onnxruntime-extensions)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import onnx
import pytest
from artifact_helpers import copy_artifact

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
    from edgecut.text_graph import build_text_graph

    result = build_text_graph(artifact, tmp_path_factory.mktemp("text_model") / "model_text.onnx")
    assert result.path.is_file() and result.external_data is None and result.max_length == MAX_LENGTH
    return result.path


def _session(path, extra_outputs=()):
    import onnxruntime as ort

    from edgecut.text_graph import session_options

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


def _wordpiece() -> dict:
    from tokenizers import Tokenizer, models, pre_tokenizers

    tk = Tokenizer(models.WordPiece({"[UNK]": 0, "good": 1, "film": 2}, unk_token="[UNK]"))
    tk.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    return json.loads(tk.to_str())


def _metaspace(data: dict) -> dict:
    return {**data, "pre_tokenizer": {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "always"}}


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (lambda data: _wordpiece(), "WordPiece model, pre-tokenizer BertPreTokenizer"),
        (_metaspace, "BPE model, pre-tokenizer Metaspace"),
        (lambda data: {**data, "post_processor": {"type": "BertProcessing"}}, "post-processor BertProcessing"),
    ],
    ids=["wordpiece", "metaspace", "bert-processing"],
)
def test_an_unsupported_tokenizer_is_refused_naming_its_type(artifact, tmp_path, edit, match):
    from edgecut.text_graph import UnsupportedTokenizerError, build_text_graph, check_tokenizer

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
    from edgecut.text_graph import compare_text_graph

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

    from edgecut.artifact import save_tokenizer

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

    from edgecut.data import DataSpec, load_dataset
    from edgecut.load import load_model
    from edgecut.prompt import PromptFormat
    from edgecut.text_graph import build_front_graph, session_options

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


@pytest.mark.slow
def test_minilm_wordpiece_is_refused_naming_its_type(artifact, tmp_path):
    from transformers import AutoTokenizer

    from edgecut.load import resolve_alias
    from edgecut.text_graph import UnsupportedTokenizerError, build_text_graph

    source = resolve_alias("all-minilm-l6-v2")
    tokenizer = AutoTokenizer.from_pretrained(source)
    copy = _with_tokenizer_of(artifact, tmp_path, tokenizer)
    with pytest.raises(UnsupportedTokenizerError, match="WordPiece model"):
        build_text_graph(copy, tmp_path / "model_text.onnx")


def test_a_leading_special_token_from_the_post_processor(artifact, tmp_path):
    """A Llama-style BOS (TemplateProcessing `<eos> $A`): in the graph as `tokenizers` adds it, cuts too."""
    import onnxruntime as ort
    from artifact_helpers import rehash
    from tokenizers import Tokenizer

    from edgecut.prompt import PromptFormat
    from edgecut.text_graph import build_front_graph, session_options

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
