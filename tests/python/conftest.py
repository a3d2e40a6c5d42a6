# The tests import the installed package (pip install --no-build-isolation . from the repository root). To
# run them against a tree being worked on instead: PYTHONPATH=python GQE_TORCH_OPS_LIBRARY=build-py/libgqe_torch_ops.so.
import os
import subprocess
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[2]
# The text the CLI-trained runs read: repeated, so that a tiny model learns it within a few steps.
RUN_TEXT = "In the beginning God created the heaven and the earth. " * 100


@pytest.fixture(autouse=True)
def _seeded():
    torch.manual_seed(0)


def gqe_command():
    """The gqe executable named by GQE_BIN (the CTest suites' variable), else the default build's, else None."""
    candidate = os.environ.get("GQE_BIN") or str(REPO / "build" / "gqe")
    return candidate if Path(candidate).is_file() else None


def run_gqe(*args):
    """Runs the gqe command (skips the test without one); returns its completed process."""
    gqe_bin = gqe_command()
    if gqe_bin is None:
        pytest.skip("no gqe executable (set GQE_BIN or build build/gqe)")
    return subprocess.run([gqe_bin, *map(str, args)], check=True, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory):
    """trained_run(config_name) -> (run directory, text file): a run `gqe train` wrote (2 steps on RUN_TEXT,
    one thread), trained once per config for the whole session."""
    runs = {}

    def get(config_name):
        if config_name not in runs:
            work = tmp_path_factory.mktemp(config_name.removesuffix(".json"))
            text = work / "text.txt"
            text.write_text(RUN_TEXT)
            run_gqe("train", "--config", REPO / "configs" / config_name, "--data", text, "--out", work / "run",
                    "--steps", "2", "--threads", "1", "--sample-tokens", "0")
            runs[config_name] = (work / "run", text)
        return runs[config_name]

    return get
