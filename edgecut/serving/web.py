"""`edgecut deploy --web`: a static page that classifies text entirely in the browser.

    DIR/
    ├── index.html, app.js, prompt.mjs   # the page (edgecut/serving/web_template); prompt.mjs = PromptFormat.encode
    ├── edgecut-web.json                 # labels, prompt, pad id, file names, versions (from the manifest)
    ├── model.onnx.gz, tokenizer.json.gz # the artifact's graph and tokenizer, gzipped
    └── vendor/
        ├── onnxruntime-web/  ort.wasm.min.mjs, ort-wasm-simd-threaded.mjs, ort-wasm-simd-threaded.wasm.gz, LICENSE
        └── tokenizers/       tokenizers.min.mjs, LICENSE

The JavaScript libraries are the ones pinned in the checkout's web/package-lock.json (`npm ci` in web/,
done by scripts/setup.sh), or a node_modules named by EDGECUT_WEB_MODULES; they are copied into DIR so the
page needs no CDN and works offline from any static file server. The three large files are stored gzipped
and inflated by the browser (DecompressionStream), which keeps a trimmed int8 N=1 page under 15 MB on disk
and on the wire without any server configuration.

Before anything is written, Node runs the page's own prompt code (prompt.mjs) with the vendored tokenizer on
probe texts and the demonstrations, and the ids must equal Python's `PromptFormat.encode_with`: a tokenizer
the JavaScript library reproduces differently is refused, naming its type.
"""

from __future__ import annotations

import contextlib
import functools
import gzip
import http.server
import json
import os
import random
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from edgecut import __version__
from edgecut.errors import ArtifactError, EdgecutError, OutputExistsError

TEMPLATE = Path(__file__).parent / "web_template"
PAGE_FILES = ("index.html", "app.js", "prompt.mjs")
CONFIG = "edgecut-web.json"
MODULES_ENV = "EDGECUT_WEB_MODULES"
INSTALL = "cd web && npm ci (in the edgecut checkout; scripts/setup.sh does it)"
# Exactly the versions web/package-lock.json pins: the page was tested with these.
ORT_WEB = ("onnxruntime-web", "1.30.0")
TOKENIZERS_JS = ("@huggingface/tokenizers", "0.2.0")
ORT_DIR, TOKENIZERS_DIR = "vendor/onnxruntime-web", "vendor/tokenizers"
# The WASM-only build and its one SIMD+threads variant (no WebGPU/WebGL/JSEP: they would double the weight).
ORT_FILES = ("dist/ort.wasm.min.mjs", "dist/ort-wasm-simd-threaded.mjs")
ORT_WASM = "dist/ort-wasm-simd-threaded.wasm"
TOKENIZERS_FILES = ("dist/tokenizers.min.mjs",)
# The npm package of onnxruntime-web ships no licence file; its package.json says MIT, the licence of
# the onnxruntime repository, whose text this is.
ORT_LICENSE = """MIT License

Copyright (c) Microsoft Corporation

Permission is hereby granted, free of charge, to any person obtaining a copy
of this software and associated documentation files (the "Software"), to deal
in the Software without restriction, including without limitation the rights
to use, copy, modify, merge, publish, distribute, sublicense, and/or sell
copies of the Software, and to permit persons to whom the Software is
furnished to do so, subject to the following conditions:

The above copyright notice and this permission notice shall be included in all
copies or substantial portions of the Software.

THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER
LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE
SOFTWARE.
"""
# Component types @huggingface/tokenizers 0.2.0 implements (its from_config switches).
JS_TYPES = {
    "model": {"BPE", "WordPiece", "Unigram"},
    "normalizer": {"BertNormalizer", "Precompiled", "Sequence", "Replace", "NFC", "NFD", "NFKC", "NFKD", "Strip"}
    | {"StripAccents", "Lowercase", "Prepend"},
    "pre_tokenizer": {"BertPreTokenizer", "Sequence", "Whitespace", "WhitespaceSplit", "Metaspace", "ByteLevel"}
    | {"Split", "Punctuation", "Digits", "Replace", "FixedLength"},
    "post_processor": {"TemplateProcessing", "ByteLevel", "BertProcessing", "RobertaProcessing", "Sequence"},
    "decoder": {"ByteLevel", "WordPiece", "Metaspace", "BPEDecoder", "CTC", "Sequence", "Replace", "Fuse", "Strip"}
    | {"ByteFallback"},
}
# Texts the deploy-time probe encodes in Node and Python; the demonstrations and a text longer than any
# max_length (so the cut is probed too) are added.
PROBES = (
    "",
    "a",
    "It's 2024: 3.5/10, $12 (ugh)!",
    "  two  leading spaces\tand a tab\nand a newline\r\n",
    "Amélie's café naïveté — “quoted” façade, e\u0301 combining",
    "emoji 🎉🎬 👍🏽 👨‍👩‍👧‍👦 🇫🇷",
    "中文测试，标点。 日本語のテキスト 한국어 ภาษาไทย हिन्दी",
    "עברית שלום مرحبا بالعالم",
    "NUL\x00and controls \x01\x7f zero\u200bwidth \ufeff",
    "{text} {label} <|endoftext|> [CLS] </s>",
    "ünïcödé ß ﬁ Ǆ " * 40,
)


