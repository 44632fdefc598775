"""`edgecut deploy --web` without a browser: the site's files, its config, the refusals, and the page's own
prompt code (prompt.mjs, run by Node) against Python's PromptFormat.encode on 1,200 hard texts."""

from __future__ import annotations

import gzip
import json

import pytest
from artifact_helpers import copy_artifact, rehash
from typer.testing import CliRunner
from web_helpers import generated, require_node_modules

from edgecut.cli import app
from edgecut.runtime import ArtifactClassifier
from edgecut.serving import web

runner = CliRunner()


@pytest.fixture(scope="module")
def site(tiny_artifact, tmp_path_factory):
    require_node_modules()
    out = tmp_path_factory.mktemp("web") / "site"
    result = runner.invoke(app, ["deploy", str(tiny_artifact), "--web", str(out)])
    assert result.exit_code == 0, result.output
    return out, result.output


def test_site_holds_the_page_the_graph_and_the_pinned_libraries(site, tiny_artifact):
    out, output = site
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert files == sorted(
        [
            "index.html",
            "app.js",
            "prompt.mjs",
            "edgecut-web.json",
            "model.onnx.gz",
            "tokenizer.json.gz",
            "vendor/onnxruntime-web/ort.wasm.min.mjs",
            "vendor/onnxruntime-web/ort-wasm-simd-threaded.mjs",
            "vendor/onnxruntime-web/ort-wasm-simd-threaded.wasm.gz",
            "vendor/onnxruntime-web/LICENSE",
            "vendor/tokenizers/tokenizers.min.mjs",
            "vendor/tokenizers/LICENSE",
        ]
    )
    # The graph and tokenizer are the artifact's, byte for byte, once inflated.
    assert gzip.decompress((out / "model.onnx.gz").read_bytes()) == (tiny_artifact / "model.onnx").read_bytes()
    assert gzip.decompress((out / "tokenizer.json.gz").read_bytes()) == (tiny_artifact / "tokenizer.json").read_bytes()
    modules = web.modules_dir()
    wasm = (modules / "onnxruntime-web/dist/ort-wasm-simd-threaded.wasm").read_bytes()
    assert gzip.decompress((out / "vendor/onnxruntime-web/ort-wasm-simd-threaded.wasm.gz").read_bytes()) == wasm
    assert "MIT License" in (out / "vendor/onnxruntime-web/LICENSE").read_text()
    assert "Apache License" in (out / "vendor/tokenizers/LICENSE").read_text()

    config = json.loads((out / "edgecut-web.json").read_text())
    manifest = json.loads((tiny_artifact / "edgecut.json").read_text())
    assert config["labels"] == manifest["labels"] and config["prompt"] == manifest["prompt"]
    assert config["pad_token_id"] == manifest["pad_token_id"]
    assert config["libraries"] == {"onnxruntime-web": "1.30.0", "@huggingface/tokenizers": "0.2.0"}
    assert config["tokenizer_type"].startswith("BPE")
    # No CDN: every script the page imports is a file of the site.
    app_js = (out / "app.js").read_text()
    assert "http" not in app_js.replace("HTTP ", "") and "cdn" not in app_js.lower()
    assert "probe texts encode alike in Node and Python" in output


def test_prompt_mjs_encodes_as_prompt_format_on_1200_texts(tiny_artifact, tmp_path):
    """The page's prompt code in Node: ids and the truncated flag equal Python's for every text, including the
    demonstrations, non-Latin scripts, emoji, NUL, empty and texts far past max_length (cut)."""
    require_node_modules()
    clf = ArtifactClassifier(tiny_artifact)
    words = sorted({w for d in clf.prompt.demonstrations for w in d[0].split()} | {"great", "awful", "film"})
    texts = generated(1200, words)
    js = web.node_prompt_ids(tiny_artifact / "tokenizer.json", clf.manifest["prompt"], texts, web.modules_dir())
    assert js is not None
    python = [clf.encode(t) for t in texts]
    diverged = [
        t for t, got, (ids, cut) in zip(texts, js, python, strict=True) if (got["ids"], got["truncated"]) != (ids, cut)
    ]
    assert diverged == []
    assert sum(cut for _, cut in python) > 50  # the cut path ran, not only short prompts


def _expect_error(result, *needles):
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), result.output
    for needle in needles:
        assert needle in result.output, result.output


