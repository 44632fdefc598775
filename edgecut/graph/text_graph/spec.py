"""What a tokenizer family provides to the string graph, and the tokenizer.json readers the families share.

A family (bpe.py, wordpiece.py) reads tokenizer.json into a frozen spec, refusing what onnxruntime-extensions
cannot reproduce, and writes its own ONNX pieces: encode a batch, encode one row with or without the
special tokens, decode ids back to text. assemble.py builds the prompt, the cut of a too-long query and the
padding around those pieces, so a new family is one module plus one line in families.py.
"""

from __future__ import annotations

from typing import Any, ClassVar, Protocol

from edgecut.errors import EdgecutError
from edgecut.graph.text_graph.nodes import Nodes

SUPPORTED = (
    "it reproduces byte-level BPE (GPT-2, SmolLM2) and uncased BERT WordPiece (all-MiniLM-L6) tokenizers "
    "with onnxruntime-extensions"
)


class UnsupportedTokenizerError(EdgecutError):
    """The artifact's tokenizer is not one the string graph can reproduce with onnxruntime-extensions."""


class TokenizerSpec(Protocol):
    """One tokenizer family's reading of tokenizer.json and its ONNX pieces (all names under "text/")."""

    known_divergences: ClassVar[str]  # inputs on which the graph's ids differ from `tokenizers`'
    divergent_characters: ClassVar[tuple[str, ...]]  # a text holding one of these may get another answer

    @property
    def description(self) -> str:
        """What the graph tokenizes with, e.g. "BPE/ByteLevel via onnxruntime-extensions GPT2Tokenizer"."""
        ...

    @property
    def leading_ids(self) -> tuple[int, ...]:
        """Special token ids the post-processor puts before the text."""
        ...

    @property
    def probes(self) -> tuple[str, ...]:
        """Texts checked for this family besides PROBES."""
        ...

    @classmethod
    def from_tokenizer_json(cls, data: dict[str, Any]) -> TokenizerSpec:
        """The spec, or UnsupportedTokenizerError naming what the graph cannot reproduce."""
        ...

    def initializers(self) -> list:
        """The constants its pieces read."""
        ...

    def encode(self, g: Nodes, rendered: str) -> tuple[str, str]:
        """rendered [n] strings -> ids, mask [n, T] with special tokens, right-padded with 0."""
        ...

    def encode_one(self, g: Nodes, rendered_1: str) -> str:
        """rendered [1] string -> its ids [k] with special tokens."""
        ...

    def encode_plain(self, g: Nodes, text_1: str) -> str:
        """[1] string -> ids [k] without special tokens."""
        ...

    def decode(self, g: Nodes, ids: str) -> str:
        """[k] ids -> [1] string, as `tokenizers`' decode (special tokens skipped)."""
        ...


def describe(data: dict[str, Any]) -> str:
    """A tokenizer.json's model, pre-tokenizer and decoder types, for messages."""
    kind = (data.get("model") or {}).get("type")
    pre = "+".join(component_types(data.get("pre_tokenizer"))) or "none"
    return f"{kind} model, pre-tokenizer {pre}, decoder {'+'.join(component_types(data.get('decoder'))) or 'none'}"


def unsupported(data: dict[str, Any]) -> UnsupportedTokenizerError:
    """The refusal of a tokenizer.json no family reads, naming its model, pre-tokenizer, decoder, normalizer."""
    normalizer = component_types(data.get("normalizer"))
    return UnsupportedTokenizerError(
        f"the artifact's tokenizer ({describe(data)}"
        f"{', normalizer ' + '+'.join(normalizer) if normalizer else ''}) is not supported by the string "
        f"graph: {SUPPORTED}; serve this artifact with token ids (edgecut deploy without --strings)"
    )


def component_types(component: dict[str, Any] | None) -> list[str]:
    """The types of a tokenizer.json normalizer/pre-tokenizer/decoder, a Sequence flattened."""
    if not component:
        return []
    if component.get("type") == "Sequence":
        parts = component.get("pretokenizers") or component.get("decoders") or component.get("normalizers") or []
        return [t for p in parts for t in component_types(p)]
    return [str(component.get("type"))]


def special_ids_around(post: dict[str, Any] | None, described: str) -> tuple[tuple[int, ...], tuple[int, ...]]:
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
