#!/usr/bin/env bash
# Installs what scripts/fuzz.sh needs beyond scripts/install-deps.sh: clang with libFuzzer and the
# sanitizer runtimes, from Debian's archive. Only the fuzzing needs them; the build itself uses GCC.
# Idempotent: packages already present are left alone.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh

PKGS=(
  clang-14            # the compiler: -fsanitize=fuzzer needs clang
  libclang-rt-14-dev  # libFuzzer, AddressSanitizer and UndefinedBehaviorSanitizer runtimes for clang-14
)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  echo "[gqe] installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
echo "[gqe] fuzzing dependencies ok"
