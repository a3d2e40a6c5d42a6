#!/bin/bash
# Whole-model decode, gqe beside Hugging Face transformers on the same weights, in one run: for each model
# config (default the 250M GQA and GQE pair), a checkpoint (one training step), its `gqe export --format hf`
# folder, then
#   - gqe bench --decode-models: tokens/s at batch 1 and 8 against the weight-read limit (random weights);
#   - gqe generate: seconds from the start of the process to the first token (peak RSS), decode tokens/s;
#   - transformers (.venv-torch, scripts/bench_decode_hf.py): load to first token, decode tokens/s.
# fp32, greedy, batch 1, THREADS threads. Run it on a quiet machine (it prints the load average).
#   scripts/bench-decode.sh [OUT_DIR] [CONFIG..]     env: THREADS (2), TOKENS (64), REPEATS (5), GQE (build/gqe),
#                                                   PYTHON (.venv-torch/bin/python)
set -euo pipefail
cd "$(dirname "$0")/.."
O=${1:-/tmp/gqe-bench-decode}
shift || true
CONFIGS=("$@")
[ ${#CONFIGS[@]} -gt 0 ] || CONFIGS=(configs/paper-gqa-250m.json configs/paper-gqe-250m.json)
THREADS=${THREADS:-2} TOKENS=${TOKENS:-64} REPEATS=${REPEATS:-5}
GQE=${GQE:-build/gqe} PYTHON=${PYTHON:-.venv-torch/bin/python}
[ -x "$GQE" ] || { echo "bench-decode.sh: $GQE not built (scripts/build.sh)" >&2; exit 1; }
[ -x "$PYTHON" ] || { echo "bench-decode.sh: $PYTHON missing (scripts/setup-torch.sh)" >&2; exit 1; }
mkdir -p "$O"
median() { sort -g | awk '{v[NR]=$1} END {m = NR % 2 ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2; printf "%.3f (%.3f..%.3f)", m, v[1], v[NR]}'; }
# A small text for the one training step that writes each checkpoint.
text="$O/text.txt"
[ -f "$text" ] || for i in $(seq 400); do echo "In the beginning was the word, and the light shone in the darkness $i."; done > "$text"
{ date -u; uptime; git rev-parse --short HEAD; } | tee "$O/machine.txt"
list=$(IFS=,; echo "${CONFIGS[*]}")
echo "== gqe bench --decode-models (random weights)"
"$GQE" bench --no-prefill --no-train --no-decode --no-plot --decode-models "$list" --decode-model-batches 1,8 \
  --decode-tokens 32 --repeats "$REPEATS" --threads "$THREADS" --out "$O/bench" | grep -v "^section\|^(GF/s\|^ratio"
for cfg in "${CONFIGS[@]}"; do
  name=$(basename "$cfg" .json)
  run="$O/$name" hf="$O/$name-hf"
  if [ ! -f "$run/model.safetensors" ]; then
    rm -rf "$run"
    "$GQE" train --config "$cfg" --data "$text" --steps 1 --batch 1 --seq 16 --out "$run" --threads "$THREADS" \
      --sample-tokens 0 --eval-every 0 > "$O/$name-train.log" 2>&1
  fi
  [ -f "$hf/model.safetensors" ] || { rm -rf "$hf"; "$GQE" export --format hf "$run" "$hf" > /dev/null; }
  echo "== $name: gqe generate (fp32, greedy, batch 1, $THREADS threads; load average $(cut -d' ' -f1 /proc/loadavg))"
  first=() rss=() rate=()
  for _ in $(seq "$REPEATS"); do
    gen() { /usr/bin/time -f "%e %M" "$GQE" generate --checkpoint "$run" --prompt "the light" --greedy \
      --threads "$THREADS" --max-new-tokens "$1" 2>&1 >/dev/null | tail -1; }
    read -r t1 m1 < <(gen 1)
    read -r tn _ < <(gen $((TOKENS + 1)))
    first+=("$t1") rss+=("$m1")
    rate+=("$(awk -v n="$TOKENS" -v a="$t1" -v b="$tn" 'BEGIN {printf "%.3f", n / (b - a)}')")
  done
  echo "first token s (process start): $(printf '%s\n' "${first[@]}" | median)"
  echo "peak RSS MB: $(printf '%s\n' "${rss[@]}" | awk '{printf "%.0f\n", $1 / 1024}' | median)"
  echo "decode tok/s: $(printf '%s\n' "${rate[@]}" | median)"
  echo "== $name: transformers on the export (load average $(cut -d' ' -f1 /proc/loadavg))"
  "$PYTHON" scripts/bench_decode_hf.py "$hf" --tokens "$TOKENS" --repeats "$REPEATS" --threads "$THREADS"
done | tee "$O/report.txt"
echo "wrote $O" >&2
