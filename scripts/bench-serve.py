#!/usr/bin/env python3
"""gqe serve's throughput at several client concurrencies beside `gqe generate --prompts` on the same prompts, for
the tiny GQE and GQA configs (trained here for a few steps: the speed does not depend on the weights). Each cell
is the median of --repeats runs with min..max; prints a Markdown table.

    python3 scripts/bench-serve.py WORK_DIR [--clients 1,8,32] [--max-tokens 32] [--repeats 3] [--threads 1]

Hold the machine quiet while it runs (gqe's convention: flock /tmp/gqe-quiet.lock python3 scripts/bench-serve.py ...).
"""
import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests" / "serve"))
import load_test  # noqa: E402
import serve_fixture as fx  # noqa: E402


def cell(xs, digits=0):
    return "%.*f (%.*f..%.*f)" % (digits, statistics.median(xs), digits, min(xs), digits, max(xs))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("work", type=Path)
    ap.add_argument("--clients", default="1,8,32")
    ap.add_argument("--max-tokens", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", default="1")
    ap.add_argument("--max-batch", default="32")
    a = ap.parse_args()
    clients = [int(c) for c in a.clients.split(",")]
    rows = []
    for config in ("tiny-gqe.json", "tiny-gqa.json"):
        run = fx.train_tiny(a.work, config=config)
        # gqe generate --prompts: the load test's prompts, each 4 times (32 prompts), as one batch.
        prompts = a.work / "prompts.txt"
        prompts.write_text("".join(p + "\n" for p in load_test.PROMPTS * 4))
        n_prompts = len(load_test.PROMPTS) * 4
        gen = []
        for _ in range(a.repeats):
            t0 = time.perf_counter()
            subprocess.run([fx.gqe_bin(), "generate", "--checkpoint", str(run), "--prompts", str(prompts), "--greedy",
                            "--max-new-tokens", str(a.max_tokens), "--threads", a.threads],
                           check=True, capture_output=True, timeout=600)
            gen.append(n_prompts * a.max_tokens / (time.perf_counter() - t0))
        rows.append((config, "gqe generate --prompts (%d prompts, one batch, incl. loading)" % n_prompts, cell(gen),
                     "-", "-", "-"))
        for c in clients:
            results = []
            for r in range(a.repeats):
                out = a.work / ("load-%s-%d-%d.json" % (config.removesuffix(".json"), c, r))
                subprocess.run([sys.executable, str(HERE.parent / "tests" / "serve" / "load_test.py"), str(a.work),
                                "--clients", str(c), "--requests", str(max(4 * c, 32)), "--max-tokens",
                                str(a.max_tokens), "--config", config, "--threads", a.threads, "--max-batch",
                                a.max_batch, "--out", str(out)], check=True, capture_output=True, timeout=900)
                results.append(json.loads(out.read_text()))
            rows.append((config, "gqe serve, %d client(s), %d requests" % (c, results[0]["requests"]),
                         cell([x["tokens_per_s"] for x in results]),
                         cell([x["ttft_p50_ms"] for x in results], 1) + " / " + cell([x["ttft_p99_ms"] for x in results], 1),
                         cell([x["token_latency_p50_ms"] for x in results], 2),
                         cell([x["mean_batch"] for x in results], 1)))
    print("| config | what | tokens/s | TTFT p50 / p99 (ms) | per-token p50 (ms) | mean decode batch |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print("| %s |" % " | ".join(r))


if __name__ == "__main__":
    main()