# Headless Chromium for the tests and the benchmark: no GPU, and no background connections (updates, sync,
# QUIC probes), which a closed network refuses and which would be requests the offline page did not make.
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


class WebToolsMissingError(EdgecutError):
    """The pinned JavaScript libraries are not installed where edgecut looks for them."""


@dataclass(frozen=True)
class WebSite:
    path: Path
    files: dict[str, int]  # file -> bytes, as served
    tokenizer: str  # e.g. "BPE (ByteLevel pre-tokenizer)"
    probed: int  # texts whose ids Node and Python agreed on (0: Node missing, not probed)

    @property
    def weight(self) -> int:
        return sum(self.files.values())


def modules_dir() -> Path:
    """node_modules with the pinned libraries: $EDGECUT_WEB_MODULES, else web/node_modules of this checkout."""
    env = os.environ.get(MODULES_ENV)
    return Path(env) if env else Path(__file__).resolve().parents[2] / "web" / "node_modules"


def check_modules(modules: Path) -> dict[str, str]:
    """{package: version} of the two libraries, refused unless they are the pinned versions.

    Raises:
        WebToolsMissingError: missing or other versions (the message gives the install command).
    """
    versions = {}
    for name, pinned in (ORT_WEB, TOKENIZERS_JS):
        meta = modules / name / "package.json"
        try:
            version = json.loads(meta.read_text(encoding="utf-8"))["version"]
        except (OSError, ValueError, KeyError):
            raise WebToolsMissingError(
                f"{name} is not installed in {modules}: run `{INSTALL}`, or set {MODULES_ENV} to a node_modules "
                f"holding {ORT_WEB[0]} {ORT_WEB[1]} and {TOKENIZERS_JS[0]} {TOKENIZERS_JS[1]}"
            ) from None
        if version != pinned:
            raise WebToolsMissingError(f"{meta} is version {version}, the page is built for {pinned}: run `{INSTALL}`")
        versions[name] = version
    return versions


def check_web_tokenizer(tokenizer: dict) -> str:
    """A description of the tokenizer, or UnsupportedTokenizerError naming a component the JS library lacks."""
    from edgecut.graph.text_graph import UnsupportedTokenizerError

    def types(node: dict | None) -> list[str]:
        if not node:
            return []
        inner = node.get("normalizers") or node.get("pretokenizers") or node.get("processors") or node.get("decoders")
        return [node.get("type", "?")] + [t for child in inner or [] for t in types(child)]

    model_type = tokenizer.get("model", {}).get("type") or ("BPE" if "merges" in tokenizer.get("model", {}) else "?")
    for part, found in (("model", [model_type]),) + tuple(
        (part, types(tokenizer.get(part))) for part in ("normalizer", "pre_tokenizer", "post_processor", "decoder")
    ):
        for kind in found:
            if kind not in JS_TYPES[part]:
                raise UnsupportedTokenizerError(
                    f"the artifact's tokenizer has a {kind} {part.replace('_', '-')}, which {TOKENIZERS_JS[0]} "
                    f"{TOKENIZERS_JS[1]} does not implement: the page cannot tokenize as Python does; "
                    "serve it with `edgecut predict` or `deploy --triton` instead"
                )
    pre = types(tokenizer.get("pre_tokenizer"))
    return f"{model_type}" + (f" ({'/'.join(dict.fromkeys(pre))} pre-tokenizer)" if pre else "")


