# The tests import the installed package (pip install --no-build-isolation . from the repository root). To
# run them against a tree being worked on instead: PYTHONPATH=python GQE_TORCH_OPS_LIBRARY=build-py/libgqe_torch_ops.so.
import pytest
import torch


@pytest.fixture(autouse=True)
def _seeded():
    torch.manual_seed(0)
