#!/usr/bin/env python3
"""PyTorch's own CPU attention as a peer of gqe's attention core: the paper shape's GQA core (16 query heads
over 8 KV heads, d_h 64, causal, batch 1) through torch.nn.functional.scaled_dot_product_attention with
enable_gqa, in fp32 and bf16, beside `gqe bench --levels core --dtype fp32,bf16` on the same lengths and
threads. GFLOP/s count 2*2*heads*d_h*n(n+1)/2, as gqe bench does. Run it on a quiet machine.

    .venv-torch/bin/python scripts/bench_sdpa_peer.py [--lengths 4096,8192,16384] [--threads 2] [--gqe build/gqe]
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

HEADS, KV_HEADS, HEAD_DIM = 16, 8, 64
ROOT = Path(__file__).resolve().parent.parent


def core_gflop(n):
    return 2 * 2 * HEADS * HEAD_DIM * n * (n + 1) / 2 / 1e9


def time_sdpa(n, dtype, repeats):
    q = torch.randn(1, HEADS, n, HEAD_DIM, dtype=dtype)
    k = torch.randn(1, KV_HEADS, n, HEAD_DIM, dtype=dtype)
    v = torch.randn(1, KV_HEADS, n, HEAD_DIM, dtype=dtype)
    run = lambda: F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)  # noqa: E731
    with torch.no_grad():
        run()
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            run()
            times.append(time.perf_counter() - t0)
    return [t * 1e3 for t in times]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--lengths", default="4096,8192,16384")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--gqe", default=str(ROOT / "build" / "gqe"), help="the gqe to compare; 'none' to skip")
    args = ap.parse_args()
    lengths = [int(x) for x in args.lengths.split(",")]
    torch.set_num_threads(args.threads)
    print(f"# torch {torch.__version__}, {args.threads} threads, load {os.getloadavg()[0]:.2f}; medians of "
          f"{args.repeats} (min..max), ms; GQA core, paper shape, causal, batch 1")
    gqe_rows = {}
    if args.gqe != "none":
        with tempfile.TemporaryDirectory() as tmp:
            cmd = [args.gqe, "bench", "--shapes", "paper", "--levels", "core", "--lengths", args.lengths,
                   "--dtype", "fp32,bf16", "--no-train", "--no-decode", "--threads", str(args.threads),
                   "--repeats", str(args.repeats), "--no-plot", "--out", f"{tmp}/core"]
            print("# " + " ".join(cmd))
            subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
            for r in json.loads(Path(f"{tmp}/core.json").read_text())["rows"]:
                dtype = "bf16" if r["level"].endswith("-bf16") else "fp32"
                gqe_rows[(r["n"], dtype)] = r
    print("| n | dtype | PyTorch SDPA ms | SDPA GF/s | gqe GQA core ms | gqe GF/s | gqe / SDPA |")
    print("|---:|---|---:|---:|---:|---:|---:|")
    for n in lengths:
        for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
            ms = time_sdpa(n, dtype, args.repeats)
            med = statistics.median(ms)
            g = gqe_rows.get((n, name))
            gqe_cells = (f"{g['gqa_ms']:.1f} ({g['gqa_min_ms']:.1f}..{g['gqa_max_ms']:.1f}) | "
                         f"{core_gflop(n) / g['gqa_ms'] * 1e3:.1f} | {med / g['gqa_ms']:.2f}x") if g else "- | - | -"
            print(f"| {n} | {name} | {med:.1f} ({min(ms):.1f}..{max(ms):.1f}) | {core_gflop(n) / med * 1e3:.1f} | "
                  + gqe_cells + " |", flush=True)


if __name__ == "__main__":
    sys.exit(main())
