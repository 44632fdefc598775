"""The tokenizer families the string graph reproduces, by tokenizer.json model type: a new family is one
module with a `TokenizerSpec` (spec.py) and one line here."""

from __future__ import annotations

from typing import Any

from edgecut.graph.text_graph.bpe import BpeSpec
from edgecut.graph.text_graph.spec import TokenizerSpec, unsupported
from edgecut.graph.text_graph.wordpiece import WordPieceSpec

FAMILIES: dict[str, type[TokenizerSpec]] = {
    "BPE": BpeSpec,
    "WordPiece": WordPieceSpec,
}


def spec_for(data: dict[str, Any]) -> TokenizerSpec:
    """The tokenizer spec for a tokenizer.json, by its model type; refuses what the graph cannot reproduce."""
    family = FAMILIES.get((data.get("model") or {}).get("type"))
    if family is None:
        raise unsupported(data)
    return family.from_tokenizer_json(data)
