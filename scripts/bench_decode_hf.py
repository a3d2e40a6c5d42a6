#!/usr/bin/env python3
"""transformers' side of scripts/bench-decode.sh: one folder written by `gqe export --format hf`, fp32, greedy,
batch 1. Prints one JSON line: the seconds from the start of loading to the first token (imports apart),
and the decode tokens/s (median, min, max over --repeats runs of generate(N + 1) minus generate(1))."""
import argparse
import json
import statistics
import time

t_import = time.perf_counter()
import torch  # noqa: E402
import transformers  # noqa: E402

import_s = time.perf_counter() - t_import


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("folder")
    ap.add_argument("--prompt", default="the light")
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    t0 = time.perf_counter()
    tok = transformers.AutoTokenizer.from_pretrained(a.folder, trust_remote_code=True)
    model = transformers.AutoModelForCausalLM.from_pretrained(a.folder, trust_remote_code=True, dtype=torch.float32)
    model.eval()
    ids = tok(a.prompt, return_tensors="pt").input_ids

    def generate(n):
        with torch.inference_mode():
            s = time.perf_counter()
            out = model.generate(ids, max_new_tokens=n, min_new_tokens=n, do_sample=False)
            assert out.shape[1] == ids.shape[1] + n
            return time.perf_counter() - s

    generate(1)
    first_token_s = time.perf_counter() - t0
    rates = []
    for _ in range(a.repeats):
        one = generate(1)
        many = generate(a.tokens + 1)
        rates.append(a.tokens / max(many - one, 1e-9))
    print(json.dumps({
        "side": "transformers " + transformers.__version__ + ", torch " + torch.__version__,
        "attention_implementation": getattr(model.config, "attention_implementation", ""),
        "import_s": round(import_s, 3),
        "load_to_first_token_s": round(first_token_s, 3),
        "tok_s": round(statistics.median(rates), 2),
        "min_tok_s": round(min(rates), 2),
        "max_tok_s": round(max(rates), 2),
    }))


if __name__ == "__main__":
    main()
