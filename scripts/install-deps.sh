#!/usr/bin/env bash
# Installs every system package gqe needs, from Debian's archive only.
# Idempotent: packages already present are left alone.
set -euo pipefail

PKGS=(
  build-essential cmake ninja-build pkg-config
  libtorch-dev            # tensors, autograd, optimizers (libtorch 1.13 on Debian 12)
  nlohmann-json3-dev      # JSON configs and safetensors headers
  libopenblas0-pthread    # fast BLAS: takes over libblas.so.3 (reference BLAS is ~30x slower)
  libgtest-dev googletest # unit tests
  bible-kjv               # the embedded default corpus (King James Bible)
  libsentencepiece-dev    # BPE tokenizer training and encoding
  libgloo-dev             # headers for c10d's ProcessGroupGloo (compiled into Debian's libtorch)
  gnuplot-nox             # loss curves and speedup plots as PNG
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

# Make sure OpenBLAS (not the reference BLAS) is what libblas.so.3 resolves to.
if command -v update-alternatives >/dev/null; then
  alt=$(update-alternatives --list libblas.so.3-x86_64-linux-gnu 2>/dev/null | grep openblas | head -n1 || true)
  if [ -n "$alt" ]; then
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO update-alternatives --set libblas.so.3-x86_64-linux-gnu "$alt" >/dev/null
  fi
fi
echo "[gqe] dependencies ok"
