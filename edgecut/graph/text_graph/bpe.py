"""Byte-level BPE (GPT-2, SmolLM2 and other byte-level BPE families) in the string graph.

GPT2Tokenizer, not the JSON tokenizer op (HfJsonTokenizer, `gen_processing_models(schema_v2=True)`): both give
`tokenizers`' ids on byte-level BPE, but HfJsonTokenizer returns ids padded with 0 and no attention mask, so a
batch cannot tell padding from token 0; and `gen_processing_models` picks its converter by the transformers
class name, which transformers 5 writes as `TokenizersBackend` / `PreTrainedTokenizerFast` (unknown to
onnxruntime-extensions 0.15.2). The op is built from tokenizer.json itself (vocab, merges, added tokens), so
neither transformers nor torch is needed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from edgecut.graph.text_graph.nodes import CONTRIB, Nodes, const
from edgecut.graph.text_graph.probes import NUL, NUL_DIVERGENCE
from edgecut.graph.text_graph.spec import (
    UnsupportedTokenizerError,
    component_types,
    describe,
    special_ids_around,
    unsupported,
)


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's byte -> printable character table, which every ByteLevel tokenizer.json vocabulary uses."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    table, extra = {b: chr(b) for b in printable}, 0
    for b in range(256):
        if b not in table:
            table[b] = chr(256 + extra)
            extra += 1
    return table


@dataclass(frozen=True)
class BpeSpec:
    """Byte-level BPE (GPT-2, SmolLM2) with onnxruntime-extensions' GPT2Tokenizer and BpeDecoder."""

    known_divergences: ClassVar[str] = NUL_DIVERGENCE  # and no other: every other code point of planes 0-2 agrees
    divergent_characters: ClassVar[tuple[str, ...]] = (NUL,)

    vocab: dict[str, int]
    merges: list[str]
    added: list[dict[str, Any]]  # tokenizer.json added_tokens
    leading_ids: tuple[int, ...]  # special tokens the post-processor puts before the text (a BOS)
    description: str

    @classmethod
    def from_tokenizer_json(cls, data: dict[str, Any]) -> BpeSpec:
        model = data.get("model") or {}
        kind = model.get("type")
        pre = component_types(data.get("pre_tokenizer"))
        decoder = component_types(data.get("decoder"))
        normalizer = component_types(data.get("normalizer"))
        described = describe(data)
        if kind != "BPE" or pre != ["ByteLevel"] or decoder != ["ByteLevel"] or normalizer:
            raise unsupported(data)
        if model.get("dropout") or model.get("continuing_subword_prefix") or model.get("end_of_word_suffix"):
            raise UnsupportedTokenizerError(
                f"the artifact's BPE tokenizer uses options the string graph lacks ({described})"
            )
        merges = [" ".join(m) if isinstance(m, list) else str(m) for m in model.get("merges", [])]
        leading, trailing = special_ids_around(data.get("post_processor"), described)
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
            const("text/TAIL", self.tail_bytes().astype(np.int64)),
            const("text/EMPTY_TEXT", [""]),
            const("text/BIG", np.array([np.iinfo(np.int64).max], dtype=np.int64)),
            const("text/MINUS4", np.array([-4], dtype=np.int64)),
            const("text/MINUS1", np.array([-1], dtype=np.int64)),
            # RE2 patterns replacing an incomplete UTF-8 tail of 0..3 bytes with U+FFFD (`\C` is any byte)
            const("text/PATTERNS", ["$", "\\C$", "\\C{2}$", "\\C{3}$"]),
            const("text/REWRITES", ["", "\ufffd", "\ufffd", "\ufffd"]),
        ]
        if self.leading_ids:
            inits.append(const("text/LEAD", np.array(self.leading_ids, dtype=np.int64)))
        return inits

    def encode(self, g: Nodes, rendered: str) -> tuple[str, str]:
        """rendered [n] strings -> ids, mask [n, T] with the post-processor's leading special tokens."""
        ids, mask = g.names("GPT2Tokenizer", 2)
        g.add(self.tokenizer_node(rendered, ids, mask, name=ids))
        if self.leading_ids:
            rows = g("Shape", [ids], start=0, end=1)
            shape = g("Concat", [rows, g("Shape", ["text/LEAD"])], axis=0)
            ids = g("Concat", [g("Expand", ["text/LEAD", shape]), ids], axis=1)
            mask = g("Concat", [g("Expand", ["text/ONE", shape]), mask], axis=1)
        return ids, mask

    def encode_one(self, g: Nodes, rendered_1: str) -> str:
        """rendered [1] string -> its ids [k] with special tokens."""
        return g("Reshape", [self.encode(g, rendered_1)[0], "text/FLAT"])

    def encode_plain(self, g: Nodes, text_1: str) -> str:
        """[1] string -> ids [k] without special tokens (`encode(add_special_tokens=False)`)."""
        ids, mask = g.names("GPT2Tokenizer", 2)
        g.add(self.tokenizer_node(text_1, ids, mask, name=ids))
        return g("Reshape", [ids, "text/FLAT"])

    def decode(self, g: Nodes, ids: str) -> str:
        """[k] ids -> [1] string as `tokenizers`' decode: BpeDecoder, an incomplete UTF-8 tail -> U+FFFD.

        BpeDecoder crashes on an empty input (SIGFPE in 0.15.2), so k == 0 decodes to "" in an If.
        """
        from onnx import TensorProto, helper

        count = g("Size", [ids])
        empty = g("Equal", [count, "text/ZERO"])
        then = g.sub("text/decode_empty")
        out_empty = then("Identity", ["text/EMPTY_TEXT"])
        other = g.sub("text/decode")
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
        byte_decoder = {c: b for b, c in bytes_to_unicode().items()}
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
        to_byte = {c: b for b, c in bytes_to_unicode().items()}
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
