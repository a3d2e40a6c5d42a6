#!/usr/bin/env bash
# Builds the kernel tests (test_kernels and the gqe_nn layer it links) without -march=native, for the
# instruction sets the hand-written kernels support, in build-<isa>/, and runs them: the vector width and
# register blocking change with the instruction set (simd.h, micro_gemm.h), so each must compile and pass.
#   scalar  the portable path: what any CPU without AVX2, or a non-x86 machine, builds
#   avx2    AVX2 + FMA
#   avx512  AVX-512F (runs only on a CPU that has it; elsewhere it is built and its run skipped)
# Usage: scripts/test-portable.sh [scalar|avx2|avx512 ...]   (default: scalar)
set -euo pipefail
cd "$(dirname "$0")/.."
isas=("$@"); [ ${#isas[@]} -eq 0 ] && isas=(scalar)
for isa in "${isas[@]}"; do
  case "$isa" in
    scalar) flags="" cpu_flag="" ;;
    avx2) flags="-mavx2 -mfma" cpu_flag="avx2" ;;
    avx512) flags="-mavx512f -mavx2 -mfma" cpu_flag="avx512f" ;;
    *) echo "test-portable: unknown instruction set '$isa' (expected scalar, avx2 or avx512)" >&2; exit 2 ;;
  esac
  dir="build-$isa"
  cmake -S . -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=Release -DGQE_NATIVE=OFF -DGQE_CUDA=OFF -DGQE_BUILD_TESTS=ON \
    -DCMAKE_CXX_FLAGS="$flags" >/dev/null
  ninja -C "$dir" test_kernels
  if [ -n "$cpu_flag" ] && ! grep -qw "$cpu_flag" /proc/cpuinfo; then
    echo "test-portable: $isa kernel tests built; not run (this CPU has no $cpu_flag)"
    continue
  fi
  mkdir -p "$dir/test_tmp"
  # The 80k-token test checks memory use, not arithmetic: the same in every build, and minutes long in scalar.
  GQE_TEST_TMP="$PWD/$dir/test_tmp" "$dir/test_kernels" --gtest_color=no \
    --gtest_filter=-FlashAttention.LengthWhoseScoreMatrixWouldNotFitInMemory
  echo "test-portable: $isa kernel tests passed"
done
