"""The Python half of tests/interop/hf_export_test.cpp: loads folders written by `gqe export --format hf` with
Hugging Face transformers (trust_remote_code) and lm-evaluation-harness, and reports how their numbers
compare with gqe's. It prints nothing the test relies on; the results go to a JSON file the test reads.

  hf_check.py models MANIFEST OUT    logits (full and through the KV cache), tokenizer, greedy generate()
  hf_check.py harness MANIFEST OUT   lm-evaluation-harness HFLM on local task files vs gqe eval's request dump
  hf_check.py tokenizer MANIFEST OUT AutoTokenizer of a folder vs gqe's ids for each text, and decode back
  hf_check.py requests MANIFEST OUT  each folder in HFLM as it comes (no token arguments): every request type,
                                     batched; and transformers' padded batch generate() vs row by row
  hf_check.py save MANIFEST OUT      a folder loaded with transformers, saved again in another dtype
"""
import json
import os
import sys
import time

# Never reach the network: every file is local.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402
from safetensors.torch import load_file  # noqa: E402

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))

# The Hugging Face model's attention path these checks compare with gqe: the plain-PyTorch reference
# ("eager"), pinned, so that a gqe package installed in this Python cannot change what is compared (its
# "auto" default would run the package's kernels; docs/interop.md). Every load below that computes passes it
# (transformers and the harness hand it to the model's config).
PINNED = {"attention_implementation": "eager"}


def pinned(model):
    """The model, once it is sure that the pin reached its config (a folder whose code lacks the field would
    otherwise run whatever it runs)."""
    got = getattr(model.config, "attention_implementation", None)
    if got != PINNED["attention_implementation"]:
        raise RuntimeError(f"the model's attention_implementation is {got!r}, not the pinned 'eager'")
    return model


def max_rel_diff(a, b):
    return float((a.double() - b.double()).abs().max() / b.double().abs().max().clamp_min(1e-30))