def test_deploy_needs_exactly_one_destination(tiny_artifact, tmp_path):
    _expect_error(runner.invoke(app, ["deploy", str(tiny_artifact)]), "--triton", "--web", "--mobile")
    both = ["deploy", str(tiny_artifact), "--web", str(tmp_path / "a"), "--mobile", str(tmp_path / "b")]
    _expect_error(runner.invoke(app, both), "exactly one")
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_missing_npm_packages_name_the_install_command(tiny_artifact, tmp_path, monkeypatch):
    monkeypatch.setenv(web.MODULES_ENV, str(tmp_path / "no-node-modules"))
    _expect_error(runner.invoke(app, ["deploy", str(tiny_artifact), "--web", str(tmp_path / "s")]), "npm ci")
    assert not (tmp_path / "s").exists()


def test_a_tokenizer_the_js_library_lacks_is_refused_by_type(tiny_artifact, tmp_path):
    art = copy_artifact(tiny_artifact, tmp_path / "art")
    tok = json.loads((art / "tokenizer.json").read_text())
    tok["pre_tokenizer"] = {"type": "UnicodeScripts"}  # a tokenizers component Tokenizers.js does not implement
    (art / "tokenizer.json").write_text(json.dumps(tok))
    rehash(art)
    _expect_error(runner.invoke(app, ["deploy", str(art), "--web", str(tmp_path / "s")]), "UnicodeScripts")
    assert not (tmp_path / "s").exists()


def test_ids_that_differ_in_node_are_refused(tiny_artifact, tmp_path, monkeypatch):
    """The deploy-time probe: one probe text whose JS ids differ from Python's refuses the whole page."""
    require_node_modules()
    real = web.node_prompt_ids

    def one_off(*args, **kwargs):
        out = real(*args, **kwargs)
        out[3]["ids"] = out[3]["ids"][:-1]
        return out

    monkeypatch.setattr(web, "node_prompt_ids", one_off)
    _expect_error(runner.invoke(app, ["deploy", str(tiny_artifact), "--web", str(tmp_path / "s")]), "BPE")
    assert not (tmp_path / "s").exists()


def test_existing_directory_needs_force_and_only_a_page_is_replaced(site, tiny_artifact, tmp_path):
    out, _ = site
    _expect_error(runner.invoke(app, ["deploy", str(tiny_artifact), "--web", str(out)]), "--force")
    other = tmp_path / "mine"
    other.mkdir()
    (other / "notes.txt").write_text("keep me")
    result = runner.invoke(app, ["deploy", str(tiny_artifact), "--web", str(other), "--force"])
    assert result.exit_code == 2 and (other / "notes.txt").read_text() == "keep me"
    assert runner.invoke(app, ["deploy", str(tiny_artifact), "--web", str(out), "--force"]).exit_code == 0


def test_triton_options_are_refused_with_web(tiny_artifact, tmp_path):
    result = runner.invoke(app, ["deploy", str(tiny_artifact), "--web", str(tmp_path / "s"), "--strings"])
    _expect_error(result, "--triton")
    assert not (tmp_path / "s").exists()


def test_a_graph_with_external_data_is_refused(tiny_artifact, tmp_path):
    """The page loads one file: weights kept beside the graph (models over 2 GB) cannot be served so."""
    require_node_modules()
    art = copy_artifact(tiny_artifact, tmp_path / "art")
    (art / "model.onnx.data").write_bytes(b"weights")
    rehash(art)
    _expect_error(runner.invoke(app, ["deploy", str(art), "--web", str(tmp_path / "s")]), "model.onnx.data")
    assert not (tmp_path / "s").exists()


@pytest.mark.slow
def test_minilm_wordpiece_is_refused_where_tokenizers_js_differs(tmp_path):
    """all-MiniLM-L6's uncased WordPiece: Tokenizers.js 0.2.0 gives other ids than Python's tokenizers for some
    rare characters (U+061D alone; some combining marks after CJK), which the deploy-time probe finds."""
    require_node_modules()
    art = tmp_path / "minilm"
    export = ["export", "-m", "all-minilm-l6-v2", "--setting", "cls", "--layers", "1", "--time-budget", "20"]
    result = runner.invoke(app, [*export, "--test-size", "100", "--per-class-cap", "50", "-o", str(art)])
    assert result.exit_code == 0, result.output
    _expect_error(runner.invoke(app, ["deploy", str(art), "--web", str(tmp_path / "s")]), "WordPiece")
    assert not (tmp_path / "s").exists()
