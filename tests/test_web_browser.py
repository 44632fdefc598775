"""The page of `edgecut deploy --web` in headless Chromium (Debian's, driven by Playwright), served from
127.0.0.1: the labels it shows equal `edgecut predict`'s, its prompt ids equal Python's, it makes no request
outside the loopback server. Marker `browser` (`pytest -m browser`, run by .ci/run)."""

from __future__ import annotations

import contextlib
import json
import os
import random
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import pytest
from typer.testing import CliRunner
from web_helpers import ODD, generated, require_node_modules

from edgecut.cli import app
from edgecut.runtime import ArtifactClassifier
from edgecut.serving import web

pytestmark = pytest.mark.browser
runner = CliRunner()
INSTALL = "apt-get install -y chromium && .venv/bin/pip install playwright (bash scripts/setup.sh does both)"
PAGE_LIMIT = 15_000_000


@pytest.fixture(scope="module")
def chromium():
    """Debian's Chromium under Playwright; SKIP with the install line where it is missing, but not in CI."""
    problem = None
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        problem = "the playwright Python package is missing"
    if problem is None and not Path(web.CHROMIUM).exists():
        problem = f"{web.CHROMIUM} is missing"
    if problem:
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the browser tests: {problem}")
        pytest.skip(f"{problem}: {INSTALL}")
    require_node_modules()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=web.CHROMIUM, args=list(web.CHROMIUM_FLAGS))
        yield browser
        browser.close()


@contextlib.contextmanager
def open_page(
    browser, site: Path, query: str = "", isolated: bool = True
) -> Iterator[tuple[object, list[str], list[str]]]:
    """The page served from 127.0.0.1 (only `site`), every request outside the loopback address aborted and
    recorded: yields (page, served URLs, blocked URLs)."""
    served: list[str] = []
    blocked: list[str] = []
    with web.serve(site, isolated=isolated) as url:
        context = browser.new_context()

        def route(r):
            host = urlparse(r.request.url).hostname
            if r.request.url.startswith(("data:", "blob:")) or host == "127.0.0.1":
                served.append(r.request.url)
                r.continue_()
            else:
                blocked.append(r.request.url)
                r.abort()

        context.route("**/*", route)
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(url + query)
        state = page.evaluate("window.edgecutReady")
        assert not errors, errors
        assert state["crossOriginIsolated"] is isolated and state["threads"] == (2 if isolated else 1)
        try:
            yield page, served, blocked
        finally:
            context.close()


def predict_cli(artifact: Path, texts: list[str], tmp_path: Path) -> list[dict]:
    """`edgecut predict --batch-size 1` (the page runs one text at a time too) on `texts`, as JSON records."""
    path = tmp_path / "texts.jsonl"
    path.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts), encoding="utf-8")
    result = runner.invoke(app, ["predict", str(artifact), "--file", str(path), "--batch-size", "1"])
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]


def near_tie(scores: dict[str, float], band: float) -> bool:
    """The two most likely classes are within `band` of each other: a rounding difference of band / 2 in each
    probability can tip the label."""
    top = sorted(scores.values(), reverse=True)
    return len(top) > 1 and top[0] - top[1] <= band


def compare(page_results: list[dict], texts: list[str], artifact: Path, tmp_path: Path, atol: float = 1e-4) -> None:
    """Ids equal Python's exactly; probabilities within `atol`; labels equal `edgecut predict`'s except on a near
    tie (within 2 x `atol`, where the probabilities' allowed difference can tip the label)."""
    clf = ArtifactClassifier(artifact)
    expected = predict_cli(artifact, texts, tmp_path)
    assert len(page_results) == len(texts) == len(expected)
    wrong_ids = [t[:40] for t, r in zip(texts, page_results, strict=True) if r["ids"] != clf.encode(t)[0]]
    assert wrong_ids == []
    wrong_labels = [
        (t[:40], r["label"], e["label"])
        for t, r, e in zip(texts, page_results, expected, strict=True)
        if r["label"] != e["label"] and not near_tie(e["scores"], 2 * atol)
    ]
    assert wrong_labels == []
    assert [r["truncated"] for r in page_results] == [e["truncated"] for e in expected]
    diff = max(
        abs(r["scores"][k] - e["scores"][k]) for r, e in zip(page_results, expected, strict=True) for k in e["scores"]
    )
    assert diff <= atol, f"probabilities differ by up to {diff:.2g}"


