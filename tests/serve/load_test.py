#!/usr/bin/env python3
"""A bounded load test of gqe serve on loopback: C concurrent clients send R streamed greedy completions in all
(prompts drawn from a fixed set), then it stops. Every answer must be complete and correct: max_tokens tokens,
finish_reason "length", and the text the same prompt gives alone. Reports one JSON line: throughput, time to
first token (p50/p99), per-token latency (p50/p99), the server's decode batch sizes.

    python3 tests/serve/load_test.py WORK_DIR [--clients 32] [--requests 500] [--max-tokens 16]
        [--config tiny-gqe.json] [--threads 1] [--max-batch 16] [--deadline 600] [--out results.json]
"""
import argparse
import http.client
import json
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import serve_fixture as fx  # noqa: E402

PROMPTS = ["In the beginning", "And the earth was", "God created the heaven", "and void", "And God said, Let",
           "the face of the deep", "In the beginning God created the heaven and the earth. And", "the"]


def stream_one(port, prompt, max_tokens, timeout):
    """(text, finish_reason, completion tokens, seconds to the first text, seconds from first to last text)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    t0 = time.perf_counter()
    body = json.dumps({"prompt": prompt, "max_tokens": max_tokens, "temperature": 0, "stream": True,
                       "stream_options": {"include_usage": True}})
    conn.request("POST", "/v1/completions", body, {"Content-Type": "application/json"})
    resp = conn.getresponse()
    if resp.status != 200:
        raise RuntimeError("HTTP %d: %s" % (resp.status, resp.read()[:300]))
    text, finish, usage, first, last, done = "", None, None, None, None, False
    buf = b""
    while not done:
        chunk = resp.read1(65536) if hasattr(resp, "read1") else resp.read(1)
        if not chunk:
            break
        buf += chunk
        while b"\n\n" in buf:
            event, buf = buf.split(b"\n\n", 1)
            if not event.startswith(b"data: "):
                continue
            data = event[6:]
            if data == b"[DONE]":
                done = True
                break
            j = json.loads(data)
            if j.get("usage"):
                usage = j["usage"]
            for ch in j["choices"]:
                if ch["text"]:
                    now = time.perf_counter()
                    first = first if first is not None else now - t0
                    last = now - t0
                text += ch["text"]
                finish = ch["finish_reason"] or finish
    conn.close()
    if not done:
        raise RuntimeError("the stream ended without [DONE]")
    return text, finish, usage["completion_tokens"] if usage else -1, first, (last or 0) - (first or 0)


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))] if xs else None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("work", type=Path)
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--requests", type=int, default=500)
    ap.add_argument("--max-tokens", type=int, default=16)
    ap.add_argument("--config", default="tiny-gqe.json")
    ap.add_argument("--threads", default="1")
    ap.add_argument("--max-batch", default="16")
    ap.add_argument("--deadline", type=float, default=600)
    ap.add_argument("--out", type=Path)
    a = ap.parse_args()
    run = fx.train_tiny(a.work, config=a.config)
    srv = fx.Served(run, a.work / ("serve-load-%d.log" % a.clients), "--threads", a.threads, "--max-batch",
                    a.max_batch, "--max-queue", "1024")
    failures, rows = [], []
    lock = threading.Lock()
    try:
        # The reference: each prompt alone.
        want = {p: stream_one(srv.port, p, a.max_tokens, 120)[0] for p in PROMPTS}
        next_i = [0]
        t_end = time.time() + a.deadline

        def client():
            while time.time() < t_end:
                with lock:
                    i = next_i[0]
                    if i >= a.requests:
                        return
                    next_i[0] += 1
                p = PROMPTS[i % len(PROMPTS)]
                try:
                    text, finish, ntok, ttft, span = stream_one(srv.port, p, a.max_tokens, 300)
                    ok = text == want[p] and finish == "length" and ntok == a.max_tokens
                    with lock:
                        rows.append((ttft, span / max(ntok - 1, 1), ntok))
                        if not ok:
                            failures.append("request %d (%r): %r %s %d, alone %r" % (i, p, text, finish, ntok, want[p]))
                except Exception as e:  # noqa: BLE001 - every failure is reported
                    with lock:
                        failures.append("request %d: %s" % (i, e))

        t0 = time.perf_counter()
        threads = [threading.Thread(target=client) for _ in range(a.clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - t0
        metrics = srv.metrics()
    finally:
        rc = srv.stop()
    batch = {}
    for line in metrics.splitlines():
        if line.startswith("gqe_decode_batch_size_steps{"):
            size = int(line.split('"')[1])
            n = int(float(line.split()[-1]))
            if n:
                batch[size] = n
    tokens = sum(r[2] for r in rows)
    report = {"clients": a.clients, "requests": len(rows), "asked": a.requests, "max_tokens": a.max_tokens,
              "config": a.config, "threads": a.threads, "max_batch": a.max_batch, "wall_s": round(wall, 3),
              "requests_per_s": round(len(rows) / wall, 2), "tokens_per_s": round(tokens / wall, 1),
              "ttft_p50_ms": round(1000 * pct([r[0] for r in rows], 50), 1) if rows else None,
              "ttft_p99_ms": round(1000 * pct([r[0] for r in rows], 99), 1) if rows else None,
              "token_latency_p50_ms": round(1000 * pct([r[1] for r in rows], 50), 2) if rows else None,
              "token_latency_p99_ms": round(1000 * pct([r[1] for r in rows], 99), 2) if rows else None,
              "mean_batch": round(sum(k * v for k, v in batch.items()) / max(sum(batch.values()), 1), 2),
              "failures": len(failures), "exit_status": rc}
    print(json.dumps(report))
    if a.out:
        a.out.write_text(json.dumps(report) + "\n")
    for f in failures[:10]:
        print("FAIL", f, file=sys.stderr)
    if failures or len(rows) != a.requests or rc != 0:
        print("load test failed: %d failures, %d of %d requests answered, exit status %s" %
              (len(failures), len(rows), a.requests, rc), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
