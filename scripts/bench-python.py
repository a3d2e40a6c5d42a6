#!/usr/bin/env python3
"""The gqe package's attention modules from Python beside the `gqe` command and PyTorch's own SDPA.

One attention layer of the bench's paper shape (d 1024, 16 query heads, 8 KV heads, d_h 64, GQE k 1, variant
gqe), batch 1, fp32 on the CPU, causal prefill of n tokens:
  module   gqe.GQAAttention / gqe.GQEAttention (gqe's kernels through torch.ops.gqe, autograd in Python)
  cli      `gqe bench --levels layer` (prefill) and `--train-levels layer` (forward + backward), the command's
           own C++ blocks, in a gqe built against the same libtorch as the package (build-cuda/ by default)
  sdpa     a GQA layer in plain PyTorch: the same projections and RoPE in aten ops, attention by
           torch.nn.functional.scaled_dot_product_attention(is_causal=True, enable_gqa=True)
Two rows per length: prefill (forward under no_grad) and train (forward + backward of sum(y * probe) +
0.01 * aux_loss with the input's gradient too, as gqe bench's layer training row computes). Medians of --repeats timed runs after one
warm-up, min..max beside them; GQA, GQE and SDPA alternate within each repeat. Run it on a quiet machine.

    .venv-torch/bin/python scripts/bench-python.py [--lengths 1024,2048,4096] [--threads 2] [--out DIR]

Writes DIR/bench-python.json and DIR/bench-python.md (the table) and prints the table.
"""
import argparse
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

import gqe

ROOT = Path(__file__).resolve().parent.parent
D, HEADS, KV_HEADS, HEAD_DIM, THETA, AUX_WEIGHT = 1024, 16, 8, 64, 10000.0, 0.01


