"""The four text-file readers (--data, predict's --file, --unlabeled, --vocab-corpus) refuse a bad file alike:
one DataError line that starts with the option and the file and names the fix (edgecut/textfile.py)."""

import gzip
import io
from pathlib import Path

import pytest

from edgecut.errors import DataError
from edgecut.model.data import read_rows
from edgecut.model.distill import read_unlabeled
from edgecut.model.vocab import read_corpus
from edgecut.runtime import read_inputs

READERS = {
    "--data": lambda path: read_rows(str(path)),
    "--file": lambda path: read_inputs([], path, False, "text", io.StringIO("")),
    "--unlabeled": read_unlabeled,
    "--vocab-corpus": read_corpus,
}
BAD = {
    "latin1": ("text,label\ncafé,pos\n".encode("latin-1"), ["is not UTF-8 (byte 14)", "iconv -f latin1 -t utf-8"]),
    "utf16": ("text,label\ngood,pos\n".encode("utf-16"), ["is UTF-16", "iconv -f utf-16 -t utf-8"]),
    "gzip": (gzip.compress(b"text,label\ngood,pos\n"), ["is gzip-compressed, not text", "decompress"]),
}


@pytest.mark.parametrize("kind", sorted(BAD))
@pytest.mark.parametrize("option", sorted(READERS))
def test_every_reader_refuses_a_bad_file_in_the_same_words(option, kind, tmp_path):
    raw, words = BAD[kind]
    path = tmp_path / "input.csv"
    path.write_bytes(raw)
    with pytest.raises(DataError) as excinfo:
        READERS[option](path)
    message = str(excinfo.value)
    assert message.startswith(f"{option} {path} ") and "\n" not in message, message
    assert all(w in message for w in words), message


@pytest.mark.parametrize("option", sorted(READERS))
def test_every_reader_names_its_option_for_a_missing_file_or_a_directory(option, tmp_path):
    for path, words in ((tmp_path / "missing.txt", "does not exist"), (tmp_path, "is not a file")):
        with pytest.raises(DataError) as excinfo:
            READERS[option](Path(path))
        message = str(excinfo.value)
        expected = words if option == "--data" or words == "does not exist" else "is a directory"
        assert message.startswith(f"{option} {path} {expected}"), message


def test_a_bom_is_dropped_and_nul_is_refused_only_in_data(tmp_path):
    path = tmp_path / "texts.txt"
    path.write_bytes("\ufeffgood\x00film\n".encode())
    assert read_corpus(path) == ["good\x00film"]
    with pytest.raises(DataError, match=r"^--data .* holds binary data \(a NUL byte at offset 7\)"):
        read_rows(str(path))
