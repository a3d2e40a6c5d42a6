#!/usr/bin/env bash
# Prepares the embedded default corpus: the King James Bible from Debian's bible-kjv package.
#   data/kjv/kjv.txt            the text, one verse per line, a blank line between chapters (no references)
#   data/kjv/spm-4096.model     a SentencePiece BPE tokenizer trained on it (vocab 4096) (+ .vocab)
#   data/kjv/bytes/             train/val token shards with byte tokens (vocab 256)
#   data/kjv/spm-4096/          train/val token shards with the SentencePiece tokenizer
# Idempotent: each step is skipped when its output exists (delete it to redo). Usage:
#   scripts/prepare-corpus.sh [BUILD_DIR (default: build)] [OUT_DIR (default: data/kjv)]
# Environment: GQE (path of the gqe executable), VOCAB (4096), THREADS (2), VAL_FRACTION (0.02).
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
out=${2:-data/kjv}
gqe=${GQE:-$build/gqe}
vocab=${VOCAB:-4096}
threads=${THREADS:-2}
val=${VAL_FRACTION:-0.02}

[[ -x $gqe ]] || { echo "prepare-corpus: $gqe not found; build first (cmake --build $build) or set GQE=" >&2; exit 1; }
command -v bible >/dev/null || { echo "prepare-corpus: the 'bible' command is missing; install bible-kjv (scripts/install-deps.sh)" >&2; exit 1; }
mkdir -p "$out"

# 1. Text. `bible` prints, per chapter, a blank line, a "Book N" heading, a blank line, then verses as
#    "  N text..." wrapped at ~80 columns with continuation lines at column 0. Keep only the verse text:
#    drop headings and verse numbers, join wrapped lines, one verse per line, a blank line per chapter.
if [[ ! -s $out/kjv.txt ]]; then
  bible "Genesis1:1-Revelation22:21" | awk '
    function flush() { if (verse != "") { print verse; verse = "" } }
    /^[[:space:]]*$/ { flush(); blank = 1; next }
    blank && /^[^[:space:]]/ { if (seen) print ""; seen = 1; blank = 0; next }   # chapter heading
    /^[[:space:]]+[0-9]+ / { flush(); sub(/^[[:space:]]+[0-9]+ /, ""); verse = $0; blank = 0; next }
    { verse = verse " " $0; blank = 0 }
    END { flush() }' > "$out/kjv.txt.tmp"
  mv "$out/kjv.txt.tmp" "$out/kjv.txt"
  echo "made $out/kjv.txt"
else
  echo "kept $out/kjv.txt"
fi

# 2. Tokenizer.
model=$out/spm-$vocab.model
if [[ ! -s $model ]]; then
  "$gqe" tokenizer train --input "$out/kjv.txt" --out "$out/spm-$vocab" --vocab-size "$vocab" --threads "$threads"
else
  echo "kept $model"
fi

# 3. Shards (bytes and SentencePiece).
prepare() {  # DIR TOKENIZER
  if [[ ! -s $1/meta.json ]]; then
    "$gqe" data prepare --input "$out/kjv.txt" --out "$1" --tokenizer "$2" --val-fraction "$val" \
      --threads "$threads" --force
  else
    echo "kept $1"
  fi
}
prepare "$out/bytes" bytes
prepare "$out/spm-$vocab" "$model"

echo
echo "corpus in $out:"
printf '  %-28s %s\n' "kjv.txt" "$(wc -c < "$out/kjv.txt") bytes, $(wc -l < "$out/kjv.txt") lines"
printf '  %-28s %s\n' "spm-$vocab.model" "SentencePiece BPE, vocab $vocab"
for d in bytes "spm-$vocab"; do
  # meta.json keys are sorted: the train token count comes before the val one.
  counts=$(grep -o '"tokens": [0-9]*' "$out/$d/meta.json" | grep -o '[0-9]*$' | tr '\n' ' ')
  read -r ntrain nval <<< "$counts"
  printf '  %-28s %s\n' "$d/{train,val}_*.tok" "train $ntrain tokens, val $nval tokens"
done
