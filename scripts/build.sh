#!/usr/bin/env bash
# Configures and builds gqe (Release) into build/. Extra arguments go to cmake, e.g.
# -DCMAKE_PREFIX_PATH=/opt/libtorch to build against another libtorch.
set -euo pipefail
cd "$(dirname "$0")/.."
gen=(); command -v ninja >/dev/null && gen=(-G Ninja)
[ -f build/CMakeCache.txt ] && gen=()
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release "${gen[@]}" "$@" >/dev/null
cmake --build build --parallel "$(nproc)"
