#!/usr/bin/env python3
"""Encoding speed of Hugging Face `tokenizers` on a text file, one thread: the reference for
`gqe tokenizer bench --tokenizer TOKENIZER_JSON --input TEXT_FILE` (same passes, same MB/s definitions).

  python scripts/bench-tokenizer.py TOKENIZER_JSON TEXT_FILE [REPEAT (3)]

Prints MB/s by wall clock and by the process's CPU time (all its threads), for the first pass and the best of REPEAT more.
"""
import os
import sys
import time

os.environ["RAYON_NUM_THREADS"] = "1"  # before tokenizers loads: its thread pool then has one thread
os.environ["TOKENIZERS_PARALLELISM"] = "false"

from tokenizers import Tokenizer  # noqa: E402


def main():
    if len(sys.argv) < 3:
        raise SystemExit(__doc__)
    tok = Tokenizer.from_file(sys.argv[1])
    with open(sys.argv[2], encoding="utf-8", errors="surrogateescape", newline="") as f:
        text = f.read()
    repeat = int(sys.argv[3]) if len(sys.argv) > 3 else 3
    mb = len(text.encode("utf-8", errors="surrogateescape")) / 1e6

    def one_pass():
        c0, t0 = time.process_time(), time.perf_counter()
        n = len(tok.encode(text, add_special_tokens=False).ids)
        return time.perf_counter() - t0, time.process_time() - c0, n

    wall, cpu, n = one_pass()
    runs = [one_pass() for _ in range(repeat)]
    best_wall = min(r[0] for r in runs)
    best_cpu = min(r[1] for r in runs)
    print(f"tokenizers {__import__('tokenizers').__version__}: {sys.argv[1]} on {sys.argv[2]} ({mb:.4g} MB, {n} tokens)")
    print(f"first pass: {mb / wall:.4g} MB/s wall, {mb / cpu:.4g} MB/s CPU")
    print(f"best of {repeat}: {mb / best_wall:.4g} MB/s wall, {mb / best_cpu:.4g} MB/s CPU")


if __name__ == "__main__":
    main()
