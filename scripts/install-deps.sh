#!/usr/bin/env bash
# Installs every system package gqe needs, from Debian's archive only.
# Idempotent: packages already present are left alone. Arguments are further packages to install the same
# way (scripts/install-fuzz-deps.sh passes clang's).
set -euo pipefail

PKGS=(
  build-essential cmake ninja-build pkg-config
  libtorch-dev            # tensors, autograd, optimizers (libtorch 1.13 on Debian 12)
  nlohmann-json3-dev      # JSON configs and safetensors headers
  libopenblas0-openmp     # fast BLAS (reference BLAS is ~30x slower), threaded with OpenMP: it shares
                          # libtorch's libgomp pool instead of spinning its own threads against it
  libgtest-dev googletest # unit tests
  bible-kjv               # the embedded default corpus (King James Bible)
  sword-text-web diatheke # the study's second corpus: the World English Bible (scripts/prepare-study-corpora.sh)
  manpages man-db groff-base bsdextrautils  # and its third: the man-pages project's section 7, rendered (man, col)
  libsentencepiece-dev    # BPE tokenizer training and encoding
  libpcre2-dev            # Unicode regexes of GPT-2 / LLaMA-3 byte-level BPE pre-tokenizers
  libgloo-dev             # headers for c10d's ProcessGroupGloo (compiled into Debian's libtorch)
  gnuplot-nox             # loss curves and speedup plots as PNG
  libssl-dev              # OpenSSL's libcrypto: SHA-256 of checkpoints
  libcpp-httplib-dev      # cpp-httplib: the HTTP server of gqe serve (docs/serving.md)
  python3                 # scripts/study.py (the main job's driver; standard library only)
)

PKGS+=("$@")
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

# Make sure libblas.so.3, liblapack.so.3 and libopenblas.so.0 (libtorch links all three) resolve to the
# OpenMP build of OpenBLAS, also where the pthread build is installed too (it has the higher priority).
# The pthread build keeps its own worker threads spinning after each call, and they fight libtorch's
# OpenMP workers for the cores: a GQE attention layer measured 20-40% slower with it on 2 cores.
if command -v update-alternatives >/dev/null; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  for lib in libblas.so.3 liblapack.so.3 libopenblas.so.0; do
    alt=$(update-alternatives --list "$lib-x86_64-linux-gnu" 2>/dev/null | grep openblas-openmp | head -n1 || true)
    if [ -n "$alt" ]; then $SUDO update-alternatives --set "$lib-x86_64-linux-gnu" "$alt" >/dev/null; fi
  done
fi
echo "[gqe] dependencies ok"
