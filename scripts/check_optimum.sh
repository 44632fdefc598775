#!/usr/bin/env bash
# Does an edgecut artifact load in Hugging Face Optimum (ORTModelForSequenceClassification.from_pretrained)?
#
#   bash scripts/check_optimum.sh              # export tiny artifacts with .venv and check them (what CI runs)
#   bash scripts/check_optimum.sh ARTIFACT     # check an artifact you exported
#
# optimum-onnx pins transformers 4.57 and edgecut needs transformers 5, so the check gets its own
# environment, $EDGECUT_OPTIMUM_VENV (default .venv-optimum): torch==2.13.0 FIRST (any other spec pulls
# GBs of CUDA wheels), then optimum-onnx[onnxruntime]. Where that cannot be installed (no package index)
# it prints one SKIP line and exits 0; a real incompatibility exits 1.
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${EDGECUT_OPTIMUM_VENV:-.venv-optimum}"
optimum_spec="${EDGECUT_OPTIMUM_SPEC:-optimum-onnx[onnxruntime]==0.1.0}"
export PIP_DISABLE_PIP_VERSION_CHECK=1

if [ ! -x .venv/bin/python ]; then
  echo "error: .venv is missing: run bash scripts/setup.sh first" >&2
  exit 2
fi

if ! "$venv/bin/python" -c "import optimum.onnxruntime" >/dev/null 2>&1; then
  log="$(mktemp -t edgecut-optimum-install.XXXXXX)"
  echo "creating $venv with torch==2.13.0 and $optimum_spec (log: $log)"
  rm -rf "$venv"
  if ! { "${PYTHON:-python3}" -m venv "$venv" \
      && "$venv/bin/pip" install -q "torch==${EDGECUT_TORCH:-2.13.0}" \
      && "$venv/bin/pip" install -q "$optimum_spec"; } >"$log" 2>&1; then
    echo "SKIP: optimum check: could not install torch and $optimum_spec into $venv; last lines of $log:"
    tail -n 3 "$log" | sed 's/^/  /'
    rm -rf "$venv"
    exit 0
  fi
fi
"$venv/bin/python" -c "from importlib.metadata import version as v; \
print('optimum env:', ', '.join(f'{p} {v(p)}' for p in ('optimum-onnx', 'optimum', 'transformers', 'onnxruntime')))"

if [ $# -ge 1 ]; then
  exec "$venv/bin/python" scripts/optimum_verify.py "$1"
fi
EDGECUT_OPTIMUM_PYTHON="$PWD/$venv/bin/python" exec .venv/bin/python -m pytest -q -rs tests/test_optimum.py
