#!/usr/bin/env bash
# The second build configuration: libtorch 2.x (torch wheel) with the CUDA path compiled, and the whole test
# suite against it. Without a GPU the CUDA tests that need one report themselves skipped.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/build-cuda.sh
ctest --test-dir "${GQE_CUDA_BUILD_DIR:-build-cuda}" --output-on-failure -j "$(nproc)"
