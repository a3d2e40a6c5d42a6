"""The Python half of tests/interop/hf_export_test.cpp: loads folders written by `gqe export --format hf` with
Hugging Face transformers (trust_remote_code) and lm-evaluation-harness, and reports how their numbers
compare with gqe's. It prints nothing the test relies on; the results go to a JSON file the test reads.

  hf_check.py models MANIFEST OUT    logits (full and through the KV cache), tokenizer, greedy generate()
  hf_check.py harness MANIFEST OUT   lm-evaluation-harness HFLM on local task files vs gqe eval's request dump
  hf_check.py tokenizer MANIFEST OUT AutoTokenizer of a folder vs gqe's ids for each text, and decode back
"""
import json
import os
import sys

# Never reach the network: every file is local.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402
from safetensors.torch import load_file  # noqa: E402

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


def max_rel_diff(a, b):
    return float((a.double() - b.double()).abs().max() / b.double().abs().max().clamp_min(1e-30))


def check_model(v):
    """One exported model: v = {"hf_dir", "gqe_logits" (safetensors: tokens [1,T], logits [1,T,V]),
    "prompt", "max_new_tokens"}."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(v["hf_dir"], trust_remote_code=True, dtype=torch.float32).eval()
    # As a user would first try it: without trust_remote_code (transformers then asks whether to run the
    # folder's code, for the model config it reads first; unanswered, it goes on without it).
    tok = AutoTokenizer.from_pretrained(v["hf_dir"])
    ref = load_file(v["gqe_logits"])
    tokens, gqe_logits = ref["tokens"], ref["logits"]
    out = {"type": type(model).__name__}
    with torch.no_grad():
        full = model(tokens, use_cache=False).logits
        out["max_rel_diff"] = max_rel_diff(full, gqe_logits)
        # The same logits through the KV cache: a prefill of half the tokens, then one token at a time.
        half = tokens.shape[1] // 2
        step = model(tokens[:, :half], use_cache=True)
        pieces, cache = [step.logits], step.cache if hasattr(step, "cache") else step.past_key_values
        for t in range(half, tokens.shape[1]):
            step = model(tokens[:, t : t + 1], cache=cache, use_cache=True)
            pieces.append(step.logits)
        out["max_rel_diff_cached"] = max_rel_diff(torch.cat(pieces, dim=1), gqe_logits)
        out["cache_type"] = type(cache).__name__
        # The tokenizer: gqe's byte tokenizer encodes UTF-8 bytes.
        prompt = v["prompt"]
        ids = tok(prompt, return_tensors="pt").input_ids
        out["tokenizer_matches_bytes"] = ids[0].tolist() == list(prompt.encode("utf-8"))
        gen = model.generate(ids, max_new_tokens=v["max_new_tokens"], do_sample=False, eos_token_id=None,
                             pad_token_id=0)
        new = gen[0, ids.shape[1]:].tolist()
        out["generated_hex"] = bytes(new).hex()
        out["decoded"] = tok.decode(new)
        out.update(check_precision(model, tokens))
    return out


def check_precision(model, tokens):
    """The router and the attention softmax in at least float32: under bf16 autocast every GQE layer routes as
    in float32 (probabilities float32, the same experts), and a float64 model's attention is float64 through
    and through (agrees with a float64 recomputation to 1e-12, where a float32 softmax would give ~1e-7)."""
    modeling = sys.modules[type(model).__module__]
    out = {}
    layers = [m for m in model.modules() if hasattr(m, "route") and hasattr(m, "router")]
    if layers:
        x = torch.randn(1, tokens.shape[1], model.config.hidden_size)
        want = [layer.route(x)[1] for layer in layers]
        with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
            got = [layer.route(x) for layer in layers]
        out["router_dtype_under_autocast"] = str(got[0][0].dtype)
        out["router_same_under_autocast"] = all(torch.equal(g[1], w) for g, w in zip(got, want))
    q = torch.randn(1, 9, 4, 8, dtype=torch.float64)
    k = torch.randn(1, 9, 2, 8, dtype=torch.float64)
    v = torch.randn(1, 9, 2, 8, dtype=torch.float64)
    kh, vh = k.repeat_interleave(2, dim=2).transpose(1, 2), v.repeat_interleave(2, dim=2).transpose(1, 2)
    s = torch.matmul(q.transpose(1, 2), kh.transpose(-1, -2)) / 8 ** 0.5
    s = s.masked_fill(torch.ones(9, 9, dtype=torch.bool).triu(1), float("-inf"))
    want = torch.matmul(torch.softmax(s, -1), vh).transpose(1, 2)
    out["float64_attention_rel_err"] = max_rel_diff(modeling.attend(q, k, v, 0, None), want)
    return out


def cmd_models(manifest, out_path):
    results = {}
    for name, v in manifest.items():
        try:
            results[name] = check_model(v)
        except Exception as e:  # reported per variant, so one failure does not hide the others
            results[name] = {"error": f"{type(e).__name__}: {e}"}
    with open(out_path, "w") as f:
        json.dump(results, f, indent=2)


def harness_task_yaml(task, data_file, yaml_dir):
    """A task that is the harness's own YAML (its prompt, choices, target, metrics, process_docs), reading
    local JSON rows instead of the Hub dataset."""
    import lm_eval.tasks

    base = os.path.dirname(lm_eval.tasks.__file__)
    own = {"hellaswag": "hellaswag/hellaswag.yaml", "arc_easy": "arc/arc_easy.yaml", "piqa": "piqa/piqa.yaml"}[task]
    split = "test" if task == "arc_easy" else "validation"
    name = "gqe_interop_" + task
    with open(os.path.join(yaml_dir, name + ".yaml"), "w") as f:
        f.write(
            f"include: {os.path.join(base, own)}\n"
            f"task: {name}\n"
            "tag: []\n"
            "dataset_path: json\n"
            "dataset_name: null\n"
            "dataset_kwargs:\n"
            "  data_files:\n"
            f"    {split}: {data_file}\n"
            "training_split: null\n"
            f"validation_split: {'null' if split == 'test' else 'validation'}\n"
            f"test_split: {'test' if split == 'test' else 'null'}\n"
        )
    return name


def cmd_harness(manifest, out_path):
    """manifest = {"hf_dir", "tasks": {task: data_file}, "gqe_dump", "gqe_results", "work_dir", "batch_size"}."""
    import lm_eval
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    yaml_dir = os.path.join(manifest["work_dir"], "lm_eval_tasks")
    os.makedirs(yaml_dir, exist_ok=True)
    names = {harness_task_yaml(t, f, yaml_dir): t for t, f in manifest["tasks"].items()}
    lm = HFLM(pretrained=manifest["hf_dir"], trust_remote_code=True, batch_size=manifest["batch_size"], device="cpu",
              dtype="float32")
    res = lm_eval.simple_evaluate(model=lm, tasks=list(names), num_fewshot=0, log_samples=True,
                                  task_manager=TaskManager(include_path=yaml_dir), bootstrap_iters=0)

    gqe = {}
    with open(manifest["gqe_dump"]) as f:
        for line in f:
            r = json.loads(line)
            gqe[(r["task"], r["doc"], r["choice"])] = r
    with open(manifest["gqe_results"]) as f:
        gqe_res = json.load(f)["results"]

    out = {"tasks": {}, "requests": 0, "max_abs_diff": 0.0, "max_rel_diff": 0.0, "min_ll": 0.0, "max_ll": -1e300,
           "greedy_mismatches": 0, "missing": [], "text_mismatches": 0}
    for name, task in names.items():
        for s in res["samples"][name]:
            for c, (args, resp) in enumerate(zip(s["arguments"], s["filtered_resps"])):
                g = gqe.pop((task, s["doc_id"], c), None)
                if g is None:
                    out["missing"].append(f"{task} doc {s['doc_id']} choice {c} (harness only)")
                    continue
                ll, greedy = float(resp[0]), bool(resp[1])
                out["requests"] += 1
                out["max_abs_diff"] = max(out["max_abs_diff"], abs(ll - g["loglikelihood"]))
                out["max_rel_diff"] = max(out["max_rel_diff"], abs(ll - g["loglikelihood"]) / max(abs(ll), 1e-30))
                out["min_ll"], out["max_ll"] = min(out["min_ll"], ll), max(out["max_ll"], ll)
                out["greedy_mismatches"] += int(greedy != g["is_greedy"])
                out["text_mismatches"] += int(list(args)[:2] != [g["context"], g["continuation"]])
        r = res["results"][name]
        out["tasks"][task] = {"harness_acc": r["acc,none"], "harness_acc_norm": r["acc_norm,none"],
                              "gqe_acc": gqe_res[task]["acc,none"], "gqe_acc_norm": gqe_res[task]["acc_norm,none"],
                              "docs": len(res["samples"][name])}
    out["missing"] += [f"{k[0]} doc {k[1]} choice {k[2]} (gqe only)" for k in gqe]
    with open(out_path, "w") as f:
        json.dump(out, f, indent=2)


def cmd_tokenizer(manifest, out_path):
    """manifest = {"hf_dir", "cases": [{"text", "ids", "decoded"}]}: every text must encode to gqe's ids, and the
    ids decode to gqe's decoding of them."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(manifest["hf_dir"])
    out = {"type": type(tok).__name__, "cases": 0, "encode_mismatches": [], "decode_mismatches": []}
    for i, c in enumerate(manifest["cases"]):
        out["cases"] += 1
        got = tok(c["text"], add_special_tokens=False).input_ids
        if got != c["ids"]:
            at = next((k for k, (a, b) in enumerate(zip(got, c["ids"])) if a != b), min(len(got), len(c["ids"])))
            out["encode_mismatches"].append({"case": i, "at": at, "hf": got[max(0, at - 3):at + 5],
                                             "gqe": c["ids"][max(0, at - 3):at + 5],
                                             "text": tok.decode(c["ids"][max(0, at - 3):at + 5])})
        text = tok.decode(c["ids"])
        if text != c["decoded"]:
            out["decode_mismatches"].append({"case": i, "hf": text[:200], "gqe": c["decoded"][:200]})
    with open(out_path, "w") as f:
        json.dump(out, f, indent=2)


if __name__ == "__main__":
    if len(sys.argv) != 4 or sys.argv[1] not in ("models", "harness", "tokenizer"):
        sys.exit(__doc__)
    with open(sys.argv[2]) as f:
        m = json.load(f)
    {"models": cmd_models, "harness": cmd_harness, "tokenizer": cmd_tokenizer}[sys.argv[1]](m, sys.argv[3])
