#!/usr/bin/env bash
# Encoding speed, gqe's byte-level BPE vs Hugging Face `tokenizers`, one thread each, on the same text.
#   scripts/bench-tokenizer.sh [BUILD_DIR (build)] [TOKENIZER_JSON...]
# Text: the KJV (data/kjv/kjv.txt, else made with `bible`). Tokenizers: the given tokenizer.json files
# (e.g. GPT-2's and LLaMA-3's real ones), else a GPT-2-style and a LLaMA-3-style one (vocab 8000) trained
# here with `tokenizers` (tests/tokenizers/bpe_reference.py). Python: $GQE_PYTHON (with tokenizers installed).
# Each side prints MB/s by wall clock and by CPU time; on a busy machine trust the CPU-time numbers.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
shift || true
py=${GQE_PYTHON:-python3}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
if [[ -s data/kjv/kjv.txt ]]; then
  cp data/kjv/kjv.txt "$work/text.txt"
else
  bible "Genesis1:1-Revelation22:21" | sed -E 's/^ +[0-9]+ //' > "$work/text.txt"
fi
tokenizers=("$@")
if [[ ${#tokenizers[@]} -eq 0 ]]; then
  for style in gpt2 llama3; do
    "$py" tests/tokenizers/bpe_reference.py train "$style" "$work/text.txt" 8000 "$work/$style"
    tokenizers+=("$work/$style/tokenizer.json")
  done
fi
for t in "${tokenizers[@]}"; do
  echo "== $t"
  "$build/gqe" tokenizer bench --tokenizer "$t" --input "$work/text.txt"
  "$py" scripts/bench-tokenizer.py "$t" "$work/text.txt"
done