class SdpaGQA(torch.nn.Module):
    """The PyTorch baseline: GQA with aten RoPE and F.scaled_dot_product_attention(enable_gqa=True)."""

    def __init__(self):
        super().__init__()
        self.q_proj = torch.nn.Linear(D, HEADS * HEAD_DIM, bias=False)
        self.k_proj = torch.nn.Linear(D, KV_HEADS * HEAD_DIM, bias=False)
        self.v_proj = torch.nn.Linear(D, KV_HEADS * HEAD_DIM, bias=False)
        self.o_proj = torch.nn.Linear(HEADS * HEAD_DIM, D, bias=False)
        self.cos, self.sin = None, None

    def rope(self, x):  # x [B, H, T, d_h], rotate-half
        T = x.shape[2]
        if self.cos is None or self.cos.shape[0] < T:
            inv = THETA ** (-torch.arange(0, HEAD_DIM // 2, dtype=torch.float64) * (2.0 / HEAD_DIM))
            ang = torch.outer(torch.arange(T, dtype=torch.float64), inv)
            self.cos, self.sin = ang.cos().float(), ang.sin().float()
        c, s = self.cos[:T], self.sin[:T]
        a, b = x[..., : HEAD_DIM // 2], x[..., HEAD_DIM // 2:]
        return torch.cat([a * c - b * s, b * c + a * s], dim=-1)

    def forward(self, x):
        B, T, _ = x.shape
        q = self.rope(self.q_proj(x).view(B, T, HEADS, HEAD_DIM).transpose(1, 2))
        k = self.rope(self.k_proj(x).view(B, T, KV_HEADS, HEAD_DIM).transpose(1, 2))
        v = self.v_proj(x).view(B, T, KV_HEADS, HEAD_DIM).transpose(1, 2)
        o = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
        return self.o_proj(o.transpose(1, 2).reshape(B, T, HEADS * HEAD_DIM)), x.new_zeros(())


def randomised(module):
    # A zero router (gqe's initialisation) sends every token to one expert; the bench's routers are random.
    if isinstance(module, gqe.GQEAttention):
        with torch.no_grad():
            module.router.weight.normal_(0, 0.02)
    return module


def summary(times):
    ms = [t * 1e3 for t in times]
    return {"median_ms": statistics.median(ms), "min_ms": min(ms), "max_ms": max(ms), "runs": len(ms)}


def time_alternating(fns, repeats):
    """fns: name -> callable. One warm-up each, then `repeats` rounds in which each runs once."""
    for f in fns.values():
        f()
    times = {name: [] for name in fns}
    for _ in range(repeats):
        for name, f in fns.items():
            t0 = time.perf_counter()
            f()
            times[name].append(time.perf_counter() - t0)
    return {name: summary(t) for name, t in times.items()}


def python_rows(lengths, repeats):
    torch.manual_seed(0)
    modules = {"gqa": randomised(gqe.GQAAttention(D, HEADS, KV_HEADS, HEAD_DIM)),
               "gqe": randomised(gqe.GQEAttention(D, HEADS, KV_HEADS, HEAD_DIM, top_k=1, variant="gqe")),
               "sdpa": SdpaGQA()}
    rows = {}
    for n in lengths:
        x = torch.randn(1, n, D)
        probe = torch.randn(1, n, D)

        def prefill(m):
            def run():
                with torch.no_grad():
                    m(x)
            return run

        def train(m):
            xg = x.clone().requires_grad_()

            def run():
                m.zero_grad(set_to_none=True)
                xg.grad = None
                y, aux = m(xg)
                ((y * probe).sum() + AUX_WEIGHT * aux).backward()
            return run

        print(f"python: n {n}: prefill", file=sys.stderr, flush=True)
        rows[("prefill", n)] = time_alternating({k: prefill(m) for k, m in modules.items()}, repeats)
        print(f"python: n {n}: train", file=sys.stderr, flush=True)
        rows[("train", n)] = time_alternating({k: train(m) for k, m in modules.items()}, max(1, repeats))
    return rows


def cli_rows(gqe_bin, lengths, repeats, threads):
    """gqe bench's layer rows: prefill at the lengths in one call, training one call per length."""
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        calls = [("prefill", ["--levels", "layer", "--lengths", ",".join(map(str, lengths)), "--no-train"])]
        for n in lengths:
            calls.append(("train", ["--no-prefill", "--train-levels", "layer", "--train-length", str(n)]))
        for i, (section, extra) in enumerate(calls):
            out = Path(tmp) / f"bench{i}"
            # gqe bench takes repeats/2 for training rows: ask for twice as many to time the same count.
            reps = repeats * 2 if section == "train" else repeats
            cmd = [str(gqe_bin), "bench", "--shapes", "paper", "--no-decode", "--threads", str(threads),
                   "--repeats", str(reps), "--seconds-per-point", "600", "--out", str(out), "--no-plot"] + extra
            print("cli:", " ".join(cmd), file=sys.stderr, flush=True)
            subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
            for r in json.loads(out.with_suffix(".json").read_text())["rows"]:
                if r["section"] == section and r["level"] == "layer" and r["n"] in lengths:
                    rows[(section, r["n"])] = {
                        "gqa": {"median_ms": r["gqa_ms"], "min_ms": r["gqa_min_ms"], "max_ms": r["gqa_max_ms"], "runs": r["runs"]},
                        "gqe": {"median_ms": r["gqe_ms"], "min_ms": r["gqe_min_ms"], "max_ms": r["gqe_max_ms"], "runs": r["runs"]}}
    return rows


def cell(s):
    return f"{s['median_ms']:.1f} ({s['min_ms']:.1f}..{s['max_ms']:.1f})"


def table(py, cli):
    lines = ["| section | n | module GQA ms | module GQE ms | GQA/GQE | gqe bench GQA ms | gqe bench GQE ms | "
             "module/bench GQA | module/bench GQE | SDPA GQA ms | SDPA/module GQA |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for key in sorted(py, key=lambda k: (k[0] != "prefill", k[1])):
        p, c = py[key], cli.get(key)
        m_gqa, m_gqe, sd = p["gqa"]["median_ms"], p["gqe"]["median_ms"], p["sdpa"]["median_ms"]
        bench = [cell(c["gqa"]), cell(c["gqe"]), f"{m_gqa / c['gqa']['median_ms']:.3f}",
                 f"{m_gqe / c['gqe']['median_ms']:.3f}"] if c else ["-"] * 4
        lines.append(f"| {key[0]} | {key[1]} | {cell(p['gqa'])} | {cell(p['gqe'])} | {m_gqa / m_gqe:.2f} | "
                     + " | ".join(bench) + f" | {cell(p['sdpa'])} | {sd / m_gqa:.2f} |")
    return "\n".join(lines)


def machine(threads):
    model = "unknown"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": model, "cores": os.cpu_count(), "threads": threads, "load_average_at_start": os.getloadavg()[0],
            "torch": torch.__version__, "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "python": platform.python_version()}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--lengths", default="1024,2048,4096")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--gqe", default=str(ROOT / "build-cuda" / "gqe"),
                    help="a gqe built against the package's libtorch (default build-cuda/gqe); 'none' to skip")
    ap.add_argument("--out", default=None, help="folder for bench-python.json / .md (default: print only)")
    args = ap.parse_args()
    lengths = [int(v) for v in args.lengths.split(",")]
    if any(n < 1 for n in lengths) or args.repeats < 1 or args.threads < 1:
        ap.error("--lengths, --repeats and --threads must be positive")
    torch.set_num_threads(args.threads)
    info = machine(args.threads)
    if info["load_average_at_start"] > args.threads / 2:
        print(f"bench-python: warning: load average {info['load_average_at_start']:.2f} at start: other work "
              "on the machine distorts these figures", file=sys.stderr)
    if args.gqe != "none" and not Path(args.gqe).is_file():
        sys.exit(f"bench-python: {args.gqe} not found: build it (scripts/build-cuda.sh) or pass --gqe none")
    # Length by length, the module's rows and then the command's, so that a slow drift of the machine moves
    # both sides of a ratio alike.
    py, cli = {}, {}
    for n in lengths:
        py.update(python_rows([n], args.repeats))
        if args.gqe != "none":
            cli.update(cli_rows(args.gqe, [n], args.repeats, args.threads))
    text = table(py, cli)
    header = (f"Paper-shape attention layer, batch 1, fp32, {args.threads} threads; {info['cpu']}, "
              f"{info['cores']} cores, load {info['load_average_at_start']:.2f} at start; torch {info['torch']}. "
              "Medians (min..max) of " f"{args.repeats} runs, ms.")
    print(header + "\n\n" + text)
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        result = {"machine": info, "repeats": args.repeats, "command": " ".join(sys.argv),
                  "rows": [{"section": s, "n": n, "module": {k: py[(s, n)][k] for k in ("gqa", "gqe")},
                            "sdpa_gqa": py[(s, n)]["sdpa"], "gqe_bench": cli.get((s, n))}
                           for (s, n) in sorted(py)]}
        (out / "bench-python.json").write_text(json.dumps(result, indent=1) + "\n")
        (out / "bench-python.md").write_text(header + "\n\n" + text + "\n")
        print(f"wrote {out}/bench-python.json and bench-python.md", file=sys.stderr)


if __name__ == "__main__":
    main()
