#!/usr/bin/env python3
"""Checks `gqe eval` against lm-evaluation-harness 0.4 itself on the real evaluation sets (docs/eval.md,
"Checked against lm-eval"). Run by scripts/check-eval-vs-lm-eval.sh with .venv-torch's Python (torch,
transformers, lm-eval 0.4.13 there):

  1. installs the data (scripts/install-eval-data.sh; a second run only verifies the manifest);
  2. takes --checkpoint, or trains a small model (configs/tiny-gqe.json on data/kjv/kjv.txt, --train-steps);
  3. exports it (`gqe export --format hf`);
  4. scores every task with `gqe eval --dump-requests`, and with lm-eval's HFLM on the export through the
     harness's own task YAMLs pointed at the same local files (tests/interop/hf_check.py `harness`);
  5. compares each request's log-likelihood (relative --tolerance) and is_greedy, each request's text,
     and each task's acc / acc_norm; a choice may differ only where two candidates score within the
     tolerance (a tie, counted and listed by doc id).

--subset (the default, for CI): the first --limit docs of each task (mmlu: --mmlu-limit per subject).
--full: every doc. Output in --out: comparison.json (hf_check's, per task), gqe_results.json, summary.md
and summary.json: numbers and ids only, no item text (the request dump stays in the work folder).
Exit status 0 when everything matches, 1 otherwise.
"""
import argparse
import datetime
import json
import os
import platform
import shutil
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ALL_TASKS = ["hellaswag", "arc_easy", "arc_challenge", "piqa", "winogrande", "sciq", "openbookqa", "boolq", "copa",
             "commonsense_qa", "social_iqa", "mmlu"]


def log(msg):
    print("[eval-vs-lm-eval] " + msg, flush=True)


def run(cmd, **kw):
    log("$ " + " ".join(cmd))
    t0 = time.time()
    r = subprocess.run(cmd, cwd=ROOT, **kw)
    if r.returncode != 0:
        sys.exit("check-eval-vs-lm-eval: '%s' failed with exit status %d" % (" ".join(cmd), r.returncode))
    return time.time() - t0


def task_files(data_dir):
    """The file of each task, from the installer's manifest."""
    with open(os.path.join(data_dir, "manifest.json")) as f:
        m = json.load(f)
    return {e["task"]: os.path.join(data_dir, e["path"]) for e in m["files"]}


