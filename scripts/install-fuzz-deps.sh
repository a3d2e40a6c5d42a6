#!/usr/bin/env bash
# Installs what scripts/fuzz.sh needs beyond scripts/install-deps.sh's packages: clang with libFuzzer and
# the sanitizer runtimes, from Debian's archive. Only the fuzzing needs them; the build itself uses GCC.
set -euo pipefail
cd "$(dirname "$0")/.."
# clang-14: -fsanitize=fuzzer needs clang; libclang-rt-14-dev: its libFuzzer, ASan and UBSan runtimes.
bash scripts/install-deps.sh clang-14 libclang-rt-14-dev
echo "[gqe] fuzzing dependencies ok"
