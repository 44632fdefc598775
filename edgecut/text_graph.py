"""`model_text.onnx`: raw text in, logits and label out, so a server needs no edgecut on its clients.

The graph holds what `ArtifactClassifier.encode` does in Python, then the classifier itself:

    text [N] string
      -> prompt: demonstrations + template around the text (StringConcat)
      -> token ids: onnxruntime-extensions ops built from the artifact's tokenizer.json (GPT2Tokenizer for
         byte-level BPE; for WordPiece BasicTokenizer + WordpieceTokenizer, one row at a time in a Loop)
      -> rows longer than the manifest's max_length: the query is cut exactly as `PromptFormat.encode`
         cuts it (decode a prefix of the query's ids as `tokenizers` does, for BPE an incomplete UTF-8
         character at its end turned into U+FFFD, re-render, re-tokenize, shrink until it fits), in
         an ONNX Loop that only runs when some row is too long
      -> right padding with the artifact's pad_token_id, attention_mask
      -> the artifact's model.onnx (its nodes merged in unchanged)
    -> logits [N, classes] float, label [N] string, truncated [N] bool

Why GPT2Tokenizer and not the JSON tokenizer op (HfJsonTokenizer, `gen_processing_models(schema_v2=True)`):
both give `tokenizers`' ids on byte-level BPE, but HfJsonTokenizer returns ids padded with 0 and no
attention mask, so a batch cannot tell padding from token 0; and `gen_processing_models` picks its
converter by the transformers class name, which transformers 5 writes as `TokenizersBackend` /
`PreTrainedTokenizerFast` (unknown to onnxruntime-extensions 0.15.2). The op is built here from
tokenizer.json itself (vocab, merges, added tokens), so neither transformers nor torch is needed, and
the ids are checked against `tokenizers` on probe texts before the graph is written.

Supported: BPE models with a ByteLevel pre-tokenizer and decoder (GPT-2, SmolLM2 and other byte-level
BPE families) whose post-processor adds at most leading special tokens; and uncased BERT WordPiece
(all-MiniLM-L6, bert-base-uncased: BertNormalizer with lowercase, BertPreTokenizer, WordPiece decoder,
TemplateProcessing such as `[CLS] $A [SEP]`). Anything else raises an EdgecutError naming the type.
Running the graph needs onnxruntime and onnxruntime-extensions only
(`SessionOptions.register_custom_ops_library(path)`, the path from `extensions_library()`).

Known WordPiece divergences from `tokenizers` (onnxruntime-extensions 0.15.2; the probes avoid them, the
slow MiniLM test pins them): BasicTokenizer strips accents from Latin-1 letters only, so other accented
letters give other ids ("Dvořák", Greek "ά", Japanese "が", Cyrillic "й": often [UNK] where `tokenizers`
gives the base letter); some non-ASCII punctuation, separators and format characters (fullwidth "（",
"⟨", U+2028, U+FEFF) are split or dropped differently; and the special tokens typed in the text ("[CLS]",
"[MASK]") are split into pieces, not matched. English text is unaffected: all rotten-tomatoes and BBC
test texts give `tokenizers`' ids.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgecut.errors import ArtifactError, EdgecutError

TEXT_MODEL = "model_text.onnx"
CONTRIB = "ai.onnx.contrib"  # onnxruntime-extensions' operator domain
# Ordinary texts the ids are checked on before a graph is written, for every supported tokenizer (and by
# `edgecut check`): spacing, punctuation, digits, accents, emoji, CJK, Greek. Each tokenizer adds its own
# (`probes`: BPE its special tokens in running text and accented Greek), and a long text forces a cut.
PROBES = (
    "a moving, beautifully acted film",
    "dull and far too long...",
    "  two  leading spaces\tand a tab\nand a newline",
    "It's 2024: 3.5/10, $12 (ugh)!",
    "Amélie's café naïveté — “quoted” façade",
    "emoji 🎉🎬 and 中文 and ελληνικα",
    "",
)
# What onnxruntime-extensions 0.15.2 cannot see: its string ops read a text as a C string, so a text ends at its
# first NUL (U+0000); the template around it stays. Byte-level BPE gives `tokenizers`' ids for every other
# code point of the first three planes (each checked between letters).
NUL = "\x00"
NUL_DIVERGENCE = (
    "a text holding NUL (U+0000) ends there for onnxruntime-extensions' string ops: model_text.onnx answers "
    "for the part before the first NUL, the id graph (edgecut predict) for the whole text; strip NUL before a "
    "request, or send token ids"
)
# The odd inputs `edgecut check` also probes a string graph with (beside PROBES): NUL and other control
# characters, a BOM, right-to-left marks, ZWJ emoji, combining accents, a 100 KB text. Texts holding NUL must
# diverge only as the manifest records (`text_model.divergent_characters`); a lone surrogate (JSON can escape
# one) is no Unicode text: both paths must refuse it (`ODD_REFUSED`).
ODD_PROBES = (
    "good\x00film",
    "\x00\x00\x00",
    "bad\x01 \x07bell \x1b[31mred\x1b[0m \x7f del \x0b\x0c\x1c\x1f",
    "\ufeffa film with a byte-order mark",
    "\u202eright-to-left override\u202c, \u200fعربي\u200e and עברית",
    "family 👩\u200d👩\u200d👧\u200d👦 flag 🏳\ufe0f\u200d🌈 skin 👍🏽",
    "combining e\u0301 a\u0308 n\u0303 and Zalgo z\u0336\u0337\u0338",
    "a long review: " + "great acting, dull plot. " * 4200,
)
ODD_REFUSED = ('"half a pair \\ud800 of surrogates"',)  # JSON texts: json.loads gives a lone surrogate


class UnsupportedTokenizerError(EdgecutError):
    """The artifact's tokenizer is not one the string graph can reproduce with onnxruntime-extensions."""


@dataclass(frozen=True)
class TextGraphResult:
    path: Path  # the written model_text.onnx
    tokenizer: str  # what the graph tokenizes with, e.g. "BPE/ByteLevel via GPT2Tokenizer"
    external_data: str | None  # the weights file beside it, when the model is too large to embed
    max_length: int
    checked_texts: int  # texts whose in-graph ids were compared with `tokenizers` before writing
    known_divergences: str | None = None  # inputs on which the graph's ids differ from `tokenizers`'
    divergent_characters: tuple[str, ...] = (NUL,)  # a text holding one of these may get another answer


