#!/usr/bin/env bash
# The checks for a machine with an NVIDIA GPU and onnxruntime-gpu (scripts/gpu/README.md); CI has no GPU, so a
# person runs this where one is lent. Each step stops the script on failure:
#   1. which providers this ONNX Runtime offers, and the GPU torch sees;
#   2. the tests marked `cuda` (fp16 parity on CUDA; the whole export with --target cuda; the artifact
#      served by the runtime alone, without torch);
#   3. the documented command, `edgecut export --layers 1 --target cuda`, on SmolLM2 and rotten-tomatoes,
#      then `edgecut check --json` on what it wrote, in a process without torch;
#   4. benchmarks/targets.py --cuda: CPU and CUDA rows of the same fine-tuned model, side by side.
#
#   OUT=gpu-check bash scripts/gpu_check.sh     # writes $OUT/{check.json,targets-cuda.json,artifact/}
#   LAYERS= bash scripts/gpu_check.sh           # steps 1-3 only (LAYERS: the benchmark's N, default 1;
#                                               # 1,2,4,30 takes longer than 15 minutes)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-gpu-check}"
LAYERS="${LAYERS-1}"
python=(.venv/bin/python)
[ -x "${python[0]}" ] || python=(python3)
edgecut() { "${python[@]}" -c 'from edgecut.cli import main; main()' "$@"; }
mkdir -p "$OUT"

"${python[@]}" - <<'EOF'
import onnxruntime, torch
print("onnxruntime", onnxruntime.__version__, onnxruntime.get_available_providers())
print("torch", torch.__version__, torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU")
EOF
# Only the files that hold `cuda` tests: a bare GPU machine may lack the test dependencies of the others
# (tritonclient for test_deploy.py stopped collection on the lent H100, 2026-11-26).
"${python[@]}" -m pytest -m cuda -q $(grep -l "@pytest.mark.cuda" tests/*.py)
rm -rf "$OUT/artifact"
edgecut export --layers 1 --target cuda -o "$OUT/artifact"
edgecut check "$OUT/artifact" --json > "$OUT/check.json"
"${python[@]}" -c "import json, sys; r = json.load(open(sys.argv[1])); print('check:', r['verdict'], r['providers'])" \
  "$OUT/check.json"
[ -z "$LAYERS" ] || "${python[@]}" benchmarks/targets.py --cuda --layers "$LAYERS" --json "$OUT/targets-cuda.json"
