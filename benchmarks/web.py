"""The page of `edgecut deploy --web` in headless Chromium against onnxruntime in Python, on one machine.

For SmolLM2 cut to N=1 (rotten-tomatoes), fp32 and int8, with the whole vocabulary and trimmed to the
task (`--vocab task`), each exported with a short --time-budget (accuracy is not the point here):
- page weight: the bytes of the deployed directory (what a browser downloads; the big files are gzipped),
  and what they would be uncompressed;
- time to first answer: from navigation start to the first classified text (WASM and model download from
  127.0.0.1, inflating, session creation, tokenizer load, one run), per WASM thread count;
- per-text latency at batch size 1 on rotten-tomatoes texts: the page's `session.run` time and its whole
  per-text time (tokenizing included), with 1 and 2 WASM threads; onnxruntime in Python with 1 and 2
  intra-op threads on the same token ids;
- whether the graph runs in the browser at all, and the error where it does not.

    .venv/bin/python benchmarks/web.py --json benchmarks/results/web.json
    .venv/bin/python benchmarks/web.py --variants int8-task --texts 50 --json /tmp/web.json   # quick look
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

from edgecut.model.data import read_rows
from edgecut.runtime import ArtifactClassifier, pad_batch
from edgecut.serving import web
from edgecut.serving.mobile import graph_op_types

VARIANTS = {
    "fp32-all": ["--target", "cpu", "--vocab", "all"],
    "fp32-task": ["--target", "cpu", "--vocab", "task"],
    "int8-all": ["--target", "cpu-int8", "--vocab", "all"],
    "int8-task": ["--target", "cpu-int8", "--vocab", "task"],
}


def export(name: str, root: Path, budget: int) -> Path:
    """The variant's artifact under `root`, exported once (reused when it is there)."""
    out = root / name
    if (out / "edgecut.json").is_file():
        return out
    cmd = [sys.executable, "-m", "edgecut.cli", "export", "--layers", "1", *VARIANTS[name]]
    cmd += ["--time-budget", str(budget), "--per-class-cap", "200", "--test-size", "200", "-o", str(out)]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return out


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def percentiles(values: list[float]) -> dict[str, float]:
    return {"p50_ms": round(float(np.percentile(values, 50)), 3), "p90_ms": round(float(np.percentile(values, 90)), 3)}


def in_browser(browser, site: Path, texts: list[str], threads: int) -> dict:
    """One fresh page (no cache) with `threads` WASM threads: first answer, then every text at batch 1."""
    with web.serve(site) as url:
        context = browser.new_context()
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        try:
            page.goto(f"{url}?threads={threads}")
            first = page.evaluate("async t => { await classify([t]); return performance.now(); }", texts[0])
            state = page.evaluate("window.edgecutReady")
            timed = page.evaluate(
                """async texts => {
                    const start = performance.now();
                    const results = await classify(texts);
                    return { total: performance.now() - start, runs: results.map(r => r.ms) };
                }""",
                texts,
            )
        except Exception as e:  # the graph does not load or run in onnxruntime-web: that is the result
            return {"runs": False, "error": (str(e).strip().splitlines() or ["?"])[0][:300], "page_errors": errors}
        finally:
            context.close()
    return {
        "runs": True,
        "threads": state["threads"],
        "first_answer_ms": round(first, 1),
        "session_run": percentiles(timed["runs"]),
        "per_text_ms_with_tokenizing": round(timed["total"] / len(texts), 3),
    }


def graph_loads(browser, site: Path, graph: Path) -> dict:
    """Whether onnxruntime-web (WASM) creates a session for `graph` (copied into `site`), and its error."""
    (site / graph.name).write_bytes(graph.read_bytes())
    with web.serve(site) as url:
        context = browser.new_context()
        page = context.new_page()
        try:
            page.goto(url)
            page.evaluate("window.edgecutReady")
            error = page.evaluate(
                """async name => {
                    const bytes = new Uint8Array(await (await fetch(name)).arrayBuffer());
                    try { await window.edgecutOrt.InferenceSession.create(bytes); return null; }
                    catch (e) { return String(e.message || e); }
                }""",
                graph.name,
            )
        finally:
            context.close()
            (site / graph.name).unlink()
    ops = sorted(f"{d}:{o}" for d, o in graph_op_types(onnx.load(str(graph))) if d not in ("", "ai.onnx"))
    return {"graph": graph.name, "runs": error is None, "error": error and error[:300], "non_standard_ops": ops}


def in_python(artifact: Path, texts: list[str], threads: int) -> dict:
    """onnxruntime in this process, `threads` intra-op threads, batch 1, the same prompts."""
    clf = ArtifactClassifier(artifact)
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(clf.manifest.model_path), options, providers=["CPUExecutionProvider"])
    feeds = [pad_batch([clf.encode(t)[0]], clf.pad_id) for t in texts]
    for feed in feeds[:10]:
        session.run(["logits"], feed)
    runs = []
    start = time.perf_counter()
    for text in texts:
        feed = pad_batch([clf.encode(text)[0]], clf.pad_id)
        began = time.perf_counter()
        session.run(["logits"], feed)
        runs.append((time.perf_counter() - began) * 1e3)
    total = (time.perf_counter() - start) * 1e3
    return {"session_run": percentiles(runs), "per_text_ms_with_tokenizing": round(total / len(texts), 3)}


