#!/usr/bin/env bash
# The main job on the embedded default: installs the dependencies (Debian packages), builds gqe,
# takes the King James Bible from Debian's bible-kjv package and runs the quick experiment: GQA, GQE
# and both ablations trained on it with identical data, seed and schedule (byte-level tokens), the loss
# falling as they train, validation loss, routing analytics, a prefill benchmark GQA vs GQE, a report
# in runs/quickstart/report/, and a sample from the trained GQE model. About 10 minutes on 2 cores.
#   bash scripts/quickstart.sh [extra `gqe experiment` options, e.g. --steps 300 --threads 2]
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

./build/gqe info configs/tiny-gqe.json --context 128
./build/gqe experiment --quick --config configs/tiny-gqe.json --data data/kjv.txt --out runs/quickstart "$@"
echo
sed -n '/^| variant/,/^$/p' runs/quickstart/report/README.md
echo "[gqe] sample from the trained GQE model:"
./build/gqe generate --checkpoint runs/quickstart/runs/gqe-seed1 --prompt "And God said" --max-new-tokens 200 \
  --temperature 0.8 --top-k 40 --seed 1
