#!/bin/bash
# The CPU comparison of docs/results/*-bench-cpu/ in one command: GQA vs GQE prefill (attention core, layer,
# block, model; batch 1, and the layer at batches 4 and 16), decode (batches 1, 4, 16; ragged for B > 1),
# the paper shape and the small one, training throughput of the tiny configs (the README's models), and
# PyTorch's CPU SDPA beside gqe's attention core in fp32 and bf16 (scripts/bench_sdpa_peer.py).
# Run it on a quiet machine: every other process distorts the numbers (gqe bench warns when the load
# average exceeds its threads). Needs build/gqe and the embedded corpus (data/kjv/kjv.txt).
#   scripts/bench-cpu.sh [OUT_DIR]      (default docs/results/DATE-bench-cpu)
set -euo pipefail
cd "$(dirname "$0")/.."
O=${1:-docs/results/$(date -u +%F)-bench-cpu}
GQE=build/gqe
[ -x "$GQE" ] || { echo "bench-cpu.sh: $GQE not built (scripts/build.sh)" >&2; exit 1; }
[ -f data/kjv/kjv.txt ] || { echo "bench-cpu.sh: data/kjv/kjv.txt missing (scripts/prepare-corpus.sh)" >&2; exit 1; }
mkdir -p "$O"
{ date -u; uptime; git rev-parse --short HEAD; "$GQE" env; } > "$O/machine.txt" 2>&1
echo "[1/4] paper shape: prefill levels, training step, decode" >&2
"$GQE" bench --shapes paper --levels core,layer,block,model --lengths 1024,2048,4096,8192,16384 \
  --repeats 5 --seconds-per-point 30 --decode-lengths 1024,4096,16384 --decode-batches 1,4,16 \
  --out "$O/paper" > "$O/paper.log" 2>&1
echo "[2/4] paper shape: batched prefill" >&2
"$GQE" bench --shapes paper --levels layer --lengths 1024,2048,4096 --prefill-batches 4,16 \
  --repeats 3 --seconds-per-point 30 --no-train --no-decode --out "$O/paper-batched" > "$O/paper-batched.log" 2>&1
echo "[3/4] small shape: layer prefill, decode" >&2
"$GQE" bench --shapes small --levels layer --lengths 1024,4096 --repeats 5 --seconds-per-point 20 \
  --no-train --decode-lengths 256,1024,4096,16384 --decode-batches 1,16 --out "$O/small" > "$O/small.log" 2>&1
# Training throughput of configs/tiny-*.json, batch 8 x 128, 2 threads, GQA and GQE alternating, 3 pairs
# of 150 steps each on the embedded corpus.
echo "[4/4] tiny configs: training tokens/s" >&2
: > "$O/train-tiny.log"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for i in 1 2 3; do
  for m in gqa gqe; do
    rm -rf "$tmp/$m"
    "$GQE" train --config configs/tiny-$m.json --data data/kjv/kjv.txt --out "$tmp/$m" --steps 150 --batch 8 \
      --seq 128 --threads 2 --eval-every 100000 --sample-tokens 0 --log-every 50 2>&1 | grep "^trained to" \
      | sed "s/^/$m pair $i: /" >> "$O/train-tiny.log"
  done
done
# PyTorch's own CPU attention as a peer of gqe's core, fp32 and bf16 (needs .venv-torch: scripts/setup-torch.sh).
if [ -x .venv-torch/bin/python ]; then
  echo "[peer] PyTorch SDPA (enable_gqa) beside gqe's attention core, fp32 and bf16" >&2
  .venv-torch/bin/python scripts/bench_sdpa_peer.py --gqe "$GQE" --lengths 4096,8192,16384 --threads 2 \
    > "$O/sdpa-peer.md"
fi
date -u >> "$O/machine.txt"
echo "wrote $O" >&2