def check_model(v):
    """One exported model: v = {"hf_dir", "gqe_logits" (safetensors: tokens [1,T], logits [1,T,V]),
    "prompt", "max_new_tokens"}."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = pinned(AutoModelForCausalLM.from_pretrained(v["hf_dir"], trust_remote_code=True, dtype=torch.float32,
                                                        **PINNED).eval())
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
    # attend() takes K/V in the cache's layout, [B, G, T, d_h].
    out["float64_attention_rel_err"] = max_rel_diff(modeling.attend(q, k.transpose(1, 2), v.transpose(1, 2), 0, None), want)
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


# Each gqe task's lm-eval 0.4 YAML (under lm_eval/tasks/) and the split gqe scores. SciQ: lm-eval scores
# its test split; the validation split is the one installed (docs/eval.md), so the YAML is pointed at it.
HARNESS_TASKS = {
    "hellaswag": ("hellaswag/hellaswag.yaml", "validation"),
    "arc_easy": ("arc/arc_easy.yaml", "test"),
    "arc_challenge": ("arc/arc_challenge.yaml", "test"),
    "piqa": ("piqa/piqa.yaml", "validation"),
    "winogrande": ("winogrande/default.yaml", "validation"),
    "sciq": ("sciq/sciq.yaml", "validation"),
    "openbookqa": ("openbookqa/openbookqa.yaml", "test"),
    "boolq": ("super_glue/boolq/default.yaml", "validation"),
    "copa": ("super_glue/copa/default.yaml", "validation"),
    "commonsense_qa": ("commonsense_qa/default.yaml", "validation"),
    "social_iqa": ("siqa/siqa.yaml", "validation"),
}


def write_task_yaml(path, name, own, split, data_file):
    """A task that is the harness's own YAML `own` (its prompt, choices, target, metrics, process_docs,
    !function helpers), reading local JSON rows for `split` instead of the Hub dataset."""
    with open(path, "w") as f:
        f.write(
            f"include: {own}\n"
            f"task: {name}\n"
            "tag: []\n"
            "dataset_path: json\n"
            "dataset_name: null\n"
            "dataset_kwargs:\n"
            "  data_files:\n"
            f"    {split}: {data_file}\n"
            "training_split: null\n"
            "fewshot_split: null\n"
            f"validation_split: {'null' if split == 'test' else 'validation'}\n"
            f"test_split: {'test' if split == 'test' else 'null'}\n"
        )


def harness_task_yaml(task, data_file, yaml_dir):
    """Writes the local-file task(s) for gqe task `task`; returns (name to evaluate, {subtask name: subject})
    where mmlu, a group of 57 subject tasks, has one subtask per subject found in its file."""
    import lm_eval.tasks

    base = os.path.dirname(lm_eval.tasks.__file__)
    name = "gqe_interop_" + task
    if task != "mmlu":
        own, split = HARNESS_TASKS[task]
        write_task_yaml(os.path.join(yaml_dir, name + ".yaml"), name, os.path.join(base, own), split, data_file)
        return name, {}
    # mmlu: one file of all subjects; the harness's subject tasks each read their own rows.
    subjects = {}
    with open(data_file) as f:
        for line in f:
            if line.strip():
                row = json.loads(line)
                subjects.setdefault(row["subject"], []).append(line)
    subtasks = {}
    for subject, lines in subjects.items():
        sub_file = os.path.join(yaml_dir, "mmlu_" + subject + ".jsonl")
        with open(sub_file, "w") as f:
            f.writelines(lines)
        sub = name + "_" + subject
        write_task_yaml(os.path.join(yaml_dir, sub + ".yaml"), sub,
                        os.path.join(base, "mmlu/default/mmlu_" + subject + ".yaml"), "test", sub_file)
        subtasks[sub] = subject
    with open(os.path.join(yaml_dir, name + ".yaml"), "w") as f:
        # As lm-eval's mmlu group aggregates: acc over its subject tasks, weighted by size.
        f.write(f"group: {name}\ntask:\n" + "".join(f"  - {t}\n" for t in subtasks) +
                "aggregate_metric_list:\n  - metric: acc\n    weight_by_size: True\nmetadata:\n  version: 2\n")
    return name, subtasks


def py_argmax(xs):
    """numpy.argmax: the first maximum."""
    best = 0
    for i, x in enumerate(xs):
        if x > xs[best]:
            best = i
    return best


def close(a, b, tol):
    return abs(a - b) <= tol * max(abs(a), abs(b), 1.0)


def cmd_harness(manifest, out_path):
    """manifest = {"hf_dir", "tasks": {task: data_file}, "gqe_dump", "gqe_results", "work_dir", "batch_size",
    optional "limits": {task: N} (the harness's --limit per task; mmlu's applies to each subject) and
    "tolerance" (relative, default 1e-4)}. Writes numbers and ids only, never item text."""
    import lm_eval
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    tol = float(manifest.get("tolerance", 1e-4))
    limits = manifest.get("limits") or {}
    yaml_dir = os.path.join(manifest["work_dir"], "lm_eval_tasks")
    os.makedirs(yaml_dir, exist_ok=True)
    names, subtasks = {}, {}
    for t, f in manifest["tasks"].items():
        name, subs = harness_task_yaml(t, f, yaml_dir)
        names[name] = t
        subtasks[name] = subs
    lm = HFLM(pretrained=manifest["hf_dir"], trust_remote_code=True, batch_size=manifest["batch_size"], device="cpu",
              dtype="float32", **PINNED)
    pinned(lm.model)
    tm = TaskManager(include_path=yaml_dir)
    # simple_evaluate takes one limit: one call per distinct limit, on the same loaded model.
    by_limit = {}
    for name, t in names.items():
        by_limit.setdefault(limits.get(t), []).append(name)
    samples, results = {}, {}
    seconds = {}
    for limit, group in by_limit.items():
        t0 = time.time()
        # bootstrap_iters > 0 so that the harness reports stderrs; acc's is closed-form (no resampling).
        res = lm_eval.simple_evaluate(model=lm, tasks=group, num_fewshot=0, log_samples=True, task_manager=tm,
                                      bootstrap_iters=1000, limit=limit)
        samples.update(res["samples"])
        results.update(res["results"])
        results.update(res.get("groups", {}))
        for name in group:
            seconds[name] = (time.time() - t0) / len(group)

    gqe = {}
    gqe_docs = {}
    with open(manifest["gqe_dump"]) as f:
        for line in f:
            r = json.loads(line)
            key = (r["task"], r.get("subtask", ""), r.get("subtask_doc", r["doc"]), r["choice"])
            gqe[key] = r
            gqe_docs.setdefault(key[:3], {})[r["choice"]] = r
    with open(manifest["gqe_results"]) as f:
        gqe_res = json.load(f)["results"]

    out = {"tolerance": tol, "tasks": {}, "requests": 0, "docs": 0, "max_abs_diff": 0.0, "max_rel_diff": 0.0,
           "min_ll": 0.0, "max_ll": -1e300, "greedy_mismatches": 0, "missing": [], "text_mismatches": 0,
           "ties": 0, "decision_mismatches": 0, "metric_mismatches": []}
    for name, task in names.items():
        has_norm = "acc_norm,none" in gqe_res[task]
        st = {"docs": 0, "requests": 0, "max_abs_diff": 0.0, "max_rel_diff": 0.0, "greedy_mismatches": 0,
              "text_mismatches": 0, "ties": [], "decision_mismatches": []}
        parts = subtasks[name] or {name: ""}
        for part, subject in parts.items():
            for s in samples[part]:
                st["docs"] += 1
                h_lls, g_lls, lens = [], [], []
                for c, (args, resp) in enumerate(zip(s["arguments"], s["filtered_resps"])):
                    g = gqe.pop((task, subject, s["doc_id"], c), None)
                    if g is None:
                        out["missing"].append(f"{task} {subject + ' ' if subject else ''}doc {s['doc_id']} choice {c} (harness only)")
                        continue
                    ll, greedy = float(resp[0]), bool(resp[1])
                    st["requests"] += 1
                    d = abs(ll - g["loglikelihood"])
                    st["max_abs_diff"] = max(st["max_abs_diff"], d)
                    if d / max(abs(ll), 1e-30) > st["max_rel_diff"]:  # the worst request, by reference (no text)
                        st["worst"] = {"doc_id": s["doc_id"], "subtask": subject, "choice": c, "harness": ll,
                                       "gqe": g["loglikelihood"], "context_tokens": g.get("context_tokens"),
                                       "continuation_tokens": g.get("continuation_tokens")}
                    st["max_rel_diff"] = max(st["max_rel_diff"], d / max(abs(ll), 1e-30))
                    out["min_ll"], out["max_ll"] = min(out["min_ll"], ll), max(out["max_ll"], ll)
                    st["greedy_mismatches"] += int(greedy != g["is_greedy"])
                    st["text_mismatches"] += int(list(args)[:2] != [g["context"], g["continuation"]])
                    h_lls.append(ll)
                    g_lls.append(g["loglikelihood"])
                    # acc_norm divides by len(choice): the continuation less the target delimiter.
                    lens.append(float(len(g["continuation"]) - 1))
                if len(h_lls) != len(s["arguments"]):
                    continue
                doc_ref = f"{subject + ' ' if subject else ''}{s['doc_id']}"
                decisions = [(h_lls, g_lls)]
                if has_norm:
                    decisions.append(([a / n for a, n in zip(h_lls, lens)], [b / n for b, n in zip(g_lls, lens)]))
                for hv, gv in decisions:
                    ph, pg = py_argmax(hv), py_argmax(gv)
                    if ph != pg:
                        # A different choice is a tie when the two candidates score alike within tolerance.
                        if close(hv[ph], hv[pg], tol) or close(gv[ph], gv[pg], tol):
                            st["ties"].append(doc_ref)
                        else:
                            st["decision_mismatches"].append(doc_ref)
        r = results[name]
        g = gqe_res[task]
        st["harness"] = {k: r.get(k) for k in ("acc,none", "acc_stderr,none", "acc_norm,none", "acc_norm_stderr,none")
                         if k in r}
        st["gqe"] = {k: g.get(k) for k in ("acc,none", "acc_stderr,none", "acc_norm,none", "acc_norm_stderr,none", "chance")
                     if k in g}
        st["harness_seconds"] = seconds.get(name)
        for k in ("acc,none", "acc_norm,none"):
            if k not in st["gqe"] or st["harness"].get(k) == st["gqe"][k]:
                continue
            # Identical unless ties moved docs: at most one doc per tie (and the means are over st["docs"]).
            moved = abs(st["harness"].get(k, 0.0) - st["gqe"][k]) * st["docs"]
            if moved > len(st["ties"]) + 1e-6:
                out["metric_mismatches"].append(f"{task} {k}: harness {st['harness'].get(k)}, gqe {st['gqe'][k]}")
        if not st["ties"]:
            # Same docs, same outcomes: the stderrs must agree to float rounding.
            for k in ("acc_stderr,none", "acc_norm_stderr,none"):
                h, g = st["harness"].get(k), st["gqe"].get(k)
                if isinstance(h, float) and isinstance(g, float) and not close(h, g, 1e-9):
                    out["metric_mismatches"].append(f"{task} {k}: harness {h}, gqe {g}")
                elif k in st["gqe"] and not isinstance(h, float):
                    out["metric_mismatches"].append(f"{task} {k}: harness {h!r}, gqe {g}")
        if (k := "acc,none") in st["harness"] and k not in st["gqe"]:
            out["metric_mismatches"].append(f"{task}: gqe reports no {k}")
        if ("acc_norm,none" in st["harness"]) != has_norm:
            out["metric_mismatches"].append(f"{task}: acc_norm reported by {'harness' if not has_norm else 'gqe'} only")
        # Compatibility with the earlier flat fields.
        st["harness_acc"], st["gqe_acc"] = st["harness"].get("acc,none"), st["gqe"].get("acc,none")
        st["harness_acc_norm"], st["gqe_acc_norm"] = st["harness"].get("acc_norm,none"), st["gqe"].get("acc_norm,none")
        out["tasks"][task] = st
        out["requests"] += st["requests"]
        out["docs"] += st["docs"]
        out["max_abs_diff"] = max(out["max_abs_diff"], st["max_abs_diff"])
        out["max_rel_diff"] = max(out["max_rel_diff"], st["max_rel_diff"])
        out["greedy_mismatches"] += st["greedy_mismatches"]
        out["text_mismatches"] += st["text_mismatches"]
        out["ties"] += len(st["ties"])
        out["decision_mismatches"] += len(st["decision_mismatches"])
    out["missing"] += [f"{k[0]} {k[1] + ' ' if k[1] else ''}doc {k[2]} choice {k[3]} (gqe only)" for k in gqe]
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


def check_requests(hf_dir, prompts, rolling_texts):
    """HFLM on one folder with nothing but its path (and trust_remote_code): it must find its own prefix and
    pad tokens. Every id it feeds the model must be a row of the embedding, which the model checks."""
    from lm_eval.api.instance import Instance
    from lm_eval.models.huggingface import HFLM
    from transformers import AutoModelForCausalLM, AutoTokenizer

    lm = HFLM(pretrained=hf_dir, trust_remote_code=True, batch_size=2, device="cpu", **PINNED)
    pinned(lm.model)
    vocab = lm.model.config.vocab_size
    out = {"vocab_size": vocab, "prefix_token_id": lm.prefix_token_id, "eot_token_id": lm.eot_token_id,
           "pad_token_id": lm.tokenizer.pad_token_id}

    def req(kind, args, i):
        return Instance(request_type=kind, doc={}, arguments=args, idx=i)

    # An empty context conditions on the prefix token; the others are ordinary requests.
    ll = lm.loglikelihood([req("loglikelihood", ("", prompts[0]), 0)] +
                          [req("loglikelihood", (p, " and"), i + 1) for i, p in enumerate(prompts)])
    out["loglikelihood"] = [float(x[0]) for x in ll]
    # Rolling windows start from the prefix token; a text longer than the context takes several windows.
    out["loglikelihood_rolling"] = [float(x) for x in lm.loglikelihood_rolling(
        [req("loglikelihood_rolling", (t,), i) for i, t in enumerate(rolling_texts)])]
    # Batches of prompts of different lengths: padded on the left with the pad token.
    gen = lm.generate_until([req("generate_until", (p, {"until": ["\n\n"], "max_gen_toks": 6, "do_sample": False}), i)
                             for i, p in enumerate(prompts)])
    out["generate_until"] = gen
    # transformers itself, as a user batches prompts: left padding with the pad token and the attention
    # mask give each row the tokens it gets alone.
    model = pinned(AutoModelForCausalLM.from_pretrained(hf_dir, trust_remote_code=True, dtype=torch.float32,
                                                        **PINNED).eval())
    tok = AutoTokenizer.from_pretrained(hf_dir, trust_remote_code=True, padding_side="left")
    batch = tok(prompts, return_tensors="pt", padding=True)
    out["padded"] = bool((batch.attention_mask == 0).any())
    with torch.no_grad():
        together = model.generate(**batch, max_new_tokens=6, do_sample=False, pad_token_id=tok.pad_token_id)
        width = batch.input_ids.shape[1]
        same = []
        for i, p in enumerate(prompts):
            ids = tok(p, return_tensors="pt").input_ids
            alone = model.generate(ids, max_new_tokens=6, do_sample=False, pad_token_id=tok.pad_token_id)
            same.append(alone[0, ids.shape[1]:].tolist() == together[i, width:].tolist())
    out["batch_generate_matches_rows"] = same
    return out


def cmd_requests(manifest, out_path):
    """manifest = {"folders": {name: hf_dir}, "prompts": [...], "rolling_texts": [...]}."""
    results = {}
    for name, d in manifest["folders"].items():
        try:
            results[name] = check_requests(d, manifest["prompts"], manifest["rolling_texts"])
        except Exception as e:  # reported per folder, so one failure does not hide the others
            results[name] = {"error": f"{type(e).__name__}: {e}"}
    with open(out_path, "w") as f:
        json.dump(results, f, indent=2)


def cmd_save(manifest, out_path):
    """manifest = {"hf_dir", "out_dir", "dtype"}: the model loaded with transformers, cast, and saved with
    save_pretrained (config.json, model.safetensors and the modeling code, as a user's folder)."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(manifest["hf_dir"], trust_remote_code=True)
    model = model.to(getattr(torch, manifest["dtype"]))
    model.save_pretrained(manifest["out_dir"])
    from safetensors import safe_open

    with safe_open(os.path.join(manifest["out_dir"], "model.safetensors"), "pt") as f:
        dtypes = sorted({str(f.get_slice(k).get_dtype()) for k in f.keys()})
    with open(out_path, "w") as f:
        json.dump({"dtypes": dtypes, "files": sorted(os.listdir(manifest["out_dir"]))}, f, indent=2)


if __name__ == "__main__":
    verbs = {"models": cmd_models, "harness": cmd_harness, "tokenizer": cmd_tokenizer, "requests": cmd_requests,
             "save": cmd_save}
    if len(sys.argv) != 4 or sys.argv[1] not in verbs:
        sys.exit(__doc__)
    with open(sys.argv[2]) as f:
        m = json.load(f)
    verbs[sys.argv[1]](m, sys.argv[3])
