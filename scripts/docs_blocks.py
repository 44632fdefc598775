"""The summary tables inside hand-written pages (README.md, docs/results.md), generated from the measurement files.

A page marks a generated block with two comments; everything between them is rewritten from
benchmarks/results/ by scripts/docs_gen.py (and checked by `docs_gen.py --check`):

    <!-- generated: headline -->
    ...
    <!-- /generated -->

The prose around a block is written by hand and says what the numbers add up to; the numbers themselves are
never typed. A block name without a builder, or a page without its blocks, is an error.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
BLOCK = re.compile(r"(<!-- generated: (?P<name>[a-z-]+) -->\n)(?P<body>.*?)(<!-- /generated -->)", re.S)

# The rows the summaries show, in order: (label on the page, row name in a peers.py table).
HEADLINE_ROWS = [
    ("edgecut N=2, int8 (`--target cpu-int8`)", "edgecut N=2, int8"),
    ("edgecut N=1, int8", "edgecut N=1, int8"),
    ("all-MiniLM-L6-v2 fine-tuned", "all-MiniLM-L6-v2 (cls)"),
    ("all-MiniLM-L6-v2 fine-tuned, int8", "all-MiniLM-L6-v2 (cls), int8"),
    ("TF-IDF + logistic regression", "TF-IDF + logistic regression"),
    ("model2vec (from MiniLM)", "model2vec (from MiniLM)"),
    ("fastText", "fastText (bigrams)"),
    ("full-depth SmolLM2 (30 layers)", "full-depth (teacher)"),
]
PEERS_ROWS = [
    ("edgecut N=1", "edgecut N=1"),
    ("edgecut N=1, int8", "edgecut N=1, int8"),
    ("edgecut N=2", "edgecut N=2"),
    ("edgecut N=2, int8", "edgecut N=2, int8"),
    ("edgecut N=2 distilled from MiniLM¹", "edgecut N=2 from MiniLM"),
    ("edgecut N=2 distilled from the full model", "edgecut N=2 from full"),
    ("edgecut N=4", "edgecut N=4"),
    ("edgecut N=8", "edgecut N=8"),
    ("all-MiniLM-L6-v2 fine-tuned (cls)", "all-MiniLM-L6-v2 (cls)"),
    ("TF-IDF + logistic regression", "TF-IDF + logistic regression"),
    ("model2vec (from MiniLM)", "model2vec (from MiniLM)"),
    ("fastText", "fastText (bigrams)"),
    ("full-depth SmolLM2 (30 layers)", "full-depth (teacher)"),
]
DATASETS = ("rotten-tomatoes", "bbc-news")
FULL_DEPTH = "full-depth (teacher)"


def load_result(name: str) -> dict:
    """A results JSON of benchmarks/results by file name (the generated pages read nothing else)."""
    return json.loads((RESULTS / name).read_text(encoding="utf-8"))


def _rows(record: dict) -> dict[str, dict]:
    return {r["name"]: r for r in record["table"]}


def _table_with_depths(data: str) -> dict[str, dict]:
    """The peers table's rows and the depth curve's (N=4, N=8); a row both hold is the peers table's."""
    depth = RESULTS / f"curve-depth-{data}.json"
    return (_rows(load_result(depth.name)) if depth.is_file() else {}) | _rows(load_result(f"peers-{data}.json"))


def _acc(row: dict | None) -> str:
    if row is None:
        return "–"
    seeds = "" if row["seeds"] >= 3 else f" ({row['seeds']} seed{'s' if row['seeds'] > 1 else ''})"
    return f"{row['accuracy_mean'] * 100:.1f} % ± {row['accuracy_sd'] * 100:.1f}{seeds}"


def _latency(row: dict) -> str:
    ms = row.get("p50_ms")
    return "untimed (measured on a GPU machine)" if ms is None or ms != ms else f"{ms:.2f} ms"


def _bold_best(cells: list[str], values: list[float | None]) -> list[str]:
    """Bold the highest value's cell (ties: every one of them)."""
    known = [v for v in values if v is not None]
    best = max(known) if known else None
    return [
        f"**{c}**" if v is not None and round(v, 3) == round(best, 3) else c for c, v in zip(cells, values, strict=True)
    ]


def headline() -> str:
    """README: rotten-tomatoes, the cuts against the tuned peers (accuracy, latency, size)."""
    rows = _rows(load_result("peers-rotten-tomatoes.json"))  # not the depth curve: its N=4 was timed beside a benchmark
    lines = ["| model | accuracy | latency per text | MB |", "|---|---|---|---|"]
    for label, name in HEADLINE_ROWS:
        r = rows.get(name)
        # a peer shows only when its runs recorded the one rule's choice (the heading promises tuned peers)
        if r is not None and (name.startswith("edgecut") or name == FULL_DEPTH or r.get("tuning")):
            lines.append(f"| {label} | {_acc(r)} | {_latency(r)} | {r['mb']:.1f} |")
    return "\n".join(lines)