def load_avg():
    try:
        return list(os.getloadavg())
    except OSError:
        return None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--subset", action="store_true", help="the first --limit docs per task (default)")
    mode.add_argument("--full", action="store_true", help="every doc of every task")
    ap.add_argument("--limit", type=int, default=25, help="docs per task in --subset (default 25)")
    ap.add_argument("--mmlu-limit", type=int, default=2, help="docs per mmlu subject in --subset (default 2)")
    ap.add_argument("--tasks", default=",".join(ALL_TASKS), help="comma-separated (default: all 12)")
    ap.add_argument("--checkpoint", help="a gqe checkpoint folder (default: train one)")
    ap.add_argument("--train-steps", type=int, default=200)
    ap.add_argument("--corpus", help="training text (default: data/kjv/kjv.txt, else data/kjv.txt, else made by "
                                     "scripts/prepare-corpus.sh)")
    ap.add_argument("--gqe", default=os.path.join(ROOT, "build", "gqe"), help="the gqe executable (default build/gqe)")
    ap.add_argument("--data-dir", default=os.path.join(ROOT, "data", "eval"))
    ap.add_argument("--work", default=os.path.join(ROOT, "build", "eval-vs-lm-eval"), help="scratch folder")
    ap.add_argument("--out", help="results folder (default: --work/out; --full: docs/results/<date>-eval-vs-lm-eval)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--tolerance", type=float, default=1e-4)
    ap.add_argument("--per-request", action="store_true",
                    help="gqe eval --per-request (default: gqe's default, each doc's context scored once)")
    args = ap.parse_args()
    tasks = [t for t in args.tasks.split(",") if t]
    unknown = [t for t in tasks if t not in ALL_TASKS]
    if unknown:
        sys.exit("check-eval-vs-lm-eval: unknown task(s) %s (known: %s)" % (", ".join(unknown), ", ".join(ALL_TASKS)))
    if not os.access(args.gqe, os.X_OK):
        sys.exit("check-eval-vs-lm-eval: %s is not an executable; build first (cmake --build build) or pass --gqe" % args.gqe)
    full = args.full
    date = datetime.date.today().isoformat()
    out = args.out or (os.path.join(ROOT, "docs", "results", date + "-eval-vs-lm-eval") if full
                       else os.path.join(args.work, "out"))
    os.makedirs(args.work, exist_ok=True)
    os.makedirs(out, exist_ok=True)
    os.environ["OMP_NUM_THREADS"] = str(args.threads)

    # 1. Data.
    run(["bash", "scripts/install-eval-data.sh", "--out", args.data_dir])
    files = task_files(args.data_dir)

    # 2. Model.
    ckpt = args.checkpoint
    trained, corpus = None, None
    if not ckpt:
        ckpt = os.path.join(args.work, "ckpt")
        if not os.path.isfile(os.path.join(ckpt, "model.safetensors")):
            corpus = args.corpus or next((c for c in (os.path.join(ROOT, "data", "kjv", "kjv.txt"),
                                                      os.path.join(ROOT, "data", "kjv.txt")) if os.path.isfile(c)), None)
            if corpus is None:
                run(["bash", "scripts/prepare-corpus.sh"], env=dict(os.environ, GQE=args.gqe))
                corpus = os.path.join(ROOT, "data", "kjv", "kjv.txt")
            shutil.rmtree(ckpt, ignore_errors=True)
            run([args.gqe, "train", "--config", "configs/tiny-gqe.json", "--data", corpus, "--out", ckpt,
                 "--steps", str(args.train_steps), "--threads", str(args.threads)])
        trained = {"config": "configs/tiny-gqe.json", "data": os.path.relpath(corpus, ROOT) if corpus else None,
                   "steps": args.train_steps}
    hf = os.path.join(args.work, "hf")
    shutil.rmtree(hf, ignore_errors=True)
    run([args.gqe, "export", "--format", "hf", ckpt, hf])

    # 3. gqe eval: one run per limit (gqe's --limit is per run; mmlu's applies to each subject).
    limits = {t: None if full else (args.mmlu_limit if t == "mmlu" else args.limit) for t in tasks}
    groups = {}
    for t in tasks:
        groups.setdefault(limits[t], []).append(t)
    dump = os.path.join(args.work, "gqe_requests.jsonl")
    merged = None
    gqe_seconds = 0.0
    with open(dump, "w") as dump_f:
        for i, (limit, group) in enumerate(groups.items()):
            part_res, part_dump = os.path.join(args.work, "gqe_results.%d.json" % i), os.path.join(args.work, "gqe_requests.%d.jsonl" % i)
            cmd = [args.gqe, "eval", "--checkpoint", ckpt, "--task", ",".join(group), "--data-dir", args.data_dir, "--out",
                   part_res, "--dump-requests", part_dump, "--batch-size", str(args.batch_size), "--threads",
                   str(args.threads)]
            if limit:
                cmd += ["--limit", str(limit)]
            if args.per_request:
                cmd.append("--per-request")
            gqe_seconds += run(cmd)
            with open(part_dump) as f:
                shutil.copyfileobj(f, dump_f)
            with open(part_res) as f:
                r = json.load(f)
            if merged is None:
                merged = r
            else:
                for k in ("results", "groups", "configs", "versions", "n-shot", "higher_is_better", "n-samples", "gqe"):
                    merged.setdefault(k, {}).update(r.get(k, {}))
    gqe_results = os.path.join(args.work, "gqe_results.json")
    with open(gqe_results, "w") as f:
        json.dump(merged, f, indent=2)

    # 4. lm-eval's HFLM on the export, the same docs.
    manifest = {"hf_dir": hf, "tasks": {t: files[t] for t in tasks}, "gqe_dump": dump, "gqe_results": gqe_results,
                "work_dir": args.work, "batch_size": args.batch_size, "tolerance": args.tolerance,
                "limits": {t: l for t, l in limits.items() if l}}
    mpath = os.path.join(args.work, "harness_manifest.json")
    with open(mpath, "w") as f:
        json.dump(manifest, f, indent=2)
    comparison = os.path.join(out, "comparison.json")
    harness_seconds = run([sys.executable, os.path.join(ROOT, "tests", "interop", "hf_check.py"), "harness", mpath, comparison])
    with open(comparison) as f:
        c = json.load(f)

    # 5. Verdict and summary (numbers and ids only).
    problems = []
    if c["missing"]:
        problems.append("%d requests on one side only (first: %s)" % (len(c["missing"]), c["missing"][0]))
    if c["text_mismatches"]:
        problems.append("%d requests whose context or continuation differ" % c["text_mismatches"])
    if c["greedy_mismatches"]:
        problems.append("%d is_greedy mismatches" % c["greedy_mismatches"])
    if c["max_rel_diff"] > args.tolerance:
        problems.append("max relative log-likelihood difference %.3g above %.0e" % (c["max_rel_diff"], args.tolerance))
    if c["decision_mismatches"]:
        problems.append("%d docs where a different choice wins without a tie" % c["decision_mismatches"])
    problems += c["metric_mismatches"]
    docs = sum(t["docs"] for t in c["tasks"].values())
    gqe_tok = 0
    with open(dump) as f:
        for line in f:
            r = json.loads(line)
            gqe_tok += r["context_tokens"] + r["continuation_tokens"]
    summary = {
        "mode": "full" if full else "subset",
        "limits": manifest["limits"],
        "date": date,
        "checkpoint": os.path.relpath(ckpt, ROOT) if ckpt.startswith(ROOT) else ckpt,
        "trained": trained,
        "gqe": args.gqe,
        "threads": args.threads,
        "batch_size": args.batch_size,
        "shared_contexts": not args.per_request,
        "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(), "load_avg_at_end": load_avg()},
        "docs": docs,
        "requests": c["requests"],
        "request_tokens": gqe_tok,
        "max_abs_diff": c["max_abs_diff"],
        "max_rel_diff": c["max_rel_diff"],
        "tolerance": args.tolerance,
        "greedy_mismatches": c["greedy_mismatches"],
        "text_mismatches": c["text_mismatches"],
        "ties": c["ties"],
        "decision_mismatches": c["decision_mismatches"],
        "gqe_eval_seconds": gqe_seconds,
        "lm_eval_seconds": harness_seconds,
        "ok": not problems,
        "problems": problems,
    }
    shutil.copy(gqe_results, os.path.join(out, "gqe_results.json"))
    with open(os.path.join(out, "summary.json"), "w") as f:
        json.dump(summary, f, indent=2)
    lines = ["# gqe eval vs lm-evaluation-harness 0.4.13 (HFLM on the `gqe export --format hf` folder)", "",
             "%s; %s; %d docs, %d requests; %d threads, batch %d. gqe eval %.1f s (model load included), lm-eval %.1f s "
             "(model load and dataset preparation included). Load average at the end: %s." % (
                 "Full sets" if full else "Subset (limits %s)" % json.dumps(manifest["limits"]), date, docs,
                 c["requests"], args.threads, args.batch_size, gqe_seconds, harness_seconds, load_avg()), "",
             "Verdict: **%s**" % ("every request matches" if not problems else "; ".join(problems)), "",
             "| task | docs | requests | max rel diff | greedy mismatches | ties | gqe acc | lm-eval acc | gqe acc_norm | "
             "lm-eval acc_norm | chance |",
             "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|"]

    def pm(d, k):
        v, s = d.get(k + ",none"), d.get(k + "_stderr,none")
        if v is None:
            return "-"
        return "%.4f ± %.4f" % (v, s) if isinstance(s, (int, float)) else "%.4f" % v

    for t in tasks:
        st = c["tasks"][t]
        lines.append("| %s | %d | %d | %.2e | %d | %d | %s | %s | %s | %s | %.4f |" % (
            t, st["docs"], st["requests"], st["max_rel_diff"], st["greedy_mismatches"], len(st["ties"]),
            pm(st["gqe"], "acc"), pm(st["harness"], "acc"), pm(st["gqe"], "acc_norm"), pm(st["harness"], "acc_norm"),
            st["gqe"].get("chance", float("nan"))))
    lines += ["", "Ties (docs where the two sides pick different choices whose scores are within the tolerance), by "
              "task and doc id: " + (", ".join("%s %s" % (t, d) for t in tasks for d in c["tasks"][t]["ties"]) or "none") + "."]
    with open(os.path.join(out, "summary.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))
    log("wrote %s" % out)
    return 0 if not problems else 1


if __name__ == "__main__":
    sys.exit(main())
