#!/usr/bin/env bash
# The gqe Python package (python/gqe/, docs/python.md): builds it with the project's CMake against the torch
# of .venv-torch/ (scripts/setup-torch.sh, torch 2.x), installs it there and runs tests/python with pytest:
# the ops against float64 references and gradcheck, the modules against the gqe command's own blocks, the
# whole model against `gqe train` runs (GQE_BIN, else build/gqe), torch.compile, DDP over Gloo.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/setup-torch.sh >/dev/null
start=$(date +%s)
# The build backend and the test runner (pinned in scripts/python-requirements.txt, installed by setup-torch.sh).
# With the CUDA path's ops where nvcc and a CUDA torch are present (CI: yes, sm_90; no GPU needed to build):
# tests/python/test_cuda_path.py runs them on CPU tensors, and on a GPU where there is one.
export PATH="$PATH:/usr/local/cuda/bin"
.venv-torch/bin/pip install -q --disable-pip-version-check --no-build-isolation \
  -C cmake.define.GQE_CUDA=AUTO -C cmake.define.TORCH_CUDA_ARCH_LIST="${TORCH_CUDA_ARCH_LIST:-9.0}" .
echo "[gqe] test-python: package built and installed in $(( $(date +%s) - start )) s"
# A hung test (a DDP rank waiting for its peer) must not hold CI: the whole run is bounded.
timeout 1200 .venv-torch/bin/python -m pytest -q -p no:cacheprovider tests/python
