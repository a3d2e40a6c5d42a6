#!/usr/bin/env bash
# Builds gqe against libtorch 2.x from the torch wheel, with the CUDA path (GQE_CUDA=ON, sm_90) into
# build-cuda/. Needs nvcc (the CUDA toolkit); a GPU is not needed to build. Extra arguments go to cmake.
# TORCH_PREFIX (a CMake prefix path with TorchConfig.cmake) skips scripts/setup-torch.sh, e.g. on a machine
# whose python3 already has torch: TORCH_PREFIX=$(python3 -c 'import torch.utils; print(torch.utils.cmake_prefix_path)').
set -euo pipefail
cd "$(dirname "$0")/.."
prefix="${TORCH_PREFIX:-$(bash scripts/setup-torch.sh)}"
dir="${GQE_CUDA_BUILD_DIR:-build-cuda}"
command -v nvcc >/dev/null || [ -x /usr/local/cuda/bin/nvcc ] || { echo "[gqe] build-cuda: nvcc not found (install the CUDA toolkit)" >&2; exit 1; }
export PATH="$PATH:/usr/local/cuda/bin"
gen=(); command -v ninja >/dev/null && gen=(-G Ninja)
[ -f "$dir/CMakeCache.txt" ] && gen=()
start=$(date +%s)
mkdir -p "$dir"
# The interop tests run against the venv's Python when there is one (not with a TORCH_PREFIX of another Python).
python_arg=(); [ -z "${TORCH_PREFIX:-}" ] && [ -x .venv-torch/bin/python ] && python_arg=(-DGQE_PYTHON="$PWD/.venv-torch/bin/python")
cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$prefix" -DGQE_CUDA=ON "${python_arg[@]}" \
  -DTORCH_CUDA_ARCH_LIST="${TORCH_CUDA_ARCH_LIST:-9.0}" "${gen[@]}" "$@" >"$dir/configure.log" 2>&1 ||
  { cat "$dir/configure.log" >&2; exit 1; }
grep -E "^-- gqe:" "$dir/configure.log" || true
cmake --build "$dir" --parallel "$(nproc)"
echo "[gqe] build-cuda: built in $(( $(date +%s) - start )) s"
