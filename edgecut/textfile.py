"""One reader for the text files edgecut is given: --data, predict's --file and stdin, --unlabeled, --vocab-corpus.

Every way reading one can fail (missing, a directory, unreadable, compressed, UTF-16, binary, not UTF-8) is
one DataError line that names the option, the file and the fix, worded the same for every option.
"""

from __future__ import annotations

from pathlib import Path

from edgecut.errors import DataError

MAGIC = {
    b"\x1f\x8b": "gzip-compressed",
    b"BZh": "bzip2-compressed",
    b"\xfd7zXZ\x00": "xz-compressed",
    b"PK\x03\x04": "a ZIP archive (an .xlsx workbook?)",
    b"\x28\xb5\x2f\xfd": "zstd-compressed",
}


def read_text(path: Path, what: str, expect: str, refuse_nul: bool = False) -> str:
    """The file's UTF-8 text (a BOM dropped).

    Args:
        what: how messages name the file, with its option: "--unlabeled u.txt".
        expect: what to give instead, for the messages: "a text or JSONL file".
        refuse_nul: a NUL byte means a binary file (data files; texts to classify may hold one).

    Raises:
        DataError: one line naming `what` and the fix.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{what} does not exist: give {expect}") from None
    except IsADirectoryError:
        raise DataError(f"{what} is a directory: give {expect}") from None
    except OSError as e:
        raise DataError(f"{what} cannot be read ({e.strerror}): check its permissions") from None
    return decode_text(raw, what, expect, path, refuse_nul)


def decode_text(raw: bytes, what: str, expect: str, path: Path | None = None, refuse_nul: bool = False) -> str:
    """UTF-8 bytes as text (a BOM dropped); compressed, UTF-16, binary or other bytes one DataError line each."""
    source, fixed = (str(path), f"fixed{path.suffix}") if path is not None else ("input.txt", "fixed.txt")
    for magic, kind in MAGIC.items():
        if raw.startswith(magic):
            raise DataError(f"{what} is {kind}, not text: decompress or save it as {expect}")
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise DataError(f"{what} is UTF-16: re-encode it, e.g. iconv -f utf-16 -t utf-8 {source} > {fixed}")
    nul = raw.find(b"\x00") if refuse_nul else -1
    if nul >= 0:
        raise DataError(f"{what} holds binary data (a NUL byte at offset {nul}): give {expect}")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise DataError(
            f"{what} is not UTF-8 (byte {e.start}): re-encode it, e.g. iconv -f latin1 -t utf-8 {source} > {fixed}"
        ) from None


def require_unicode(text: str, where: str) -> str:
    """`text` unchanged, or a DataError when it holds a lone surrogate, which a JSON `\\ud800` escape or
    undecodable bytes produce and no tokenizer takes. One check for data cells, predict input and the runtime."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        raise DataError(
            f"{where} holds an unpaired surrogate (U+{ord(text[e.start]):04X}) {text[e.start]!r}, which is not "
            "Unicode text: fix that \\u escape (or send UTF-8)"
        ) from None
    return text
