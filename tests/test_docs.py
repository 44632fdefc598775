"""The front page and the manual: short, linked, generated from the code and the measurement files, and
every runnable example in it runs."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT, load_script

DOCS = ROOT / "docs"
RUNS = "<!-- runs -->"
# What no tracked file may carry: tracker numbers, and the wording of a development log.
DEV_LOG = re.compile(r"\bissues? #?\d+|\bsessions? \d+|\blease[sd]?\b|(?<![\w/])#\d+\b(?!\.\d)", re.IGNORECASE)


@pytest.fixture(scope="module")
def docs_gen():
    return load_script("scripts/docs_gen.py")


def markdown_links(text: str) -> list[str]:
    return re.findall(r"\]\(([^)\s]+)\)", text)


def test_readme_is_a_front_page_whose_links_resolve():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= 200
    local = [link for link in markdown_links(readme) if not re.match(r"[a-z]+://", link)]
    missing = [link for link in local if not (ROOT / link.split("#", 1)[0]).exists()]
    assert not missing, missing
    linked = {link.split("#", 1)[0] for link in local}
    # A newcomer's four questions, each one click from the front page to a page that answers it.
    answers = {
        "docs/exporting.md": "## Your own data",
        "docs/ci.md": "## GitHub Actions",
        "docs/serving.md": "## Triton Inference Server",
        "docs/sweeps.md": "## Which N to choose",
    }
    for page, heading in answers.items():
        assert page in linked, page
        assert heading in (ROOT / page).read_text(encoding="utf-8"), (page, heading)


def test_generated_pages_match_the_code_and_the_measurement_files(docs_gen):
    """Regenerate every page in memory: a committed page that differs is stale (run scripts/docs_gen.py)."""
    stale = [name for name, text in docs_gen.pages().items() if (DOCS / name).read_text(encoding="utf-8") != text]
    assert not stale, f"stale pages {stale}: run .venv/bin/python scripts/docs_gen.py"


def test_the_summary_tables_in_hand_written_pages_are_the_generated_ones(docs_gen):
    """README.md's headline and docs/results.md's summaries sit between generated-block markers: a number typed
    there by hand, or a measurement file changed without regenerating, makes the page differ."""
    blocks = load_script("scripts/docs_blocks.py")
    filled = blocks.pages()
    stale = [name for name, text in filled.items() if (ROOT / name).read_text(encoding="utf-8") != text]
    assert not stale, f"stale generated blocks in {stale}: run .venv/bin/python scripts/docs_gen.py"
    readme = filled["README.md"]
    assert "<!-- generated: headline -->\n| model | accuracy |" in readme
    tampered = readme.replace("| edgecut N=1, int8 | ", "| edgecut N=1, int8 | 99.9 % typed by hand | ")
    assert tampered != readme and blocks.fill(tampered) == readme  # the block is rewritten from the JSON
    with pytest.raises(ValueError, match="no builder"):
        blocks.fill("<!-- generated: nonsense -->\nx\n<!-- /generated -->\n")


def test_the_size_summary_says_how_the_neural_rows_learning_rate_was_chosen():
    """A size column whose cuts and MiniLM all picked their rate on validation says so; one where some kept the
    family's rate, or did not record it, says that too (the peers' grid points do not count)."""
    blocks = load_script("scripts/docs_blocks.py")
    auto = "lr 0.001 of {0.0001, 0.0005, 0.001} (validation), epoch 2/2 (validation)"
    family = "lr 5e-05 (encoder rule), epoch 2/2 (validation)"
    tfidf = {"name": "TF-IDF + logistic regression", "tuning": "C=3, word 1-2-grams (validation)"}
    cut, minilm = {"name": "edgecut N=1", "tuning": auto}, {"name": "all-MiniLM-L6-v2 (cls)", "tuning": auto}
    assert blocks.learning_rate_cell([tfidf, cut, minilm]) == "picked on validation"
    assert blocks.learning_rate_cell([cut, minilm | {"tuning": family}]) == "picked on validation / the family's"
    assert blocks.learning_rate_cell([cut | {"tuning": ""}, minilm | {"tuning": family}]) == (
        "the family's / not recorded"
    )
    assert blocks.learning_rate_cell([cut | {"tuning": f"{auto} (x2); {family} (x1)"}]) == (
        "picked on validation / the family's"
    )
    assert blocks.learning_rate_cell([tfidf]) == "–"


def test_the_cli_reference_names_every_command_and_option(docs_gen):
    import typer

    from edgecut.cli import app

    page = docs_gen.cli_page()
    command = typer.main.get_command(app)
    for name, sub in command.commands.items():
        assert f"## `edgecut {name}`" in page
        for param in sub.params:
            for opt in param.opts:
                if opt.startswith("-"):
                    assert f"`{opt}" in page or f" {opt}" in page, (name, opt)


def test_results_pages_cover_every_measurement_file_and_draw_their_plots(docs_gen, tmp_path):
    pages = docs_gen.pages(plots=tmp_path)
    results = "\n".join(text for name, text in pages.items() if name.startswith("results/"))
    files = sorted(p.name for p in (ROOT / "benchmarks" / "results").iterdir() if p.suffix in (".json", ".jsonl"))
    assert files and not [f for f in files if f"benchmarks/results/{f}" not in results]
    for name, text in pages.items():
        for image in re.findall(r"!\[[^\]]*\]\(([^)]+\.png)\)", text):
            if name == "results/grid.md":  # the sweep directories' own plots, drawn by `edgecut sweep`
                assert (DOCS / "results" / image).is_file(), image
            else:
                assert (tmp_path / Path(name).parent / image).stat().st_size > 1000, image
    # Every table says where its numbers come from; a file without a date says so instead of inventing one.
    assert results.count("*Source: `") >= len(files)
    assert "Date: not recorded" in results and "Date: 2026-11-27" in results


def test_a_measurement_file_without_provenance_says_not_recorded(docs_gen):
    line = docs_gen.provenance("x.json", {"rows": []})
    unknown = "Machine: not recorded. Date: not recorded. Versions: not recorded."
    assert line == f"*Source: `benchmarks/results/x.json`. {unknown}*"
    line = docs_gen.provenance("y.json", {"machine": {"cpu": "arm64", "onnxruntime": "1.32.0"}, "date": "2026-01-02"})
    assert "Machine: cpu arm64." in line and "Date: 2026-01-02." in line and "Versions: onnxruntime 1.32.0." in line


def test_the_manifest_reference_covers_every_key_an_export_writes(tiny_artifact):
    import json

    from edgecut.artifacts.manifest import FIELDS, MANIFEST

    written = json.loads((tiny_artifact / MANIFEST).read_text())
    assert not [key for key in written if key not in FIELDS], (
        "document the new key in edgecut/artifacts/manifest.py FIELDS"
    )


def runnable_blocks() -> list[tuple[str, str]]:
    """(page, script) for every fenced bash block right after a `<!-- runs -->` line in docs/."""
    found = []
    for page in sorted(DOCS.rglob("*.md")):
        text = page.read_text(encoding="utf-8")
        for match in re.finditer(re.escape(RUNS) + r"\n```(?:bash|console)\n(.*?)```", text, re.DOTALL):
            found.append((page.relative_to(DOCS).as_posix(), match.group(1)))
    return found


def test_runnable_blocks_are_found():
    pages = {page for page, _ in runnable_blocks()}
    assert {"getting-started.md", "ci.md", "serving.md", "targets.md", "errors.md"} <= pages
    # A marker not followed by a bash block would silently run nothing.
    markers = sum(p.read_text(encoding="utf-8").count(RUNS) for p in DOCS.rglob("*.md"))
    assert markers == len(runnable_blocks())


@pytest.mark.parametrize(("page", "script"), runnable_blocks(), ids=lambda v: v if v.endswith(".md") else "")
def test_the_manual_s_examples_run(page, script, tiny_artifact, tmp_path):
    """Each runnable block, as a user would paste it, in a fresh directory holding a tiny `edgecut-out`."""
    shutil.copytree(tiny_artifact, tmp_path / "edgecut-out")
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, f"{page}:\n{script}\n{done.stdout}\n{done.stderr}"


def test_no_tracked_file_carries_tracker_numbers_or_a_development_log():
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    hits = []
    for name in files:
        path = ROOT / name
        # Binaries, and web assets whose CSS colours (a hash and three digits) read like tracker numbers.
        if path.suffix in (".png", ".npz", ".onnx", ".whl", ".html", ".css", ".js", ".mjs") or not path.is_file():
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        hits += [f"{name}:{n}: {line.strip()}" for n, line in enumerate(text.splitlines(), 1) if DEV_LOG.search(line)]
    assert not hits, "\n".join(hits[:20])
