#!/usr/bin/env python3
"""The GQA-vs-GQE study: how the validation-loss gap moves with training tokens, with compute and with size.

    python3 scripts/study.py [--quick] [--out runs/study] [--jobs 2] [--gqe build/gqe]
    python3 scripts/study.py --report-only --out runs/study --report docs/results/DATE-study

Runs every `gqe train` the study needs (resumable: run it again after an interruption and it continues where
it stopped; finished runs are never redone), then `gqe routes` on the routing snapshots, then writes the report
(README.md, results.json, plots) into OUT/report or --report. Python 3 standard library and gnuplot only.

Design (docs/results/*-study/README.md explains it to readers):
- Tokens: the embedded corpus with its SentencePiece tokenizer (vocab 4096; scripts/prepare-corpus.sh).
- Budgets are WSD runs (warmup fixed in steps, a stable phase, a linear decay over the last 20%). A run of T
  steps and a longer run of the same seed are identical up to T's decay start, so each budget is a *branch*:
  the longest run stops at every budget's decay start (as gqe's schedule puts it: `gqe info --schedule`), and a
  branch resumes from that checkpoint with --steps T (bit-exact resume). One branch is also trained from scratch
  and must end on the same validation loss (`branch_check` in results.json).
- Equal compute: GQE's training step costs fewer FLOPs (`gqe info`: model forward FLOPs per token); at each
  budget GQE also gets round(T * FLOPs_GQA / FLOPs_GQE) steps, another branch of its longest run.
- Routing health: every GQE-family longest run stops at fixed snapshot steps; `gqe routes --dump-choices`
  on the validation shard gives load, router entropy and each token's top choice per layer and group.
"""
import argparse
import os
import subprocess
import sys
import time

import study_report
import study_zero_shot
from study_jobs import ROOT, Job, fail, fmt_s, log, run_jobs
from study_plan import FULL, QUICK, ROUTE_TOKENS, SEQ, Plan


# ---------------------------------------------------------------------------------------------------------
# routing snapshots


def routing_jobs(plan):
    jobs = []
    val = os.path.join(plan.args.data, "spm-4096", "val_000000.tok")
    for (model, seed), line in plan.lines.items():
        if model.startswith("gqa"):
            continue
        long_dir = os.path.join(line["dir"], "steps-%d" % line["longest"])
        # Routing over training for GQE itself; the ablations at their end only.
        for s in line["snapshots"] if model == "gqe" else [line["longest"]]:
            ck = os.path.join(long_dir, "checkpoints", "step-%08d" % s)
            prefix = os.path.join(line["dir"], "routes", "step-%d" % s)
            os.makedirs(os.path.dirname(prefix), exist_ok=True)
            argv = [plan.gqe, "routes", "--checkpoint", ck, "--data", val, "--seq", str(SEQ), "--max-tokens",
                    str(ROUTE_TOKENS), "--no-plot", "--out", prefix, "--dump-choices", prefix + ".choices"]
            jobs.append(Job("routes %s-s%d step %d" % (model, seed, s), argv, prefix + ".done", [],
                            prefix + ".log", work=1))
    return jobs