def node_prompt_ids(
    tokenizer_json: Path, prompt: dict, texts: list[str], modules: Path, node: str = "node"
) -> list[dict] | None:
    """What the page's prompt.mjs gives for `texts` under Node ([{ids, truncated}]); None without Node.

    Raises:
        EdgecutError: Node ran and failed (the library cannot even load the tokenizer).
    """
    exe = shutil.which(node)
    if exe is None:
        return None
    lib = modules / TOKENIZERS_JS[0] / TOKENIZERS_FILES[0]
    with tempfile.TemporaryDirectory() as tmp:
        request = Path(tmp) / "request.json"
        request.write_text(json.dumps({"tokenizer": str(tokenizer_json), "prompt": prompt, "texts": texts}))
        run = subprocess.run(
            [exe, str(TEMPLATE / "probe.mjs"), str(lib), str(request)], capture_output=True, text=True, timeout=600
        )
    if run.returncode != 0:
        last = (run.stderr.strip().splitlines() or ["no message"])[-1]
        raise EdgecutError(f"{TOKENIZERS_JS[0]} cannot run the artifact's tokenizer in Node ({last})")
    return json.loads(run.stdout)


# Code point ranges the random probes mix: Latin and its accents, Greek, Cyrillic, Hebrew, Arabic, Devanagari,
# Thai, kana, CJK, Hangul, emoji, combining marks and joiners. A JavaScript tokenizer that differs on a rare
# character (a newer Unicode version's, a combining mark after a CJK one) is found here, not by a user.
_PROBE_RANGES = (
    (0x20, 0x7F),
    (0xA0, 0x250),
    (0x300, 0x370),
    (0x370, 0x400),
    (0x400, 0x500),
    (0x590, 0x600),
    (0x600, 0x700),
    (0x900, 0x980),
    (0xE00, 0xE5C),
    (0x3040, 0x3100),
    (0x4E00, 0x4F00),
    (0xAC00, 0xAC80),
    (0x1F300, 0x1F380),
    (0x1F600, 0x1F650),
    (0x200B, 0x2010),
)
RANDOM_PROBES = 400


def random_probes(n: int = RANDOM_PROBES, seed: int = 0) -> list[str]:
    """`n` seeded texts of 1 to 60 characters drawn from `_PROBE_RANGES`, spaces among them."""
    rng = random.Random(seed)
    chars = [chr(c) for lo, hi in _PROBE_RANGES for c in range(lo, hi)] + [" "] * 200
    return ["".join(rng.choice(chars) for _ in range(rng.randint(1, 60))) for _ in range(n)]


