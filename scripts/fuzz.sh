#!/usr/bin/env bash
# Builds the libFuzzer targets of fuzz/ (clang-14, AddressSanitizer + UndefinedBehaviorSanitizer) in
# build-fuzz/ and runs each for a bounded time from its committed seed corpus fuzz/corpus/<target>/.
# A crash, sanitizer report, uncaught non-gqe exception, leak, timeout or out-of-memory fails the run
# (exit 1); the input that did it is left in build-fuzz/findings/<target>/ (replay it with
# `build-fuzz/<target>_fuzz FILE`), the log in build-fuzz/logs/<target>.log. New inputs the fuzzer finds
# grow build-fuzz/corpus/<target>/, never the committed seeds.
# Usage: scripts/fuzz.sh [seconds-per-target (60)] [target ...]
#   targets: config shard tasks spm_model safetensors train_state (default: all)
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER_TARGET=${1:-60}
[ $# -gt 0 ] && shift
TARGETS=("$@")
[ ${#TARGETS[@]} -eq 0 ] && TARGETS=(config shard tasks spm_model safetensors train_state)
BUILD=${GQE_FUZZ_BUILD_DIR:-build-fuzz}

bash scripts/install-fuzz-deps.sh
cmake -S fuzz -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_COMPILER=clang++-14 >/dev/null
ninja -C "$BUILD" "${TARGETS[@]/%/_fuzz}"

# libtorch is not instrumented: ASan must tolerate its allocator. Leaks are checked (per input, by
# libFuzzer) but not at exit, where libtorch's static registries would be reported.
export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1:leak_check_at_exit=0:strict_string_checks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
failed=()
for t in "${TARGETS[@]}"; do
  rm -rf "$BUILD/findings/$t"  # what is there after this run is this run's finding
  mkdir -p "$BUILD/corpus/$t" "$BUILD/findings/$t" "$BUILD/logs"
  log="$BUILD/logs/$t.log"
  echo "fuzz: $t for ${SECONDS_PER_TARGET} s (log $log)"
  # -timeout: one input running 20 s is a hang; -rss_limit_mb: the readers must refuse, not allocate, what
  # a file claims. Inputs grow up to the largest seed (libFuzzer's default -max_len).
  if "$BUILD/${t}_fuzz" -max_total_time="$SECONDS_PER_TARGET" -timeout=20 -rss_limit_mb=3072 \
       -print_final_stats=1 -artifact_prefix="$BUILD/findings/$t/" "$BUILD/corpus/$t" "fuzz/corpus/$t" >"$log" 2>&1; then
    grep -E "^stat::number_of_executed_units|^Done|^INFO: fuzzed" "$log" | sed "s/^/  $t: /" || true
  else
    failed+=("$t")
    echo "fuzz: $t FAILED; input left in $BUILD/findings/$t/:"
    ls "$BUILD/findings/$t/"
    grep -E "ERROR|runtime error|SUMMARY|terminate called|what\(\)" "$log" | head -n 20 || true
  fi
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz: findings in: ${failed[*]}"
  exit 1
fi
echo "fuzz: ${TARGETS[*]}: no findings in ${SECONDS_PER_TARGET} s each"
