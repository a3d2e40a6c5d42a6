"""Finds and loads the ops library (libgqe_torch_ops.so), which registers torch.ops.gqe.*."""
import os
from pathlib import Path

import torch

LIBRARY_NAME = "libgqe_torch_ops.so"


def library_path() -> Path:
    # GQE_TORCH_OPS_LIBRARY: a library built in a CMake tree (ninja -C build-py gqe_torch_ops), for working on
    # the C++ side without reinstalling; otherwise the copy the wheel installed beside this file.
    override = os.environ.get("GQE_TORCH_OPS_LIBRARY")
    if override:
        return Path(override)
    return Path(__file__).resolve().parent / LIBRARY_NAME


def load() -> None:
    path = library_path()
    if not path.is_file():
        raise ImportError(
            f"gqe: the ops library {path} is missing; install the package with `pip install .` from the "
            "repository root, or point GQE_TORCH_OPS_LIBRARY at a built libgqe_torch_ops.so")
    torch.ops.load_library(str(path))


load()