def probe_texts(prompt: dict) -> list[str]:
    long = " ".join(["a long review that goes on"] * (int(prompt["max_length"]) // 2 + 8))
    demos = [d["text"] for d in prompt.get("demonstrations", [])]
    return [*PROBES, *demos, long, "日本語 " * prompt["max_length"], *random_probes()]


def deploy_web(artifact: str | Path, out: str | Path, force: bool = False) -> WebSite:
    """Check the artifact and the JS libraries, probe the tokenizer in Node, then write the static site.

    Raises:
        ArtifactError: the artifact fails an integrity check, or its graph has external data.
        UnsupportedTokenizerError: the JS tokenizer lacks a component or gives other ids than Python.
        WebToolsMissingError: the pinned npm packages are not installed.
        OutputExistsError: DIR exists (without force, or it is not a page edgecut wrote).
    """
    from edgecut.artifacts.artifact import check_destination, file_starts_with, staging
    from edgecut.artifacts.check import integrity_checks
    from edgecut.artifacts.manifest import TOKENIZER, read_manifest
    from edgecut.graph.text_graph import UnsupportedTokenizerError
    from edgecut.model.prompt import PromptFormat
    from edgecut.runtime import load_tokenizer

    artifact, out = Path(artifact), Path(out)
    manifest = read_manifest(artifact)
    for r in integrity_checks(artifact):
        if r.passed is False:
            raise ArtifactError(f"{artifact} is broken ({r.name}: {r.detail}): run `edgecut check {artifact}`")
    model_file = manifest.model_file
    extra = [f for f in manifest.files if f.startswith(model_file + ".") or f.endswith(".data")]
    if extra:
        raise ArtifactError(
            f"{model_file} keeps its weights in {', '.join(extra)}: the page loads one file; "
            "re-export without external data (models under 2 GB)"
        )
    destination = dict(protected=[artifact], is_replaceable=file_starts_with(CONFIG, '{\n  "written_by": "edgecut'))
    if out.exists() and not force:
        raise OutputExistsError(f"{out} already exists: choose another directory or pass --force to replace it")
    check_destination(out, force, **destination)

    tokenizer_path = artifact / TOKENIZER
    description = check_web_tokenizer(json.loads(tokenizer_path.read_text(encoding="utf-8")))
    modules = modules_dir()
    versions = check_modules(modules)
    prompt = manifest["prompt"]
    texts = probe_texts(prompt)
    js = node_prompt_ids(tokenizer_path, prompt, texts, modules)
    if js is not None:
        tokenizer, prompt_format = load_tokenizer(tokenizer_path), PromptFormat.from_dict(prompt)
        python = [prompt_format.encode_with(tokenizer, t) for t in texts]
        for text, got, (ids, cut) in zip(texts, js, python, strict=True):
            if got["ids"] != ids or got["truncated"] != cut:
                raise UnsupportedTokenizerError(
                    f"{TOKENIZERS_JS[0]} {TOKENIZERS_JS[1]} encodes the prompt of {text[:40]!r} differently from "
                    f"Python's tokenizers ({description} tokenizer): the page would classify other tokens; "
                    "serve this artifact with `edgecut predict` or `deploy --triton` instead"
                )

    with staging(out, force, **destination) as tmp:
        for name in PAGE_FILES:
            shutil.copy2(TEMPLATE / name, tmp / name)
        _vendor(modules, tmp)
        _gzip(manifest.model_path, tmp / f"{Path(model_file).name}.gz")
        _gzip(tokenizer_path, tmp / f"{TOKENIZER}.gz")
        config = {
            "written_by": f"edgecut {__version__} deploy --web",
            "labels": manifest["labels"],
            "prompt": prompt,
            "pad_token_id": manifest["pad_token_id"],
            "model": f"{Path(model_file).name}.gz",
            "tokenizer": f"{TOKENIZER}.gz",
            "wasm": f"{ORT_DIR}/{Path(ORT_WASM).name}.gz",
            "tokenizer_type": description,
            "precision": manifest.get("precision"),
            # The directory's name only: the page is public, the local path is not the visitor's business.
            "source": {"artifact": artifact.resolve().name, "created": manifest.get("created")},
            "libraries": versions,
        }
        (tmp / CONFIG).write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    files = {p.relative_to(out).as_posix(): p.stat().st_size for p in sorted(out.rglob("*")) if p.is_file()}
    return WebSite(out, files, description, len(texts) if js is not None else 0)


def _gzip(src: Path, dst: Path) -> None:
    # mtime=0: the same artifact gives byte-identical files.
    dst.write_bytes(gzip.compress(src.read_bytes(), compresslevel=9, mtime=0))


def _vendor(modules: Path, site: Path) -> None:
    ort, tok = modules / ORT_WEB[0], modules / TOKENIZERS_JS[0]
    (site / ORT_DIR).mkdir(parents=True)
    (site / TOKENIZERS_DIR).mkdir(parents=True)
    for name in ORT_FILES:
        shutil.copy2(ort / name, site / ORT_DIR / Path(name).name)
    _gzip(ort / ORT_WASM, site / ORT_DIR / f"{Path(ORT_WASM).name}.gz")
    (site / ORT_DIR / "LICENSE").write_text(ORT_LICENSE, encoding="utf-8")
    for name in TOKENIZERS_FILES:
        shutil.copy2(tok / name, site / TOKENIZERS_DIR / Path(name).name)
    shutil.copy2(tok / "LICENSE", site / TOKENIZERS_DIR / "LICENSE")


class _Handler(http.server.SimpleHTTPRequestHandler):
    """Static files with the headers that make the page cross-origin isolated (WASM threads need it)."""

    extensions_map = {**http.server.SimpleHTTPRequestHandler.extensions_map, ".mjs": "text/javascript"}
    isolated = True

    def end_headers(self) -> None:
        if self.isolated:
            self.send_header("Cross-Origin-Opener-Policy", "same-origin")
            self.send_header("Cross-Origin-Embedder-Policy", "require-corp")
        self.send_header("Cache-Control", "no-store")
        super().end_headers()

    def log_message(self, format: str, *args) -> None:  # noqa: A002 (the base class's name)
        pass


class _PlainHandler(_Handler):
    isolated = False


@contextlib.contextmanager
def serve(directory: Path, host: str = "127.0.0.1", port: int = 0, isolated: bool = True) -> Iterator[str]:
    """Serve `directory` (and nothing else) on `host`; yields the page's URL. For tests and benchmarks.

    isolated=False leaves out the COOP/COEP headers, as a plain static server does (one WASM thread).
    """
    handler = functools.partial(_Handler if isolated else _PlainHandler, directory=str(directory))
    server = http.server.ThreadingHTTPServer((host, port), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://{host}:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


if __name__ == "__main__":  # python -m edgecut.serving.web DIR [PORT]: serve a page, cross-origin isolated
    import sys

    site, port = Path(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else 8000
    with serve(site, port=port) as url, contextlib.suppress(KeyboardInterrupt):
        print(f"serving {site} at {url} (Ctrl-C stops)")
        threading.Event().wait()
