#!/usr/bin/env bash
# Builds the kernel tests with AddressSanitizer + UndefinedBehaviorSanitizer (-DGQE_SANITIZE=ON) in
# build-asan/ and runs them. The hand-written kernels index raw memory; this is their memory-safety check.
# Only test_kernels and the layer it links (gqe_nn: core, kernels, attention, model, io) are built.
# Usage: scripts/test-sanitizers.sh [gtest filter]
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${GQE_ASAN_BUILD_DIR:-build-asan}
FILTER=${1:-*}

cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DGQE_SANITIZE=ON -DGQE_CUDA=OFF >/dev/null
ninja -C "$BUILD" test_kernels

# libtorch itself is not instrumented: leak reports from its static registries are noise, and ASan must
# tolerate the uninstrumented allocator. UBSan findings abort (-fno-sanitize-recover in CMakeLists.txt).
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0:abort_on_error=1:strict_string_checks=1:detect_stack_use_after_return=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export GQE_TEST_TMP=${GQE_TEST_TMP:-$PWD/$BUILD/test_tmp}
mkdir -p "$GQE_TEST_TMP"
"$BUILD/test_kernels" --gtest_filter="$FILTER"
echo "test-sanitizers: test_kernels passed under ASan + UBSan"