# ---------------------------------------------------------------------------------------------------------
# main


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="a few minutes: short budgets, one seed")
    ap.add_argument("--out", default=None, help="run directory (default runs/study, runs/study-quick)")
    ap.add_argument("--report", default=None, help="report directory (default OUT/report)")
    ap.add_argument("--data", default=os.path.join(ROOT, "data", "kjv"), help="prepared corpus (prepare-corpus.sh)")
    ap.add_argument("--gqe", default=os.environ.get("GQE", os.path.join(ROOT, "build", "gqe")))
    ap.add_argument("--jobs", type=int, default=2, help="training processes at a time (2)")
    ap.add_argument("--threads", type=int, default=1, help="threads per training process (1)")
    ap.add_argument("--report-only", action="store_true", help="write the report from what has finished")
    ap.add_argument("--no-routes", action="store_true", help="skip the routing snapshots")
    ap.add_argument("--eval-data", default=os.path.join(ROOT, "data", "eval"),
                    help="zero-shot benchmark data (scripts/install-eval-data.sh; default data/eval)")
    ap.add_argument("--eval-limit", type=int, default=None,
                    help="docs per zero-shot task (default 500, --quick 100; MMLU: that many over its subjects)")
    ap.add_argument("--no-eval", action="store_true", help="skip the zero-shot benchmarks")
    args = ap.parse_args()
    if args.jobs < 1 or args.threads < 1:
        fail("--jobs and --threads must be at least 1")
    if args.eval_limit is None:
        args.eval_limit = 100 if args.quick else 500
    if args.eval_limit < 1:
        fail("--eval-limit must be at least 1")
    out = os.path.abspath(args.out or os.path.join(ROOT, "runs", "study-quick" if args.quick else "study"))
    gqe = os.path.abspath(args.gqe)
    if not os.access(gqe, os.X_OK):
        fail("--gqe %s: not an executable; build first (scripts/build.sh) or pass --gqe" % gqe)
    if not os.path.exists(os.path.join(args.data, "spm-4096", "meta.json")):
        log("preparing the corpus (scripts/prepare-corpus.sh)")
        env = dict(os.environ, GQE=gqe)
        if subprocess.run(["bash", os.path.join(ROOT, "scripts", "prepare-corpus.sh"), "build", args.data],
                          cwd=ROOT, env=env).returncode != 0:
            fail("scripts/prepare-corpus.sh failed")
    os.makedirs(out, exist_ok=True)
    plan = Plan(args, QUICK if args.quick else FULL, gqe, out)
    plan.build()
    plan.eval_tasks = [] if args.no_eval else study_zero_shot.installed_tasks(args.eval_data)
    plan.write_json(quick=args.quick)
    if not args.report_only:
        todo = [j for j in plan.jobs if j.state != "done"]
        log("%d training jobs, %d to run, %d at a time (%d thread(s) each); GQA/GQE FLOP ratio %.4f" % (
            len(plan.jobs), len(todo), args.jobs, args.threads, plan.flop_ratio[""]))
        run_jobs(plan.jobs, args.jobs)
        if not args.no_routes:
            rj = routing_jobs(plan)
            log("%d routing snapshots" % sum(j.state != "done" for j in rj))
            run_jobs(rj, args.jobs)
        if plan.eval_tasks:
            ej = study_zero_shot.jobs(plan, plan.eval_tasks, os.path.abspath(args.eval_data), args.eval_limit,
                                      args.threads)
            todo = sum(j.state != "done" for j in ej)
            log("zero-shot: %d model(s) to evaluate on %d task(s), the first %d docs of each: %s" % (
                todo, len(plan.eval_tasks), args.eval_limit, ", ".join(plan.eval_tasks)))
            t0 = time.time()
            run_jobs(ej, args.jobs)
            if todo:
                log("zero-shot: evaluated in %s" % fmt_s(time.time() - t0))
        elif not args.no_eval:
            log("zero-shot: no benchmark data in %s, skipped; `%s` installs HellaSwag, ARC, PIQA and nine more "
                "tasks (Python registry)" % (args.eval_data, study_zero_shot.INSTALL))
    report = os.path.abspath(args.report or os.path.join(out, "report"))
    results = study_report.write_report(plan, report)
    log("report: " + os.path.join(report, "README.md"))
    check = results["branch_check"]
    if check["branch"] is not None and check["from_scratch"] is not None and not check["identical"]:
        fail("the %d-step branch ends at validation loss %r but the same run from scratch at %r: budgets cannot be "
             "branches of one run on this build (see the report)" % (check["steps"], check["branch"],
                                                                     check["from_scratch"]))


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    main()
