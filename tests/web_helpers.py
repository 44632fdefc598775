"""For the page's tests: the hard texts a JavaScript tokenizer gets wrong first, and the npm packages check."""

from __future__ import annotations

import os
import random
import shutil

import pytest

from edgecut.serving import web

INSTALL_LINE = "bash scripts/setup.sh (runs `npm ci` in web/)"


def require_node_modules() -> None:
    """Skip without node or the pinned npm packages; in CI (CI set) that is a failure, setup.sh installs them."""
    missing = []
    if shutil.which("node") is None:
        missing.append("node")
    try:
        web.check_modules(web.modules_dir())
    except web.WebToolsMissingError as e:
        missing.append(str(e))
    if missing:
        if os.environ.get("CI"):
            pytest.fail(f"CI must have node and the page's npm packages: {'; '.join(missing)}")
        pytest.skip(f"{'; '.join(missing)}: {INSTALL_LINE}")


ODD = [
    "",
    " ",
    "\n\n",
    "a",
    "It's 2024: 3.5/10, $12 (ugh)!",
    "  two  leading spaces\tand a tab\nand a newline\r\n",
    "Amélie's café naïveté — “quoted” façade, e\u0301 a\u0308\u0304 combining",
    "emoji 🎉🎬 👍🏽 👨‍👩‍👧‍👦 🇫🇷 " * 3,
    "中文测试，标点。日本語のテキスト、カタカナ。한국어 텍스트",
    "ภาษาไทยไม่มีช่องว่าง हिन्दी पाठ বাংলা",
    "עברית שלום עולם مرحبا بالعالم العربي \u200f\u200e",
    "ДОБРЫЙ день, мир! Ελληνικά κείμενα",
    "NUL\x00in the middle, controls \x01\x07\x7f, zero\u200bwidth, \ufeffBOM",
    "{text} {label} Review: Sentiment: <|endoftext|> <pad> <eos> [CLS] </s>",
    "Ǆǅǆ ß ﬁ ﬀ ℌ𝔢𝔩𝔩𝔬 ０１２ Ω≈ç√∫",
    "x" * 3000,
    "ünïcödé " * 300,
    "a great film " * 200,
    "😀" * 400,
    "日本語 " * 500,
]

_ALPHABET = (
    [
        chr(c)
        for r in (
            range(0x20, 0x7F),
            range(0xA0, 0x250),
            range(0x370, 0x3FF),
            range(0x400, 0x4FF),
            range(0x590, 0x5FF),
            range(0x600, 0x6FF),
            range(0x900, 0x97F),
            range(0xE00, 0xE5B),
            range(0x3040, 0x30FF),
            range(0x4E00, 0x4F00),
            range(0xAC00, 0xAC80),
            range(0x1F300, 0x1F380),
            range(0x1F600, 0x1F650),
        )
        for c in r
    ]
    + [" "] * 40
    + ["\n", "\t", "\u200d", "\u0301", "\x00"]
)


def generated(n: int, words: list[str], seed: int = 0) -> list[str]:
    """`n` texts: ODD, then random mixes of `words` (the task's vocabulary) and characters of many scripts,
    from one character to a few thousand (past any max_length, so the query cut is exercised)."""
    rng = random.Random(seed)
    texts = list(ODD)
    while len(texts) < n:
        kind = rng.random()
        if kind < 0.4:
            texts.append(" ".join(rng.choice(words) for _ in range(rng.choice([1, 3, 6, 12, 40, 150]))))
        elif kind < 0.8:
            texts.append("".join(rng.choice(_ALPHABET) for _ in range(rng.choice([1, 5, 20, 80, 400, 1500]))))
        else:
            mixed = [rng.choice(words) if rng.random() < 0.5 else rng.choice(_ALPHABET) for _ in range(60)]
            texts.append(" ".join(mixed))
    return texts[:n]