def markdown(record: dict) -> str:
    """The manual's table (docs/web.md includes it), generated from the JSON record."""

    def both(row: dict, side: str, key) -> str:
        cells = []
        for n in ("1", "2"):
            m = row[side][n]
            cells.append("fails" if side == "browser" and not m["runs"] else key(m))
        return " / ".join(cells)

    lines = [
        "| N=1 SmolLM2 | model | page (served, gzipped) | page uncompressed | first answer, 1 / 2 threads "
        "| page `run` p50, ms | page per text, ms | Python `run` p50, ms | Python per text, ms |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in record["results"]:
        cells = [
            row["variant"],
            f"{row['model_bytes'] / 1e6:.1f} MB",
            f"{row['page_bytes'] / 1e6:.1f} MB",
            f"{row['page_bytes_uncompressed'] / 1e6:.1f} MB",
            both(row, "browser", lambda m: f"{m['first_answer_ms'] / 1e3:.1f} s"),
            both(row, "browser", lambda m: f"{m['session_run']['p50_ms']:.1f}"),
            both(row, "browser", lambda m: f"{m['per_text_ms_with_tokenizing']:.1f}"),
            both(row, "python", lambda m: f"{m['session_run']['p50_ms']:.2f}"),
            both(row, "python", lambda m: f"{m['per_text_ms_with_tokenizing']:.2f}"),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    machine, versions = record["machine"], record["versions"]
    lines += [
        "",
        f"*Source: `benchmarks/results/web.json` ({record['texts']} rotten-tomatoes texts at batch size 1, "
        f"each cell 1 / 2 threads). Machine: {machine['processor']}, {machine['cores']} cores, {machine['note']}. "
        f"Date: {record['date'][:10]}. Chromium {versions['chromium']}, onnxruntime-web {versions['onnxruntime-web']}, "
        f"onnxruntime {versions['onnxruntime']} (Python).*",
    ]
    for g in record.get("other_graphs", []):
        verdict = "loads" if g["runs"] else f"does not load: `{g['error']}`"
        lines += ["", f"*{g['graph']} (the raw-text front graph of `export --with-tokenizer`) {verdict}.*"]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", default=",".join(VARIANTS), help="Comma-separated, of " + ", ".join(VARIANTS))
    parser.add_argument("--texts", type=int, default=200, help="rotten-tomatoes texts timed per configuration")
    parser.add_argument("--time-budget", type=int, default=60, help="export --time-budget (seconds) per variant")
    parser.add_argument("--workdir", type=Path, default=None, help="Keep the exports here (default: a temp dir)")
    parser.add_argument("--json", type=Path, default=Path("benchmarks/results/web.json"))
    parser.add_argument("--note", default="shared with other work while it ran: timings are noisy")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    rows = read_rows("rotten-tomatoes")
    texts = [t for t, _ in random.Random(0).sample(rows, args.texts)]
    root = args.workdir or Path(tempfile.mkdtemp(prefix="edgecut-web-bench-"))
    results = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=web.CHROMIUM, args=list(web.CHROMIUM_FLAGS))
        for name in args.variants.split(","):
            artifact = export(name, root, args.time_budget)
            site = web.deploy_web(artifact, root / f"{name}-site", force=True)
            raw = sum((artifact / f).stat().st_size for f in ("model.onnx", "tokenizer.json"))
            raw += (web.modules_dir() / web.ORT_WEB[0] / web.ORT_WASM).stat().st_size
            raw += sum(size for f, size in site.files.items() if not f.endswith(".gz"))
            ops = sorted(
                f"{d}:{o}" if d != "ai.onnx" else o for d, o in graph_op_types(onnx.load(str(artifact / "model.onnx")))
            )
            row = {
                "variant": name,
                "precision": json.loads((artifact / "edgecut.json").read_text())["precision"],
                "model_bytes": (artifact / "model.onnx").stat().st_size,
                "page_bytes": site.weight,
                "page_bytes_uncompressed": raw,
                "graph_ops": ops,
                "browser": {str(n): in_browser(browser, site.path, texts, n) for n in (1, 2)},
                "python": {str(n): in_python(artifact, texts, n) for n in (1, 2)},
            }
            print(json.dumps({k: row[k] for k in ("variant", "page_bytes", "browser", "python")}), flush=True)
            results.append(row)
        # The raw-text front graph of `export --with-tokenizer` (onnxruntime-extensions' tokenizer ops).
        from edgecut.graph.text_graph import build_front_graph

        front = root / "front.onnx"
        onnx.save(build_front_graph(root / name), str(front))
        other_graphs = [graph_loads(browser, site.path, front)]
        chromium_version = browser.version
        browser.close()
    record = {
        "benchmark": "benchmarks/web.py",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "processor": cpu_name(),
            "cores": os.cpu_count(),
            "note": args.note,
        },
        "versions": {
            "chromium": chromium_version,
            "onnxruntime-web": web.ORT_WEB[1],
            "@huggingface/tokenizers": web.TOKENIZERS_JS[1],
            "onnxruntime": ort.__version__,
            "playwright": metadata.version("playwright"),
            "python": platform.python_version(),
        },
        "texts": args.texts,
        "time_budget_s": args.time_budget,
        "results": results,
        "other_graphs": other_graphs,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(record, indent=2) + "\n")
    args.json.with_suffix(".md").write_text(markdown(record))
    print(f"wrote {args.json} and {args.json.with_suffix('.md')}")


if __name__ == "__main__":
    main()