@pytest.fixture(scope="module")
def tiny_site(tiny_artifact, tmp_path_factory, chromium):
    out = tmp_path_factory.mktemp("web") / "site"
    result = runner.invoke(app, ["deploy", str(tiny_artifact), "--web", str(out)])
    assert result.exit_code == 0, result.output
    return out


def test_page_answers_as_predict_on_1200_texts(chromium, tiny_site, tiny_artifact, tmp_path):
    clf = ArtifactClassifier(tiny_artifact)
    words = sorted({w for d in clf.prompt.demonstrations for w in d[0].split()} | {"great", "awful", "film"})
    texts = generated(1200, words, seed=1)
    with open_page(chromium, tiny_site) as (page, served, blocked):
        results = page.evaluate("texts => classify(texts)", texts)
    compare(results, texts, tiny_artifact, tmp_path)
    assert sum(r["truncated"] for r in results) > 50
    assert blocked == [] and any(u.endswith("model.onnx.gz") for u in served)


def test_typing_into_the_box_shows_the_label(chromium, tiny_site, tiny_artifact, tmp_path):
    texts = ["film great fine the an", "awful bland is of", "日本語 😀 " * 80]
    expected = predict_cli(tiny_artifact, texts, tmp_path)
    with open_page(chromium, tiny_site) as (page, _, blocked):
        for text, e in zip(texts, expected, strict=True):
            page.fill("#text", "")
            page.evaluate("document.getElementById('label').textContent = ''")
            page.fill("#text", text)
            page.click("#classify")
            page.wait_for_function("document.getElementById('label').textContent.length > 0")
            assert page.inner_text("#label") == e["label"]
            assert ("text cut to fit" in page.inner_text("#detail")) == e["truncated"]
    assert blocked == []


def test_a_plain_static_server_runs_the_page_on_one_thread(chromium, tiny_site, tiny_artifact, tmp_path):
    """Without COOP/COEP headers (any static file server) the page is not cross-origin isolated: one thread,
    the same answers."""
    texts = ["film great fine the an", "awful bland is of", ""]
    with open_page(chromium, tiny_site, isolated=False) as (page, _, blocked):
        results = page.evaluate("texts => classify(texts)", texts)
    compare(results, texts, tiny_artifact, tmp_path)
    assert blocked == []


def test_trimmed_int8_smollm2_page_answers_as_predict_offline(chromium, tmp_path):
    """The real case: SmolLM2 cut to 1 layer, vocabulary trimmed to the task, int8; 1,000 rotten-tomatoes
    texts and the odd ones, labels as `edgecut predict`, a page under 15 MB that fetches nothing but its own files."""
    from edgecut.model.data import read_rows

    art = tmp_path / "art"
    export = ["export", "--layers", "1", "--vocab", "task", "--target", "cpu-int8", "--time-budget", "60"]
    export += ["--per-class-cap", "200", "--test-size", "200", "-o", str(art)]
    result = runner.invoke(app, export)
    assert result.exit_code == 0, result.output
    manifest = json.loads((art / "edgecut.json").read_text())
    assert manifest["precision"] == "int8" and manifest["vocabulary"]["vocab"] == "task"
    site = tmp_path / "site"
    result = runner.invoke(app, ["deploy", str(art), "--web", str(site)])
    assert result.exit_code == 0, result.output
    weight = sum(p.stat().st_size for p in site.rglob("*") if p.is_file())
    assert weight < PAGE_LIMIT, weight

    rows = read_rows("rotten-tomatoes")
    texts = [t for t, _ in random.Random(0).sample(rows, 1000)] + ODD
    with open_page(chromium, site) as (page, served, blocked):
        results = page.evaluate("texts => classify(texts)", texts)
    # int8 matrix products are WASM's own kernels in the page and x86's in Python: their rounding differs
    # (probabilities 0.004 to 0.026 apart, depending on the model the 60 s of training leave), the labels only
    # on a near tie.
    compare(results, texts, art, tmp_path, atol=0.05)
    assert blocked == [], blocked
    assert {Path(urlparse(u).path).name for u in served} >= {"model.onnx.gz", "tokenizer.json.gz", "app.js"}
