#!/usr/bin/env bash
# Creates .venv-torch/ with libtorch 2.x from the torch wheel of the Python package registry (CUDA 13.0
# build: its C++ headers, libraries and CMake config live inside the package) and prints the CMake prefix
# path. It also installs scripts/python-requirements.txt (the interop tests' packages). GQE_TORCH_VERSION
# overrides the pinned version, which matches the H200 machine's torch.
set -euo pipefail
cd "$(dirname "$0")/.."
version="${GQE_TORCH_VERSION:-2.11.0}"
venv=.venv-torch
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv" >&2
fi
have=$("$venv/bin/python" -c 'import torch; print(torch.__version__.split("+")[0])' 2>/dev/null || true)
if [ "$have" != "$version" ]; then
  avail=$(df -Pk . | awk 'NR==2 {print int($4 / 1048576)}')
  if [ "$avail" -lt 8 ]; then
    echo "[gqe] setup-torch: torch $version with its CUDA libraries needs ~5 GB; only ${avail} GB free here" >&2
    exit 1
  fi
  echo "[gqe] installing torch==$version into $venv (about 4.5 GB with its CUDA libraries)" >&2
  "$venv/bin/pip" install -q --disable-pip-version-check "torch==$version" >&2
fi
# The interop tests' packages (Hugging Face transformers and tokenizers, lm-evaluation-harness).
if ! "$venv/bin/pip" install -q --disable-pip-version-check -r scripts/python-requirements.txt >&2; then
  echo "[gqe] setup-torch: installing scripts/python-requirements.txt into $venv failed" >&2
  exit 1
fi
"$venv/bin/python" -c 'import torch.utils; print(torch.utils.cmake_prefix_path)'
