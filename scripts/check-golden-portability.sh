#!/usr/bin/env bash
# Whether the golden test's pinned losses (tests/train/golden_test.cpp) hold on the x86 CPUs gqe supports:
# the golden run is trained by the gqe of each instruction-set build (the native one in build/, the portable
# scalar and AVX2 builds of scripts/test-portable.sh) with OpenBLAS forced to each of several core types
# (OPENBLAS_CORETYPE: its kernels for older and other CPUs), and the test prints each run's largest distance
# from the pinned values. Builds only the gqe executable of the portable builds (minutes each on 2 cores).
#   bash scripts/check-golden-portability.sh [core types...]   (default: Haswell SkylakeX Zen Sandybridge Nehalem Prescott)
set -euo pipefail
cd "$(dirname "$0")/.."
cores=("$@"); [ ${#cores[@]} -eq 0 ] && cores=(Haswell SkylakeX Zen Sandybridge Nehalem Prescott)
[ -x build/test_train ] || { echo "check-golden-portability: build/test_train missing: run scripts/build.sh" >&2; exit 1; }
for isa in scalar avx2; do
  case "$isa" in scalar) flags="" ;; avx2) flags="-mavx2 -mfma" ;; esac
  cmake -S . -B "build-$isa" -G Ninja -DCMAKE_BUILD_TYPE=Release -DGQE_NATIVE=OFF -DGQE_CUDA=OFF \
    -DCMAKE_CXX_FLAGS="$flags" >/dev/null
  ninja -C "build-$isa" gqe_cli >/dev/null
done
tmp="$PWD/build/test_tmp/golden-portability"
mkdir -p "$tmp"
status=0
for isa in native scalar avx2; do
  bin="$PWD/build-$isa/gqe"; [ "$isa" = native ] && bin="$PWD/build/gqe"
  for core in default "${cores[@]}"; do
    env_core=(); [ "$core" != default ] && env_core=(OPENBLAS_CORETYPE="$core")
    if ! out=$(env "${env_core[@]}" GQE_BIN="$bin" GQE_SOURCE_DIR="$PWD" GQE_TEST_TMP="$tmp" \
        build/test_train --gtest_color=no --gtest_filter='GoldenRun.*' 2>&1); then
      status=1
    fi
    printf '%-7s %-12s %s\n' "$isa" "$core" "$(grep -o 'golden [a-z]*: max |loss - pinned| [0-9.e+-]*' <<<"$out" | tr '\n' ' ')"
  done
done
exit $status
