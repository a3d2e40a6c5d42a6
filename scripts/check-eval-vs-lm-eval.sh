#!/usr/bin/env bash
# Checks `gqe eval` against lm-evaluation-harness 0.4 itself on the real evaluation sets: installs the data,
# trains (or takes) a small model, exports it, and compares every request's log-likelihood and is_greedy
# and every task's metrics (scripts/check_eval_vs_lm_eval.py has the details).
#   scripts/check-eval-vs-lm-eval.sh [--subset | --full] [--limit N] [--mmlu-limit N] [--tasks LIST]
#                                    [--checkpoint DIR] [--gqe BIN] [--out DIR] [--threads N] [--per-request]
# --subset (default; CI): the first 25 docs of each task, 2 of each mmlu subject. --full: every doc, written
# to docs/results/<date>-eval-vs-lm-eval/ (numbers and ids only).
# Needs .venv-torch/ (scripts/setup-torch.sh: torch, transformers, lm-eval 0.4.13) and a built gqe.
set -euo pipefail
cd "$(dirname "$0")/.."
python=.venv-torch/bin/python
if [[ ! -x $python ]] || ! "$python" -c 'import lm_eval, transformers' 2>/dev/null; then
  echo "check-eval-vs-lm-eval: $python with lm_eval and transformers is missing; run scripts/setup-torch.sh" >&2
  exit 1
fi
exec "$python" scripts/check_eval_vs_lm_eval.py "$@"