def extensions_library() -> str:
    """Path of onnxruntime-extensions' operator library, found without importing the package.

    `import onnxruntime_extensions` (0.15.2) imports transformers, tokenizers and torch when they are
    installed (for its converters); a server or the torch-free runtime needs only the compiled library.

    Raises:
        EdgecutError: onnxruntime-extensions is not installed.
    """
    import importlib.machinery
    import importlib.util

    spec = importlib.util.find_spec("onnxruntime_extensions")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        for suffix in importlib.machinery.EXTENSION_SUFFIXES:
            library = Path(folder) / f"_extensions_pydll{suffix}"
            if library.is_file():
                return str(library)
    raise EdgecutError("model_text.onnx needs onnxruntime-extensions: pip install onnxruntime-extensions")


def session_options():
    """onnxruntime SessionOptions with onnxruntime-extensions' operators registered, for model_text.onnx."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.register_custom_ops_library(extensions_library())
    return options


def build_text_graph(artifact_dir: Path, destination: Path) -> TextGraphResult:
    """Write a string-input graph for an existing artifact (its manifest, tokenizer.json and model file).

    Args:
        artifact_dir: the artifact `edgecut export` wrote.
        destination: where to write the graph (usually `artifact_dir / "model_text.onnx"`, or a Triton
            model's version directory); a large model's weights go to `destination.name + ".data"` beside it.

    Raises:
        ArtifactError: the artifact is unreadable or its tokenizer.json/model file is missing.
        UnsupportedTokenizerError: the tokenizer is neither byte-level BPE nor uncased WordPiece, or the
            graph's ids differ from `tokenizers`' on a probe text (the message names the type and the text).
    """
    import onnx

    artifact_dir, destination = Path(artifact_dir), Path(destination)
    manifest, front, spec, checked = _checked_front(artifact_dir)
    classifier = onnx.load(str(artifact_dir / manifest["model_file"]))
    merged = _merge(front, classifier, [str(label) for label in manifest["labels"]])

    size = sum(len(t.raw_data) for t in merged.graph.initializer)
    external = destination.name + ".data" if size >= 2_000_000_000 else None
    destination.parent.mkdir(parents=True, exist_ok=True)
    onnx.save_model(merged, str(destination), save_as_external_data=external is not None, location=external)
    max_length = int(manifest["prompt"]["max_length"])
    return TextGraphResult(destination, spec.description, external, max_length, checked, spec.known_divergences)


def check_tokenizer(tokenizer_json: Path) -> str:
    """What the string graph would tokenize with, from tokenizer.json alone (no graph is built).

    Cheap: lets `export --with-tokenizer` refuse an unsupported tokenizer before training.

    Raises:
        UnsupportedTokenizerError: neither byte-level BPE nor uncased WordPiece (the message names the type).
    """
    return _spec(json.loads(Path(tokenizer_json).read_text(encoding="utf-8"))).description


def build_front_graph(artifact_dir: Path):
    """Only the text side of model_text.onnx, as an onnx.ModelProto: `text` [N] string in, `input_ids` and
    `attention_mask` [N, T] int64 (right-padded with pad_token_id) and `truncated` [N] bool out.

    For clients that run the id graph themselves, and for timing the in-graph tokenizer on its own.
    Raises as build_text_graph does.
    """
    return _checked_front(Path(artifact_dir))[1]


def _checked_front(artifact_dir: Path):
    """(manifest, front graph, tokenizer spec, number of texts checked) for an artifact."""
    import onnx

    from edgecut.manifest import read_manifest
    from edgecut.prompt import PromptFormat

    manifest = read_manifest(artifact_dir)
    tokenizer_path = artifact_dir / "tokenizer.json"
    if not tokenizer_path.is_file():
        raise ArtifactError(f"{tokenizer_path} is missing: the artifact is incomplete; re-export it")
    spec = _spec(json.loads(tokenizer_path.read_text(encoding="utf-8")))
    prompt = PromptFormat.from_dict(manifest["prompt"])
    header = onnx.load(str(artifact_dir / manifest["model_file"]), load_external_data=False)
    opset = {o.domain: o.version for o in header.opset_import}.get("", 0) or 0
    if opset < 18:
        raise ArtifactError(
            f"{manifest['model_file']} uses opset {opset}; the string graph needs 18 or newer: re-export"
        )
    front = _front_graph(spec, prompt, int(manifest["pad_token_id"]), opset, header.ir_version)
    return manifest, front, spec, _check_ids(front, tokenizer_path, prompt, spec)


# --- the tokenizer -------------------------------------------------------------------------------------


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's byte -> printable character table, which every ByteLevel tokenizer.json vocabulary uses."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    table, extra = {b: chr(b) for b in printable}, 0
    for b in range(256):
        if b not in table:
            table[b] = chr(256 + extra)
            extra += 1
    return table


@dataclass(frozen=True)
class _BpeSpec:
    known_divergences = NUL_DIVERGENCE  # and no other: every other code point of planes 0-2 gives tokenizers' ids

    vocab: dict[str, int]
    merges: list[str]
    added: list[dict[str, Any]]  # tokenizer.json added_tokens
    leading_ids: tuple[int, ...]  # special tokens the post-processor puts before the text (a BOS)
    description: str

    @classmethod
    def from_tokenizer_json(cls, data: dict[str, Any]) -> _BpeSpec:
        model = data.get("model") or {}
        kind = model.get("type")
        pre = _component_types(data.get("pre_tokenizer"))
        decoder = _component_types(data.get("decoder"))
        normalizer = _component_types(data.get("normalizer"))
        described = f"{kind} model, pre-tokenizer {'+'.join(pre) or 'none'}, decoder {'+'.join(decoder) or 'none'}"
        if kind != "BPE" or pre != ["ByteLevel"] or decoder != ["ByteLevel"] or normalizer:
            raise UnsupportedTokenizerError(
                f"the artifact's tokenizer ({described}"
                f"{', normalizer ' + '+'.join(normalizer) if normalizer else ''}) is not supported by the string "
                f"graph: {_SUPPORTED}; serve this artifact with token ids (edgecut deploy without --strings)"
            )
        if model.get("dropout") or model.get("continuing_subword_prefix") or model.get("end_of_word_suffix"):
            raise UnsupportedTokenizerError(
                f"the artifact's BPE tokenizer uses options the string graph lacks ({described})"
            )
        merges = [" ".join(m) if isinstance(m, list) else str(m) for m in model.get("merges", [])]
        leading, trailing = _special_ids(data.get("post_processor"), described)
        if trailing:
            raise UnsupportedTokenizerError(
                f"the artifact's tokenizer ({described}) appends special tokens after the text, which the string "
                "graph lacks for BPE: serve this artifact with token ids (edgecut deploy without --strings)"
            )
        return cls(
            vocab=dict(model["vocab"]),
            merges=merges,
            added=list(data.get("added_tokens") or []),
            leading_ids=leading,
            description="BPE/ByteLevel via onnxruntime-extensions GPT2Tokenizer",
        )

    @property
    def probes(self) -> tuple[str, ...]:
        """Texts checked for this tokenizer besides PROBES: accented Greek, and its added tokens in running text
        (GPT2Tokenizer matches them as `tokenizers` does)."""
        return (
            "emoji 🎉🎬 and 中文 and ελληνικά",
            "before " + " ".join(str(a["content"]) for a in self.added[:8]) + " after",
        )

    def special_ids(self) -> list[int]:
        return [int(a["id"]) for a in self.added if a.get("special")]

    def initializers(self) -> list:
        inits = [
            _const("text/TAIL", self.tail_bytes().astype(np.int64)),
            _const("text/EMPTY_TEXT", [""]),
            _const("text/BIG", np.array([np.iinfo(np.int64).max], dtype=np.int64)),
            _const("text/MINUS4", np.array([-4], dtype=np.int64)),
            _const("text/MINUS1", np.array([-1], dtype=np.int64)),
            # RE2 patterns replacing an incomplete UTF-8 tail of 0..3 bytes with U+FFFD (`\C` is any byte)
            _const("text/PATTERNS", ["$", "\\C$", "\\C{2}$", "\\C{3}$"]),
            _const("text/REWRITES", ["", "\ufffd", "\ufffd", "\ufffd"]),
        ]
        if self.leading_ids:
            inits.append(_const("text/LEAD", np.array(self.leading_ids, dtype=np.int64)))
        return inits

    def encode(self, g: _Nodes, rendered: str) -> tuple[str, str]:
        """rendered [n] strings -> ids, mask [n, T] with the post-processor's leading special tokens."""
        ids, mask = g.names("GPT2Tokenizer", 2)
        g.add(self.tokenizer_node(rendered, ids, mask, name=ids))
        if self.leading_ids:
            rows = g("Shape", [ids], start=0, end=1)
            shape = g("Concat", [rows, g("Shape", ["text/LEAD"])], axis=0)
            ids = g("Concat", [g("Expand", ["text/LEAD", shape]), ids], axis=1)
            mask = g("Concat", [g("Expand", ["text/ONE", shape]), mask], axis=1)
        return ids, mask

    def encode_one(self, g: _Nodes, rendered_1: str) -> str:
        """rendered [1] string -> its ids [k] with special tokens."""
        return g("Reshape", [self.encode(g, rendered_1)[0], "text/FLAT"])

    def encode_plain(self, g: _Nodes, text_1: str) -> str:
        """[1] string -> ids [k] without special tokens (`encode(add_special_tokens=False)`)."""
        ids, mask = g.names("GPT2Tokenizer", 2)
        g.add(self.tokenizer_node(text_1, ids, mask, name=ids))
        return g("Reshape", [ids, "text/FLAT"])

    def decode(self, g: _Nodes, ids: str) -> str:
        """[k] ids -> [1] string as `tokenizers`' decode: BpeDecoder, an incomplete UTF-8 tail -> U+FFFD.

        BpeDecoder crashes on an empty input (SIGFPE in 0.15.2), so k == 0 decodes to "" in an If.
        """
        from onnx import TensorProto, helper

        count = g("Size", [ids])
        empty = g("Equal", [count, "text/ZERO"])
        then = _Nodes("text/decode_empty")
        out_empty = then("Identity", ["text/EMPTY_TEXT"])
        other = _Nodes("text/decode")
        (raw,) = other.names("BpeDecoder", 1)
        other.add(self.decoder_node(ids, raw, name=raw))
        raw = other("Reshape", [raw, "text/FLAT"])
        # the last (up to) 4 bytes of the decoded string, from the last 4 tokens
        last = other("Slice", [ids, "text/MINUS4", "text/BIG", "text/AXIS0"])
        tail = other("Reshape", [other("Gather", ["text/TAIL", last], axis=0), "text/FLAT"])
        tail = other("Compress", [tail, other("GreaterOrEqual", [tail, "text/ZERO"])], axis=0)
        tail = other("Slice", [tail, "text/MINUS4", "text/BIG", "text/AXIS0"])
        n = other("Size", [tail])
        pos = other("Range", ["text/ZERO", n, "text/ONE"])
        c128 = other("Constant", [], value=helper.make_tensor("v", TensorProto.INT64, [], [128]))
        c192 = other("Constant", [], value=helper.make_tensor("v", TensorProto.INT64, [], [192]))
        c224 = other("Constant", [], value=helper.make_tensor("v", TensorProto.INT64, [], [224]))
        c240 = other("Constant", [], value=helper.make_tensor("v", TensorProto.INT64, [], [240]))
        starts = other("Or", [other("Less", [tail, c128]), other("GreaterOrEqual", [tail, c192])])
        minus = other("Constant", [], value=helper.make_tensor("v", TensorProto.INT64, [1], [-1]))
        where = other("Concat", [minus, other("Where", [starts, pos, "text/MINUS1"])], axis=0)
        p = other("ReduceMax", [where], keepdims=0)  # index of the last character start, -1 if none
        padded = other("Concat", [tail, "text/ZERO1"], axis=0)
        lead = other("Gather", [padded, other("Max", [p, "text/ZERO"])], axis=0)
        need = other("Add", ["text/ONE", other("Cast", [other("GreaterOrEqual", [lead, c192])], to=TensorProto.INT64)])
        need = other("Add", [need, other("Cast", [other("GreaterOrEqual", [lead, c224])], to=TensorProto.INT64)])
        need = other("Add", [need, other("Cast", [other("GreaterOrEqual", [lead, c240])], to=TensorProto.INT64)])
        have = other("Sub", [n, p])
        partial = other("And", [other("GreaterOrEqual", [p, "text/ZERO"]), other("Less", [have, need])])
        cut = other("Where", [partial, have, "text/ZERO"])
        index = other("Reshape", [cut, "text/FLAT"])
        pattern = other("Gather", ["text/PATTERNS", index], axis=0)
        rewrite = other("Gather", ["text/REWRITES", index], axis=0)
        fixed = other("StringRegexReplace", [raw, pattern, rewrite], 1, CONTRIB, global_replace=0)
        fixed = other("Reshape", [fixed, "text/FLAT"])
        string = helper.make_tensor_value_info
        return g(
            "If",
            [empty],
            then_branch=helper.make_graph(then.nodes, "decode_empty", [], [string(out_empty, TensorProto.STRING, [1])]),
            else_branch=helper.make_graph(other.nodes, "decode", [], [string(fixed, TensorProto.STRING, [1])]),
        )

    def tokenizer_node(self, text: str, ids: str, mask: str, name: str):
        from onnx import helper

        return helper.make_node(
            "GPT2Tokenizer",
            [text],
            [ids, mask],
            name=name,
            domain=CONTRIB,
            vocab=json.dumps(self.vocab, ensure_ascii=False, separators=(",", ":")),
            merges="\n".join(self.merges),
            # added tokens (specials such as <eos>) are matched in the text as `tokenizers` matches them
            added_token="\n".join(f"{a['content']}={a['id']}" for a in self.added),
            padding_length=-1,
        )

    def decoder_node(self, ids: str, text: str, name: str):
        from onnx import helper

        by_id = sorted(self.vocab.items(), key=lambda kv: kv[1])
        byte_decoder = {c: b for b, c in _bytes_to_unicode().items()}
        return helper.make_node(
            "BpeDecoder",
            [ids],
            [text],
            name=name,
            domain=CONTRIB,
            id_vocab="\n".join(token for token, _ in by_id),
            byte_decoder="\n".join(f"{ord(c)}\t{b}" for c, b in byte_decoder.items()),
            added_tokens="\n".join(f"{a['id']}\t{a['content']}" for a in self.added),
            all_special_ids="\n".join(str(i) for i in self.special_ids()),
            skip_special_tokens=1,  # `tokenizers`' decode default, which PromptFormat.encode relies on
        )

    def tail_bytes(self) -> np.ndarray:
        """[vocab, 4] int16: each token's last (up to) 4 bytes as decoding yields them, -1 padded on the left.

        Cutting a query inside a multi-byte character leaves an incomplete UTF-8 sequence at the end of the
        decoded prefix; `tokenizers` turns it into one U+FFFD, BpeDecoder keeps the raw bytes. The graph
        reads the last bytes from this table to find such a tail and replaces it as `tokenizers` does.
        """
        size = max([*self.vocab.values(), *(int(a["id"]) for a in self.added)]) + 1
        table = np.full((size, 4), -1, dtype=np.int16)
        to_byte = {c: b for b, c in _bytes_to_unicode().items()}
        for token, i in self.vocab.items():
            raw = [to_byte[c] for c in token if c in to_byte]
            if raw:
                table[i, 4 - min(4, len(raw)) :] = raw[-4:]
        for a in self.added:
            table[int(a["id"])] = -1
            raw = list(a["content"].encode("utf-8")) if not a.get("special") else []
            if raw:
                table[int(a["id"]), 4 - min(4, len(raw)) :] = raw[-4:]
        return table


def _component_types(component: dict[str, Any] | None) -> list[str]:
    """The types of a tokenizer.json normalizer/pre-tokenizer/decoder, a Sequence flattened."""
    if not component:
        return []
    if component.get("type") == "Sequence":
        parts = component.get("pretokenizers") or component.get("decoders") or component.get("normalizers") or []
        return [t for p in parts for t in _component_types(p)]
    return [str(component.get("type"))]


def _special_ids(post: dict[str, Any] | None, described: str) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(leading, trailing): the special token ids a TemplateProcessing post-processor puts around one text."""
    if not post or post.get("type") == "ByteLevel":
        return (), ()
    if post.get("type") != "TemplateProcessing":
        raise UnsupportedTokenizerError(
            f"the artifact's tokenizer ({described}) has post-processor {post.get('type')}, which the string "
            "graph lacks: serve this artifact with token ids (edgecut deploy without --strings)"
        )
    leading: list[int] = []
    trailing: list[int] = []
    seen_text = False
    for piece in post.get("single", []):
        if "Sequence" in piece:
            seen_text = True
        elif "SpecialToken" in piece:
            ids = post["special_tokens"][piece["SpecialToken"]["id"]]["ids"]
            (trailing if seen_text else leading).extend(int(i) for i in ids)
    return tuple(leading), tuple(trailing)


@dataclass(frozen=True)
class _WordPieceSpec:
    """Uncased BERT WordPiece (all-MiniLM-L6, bert-base-uncased) with onnxruntime-extensions' ops.

    BasicTokenizer (BERT's normalizer and pre-tokenizer) takes one string per call, so a batch is tokenized
    row by row in a Loop; WordpieceTokenizer splits its words, LabelEncoder maps pieces to ids. Not the
    all-in-one BertTokenizer op: on a word with an unknown character after a known prefix ("great🎉") it keeps
    the prefix's pieces before [UNK], where `tokenizers` gives one [UNK] for the whole word; WordpieceTokenizer
    does the same, but it reports each word's pieces, so the graph can fold such a word into one [UNK].
    The post-processor's special ids go around encode_plain's. Decoding drops special ids first, as
    `tokenizers`' decode does (BertTokenizerDecoder writes "[UNK]", and in 0.15.2 it reads an uninitialised
    pad id when asked to skip specials itself).
    """

    known_divergences = (
        "onnxruntime-extensions' WordPiece ops differ from tokenizers on accented letters outside Latin-1 "
        "(e.g. 'Dvořák', Greek 'ά', Cyrillic 'й': often [UNK]), some non-ASCII punctuation and invisible "
        "characters, and special tokens typed in the text ('[CLS]'): such texts may get other ids, and answers, "
        "through model_text.onnx than through the id graph; and " + NUL_DIVERGENCE
    )

    vocab: tuple[str, ...]  # tokens in id order
    unk: str
    unk_id: int
    max_chars: int  # a longer word is one [UNK]
    prefix: str  # continuing-subword prefix, "##"
    chinese: bool  # BertNormalizer handle_chinese_chars
    special: tuple[int, ...]  # ids `tokenizers`' decode skips
    leading_ids: tuple[int, ...]
    trailing_ids: tuple[int, ...]
    description: str

    # besides PROBES: BERT's 100-character word limit on both sides, cased Latin-1 accents, words with an
    # unknown character after a known prefix (one [UNK] each)
    probes = ("h" * 100 + " and " + "m" * 101, "Don't! CAFÉ, naïve ÀÉÎÕÜ — the DVD's (2h) cut", "loved it🎉, a∀b")

    @classmethod
    def from_tokenizer_json(cls, data: dict[str, Any]) -> _WordPieceSpec:
        model = data["model"]
        pre = _component_types(data.get("pre_tokenizer"))
        decoder = data.get("decoder") or {}
        norm = data.get("normalizer") or {}
        described = (
            f"WordPiece model, normalizer {'+'.join(_component_types(norm)) or 'none'}, pre-tokenizer "
            f"{'+'.join(pre) or 'none'}, decoder {'+'.join(_component_types(decoder)) or 'none'}"
        )
        prefix = str(model.get("continuing_subword_prefix", "##"))
        problems = []
        if norm.get("type") != "BertNormalizer" or not norm.get("lowercase") or not norm.get("clean_text", True):
            problems.append("the normalizer must be BertNormalizer with lowercase and clean_text (uncased BERT)")
        elif norm.get("strip_accents") not in (None, True):
            problems.append("strip_accents false is not supported")
        if pre != ["BertPreTokenizer"] or decoder.get("type") != "WordPiece" or decoder.get("prefix") != prefix:
            problems.append(f"it needs the BertPreTokenizer and a WordPiece decoder with prefix {prefix!r}")
        ids = sorted(model["vocab"].values())
        if ids != list(range(len(ids))) or model.get("unk_token") not in model["vocab"]:
            problems.append("the vocabulary must hold ids 0..n-1 and the unk token")
        if any("\n" in token for token in model["vocab"]):
            problems.append("a vocabulary token contains a newline")
        added = list(data.get("added_tokens") or [])
        if any(not a.get("special") for a in added):
            problems.append("non-special added tokens are not supported (the graph cannot match them in text)")
        if problems:
            raise UnsupportedTokenizerError(
                f"the artifact's tokenizer ({described}) is not supported by the string graph: "
                f"{'; '.join(problems)}; {_SUPPORTED}; serve this artifact with token ids "
                "(edgecut deploy without --strings)"
            )
        leading, trailing = _special_ids(data.get("post_processor"), described)
        return cls(
            vocab=tuple(token for token, _ in sorted(model["vocab"].items(), key=lambda kv: kv[1])),
            unk=str(model["unk_token"]),
            unk_id=int(model["vocab"][model["unk_token"]]),
            max_chars=int(model.get("max_input_chars_per_word", 100)),
            prefix=prefix,
            chinese=bool(norm.get("handle_chinese_chars", True)),
            special=tuple(int(a["id"]) for a in added),
            leading_ids=leading,
            trailing_ids=trailing,
            description="WordPiece/BertNormalizer via onnxruntime-extensions BasicTokenizer+WordpieceTokenizer",
        )

    def initializers(self) -> list:
        inits = [
            _const("text/wp/SCALAR", np.array([], dtype=np.int64)),  # Reshape to a scalar
            _const("text/wp/TRUE", np.array(True)),
            _const("text/wp/NO_IDS", np.array([], dtype=np.int64)),
            _const("text/wp/NO_POSITIONS", np.zeros((0, 2), dtype=np.int64)),
            _const("text/wp/UNK", np.array(self.unk_id, dtype=np.int64)),
        ]
        named = {"LEAD": self.leading_ids, "TRAIL": self.trailing_ids, "SPECIAL": self.special}
        inits += [_const(f"text/wp/{k}", np.array(v, dtype=np.int64)) for k, v in named.items() if v]
        return inits

    def encode_plain(self, g: _Nodes, text_1: str) -> str:
        """[1] string -> ids [k] without special tokens, as `tokenizers`' WordPiece gives them."""
        from onnx import TensorProto, helper

        (words,) = g.names("BasicTokenizer", 1)
        g.add(
            helper.make_node(
                "BasicTokenizer",
                [text_1],
                [words],
                name=words,
                domain=CONTRIB,
                do_lower_case=1,
                strip_accents=1,
                tokenize_chinese_chars=int(self.chinese),
                tokenize_punctuation=1,
                remove_control_chars=1,
            )
        )
        pieces, _, begins, limits = g.names("WordpieceTokenizer", 4)
        g.add(
            helper.make_node(
                "WordpieceTokenizer",
                [words, "text/wp/NO_IDS"],  # no row indices: each word is its own row
                [pieces, _, begins, limits],
                name=pieces,
                domain=CONTRIB,
                vocab=json.dumps({t: i for i, t in enumerate(self.vocab)}, ensure_ascii=False),
                suffix_indicator=self.prefix,
                unknown_token=self.unk,
                max_input_chars_per_word=self.max_chars,
            )
        )
        (ids,) = g.names("LabelEncoder", 1)
        g.add(
            helper.make_node(
                "LabelEncoder",
                [pieces],
                [ids],
                name=ids,
                domain="ai.onnx.ml",
                keys_strings=list(self.vocab),
                values_int64s=list(range(len(self.vocab))),
                default_int64=self.unk_id,
            )
        )
        # a word holding [UNK] becomes one [UNK] at its first piece
        i64 = TensorProto.INT64
        zero = helper.make_tensor("v", i64, [1], [0])
        first = g(
            "ScatterElements",
            [
                g("ConstantOfShape", [g("Shape", [ids])], value=zero),
                begins,
                g("Expand", ["text/ONE", g("Shape", [begins])]),
            ],
        )  # [pieces] 1 at a word start
        word = g("Sub", [g("CumSum", [first, "text/ZERO"]), "text/ONE"])  # [pieces] its word's index
        unknown = g("Cast", [g("Equal", [ids, "text/wp/UNK"])], to=i64)
        bad = g(
            "ScatterElements",
            [g("ConstantOfShape", [g("Shape", [begins])], value=zero), word, unknown],
            reduction="max",
        )  # [words]
        bad = g("Gather", [bad, word], axis=0)  # [pieces]
        keep = g("Or", [g("Equal", [bad, "text/ZERO"]), g("Equal", [first, "text/ONE"])])
        return g("Compress", [g("Where", [g("Equal", [bad, "text/ONE"]), "text/wp/UNK", ids]), keep], axis=0)

    def encode_one(self, g: _Nodes, rendered_1: str) -> str:
        """rendered [1] string -> its ids [k] with the post-processor's special tokens around them."""
        parts = [
            *(["text/wp/LEAD"] if self.leading_ids else []),
            self.encode_plain(g, rendered_1),
            *(["text/wp/TRAIL"] if self.trailing_ids else []),
        ]
        return g("Concat", parts, axis=0) if len(parts) > 1 else parts[0]

    def encode(self, g: _Nodes, rendered: str) -> tuple[str, str]:
        """rendered [n] strings -> ids, mask [n, T] (right-padded with 0): a Loop tokenizes one row per
        iteration and appends its ids to a flat tensor, which is then gathered into rows."""
        from onnx import TensorProto, helper

        body = _Nodes(f"{g.prefix}/wp_row")
        i, cond, flat_in = body.names("in", 3)
        row = self.encode_one(body, body("Gather", [rendered, body("Reshape", [i, "text/FLAT"])], axis=0))
        flat_out = body("Concat", [flat_in, row], axis=0)
        length = body("Size", [row])
        cond_out = body("Identity", [cond])
        info = helper.make_tensor_value_info
        graph = helper.make_graph(
            body.nodes,
            "tokenize_rows",
            [
                info(i, TensorProto.INT64, []),
                info(cond, TensorProto.BOOL, []),
                info(flat_in, TensorProto.INT64, [None]),
            ],
            [
                info(cond_out, TensorProto.BOOL, []),
                info(flat_out, TensorProto.INT64, [None]),
                info(length, TensorProto.INT64, []),
            ],
        )
        n = g("Reshape", [g("Shape", [rendered]), "text/wp/SCALAR"])
        flat, lengths = g("Loop", [n, "text/wp/TRUE", "text/wp/NO_IDS"], 2, body=graph)
        positions = g("Range", ["text/ZERO", g("ReduceMax", [lengths], keepdims=0), "text/ONE"])  # [T]
        starts = g("Sub", [g("CumSum", [lengths, "text/ZERO"]), lengths])
        index = g("Add", [g("Unsqueeze", [starts, "text/AXIS1"]), positions])  # [n, T] into flat
        real = g("Less", [positions, g("Unsqueeze", [lengths, "text/AXIS1"])])
        ids = g("Gather", [flat, g("Where", [real, index, "text/ZERO"])], axis=0)
        return g("Where", [real, ids, "text/ZERO"]), g("Cast", [real], to=TensorProto.INT64)

    def decode(self, g: _Nodes, ids: str) -> str:
        """[k] ids -> [1] string. Only the words matter, not the spacing around punctuation (this op's and
        `tokenizers`' differ): the prefix is re-tokenized by BERT's pre-tokenizer, which splits there anyway."""
        from onnx import TensorProto, helper

        if self.special:
            hit = g("Equal", [g("Unsqueeze", [ids, "text/AXIS1"]), "text/wp/SPECIAL"])  # [k, specials]
            hit = g("ReduceMax", [g("Cast", [hit], to=TensorProto.INT64), "text/AXIS1"], keepdims=0)
            ids = g("Compress", [ids, g("Equal", [hit, "text/ZERO"])], axis=0)
        (text,) = g.names("BertTokenizerDecoder", 1)
        g.add(
            helper.make_node(
                "BertTokenizerDecoder",
                [ids, "text/wp/NO_POSITIONS"],
                [text],
                name=text,
                domain=CONTRIB,
                vocab_file="\n".join(self.vocab),
                unk_token=self.unk,
                suffix_indicator=self.prefix,
                skip_special_tokens=0,  # done above
                clean_up_tokenization_spaces=1,
            )
        )
        return g("Reshape", [text, "text/FLAT"])


_Spec = _BpeSpec | _WordPieceSpec
_SUPPORTED = (
    "it reproduces byte-level BPE (GPT-2, SmolLM2) and uncased BERT WordPiece (all-MiniLM-L6) tokenizers "
    "with onnxruntime-extensions"
)


def _spec(data: dict[str, Any]) -> _Spec:
    """The tokenizer spec for a tokenizer.json, by its model type; refuses what the graph cannot reproduce."""
    if (data.get("model") or {}).get("type") == "WordPiece":
        return _WordPieceSpec.from_tokenizer_json(data)
    return _BpeSpec.from_tokenizer_json(data)


# --- graph building --------------------------------------------------------------------------------------


class _Nodes:
    """Collects nodes for one (sub)graph, with unique tensor names."""

    count = 0

    def __init__(self, prefix: str):
        self.prefix, self.nodes = prefix, []

    def names(self, op: str, n_out: int) -> list[str]:
        """Fresh output names for one node (the first one also names the node)."""
        _Nodes.count += 1
        return [f"{self.prefix}/{op}_{_Nodes.count}_{i}" for i in range(n_out)]

    def __call__(self, op: str, inputs: Sequence[str], n_out: int = 1, domain: str = "", **attrs) -> Any:
        from onnx import helper

        outs = self.names(op, n_out)
        self.nodes.append(helper.make_node(op, list(inputs), outs, name=outs[0], domain=domain, **attrs))
        return outs[0] if n_out == 1 else outs

    def add(self, node) -> None:
        self.nodes.append(node)


def _const(name: str, value: Any):
    """An initializer: a list of str becomes a string tensor, anything else a numpy array as given."""
    from onnx import numpy_helper

    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return numpy_helper.from_array(np.array([v.encode("utf-8") for v in value], dtype=object), name)
    return numpy_helper.from_array(np.asarray(value), name)


def _front_graph(spec: _Spec, prompt, pad_id: int, opset: int, ir_version: int):
    """text [N] -> input_ids, attention_mask [N, T] int64 and truncated [N] bool, as PromptFormat.encode.

    The tokenizer's own pieces (encode a batch or one row, encode_plain, decode) come from the spec.
    """
    from onnx import TensorProto, helper

    marker = "\x00edgecut-text\x00"
    prefix, suffix = prompt.render(marker).split(marker)
    limit = prompt.max_length
    inits = [_const(f"text/{k}", [v]) for k, v in {"PREFIX": prefix, "SUFFIX": suffix}.items()]
    inits += [
        _const("text/MAX", np.array(limit, dtype=np.int64)),
        _const("text/PAD", np.array(pad_id, dtype=np.int64)),
        _const("text/ZERO", np.array(0, dtype=np.int64)),
        _const("text/ONE", np.array(1, dtype=np.int64)),
        _const("text/AXIS1", np.array([1], dtype=np.int64)),
        _const("text/AXIS0", np.array([0], dtype=np.int64)),
        _const("text/FLAT", np.array([-1], dtype=np.int64)),
        _const("text/ZERO1", np.array([0], dtype=np.int64)),
        *spec.initializers(),
    ]

    def render(g: _Nodes, text: str) -> str:
        """PREFIX + text + SUFFIX for a [n] string tensor (StringConcat needs equal shapes)."""
        shape = g("Shape", [text])
        pre = g("Expand", ["text/PREFIX", shape])
        suf = g("Expand", ["text/SUFFIX", shape])
        return g("StringConcat", [g("StringConcat", [pre, text], domain=CONTRIB), suf], domain=CONTRIB)

    def length_of(g: _Nodes, text_1: str) -> str:
        """Token count of the prompt for one text ([1] string), as a scalar."""
        return g("Size", [spec.encode_one(g, render(g, text_1))])

    main = _Nodes("text")
    rendered = render(main, "text")
    ids, mask = spec.encode(main, rendered)
    lengths = main("ReduceSum", [mask, "text/AXIS1"], keepdims=0)
    truncated = main("Greater", [lengths, "text/MAX"])
    longest = main("ReduceMax", [lengths], keepdims=0)
    any_cut = main("Greater", [longest, "text/MAX"])

    # --- rows too long: cut each one's query as PromptFormat.encode does, in a Loop over the rows -------
    row = _Nodes("text/row")
    i = "text/row/i"
    index1 = row("Reshape", [i, "text/FLAT"])
    text_1 = row("Gather", ["text", index1], axis=0)
    length = row("Gather", [lengths, i], axis=0)
    is_cut = row("Gather", [truncated, i], axis=0)

    keep_ids = _Nodes("text/row/fits")  # this row fits: its ids as they are, cut to its length
    whole = keep_ids("Gather", [ids, i], axis=0)
    whole = keep_ids("Slice", [whole, "text/ZERO1", keep_ids("Reshape", [length, "text/FLAT"]), "text/AXIS0"])

    cut = _Nodes("text/row/cut")  # this row is too long: shrink the query until the prompt fits
    query = spec.encode_plain(cut, text_1)
    keep0 = cut("Sub", [cut("Size", [query]), cut("Sub", [length, "text/MAX"])])
    go0 = cut("Greater", [keep0, "text/ZERO"])
    body = _Nodes("text/row/cut/shrink")
    k, cond_in = "text/row/cut/shrink/k", "text/row/cut/shrink/cond"
    prefix_ids = body("Slice", [query, "text/ZERO1", body("Reshape", [k, "text/FLAT"]), "text/AXIS0"])
    n = length_of(body, spec.decode(body, prefix_ids))
    fits = body("LessOrEqual", [n, "text/MAX"])
    step = body("Max", [body("Sub", [n, "text/MAX"]), "text/ONE"])
    k_next = body("Where", [fits, k, body("Sub", [k, step])])
    go = body("And", [body("Not", [fits]), body("Greater", [k_next, "text/ZERO"])])
    go = body("Identity", [go])
    k_out = body("Identity", [k_next])
    scalar_i64 = helper.make_tensor_value_info
    loop_body = helper.make_graph(
        body.nodes,
        "shrink",
        [
            scalar_i64("text/row/cut/shrink/iter", TensorProto.INT64, []),
            scalar_i64(cond_in, TensorProto.BOOL, []),
            scalar_i64(k, TensorProto.INT64, []),
        ],
        [scalar_i64(go, TensorProto.BOOL, []), scalar_i64(k_out, TensorProto.INT64, [])],
    )
    k_final = cut("Loop", ["", go0, keep0], body=loop_body)
    k_final = cut("Max", [k_final, "text/ZERO"])  # keep <= 0: the query goes entirely (render(""))
    kept = cut("Slice", [query, "text/ZERO1", cut("Reshape", [k_final, "text/FLAT"]), "text/AXIS0"])
    final_ids = spec.encode_one(cut, render(cut, spec.decode(cut, kept)))

    tensor = helper.make_tensor_value_info
    row_ids = row(
        "If",
        [is_cut],
        then_branch=helper.make_graph(cut.nodes, "cut", [], [tensor(final_ids, TensorProto.INT64, [None])]),
        else_branch=helper.make_graph(keep_ids.nodes, "fits", [], [tensor(whole, TensorProto.INT64, [None])]),
    )
    row_len = row("Size", [row_ids])
    room = row("Reshape", [row("Sub", ["text/MAX", row_len]), "text/FLAT"])
    padded_row = row("Pad", [row_ids, row("Concat", ["text/ZERO1", room], axis=0), "text/PAD"])
    cond_row = row("Identity", ["text/row/cond"])
    row_graph = helper.make_graph(
        row.nodes,
        "row",
        [tensor(i, TensorProto.INT64, []), tensor("text/row/cond", TensorProto.BOOL, [])],
        [
            tensor(cond_row, TensorProto.BOOL, []),
            tensor(padded_row, TensorProto.INT64, [None]),
            tensor(row_len, TensorProto.INT64, []),
        ],
    )
    rows = _Nodes("text/rows")
    n_rows = rows("Shape", ["text"])
    n_rows = rows("Reshape", [n_rows, rows("Constant", [], value=helper.make_tensor("v", TensorProto.INT64, [0], []))])
    true = rows("Constant", [], value=helper.make_tensor("v", TensorProto.BOOL, [], [True]))
    all_ids, all_lens = rows("Loop", [n_rows, true], 2, body=row_graph)
    width = rows("Reshape", [rows("ReduceMax", [all_lens], keepdims=0), "text/FLAT"])
    cut_ids = rows("Slice", [all_ids, "text/ZERO1", width, "text/AXIS1"])
    positions = rows("Range", ["text/ZERO", rows("ReduceMax", [all_lens], keepdims=0), "text/ONE"])
    cut_mask = rows(
        "Cast", [rows("Less", [positions, rows("Unsqueeze", [all_lens, "text/AXIS1"])])], to=TensorProto.INT64
    )

    plain = _Nodes("text/plain")  # no row too long: the batch's ids as they are
    plain_ids = plain("Identity", [ids])
    plain_mask = plain("Identity", [mask])

    two_d = [None, None]
    batch_ids, batch_mask = main(
        "If",
        [any_cut],
        2,
        then_branch=helper.make_graph(
            rows.nodes,
            "rows_cut",
            [],
            [tensor(cut_ids, TensorProto.INT64, two_d), tensor(cut_mask, TensorProto.INT64, two_d)],
        ),
        else_branch=helper.make_graph(
            plain.nodes,
            "rows_fit",
            [],
            [tensor(plain_ids, TensorProto.INT64, two_d), tensor(plain_mask, TensorProto.INT64, two_d)],
        ),
    )
    # the tokenizer pads with 0; the classifier was validated on pad_token_id padding
    real = main("Equal", [batch_mask, "text/ONE"])
    main.add(helper.make_node("Where", [real, batch_ids, "text/PAD"], ["input_ids"], name="text/input_ids"))
    main.add(helper.make_node("Identity", [batch_mask], ["attention_mask"], name="text/attention_mask"))
    main.add(helper.make_node("Identity", [truncated], ["truncated"], name="text/truncated"))
    graph = helper.make_graph(
        main.nodes,
        "edgecut_text_front",
        [tensor("text", TensorProto.STRING, ["batch"])],
        [
            tensor("input_ids", TensorProto.INT64, ["batch", "sequence"]),
            tensor("attention_mask", TensorProto.INT64, ["batch", "sequence"]),
            tensor("truncated", TensorProto.BOOL, ["batch"]),
        ],
        initializer=inits,
    )
    # ai.onnx.ml for WordPiece's LabelEncoder (version 2 brought string keys to int64 values)
    opsets = [helper.make_opsetid("", opset), helper.make_opsetid(CONTRIB, 1), helper.make_opsetid("ai.onnx.ml", 3)]
    return helper.make_model(graph, opset_imports=opsets, ir_version=ir_version, producer_name="edgecut")


def _merge(front, classifier, labels: list[str]):
    """The front graph feeding the classifier, plus a string `label` output (argmax over the classes).

    A plain union of the two graphs rather than onnx.compose.merge_models: that one runs the ONNX checker,
    which refuses ORT's own fused ops in the default domain (SimplifiedLayerNormalization after the
    `ort-offline` pass). The front graph's names all start with "text/", so they cannot clash.
    """
    from onnx import TensorProto, helper

    g = classifier.graph
    mine = {o for n in front.graph.node for o in n.output} | {i.name for i in front.graph.initializer}
    theirs = {o for n in g.node for o in n.output} | {i.name for i in g.initializer}
    clash = (mine & theirs) - {"input_ids", "attention_mask"}
    if clash or {i.name for i in g.input} != {"input_ids", "attention_mask"} or "logits" not in theirs:
        raise ArtifactError(
            "the artifact's graph does not have the signature input_ids, attention_mask -> logits "
            f"(or reuses the names {sorted(clash)[:3]}): re-export it"
        )
    nodes = [*front.graph.node, *g.node]
    nodes += [
        helper.make_node("ArgMax", ["logits"], ["text/best"], name="text/best", axis=1, keepdims=0),
        helper.make_node("Gather", ["text/LABELS", "text/best"], ["label"], name="text/label", axis=0),
    ]
    logits = next(o for o in g.output if o.name == "logits")
    graph = helper.make_graph(
        nodes,
        "edgecut_text",
        list(front.graph.input),
        [
            logits,
            helper.make_tensor_value_info("label", TensorProto.STRING, ["batch"]),
            next(o for o in front.graph.output if o.name == "truncated"),
        ],
        initializer=[*front.graph.initializer, *g.initializer, _const("text/LABELS", labels)],
        value_info=list(g.value_info),
    )
    opsets = {o.domain: o.version for o in [*classifier.opset_import, *front.opset_import]}
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid(d, v) for d, v in opsets.items()],
        ir_version=classifier.ir_version,
        producer_name="edgecut",
    )
    model.functions.extend(classifier.functions)
    return model


