#!/usr/bin/env bash
# The main job on the embedded default: installs the dependencies (Debian packages), builds gqe,
# takes the King James Bible from Debian's bible-kjv package, trains a tiny GQE model on it
# (byte-level tokens) and prints the loss falling and a sample.
#   bash scripts/quickstart.sh [extra `gqe train` options, e.g. --steps 600]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/build.sh

mkdir -p data
if [ ! -s data/kjv.txt ]; then
  # `bible` prints chapter headings and numbered, wrapped verses; keep the text, drop the numbers.
  bible "Genesis1:1-Revelation22:21" | sed -E 's/^ +[0-9]+ //' > data/kjv.txt.tmp
  mv data/kjv.txt.tmp data/kjv.txt
fi
echo "[gqe] corpus: data/kjv.txt ($(wc -c < data/kjv.txt) bytes, King James Bible from bible-kjv)"

./build/gqe info configs/tiny-gqe.json --context 256
./build/gqe train --config configs/tiny-gqe.json --data data/kjv.txt --out runs/quickstart-gqe \
  --steps 300 --batch 16 --seq 128 "$@"
