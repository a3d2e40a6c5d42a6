#!/usr/bin/env bash
# The GPU check, one command on the H200 machine (torch 2.11+cu130 in its python3, nvcc 13.0, cmake, ninja,
# 16 cores; no apt, no network). Stages, each timed and logged under $OUT:
#   1. build gqe against the machine's torch with the CUDA path (sm_90), ninja on every core;
#   2. the CUDA tests: CUDA path vs the float64 reference for every variant (outputs, gradients, fp32 and
#      bf16 autocast), decode = prefill, routing ties CPU vs CUDA, NCCL with world size 1, a tiny model
#      trains; then the whole CPU suite against this libtorch;
#   3. a tiny GQE model trains with `gqe train --device cuda` (bf16 autocast) and its loss falls; the same
#      with two NCCL ranks on the one GPU, when NCCL allows it;
#   4. `gqe bench --device cuda`: GQA vs GQE prefill (paper shape, core/layer/block/model, 2k-64k), a
#      training step and decode, bf16.
# $OUT receives at most 8 files (the device tool's limit): summary.txt, check.log (every stage's output),
# the tiny run's metrics and the benchmark's JSON, CSV and PNG.
# Prepare here first (fills .device/, which git ignores): bash scripts/h200-check.sh --prepare
# Then on the device machine, with .device carried:       bash scripts/h200-check.sh
set -uo pipefail
cd "$(dirname "$0")/.."

if [ "${1:-}" = "--prepare" ]; then
  set -e
  rm -rf .device && mkdir -p .device/deps/include
  cp -r /usr/include/nlohmann .device/deps/include/
  cp -r /usr/src/googletest .device/deps/googletest
  # OpenSSL's headers (with the architecture's configuration headers) and static libcrypto: the GPU
  # machine has libcrypto.so.3 for its Python but no headers.
  cp -r /usr/include/openssl .device/deps/include/
  cp /usr/include/"$(gcc -print-multiarch)"/openssl/*.h .device/deps/include/openssl/
  mkdir -p .device/deps/lib && cp /usr/lib/"$(gcc -print-multiarch)"/libcrypto.a .device/deps/lib/
  # PCRE2 (byte-level BPE pre-tokenizers): the header and the shared library, which needs only libc.
  cp /usr/include/pcre2.h .device/deps/include/
  cp -L /usr/lib/x86_64-linux-gnu/libpcre2-8.so .device/deps/lib/libpcre2-8.so
  cp -L /usr/lib/x86_64-linux-gnu/libpcre2-8.so.0 .device/deps/lib/libpcre2-8.so.0
  if [ ! -s data/kjv.txt ]; then
    mkdir -p data
    bible "Genesis1:1-Revelation22:21" | sed -E 's/^ +[0-9]+ //' > data/kjv.txt.tmp && mv data/kjv.txt.tmp data/kjv.txt
  fi
  head -c 1500000 data/kjv.txt > .device/train.txt
  du -sh .device
  exit 0
fi

OUT="${OUT:-$PWD/h200-out}"
mkdir -p "$OUT"
[ -d .device/deps ] || { echo "h200-check: .device/ missing: run 'bash scripts/h200-check.sh --prepare' here and carry .device" >&2; exit 2; }
summary="$OUT/summary.txt"
: > "$summary"
status=0
log="$OUT/check.log"
: > "$log"
stage() {  # stage NAME COMMAND...: runs it, appends its output to check.log, records seconds and exit code
  local name=$1; shift
  local t0=$(date +%s)
  echo "=== $name: $*" | tee -a "$log"
  "$@" > "$OUT/stage.tmp" 2>&1
  local rc=$?
  cat "$OUT/stage.tmp" >> "$log"
  tail -n 25 "$OUT/stage.tmp"
  rm -f "$OUT/stage.tmp"
  printf '%-14s rc=%-3s %4ss\n' "$name" "$rc" "$(( $(date +%s) - t0 ))" | tee -a "$summary"
  [ $rc -eq 0 ] || status=1
  return $rc
}

nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.mem --format=csv 2>&1 | tee -a "$summary"
python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, torch.cuda.get_device_name(0))' \
  2>&1 | tee -a "$summary"

export TORCH_PREFIX=$(python3 -c 'import torch.utils; print(torch.utils.cmake_prefix_path)')
export GQE_CUDA_BUILD_DIR=build-h200
stage build bash scripts/build-cuda.sh -DGQE_DEPS_DIR="$PWD/.device/deps" || { cat "$summary"; exit 1; }
stage cuda_tests ./build-h200/test_cuda --gtest_color=no
stage cpu_tests ctest --test-dir build-h200 -j 16 --output-on-failure -E '^cuda_'

train() {  # train OUT_DIR [extra flags]: a tiny GQE model on the carried text, on the GPU
  local dir=$1; shift
  rm -rf "$dir"
  ./build-h200/gqe train --config configs/tiny-gqe.json --data .device/train.txt --out "$dir" --steps 200 \
    --batch 16 --seq 128 --device cuda --eval-every 50 "$@"
}
loss_fell() {  # loss_fell METRICS_JSONL: the last training loss is below 80% of the first
  python3 - "$1" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
losses = [r["loss"] for r in rows if "loss" in r]
print(f"loss {losses[0]:.3f} -> {losses[-1]:.3f} over {len(losses)} records")
sys.exit(0 if losses[-1] < 0.8 * losses[0] else 1)
PY
}
stage train_1gpu train "$OUT/run-1gpu" && stage loss_1gpu loss_fell "$OUT/run-1gpu/metrics.jsonl"
# Two NCCL ranks on one GPU: NCCL may refuse two ranks on one device; the log says what happened.
stage train_nccl2 env WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=29611 bash -c '
  for r in 0 1; do RANK=$r LOCAL_RANK=0 ./build-h200/gqe train --config configs/tiny-gqe.json --data .device/train.txt \
    --out "'"$OUT"'/run-nccl2" --steps 50 --batch 8 --seq 128 --device cuda:0 --dist-timeout 120 & done; wait -n; a=$?; wait -n; b=$?; exit $((a|b))' || true
cp "$OUT"/run-1gpu/metrics.jsonl "$OUT/train-1gpu-metrics.jsonl" 2>/dev/null
rm -rf "$OUT"/run-1gpu "$OUT"/run-nccl2   # model files: too many to come back
stage bench ./build-h200/gqe bench --device cuda --shapes paper --levels core,layer,block,model \
  --lengths 2048,4096,16384,65536 --train-length 4096 --decode-lengths 4096,65536 --repeats 10 \
  --seconds-per-point 5 --out "$OUT/bench"
rm -f "$OUT/bench.gnuplot"
echo "=== summary"
cat "$summary"
exit $status
