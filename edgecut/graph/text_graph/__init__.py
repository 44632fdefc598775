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

Supported: BPE models with a ByteLevel pre-tokenizer and decoder (GPT-2, SmolLM2 and other byte-level
BPE families) whose post-processor adds at most leading special tokens; and uncased BERT WordPiece
(all-MiniLM-L6, bert-base-uncased: BertNormalizer with lowercase, BertPreTokenizer, WordPiece decoder,
TemplateProcessing such as `[CLS] $A [SEP]`). Anything else raises an EdgecutError naming the type.
Running the graph needs onnxruntime and onnxruntime-extensions only
(`SessionOptions.register_custom_ops_library(path)`, the path from `extensions_library()`).

The package: one module per tokenizer family (bpe.py, wordpiece.py; each a `TokenizerSpec`, spec.py),
registered by tokenizer.json model type in families.py; the node builder (nodes.py); the graph around the
family's pieces and the merge with the classifier (assemble.py); the ids checked against `tokenizers` and
the graph compared with the id graph (parity.py); the probe texts (probes.py).
"""

from edgecut.graph.text_graph.assemble import (
    TEXT_MODEL,
    TextGraphResult,
    build_front_graph,
    build_text_graph,
    check_tokenizer,
)
from edgecut.graph.text_graph.parity import TextGraphParity, compare_text_graph
from edgecut.graph.text_graph.probes import NUL, NUL_DIVERGENCE, ODD_PROBES, ODD_REFUSED, PROBES
from edgecut.graph.text_graph.session import extensions_library, session_options
from edgecut.graph.text_graph.spec import UnsupportedTokenizerError

__all__ = [
    "NUL",
    "NUL_DIVERGENCE",
    "ODD_PROBES",
    "ODD_REFUSED",
    "PROBES",
    "TEXT_MODEL",
    "TextGraphParity",
    "TextGraphResult",
    "UnsupportedTokenizerError",
    "build_front_graph",
    "build_text_graph",
    "check_tokenizer",
    "compare_text_graph",
    "extensions_library",
    "session_options",
]