def peers_summary() -> str:
    """docs/results.md: each row's mean ± sd on both data sets (full training set); the best small model in bold."""
    tables = {d: _table_with_depths(d) for d in DATASETS}
    picked = [(label, name) for label, name in PEERS_ROWS if any(name in t for t in tables.values())]
    columns = {
        d: _bold_best(
            [_acc(t.get(name)) for _, name in picked],
            [t[name]["accuracy_mean"] if name in t and name != FULL_DEPTH else None for _, name in picked],
        )
        for d, t in tables.items()
    }
    lines = ["| model | " + " | ".join(DATASETS) + " |", "|---|" + "---|" * len(DATASETS)]
    for i, (label, _) in enumerate(picked):
        lines.append(f"| {label} | " + " | ".join(columns[d][i] for d in DATASETS) + " |")
    return "\n".join(lines)


def size_summary() -> str:
    """docs/results.md: per training size, the best cut against the best tuned peer (the winner in bold)."""
    records = {d: load_result(f"curve-size-{d}.json") for d in DATASETS if (RESULTS / f"curve-size-{d}.json").is_file()}
    sizes: list[str] = []
    for record in records.values():
        sizes += [s for s in record["answer"]["cells"] if s not in sizes]
    sizes.sort(key=lambda s: float("inf") if s == "full" else int(s))
    lines = ["| rows per class | " + " | ".join(sizes) + " |", "|---|" + "---|" * len(sizes)]
    for data, record in records.items():
        cells = record["answer"]["cells"]
        seeds = {(r["size"], r["name"]): r["seeds"] for r in record["table"]}
        cut, peer = [], []
        for size in sizes:
            c = cells.get(size)
            if c is None:
                cut.append("–")
                peer.append("–")
                continue
            n = seeds.get((size, c["best_cut"]), 3)
            few = f", {n} seed{'s' if n > 1 else ''}" if n < 3 else ""
            cut_text = f"{c['cut_accuracy'] * 100:.1f} % ({c['best_cut'].removeprefix('edgecut ')}{few})"
            peer_text = f"{c['peer_accuracy'] * 100:.1f} % ({_short(c['best_peer'])})"
            cut.append(f"**{cut_text}**" if c["cut_wins"] else cut_text)
            peer.append(peer_text if c["cut_wins"] else f"**{peer_text}**")
        lines += [f"| {data}: best cut | " + " | ".join(cut) + " |"]
        lines += [f"| {data}: best tuned peer | " + " | ".join(peer) + " |"]
        rates = [learning_rate_cell([r for r in record["table"] if r["size"] == size]) for size in sizes]
        lines += [f"| {data}: neural rows' learning rate | " + " | ".join(rates) + " |"]
    return "\n".join(lines)


RATE_RULES = {"grid": "picked on validation", "family": "the family's", "unrecorded": "not recorded"}


def learning_rate_cell(rows: list[dict]) -> str:
    """How the learning rates of a size's neural rows (the cuts, MiniLM) were chosen, from their tuning cells:
    "picked on validation" (`--lr auto`'s grid), "the family's", "not recorded", or several of them joined."""
    rules = set()
    for row in rows:
        if row["name"].startswith("edgecut") or "MiniLM-L6" in row["name"]:
            parts = row.get("tuning", "").split("; ")
            rules |= {"unrecorded" if not p else "grid" if " of {" in p else "family" for p in parts}
    return " / ".join(RATE_RULES[r] for r in RATE_RULES if r in rules) or "–"


def _short(name: str) -> str:
    return {"TF-IDF + logistic regression": "TF-IDF", "fastText (bigrams)": "fastText"}.get(
        name, name.replace("all-MiniLM-L6-v2 (cls)", "MiniLM").replace(" (from MiniLM)", "")
    )


BUILDERS: dict[str, Callable[[], str]] = {
    "headline": headline,
    "peers-summary": peers_summary,
    "size-summary": size_summary,
}
PAGES = {"README.md": ["headline"], "docs/results.md": ["peers-summary", "size-summary"]}


def fill(text: str, page: str = "page") -> str:
    """The page with every generated block rewritten; a block without a builder is a ValueError."""

    def build(match: re.Match[str]) -> str:
        name = match["name"]
        if name not in BUILDERS:
            raise ValueError(f"{page}: block {name!r} has no builder (known: {', '.join(BUILDERS)})")
        return f"{match[1]}{BUILDERS[name]()}\n{match[4]}"

    return BLOCK.sub(build, text)


def pages() -> dict[str, str]:
    """Each page holding blocks, path relative to the repository -> its text with the blocks filled."""
    out = {}
    for page, expected in PAGES.items():
        text = (ROOT / page).read_text(encoding="utf-8")
        found = [m["name"] for m in BLOCK.finditer(text)]
        if found != expected:
            raise ValueError(f"{page}: generated blocks {found}, expected {expected}")
        out[page] = fill(text, page)
    return out
