"""Keep only the embedding rows a task uses, while the graph still takes the tokenizer's own ids.

A 1-layer SmolLM2 is mostly its 49,152 x 576 input embedding, and a task's prompts touch a fraction of
those rows. `trim_vocabulary` swaps the classifier's input embedding for a small table of the kept rows
behind an int64 remap buffer (original id -> row of the small table). In ONNX that is two Gathers, both
plain ops that ORT runs and the int8 quantizer handles (the float table is quantized, the int64 remap is
left alone), so the artifact's signature, tokenizer, `check`, `predict` and Triton stay as they are.

Ids outside the kept set still map to a row (ORT's Gather fails on an index out of range): either one
shared row holding the mean of the dropped rows ("mean"), or the kept row nearest by cosine in the
original table ("nearest", no extra row).

Order in the pipeline: after `make_classifier` (the label-word head is built from the full LM head) and
before `finetune` (so AdamW carries moments for the kept rows only). Torch-free at import.
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from edgecut.errors import DataError, EdgecutError
from edgecut.model.prompt import LABEL, TEXT, PromptFormat
from edgecut.textfile import read_text

MODES = ("all", "task", "auto")  # or a positive number: the N most frequent ids
# `auto` trims as `task` does only when the kept ids cover at least this share of the validation prompts'
# tokens (data the model did not train on, from the same source as the data it will serve). Trimming was
# measured harmless at 93.5-97.7 % test coverage (benchmarks/vocab.py, docs/smaller.md); below
# 95 % too many tokens would be read through their nearest kept id, unmeasured, so the table stays whole.
AUTO_MIN_COVERAGE = 0.95
FALLBACKS = ("mean", "nearest")
# Cosine scores per chunk of dropped rows in `nearest`: 2**24 floats = 64 MB, whatever the table's size.
_SCORES_PER_CHUNK = 2**24


@dataclass(frozen=True)
class VocabSpec:
    """What `--vocab` asked for: every id ("all"), the ids seen in the task ("task"), those when they cover
    enough of the validation prompts ("auto", see AUTO_MIN_COVERAGE), or the `size` most frequent ids ("top")."""

    mode: str
    size: int | None = None

    @property
    def trims(self) -> bool:
        return self.mode != "all"

    def __str__(self) -> str:
        return str(self.size) if self.mode == "top" else self.mode


def parse_vocab(value: str) -> VocabSpec:
    """Read `--vocab all|task|auto|N`.

    Raises:
        EdgecutError: anything else, naming the accepted values.
    """
    text = value.strip().lower()
    if text in MODES:
        return VocabSpec(text)
    if text.isdigit() and int(text) > 0:
        return VocabSpec("top", int(text))
    raise EdgecutError(
        f"--vocab {value}: use 'all' (every token id), 'task' (the ids the training data uses), 'auto' (task "
        "when those cover the validation data) or a positive number of token ids to keep, e.g. --vocab 8000"
    )


def check_fallback(value: str) -> str:
    if value not in FALLBACKS:
        raise EdgecutError(f"vocabulary fallback '{value}': use one of {', '.join(FALLBACKS)}")
    return value


def read_corpus(path: Path) -> list[str]:
    """The texts of a `--vocab-corpus` file, one per non-empty line (UTF-8).

    Raises:
        DataError: missing, unreadable, not UTF-8, or without any text.
    """
    path = Path(path)
    lines = read_text(path, f"--vocab-corpus {path}", "a UTF-8 text file, one text per line").splitlines()
    texts = [line.strip() for line in lines if line.strip()]
    if not texts:
        raise DataError(f"--vocab-corpus {path} has no text: put one text per line")
    return texts


def corpus_sequences(tokenizer, prompt_format: PromptFormat, texts: Iterable[str]) -> list[list[int]]:
    """Token ids of each corpus text as it would be served: inside the prompt, never cut.

    A BPE tokenizer splits a word differently at the start of a line and after "Review: ", so encoding
    the bare line would keep ids that serving never produces and miss the ones it does.
    """
    return [tokenizer(prompt_format.render(text), verbose=False)["input_ids"] for text in texts]  # whole texts


def always_kept_ids(tokenizer, prompt_format: PromptFormat, label_words: Iterable[str]) -> set[int]:
    """Ids every prompt can contain whatever the text: template, demonstrations, label words, special and
    added tokens, pad."""

    def plain(text: str) -> list[int]:
        return tokenizer(text, add_special_tokens=False)["input_ids"] if text else []

    ids: set[int] = set(tokenizer(prompt_format.render(""))["input_ids"])  # with BOS/EOS as served
    template = prompt_format.template.replace(LABEL, "")
    for piece in template.split(TEXT):
        ids.update(plain(piece))
        ids.update(plain(piece.strip()))
    for text, word in prompt_format.demonstrations:
        ids.update(plain(prompt_format.fill(text, word)))
    for word in label_words:
        ids.update(plain(word))
        ids.update(plain(word.strip()))
    ids.update(i for i in tokenizer.all_special_ids if i is not None)
    # Added tokens (SmolLM2's <|im_start|>, <file_sep>, ...) match anywhere in a text, whatever it says.
    ids.update(getattr(tokenizer, "added_tokens_decoder", {}))
    for special in (tokenizer.pad_token_id, tokenizer.eos_token_id, tokenizer.unk_token_id):
        if special is not None:
            ids.add(special)  # make_classifier pads with eos or unk when there is no pad token
    return ids


def task_token_ids(sequences: Iterable[Sequence[int]], spec: VocabSpec, always: Iterable[int]) -> list[int]:
    """The sorted ids to keep: those in `sequences` ("task"), or the most frequent ones up to
    `spec.size` in all ("top"), and every id in `always` either way.

    Raises:
        EdgecutError: `spec` is "all" (nothing to choose), or `spec.size` is smaller than `always`.
    """
    if not spec.trims:
        raise EdgecutError("--vocab all keeps every id: there is nothing to choose")
    kept = set(always)
    counts = Counter(i for seq in sequences for i in seq)
    if spec.mode in ("task", "auto"):
        return sorted(kept | set(counts))
    if spec.size < len(kept):
        raise EdgecutError(
            f"--vocab {spec.size} is smaller than the {len(kept)} ids every prompt needs (template, label words, "
            f"special tokens): use --vocab {len(kept)} or more, or --vocab task"
        )
    # Most frequent first; equal counts by id so the choice is reproducible.
    for token, _ in sorted(counts.items(), key=lambda item: (-item[1], item[0])):
        if len(kept) >= spec.size:
            break
        kept.add(token)
    return sorted(kept)


def coverage(sequences: Iterable[Sequence[int]], keep_ids: Iterable[int]) -> float:
    """Share of the tokens in `sequences` that are kept (1.0 when there are no tokens)."""
    keep = set(keep_ids)
    total = hit = 0
    for seq in sequences:
        total += len(seq)
        hit += sum(1 for i in seq if i in keep)
    return hit / total if total else 1.0


@dataclass(frozen=True)
class VocabTrim:
    kept: int  # ids with their own row
    vocab_size: int  # rows of the original table: ids the graph accepts
    fallback: str  # mean | nearest | none (nothing dropped)
    table_rows: int  # rows of the small table (kept, plus the mean row)
    params_before: int
    params_after: int

    def as_dict(
        self,
        spec: VocabSpec | None = None,
        test_coverage: float | None = None,
        validation_coverage: float | None = None,
    ) -> dict:
        """The manifest record."""
        return {
            "vocab": str(spec) if spec is not None else None,
            "validation_coverage": validation_coverage,
            "kept": self.kept,
            "vocab_size": self.vocab_size,
            "fallback": self.fallback,
            "table_rows": self.table_rows,
            "test_coverage": test_coverage,
            "parameters": {"before": self.params_before, "after": self.params_after},
        }


@functools.cache
def _remapped_embedding_class():
    """Built on first use so importing this module does not import torch."""
    import torch

    class RemappedEmbedding(torch.nn.Module):
        """The original embedding module, now holding only the kept rows, behind an id -> row remap.

        Calling the original module keeps what its family adds to a plain lookup (Gemma3 multiplies by
        sqrt(hidden); padding_idx keeps the pad row's gradient at zero).
        """

        def __init__(self, table: torch.nn.Module, remap: torch.Tensor):
            super().__init__()
            self.table = table
            self.register_buffer("remap", remap)  # int64 [vocab_size]; saved, so Trainer checkpoints reload it

        @property
        def weight(self) -> torch.nn.Parameter:
            # Code that reads get_input_embeddings().weight (its dtype, device, width) sees the small table.
            return self.table.weight

        @property
        def num_embeddings(self) -> int:
            return int(self.remap.shape[0])  # the ids accepted, as an nn.Embedding would report

        @property
        def embedding_dim(self) -> int:
            return int(self.table.weight.shape[1])

        def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
            # index_select exports as one ONNX Gather (plain indexing becomes GatherND).
            rows = torch.index_select(self.remap, 0, input_ids.reshape(-1)).reshape(input_ids.shape)
            return self.table(rows)

    return RemappedEmbedding


def _nearest_kept(weight, kept, dropped):
    """For each dropped id, the kept id whose original row is nearest by cosine; chunked to bound memory."""
    import torch

    unit = torch.nn.functional.normalize(weight[kept], dim=1)  # [K, H]
    chunk = max(1, _SCORES_PER_CHUNK // max(1, len(kept)))
    out = []
    for start in range(0, len(dropped), chunk):
        rows = torch.nn.functional.normalize(weight[dropped[start : start + chunk]], dim=1)
        out.append(kept[(rows @ unit.T).argmax(dim=1)])
    return torch.cat(out) if out else kept[:0]


def trim_vocabulary(classifier, keep_ids: Sequence[int], fallback: str = "nearest") -> VocabTrim:
    """Replace `classifier`'s input embedding, in place, by the kept rows behind a remap of every id.

    Call after `make_classifier` (its head comes from the full LM head) and before fine-tuning. Logits
    for prompts made only of kept ids are unchanged; every other id gets the fallback row.

    Raises:
        EdgecutError: unknown fallback, or an input embedding that is not a lookup table.
        ValueError: an id outside the table (the tokenizer and model disagree: a bug upstream).
    """
    import torch

    from edgecut.model.prune import count_parameters

    check_fallback(fallback)
    old = classifier.get_input_embeddings()
    if isinstance(old, _remapped_embedding_class()):
        raise EdgecutError("this classifier's vocabulary is already trimmed")
    if not isinstance(old, torch.nn.Embedding) or old.max_norm is not None:
        raise EdgecutError(
            f"{type(classifier).__name__}'s input embedding is a {type(old).__name__}, not a lookup table: "
            "use --vocab all"
        )
    weight = old.weight.detach()
    size = weight.shape[0]
    kept = torch.tensor(sorted(set(int(i) for i in keep_ids)), dtype=torch.long)
    if len(kept) == 0:
        raise ValueError("no ids to keep")
    if kept[0] < 0 or kept[-1] >= size:
        raise ValueError(f"ids to keep must lie in 0..{size - 1}, got {int(kept[0])}..{int(kept[-1])}")
    before = count_parameters(classifier)
    if len(kept) == size:
        return VocabTrim(size, size, "none", size, before, before)

    is_kept = torch.zeros(size, dtype=torch.bool)
    is_kept[kept] = True
    dropped = (~is_kept).nonzero().squeeze(1)
    remap = torch.empty(size, dtype=torch.long)
    remap[kept] = torch.arange(len(kept))
    with torch.no_grad():
        if fallback == "mean":
            # float64 sums without a copy of the table: the dropped rows are most of it.
            total = weight.sum(0, dtype=torch.float64) - weight[kept].sum(0, dtype=torch.float64)
            mean = (total / len(dropped)).to(weight.dtype)
            table = torch.cat([weight[kept], mean[None]])
            remap[dropped] = len(kept)
        else:
            table = weight[kept].clone()
            remap[dropped] = remap[_nearest_kept(weight, kept, dropped)]

    # The same module class (Gemma3's scale, the padding row) over the small table.
    small = old
    small.weight = torch.nn.Parameter(table.contiguous(), requires_grad=old.weight.requires_grad)
    small.num_embeddings = len(table)
    if old.padding_idx is not None:
        small.padding_idx = int(remap[old.padding_idx]) if is_kept[old.padding_idx] else None
    classifier.set_input_embeddings(_remapped_embedding_class()(small, remap))
    return VocabTrim(len(kept), size, fallback, len(table), before, count_parameters(classifier))
