"""Uncased BERT WordPiece (all-MiniLM-L6, bert-base-uncased) in the string graph.

Known divergences from `tokenizers` (onnxruntime-extensions 0.15.2; the probes avoid them, the slow MiniLM
test pins them): BasicTokenizer strips accents from Latin-1 letters only, so other accented letters give
other ids ("Dvořák", Greek "ά", Japanese "が", Cyrillic "й": often [UNK] where `tokenizers` gives the base
letter); some non-ASCII punctuation, separators and format characters (fullwidth "（", "⟨", U+2028, U+FEFF)
are split or dropped differently; and the special tokens typed in the text ("[CLS]", "[MASK]") are split
into pieces, not matched. English text is unaffected: all rotten-tomatoes and BBC test texts give
`tokenizers`' ids.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from edgecut.graph.text_graph.nodes import CONTRIB, Nodes, const
from edgecut.graph.text_graph.probes import NUL, NUL_DIVERGENCE
from edgecut.graph.text_graph.spec import SUPPORTED, UnsupportedTokenizerError, component_types, special_ids_around


@dataclass(frozen=True)
class WordPieceSpec:
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

    known_divergences: ClassVar[str] = (
        "onnxruntime-extensions' WordPiece ops differ from tokenizers on accented letters outside Latin-1 "
        "(e.g. 'Dvořák', Greek 'ά', Cyrillic 'й': often [UNK]), some non-ASCII punctuation and invisible "
        "characters, and special tokens typed in the text ('[CLS]'): such texts may get other ids, and answers, "
        "through model_text.onnx than through the id graph; and " + NUL_DIVERGENCE
    )
    divergent_characters: ClassVar[tuple[str, ...]] = (NUL,)

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
    probes: ClassVar[tuple[str, ...]] = (
        "h" * 100 + " and " + "m" * 101,
        "Don't! CAFÉ, naïve ÀÉÎÕÜ — the DVD's (2h) cut",
        "loved it🎉, a∀b",
    )

    @classmethod
    def from_tokenizer_json(cls, data: dict[str, Any]) -> WordPieceSpec:
        model = data["model"]
        pre = component_types(data.get("pre_tokenizer"))
        decoder = data.get("decoder") or {}
        norm = data.get("normalizer") or {}
        described = (
            f"WordPiece model, normalizer {'+'.join(component_types(norm)) or 'none'}, pre-tokenizer "
            f"{'+'.join(pre) or 'none'}, decoder {'+'.join(component_types(decoder)) or 'none'}"
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
                f"{'; '.join(problems)}; {SUPPORTED}; serve this artifact with token ids "
                "(edgecut deploy without --strings)"
            )
        leading, trailing = special_ids_around(data.get("post_processor"), described)
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
            const("text/wp/SCALAR", np.array([], dtype=np.int64)),  # Reshape to a scalar
            const("text/wp/TRUE", np.array(True)),
            const("text/wp/NO_IDS", np.array([], dtype=np.int64)),
            const("text/wp/NO_POSITIONS", np.zeros((0, 2), dtype=np.int64)),
            const("text/wp/UNK", np.array(self.unk_id, dtype=np.int64)),
        ]
        named = {"LEAD": self.leading_ids, "TRAIL": self.trailing_ids, "SPECIAL": self.special}
        inits += [const(f"text/wp/{k}", np.array(v, dtype=np.int64)) for k, v in named.items() if v]
        return inits

    def encode_plain(self, g: Nodes, text_1: str) -> str:
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

    def encode_one(self, g: Nodes, rendered_1: str) -> str:
        """rendered [1] string -> its ids [k] with the post-processor's special tokens around them."""
        parts = [
            *(["text/wp/LEAD"] if self.leading_ids else []),
            self.encode_plain(g, rendered_1),
            *(["text/wp/TRAIL"] if self.trailing_ids else []),
        ]
        return g("Concat", parts, axis=0) if len(parts) > 1 else parts[0]

    def encode(self, g: Nodes, rendered: str) -> tuple[str, str]:
        """rendered [n] strings -> ids, mask [n, T] (right-padded with 0): a Loop tokenizes one row per
        iteration and appends its ids to a flat tensor, which is then gathered into rows."""
        from onnx import TensorProto, helper

        body = g.sub(f"{g.prefix}/wp_row")
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

    def decode(self, g: Nodes, ids: str) -> str:
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
