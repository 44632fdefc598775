#!/usr/bin/env bash
# The peers rows that need a GPU, in one call (scripts/gpu/README.md): for each seed, side by side, the
# 30-layer teacher (trained on the GPU, exported to --teacher-target), then its students at each N of STUDENTS
# (default N=1 and N=2; "4 8" for the depth curve; trained on the GPU, `cpu` target):
# benchmarks/peers.py --kinds full,from-full --no-timing. Every job ends by DEADLINE seconds after the start;
# the runs that finished land in $OUT/peers-gpu.json, fold them in here with
#   .venv/bin/python benchmarks/peers.py --data rotten-tomatoes --kinds none --merge --merge-from peers-gpu.json
#
#   PAYLOAD=/tmp/pl DEADLINE=540 bash scripts/gpu_peers.sh   # on the lent machine, after scripts/gpu_payload.sh's
#                                                            # pieces were moved to /tmp/pl, one call each
set -u
T0=$SECONDS
DEADLINE=${DEADLINE:-540}
DATA=${DATA:-rotten-tomatoes}
STEM=$(basename "${DATA%.csv}")
MODEL=${MODEL:-smollm2-135m}
SEEDS=${SEEDS-0 42 421}  # SEEDS= installs the payload and trains nothing (scripts/gpu/README.md)
STUDENTS=${STUDENTS:-1 2}  # the students' depths, trained side by side after each seed's teacher
# cuda-fp32: the teacher labels its students' rows on the GPU, in fp32 (the lent H200 refused its fp16 graph).
TEACHER_TARGET=${TEACHER_TARGET:-cuda-fp32}
PY=${PY:-python3}
OUT=${OUT:-/tmp/out}
W=${W:-/tmp/gpu-peers}
# Three seeds' processes share 16 cores: unbounded, each took all of them and three teachers ran 3x slower
# than one (lent H200, 2026-11-27).
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-5}
mkdir -p "$OUT" "$W/logs" "$W/res"
left() { local l=$((DEADLINE - (SECONDS - T0))); if [ "$l" -gt 1 ]; then echo "$l"; else echo 1; fi; }
stamp() { echo "[$((SECONDS - T0)) s] $*"; }

if [ -n "${PAYLOAD:-}" ]; then  # join, check, unpack and install what scripts/gpu_payload.sh packed
  stamp "payload"
  mv .gpu/c[0-9]* "$PAYLOAD"/ 2>/dev/null
  (cd "$PAYLOAD" && cat c[0-9]* > payload.tar && sha256sum -c "$OLDPWD/.gpu/payload.sha") || exit 3
  mkdir -p /tmp/site && tar xf "$PAYLOAD/payload.tar" -C "$PAYLOAD" && tar xJf "$PAYLOAD/ort.tar.xz" -C /tmp/site \
    && tar xf "$PAYLOAD/minisite.tar" -C /tmp/site || exit 3
  "$PY" -m pip install -q --no-index --no-deps --no-compile --target /tmp/site "$PAYLOAD"/*.whl || exit 3
  export PYTHONPATH=/tmp/site:$PWD
  stamp "installed"
fi
export ORT_DISABLE_TELEMETRY=1 PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
"$PY" -c "import onnxruntime as o, torch, transformers as t; print(o.__version__, o.get_available_providers(), torch.__version__, t.__version__)"

peers() {  # results folder, seed, then peers.py arguments
  local name=$1 s=$2; shift 2
  "$PY" benchmarks/peers.py --data "$DATA" --model "$MODEL" --seeds "$s" --teachers full --no-timing \
    --out "$W/peers" --results "$W/res/$name" ${EXTRA:-} "$@"
}
export -f peers
export PY DATA MODEL W EXTRA
in_time() { timeout "$(left)" bash -c "$*"; }
student() {  # seed, N: the fp32 row first (it lands even if time runs out), then again with the int8 row
  local s=$1 n=$2 log="$W/logs/peers-s$1-n$2.log"
  in_time peers "s$s-2-n$n" "$s" --layers "$n" --kinds from-full --no-int8 >> "$log" 2>&1
  stamp "seed $s N=$n: fp32 done" >> "$log"
  [ "$(left)" -gt 120 ] && in_time peers "s$s-3-n$n-int8" "$s" --layers "$n" --kinds from-full >> "$log" 2>&1
  stamp "seed $s N=$n: done" >> "$log"
}
seed_job() {
  local s=$1 log="$W/logs/peers-s$1.log"
  stamp "seed $s: teacher ($TEACHER_TARGET)" >> "$log"
  in_time peers "s$s-1-teacher" "$s" --layers 1 --kinds full --teacher-target "$TEACHER_TARGET" >> "$log" 2>&1
  if [ ! -f "$W/peers/$STEM/full-s$s/edgecut.json" ] && [ "$(left)" -gt 330 ]; then
    stamp "seed $s: no $TEACHER_TARGET teacher; again with a cpu teacher" >> "$log"
    in_time peers "s$s-1-teacher" "$s" --layers 1 --kinds full --teacher-target cpu >> "$log" 2>&1
  fi
  stamp "seed $s: teacher done" >> "$log"
  for n in $STUDENTS; do student "$s" "$n" & done
  wait
}
for s in $SEEDS; do seed_job "$s" & done
wait
stamp "all jobs ended"
mapfile -t written < <(find "$W/res" -name "peers-$STEM.json" | sort)
[ "${#written[@]}" -gt 0 ] && "$PY" benchmarks/peers.py --data "$DATA" --model "$MODEL" --kinds none --merge \
  --merge-from "${written[@]}" --results "$W/final" --out "$W/peers" > "$W/logs/merge.log" 2>&1
cp "$W/final/peers-$STEM.json" "$OUT/peers-gpu.json" 2>/dev/null
mkdir -p "$W/logs/manifests"
for m in "$W"/peers/*/*/edgecut.json; do [ -f "$m" ] && cp "$m" "$W/logs/manifests/$(basename "$(dirname "$m")").json"; done
cp -r "$W/res" "$W/logs/"
tar czf "$OUT/logs.tar.gz" -C "$W" logs
tail -n 3 "$W"/logs/*.log
ls -la "$OUT"
