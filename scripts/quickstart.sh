#!/usr/bin/env bash
# The main job on the embedded default: installs the dependencies (Debian packages), builds gqe, prepares
# the King James Bible from Debian's bible-kjv package (text, a SentencePiece tokenizer, token shards) and
# runs the quick version of the GQA-vs-GQE study (scripts/study.py --quick): GQA and GQE at two token
# budgets and at equal compute, both ablations, a 4x larger pair, routing health over training; the loss
# printed as each run trains, a report in runs/quickstart/report/ (tables, plots, raw JSON) and a sample
# from the trained GQE model. About 5 minutes on 2 cores; re-running skips what is finished.
#   bash scripts/quickstart.sh [extra scripts/study.py options, e.g. --jobs 1 --threads 2]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/build.sh
bash scripts/prepare-corpus.sh build data/kjv

./build/gqe info configs/tiny-gqe.json --context 128
python3 scripts/study.py --quick --out runs/quickstart "$@"
echo
sed -n '/^## What this smoke run shows/,/^## 1\./p' runs/quickstart/report/README.md | sed '$d'
echo "[gqe] report: runs/quickstart/report/README.md"
echo "[gqe] sample from the trained GQE model:"
run=$(ls -d runs/quickstart/runs/gqe-s1/steps-* | sort -t- -k3 -n | tail -1)
./build/gqe generate --checkpoint "$run" --prompt "And God said" --max-new-tokens 60 --temperature 0.8 --top-k 40 \
  --seed 1