def _check_ids(front, tokenizer_path: Path, prompt, spec: _Spec) -> int:
    """The front graph's ids for the probes, the demonstrations and a query long enough to be cut must be
    exactly `tokenizers`' (PromptFormat.encode); otherwise the tokenizer is refused, naming the text."""
    import onnxruntime as ort

    from edgecut.runtime import load_tokenizer

    tk = load_tokenizer(tokenizer_path)
    texts = [*PROBES, *spec.probes, *(t for t, _ in prompt.demonstrations)]
    texts.append(" ".join(["a long review of a film that goes on and on, café 🎬"] * (prompt.max_length // 4 + 8)))
    session = ort.InferenceSession(front.SerializeToString(), session_options(), providers=["CPUExecutionProvider"])
    ids, mask, truncated = session.run(None, {"text": np.array(texts, dtype=object)})
    for text, row, m, cut in zip(texts, ids, mask, truncated, strict=True):
        expected, was_cut = prompt.encode_with(tk, text)
        if row[m == 1].tolist() != expected or bool(cut) != was_cut:
            raise UnsupportedTokenizerError(
                f"the artifact's tokenizer ({spec.description}) gives other ids in the graph than `tokenizers` "
                f"for {text[:60]!r}: the string graph cannot reproduce it; serve the artifact with token ids"
            )
    return len(texts)


@dataclass(frozen=True)
class TextGraphParity:
    texts: int
    ids_equal: int  # texts whose in-graph ids are exactly `ArtifactClassifier.encode`'s
    labels_equal: int  # texts with the same label from model_text.onnx and the id graph
    max_abs_logit_diff: float


def compare_text_graph(
    artifact_dir: Path, text_model: Path, texts: Sequence[str], providers: Sequence[str] = ("CPUExecutionProvider",)
) -> TextGraphParity:
    """model_text.onnx against the artifact's id graph on the same texts: ids, labels and logits.

    For `edgecut check` on an artifact with a string graph (pass the golden or test texts): the ids must
    all be equal and the logits within the target's parity tolerance.
    """
    import onnx
    import onnxruntime as ort

    from edgecut.runtime import ArtifactClassifier, pad_batch

    clf = ArtifactClassifier(artifact_dir, target="cpu" if list(providers) == ["CPUExecutionProvider"] else None)
    model = onnx.load(str(text_model))
    model.graph.output.extend(
        onnx.helper.make_tensor_value_info(name, onnx.TensorProto.INT64, None)
        for name in ("input_ids", "attention_mask")
    )
    session = ort.InferenceSession(model.SerializeToString(), session_options(), providers=list(providers))
    ids_equal = labels_equal = 0
    worst = 0.0
    for start in range(0, len(texts), 32):
        chunk = list(texts[start : start + 32])
        logits, labels, ids, mask = session.run(
            ["logits", "label", "input_ids", "attention_mask"], {"text": np.array(chunk, dtype=object)}
        )
        encoded = [clf.encode(t)[0] for t in chunk]
        reference = clf.session.run(["logits"], pad_batch(encoded, clf.pad_id))[0]
        ids_equal += sum(row[m == 1].tolist() == e for row, m, e in zip(ids, mask, encoded, strict=True))
        labels_equal += sum(str(a) == clf.labels[int(b)] for a, b in zip(labels, reference.argmax(-1), strict=True))
        worst = max(worst, float(np.abs(logits.astype(np.float64) - reference).max()))
    return TextGraphParity(len(texts), ids_equal, labels_equal, worst)
