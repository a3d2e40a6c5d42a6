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
  the longest run stops at every budget's decay start, and a branch resumes from that checkpoint with --steps
  T (bit-exact resume). One branch is also trained from scratch and must end on the same validation loss
  (`branch_check` in results.json).
- Equal compute: GQE's training step costs fewer FLOPs (`gqe info`: model forward FLOPs per token); at each
  budget GQE also gets round(T * FLOPs_GQA / FLOPs_GQE) steps, another branch of its longest run.
- Routing health: every GQE-family longest run stops at fixed snapshot steps; `gqe routes --dump-choices`
  on the validation shard gives load, router entropy and each token's top choice per layer and group.
"""
import argparse
import datetime
import json
import math
import os
import re
import shutil
import subprocess
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# The plan. Steps are optimizer steps of BATCH x SEQ tokens.
BATCH, SEQ, LR, MIN_LR, WARMUP, DECAY = 16, 128, 3e-3, 3e-4, 30, 0.2
FULL = dict(budgets=[150, 600, 2400], seeds=[1, 2, 3], ablation_seeds=[1, 2, 3], large_budget=600,
            large_seeds=[1, 2], snapshots=[30, 60, 120, 240, 480, 720, 960, 1200, 1440, 1680, 1920, 2160, 2400],
            check_budget=150, eval_every=150)
QUICK = dict(budgets=[40, 120], seeds=[1], ablation_seeds=[1], large_budget=40, large_seeds=[1],
             snapshots=[20, 40, 80, 120], check_budget=40, eval_every=40)
ABLATIONS = ["hard_concat", "weighted_concat"]
ROUTE_TOKENS = 8192  # validation tokens routed at each snapshot
# The larger model: about 4x the tiny model's parameters (d 256, 6 layers, d_h 32), same head layout.
LARGE = {"hidden_size": 256, "num_hidden_layers": 6, "intermediate_size": 704, "head_dim": 32}


def log(msg):
    print(time.strftime("%H:%M:%S"), msg, flush=True)


def fail(msg):
    print("study: " + msg, file=sys.stderr)
    sys.exit(1)


def decay_start(steps):
    """The first step of the decay phase, exactly as gqe's schedule computes it (llround of 0.2 T)."""
    return steps - int(math.floor(DECAY * steps + 0.5))


# ---------------------------------------------------------------------------------------------------------
# configs and FLOPs


def write_configs(out, base):
    """OUT/configs/{gqa,gqe,hard_concat,weighted_concat}[-large].json from the tiny GQE config."""
    os.makedirs(os.path.join(out, "configs"), exist_ok=True)
    with open(base) as f:
        cfg = json.load(f)
    cfg["vocab_size"] = 4096
    paths = {}
    for size in ["", "-large"]:
        for variant in ["gqa", "gqe"] + ABLATIONS:
            c = json.loads(json.dumps(cfg))
            if size:
                for k in ["hidden_size", "num_hidden_layers", "intermediate_size"]:
                    c[k] = LARGE[k]
                c["attention"]["head_dim"] = LARGE["head_dim"]
            a = c["attention"]
            if variant == "gqa":
                a["kind"] = "gqa"
                for k in ["top_k", "variant", "aux_loss_weight"]:
                    a.pop(k, None)
            else:
                a["kind"] = "gqe"
                a["variant"] = variant
            p = os.path.join(out, "configs", variant + size + ".json")
            text = json.dumps(c, indent=2) + "\n"
            if not os.path.exists(p) or open(p).read() != text:
                with open(p + ".tmp", "w") as f:
                    f.write(text)
                os.replace(p + ".tmp", p)
            paths[variant + size] = p
    return paths


def model_info(gqe, config):
    """(parameters, forward FLOPs per token at SEQ) from `gqe info`."""
    text = subprocess.run([gqe, "info", config, "--context", str(SEQ)], check=True, capture_output=True,
                          text=True).stdout
    params = int(re.search(r"^parameters: \S+ \((\d+)\)", text, re.M).group(1))
    flops = int(re.search(r"model forward FLOPs per token, mean over a causal prefill of \d+: \S+ \((\d+);",
                          text).group(1))
    return params, flops


# ---------------------------------------------------------------------------------------------------------
# the job graph


class Job:
    """A command (or a list of commands run in turn) whose success writes done_marker."""

    def __init__(self, name, argv, done_marker, deps=(), log_path=None, work=0):
        self.name, self.argv, self.done_marker, self.deps = name, argv, done_marker, list(deps)
        self.log_path, self.work = log_path, work  # work: training steps x relative cost, for the ETA
        self.state = "done" if os.path.exists(done_marker) else "todo"


def last_checkpoint(run_dir):
    return os.path.exists(os.path.join(run_dir, "checkpoints", "latest"))


class Plan:
    def __init__(self, args, plan, gqe, out):
        self.args, self.p, self.gqe, self.out = args, plan, gqe, out
        self.cfg = write_configs(out, os.path.join(ROOT, "configs", "tiny-gqe.json"))
        self.info = {k: model_info(gqe, v) for k, v in self.cfg.items()}
        self.flop_ratio = {size: self.info["gqa" + size][1] / self.info["gqe" + size][1] for size in ["", "-large"]}
        self.jobs = []
        self.lines = {}  # (variant+size, seed) -> dict(long=dir, budgets={T: dir}, snapshots=[steps])

    def train_argv(self, cfg, seed, out_dir, steps, resume=None, stop_at=None, extra=()):
        """extra: further `gqe train` flags of a line (scripts/study_gap.py: --data-seed, --train-tokens)."""
        shards = os.path.join(self.args.data, "spm-4096")
        argv = [self.gqe, "train", "--config", cfg, "--train-shards", os.path.join(shards, "train_*.tok"),
                "--val-shards", os.path.join(shards, "val_*.tok"), "--out", out_dir, "--steps", str(steps),
                "--batch", str(BATCH), "--seq", str(SEQ), "--lr", str(LR), "--min-lr", str(MIN_LR),
                "--warmup", str(self.p.get("warmup", WARMUP)), "--decay-fraction", str(DECAY), "--seed", str(seed),
                "--threads", str(self.args.threads), "--eval-every", str(self.p["eval_every"]),
                "--eval-batches", "10", "--log-every", "50", "--keep", "1000", "--save-every", "0",
                "--sample-tokens", "0"] + list(extra)
        if resume:
            argv += ["--resume", resume]
        if stop_at is not None:
            argv += ["--stop-at", str(stop_at)]
        return argv

    def add_line(self, model, seed, budgets, snapshots, cost, name=None, extra=()):
        """The longest run of (model, seed) in segments, and a branch per shorter budget. name: the line's folder
        under OUT/runs and key in self.lines (default model-sSEED); extra: further `gqe train` flags."""
        key = name or (model, seed)
        name = name or "%s-s%d" % (model, seed)
        base = os.path.join(self.out, "runs", name)
        longest = max(budgets)
        long_dir = os.path.join(base, "steps-%d" % longest)
        branch_points = {decay_start(t): t for t in budgets if t != longest}
        stops = sorted(set(branch_points) | set(s for s in snapshots if s < longest))
        prev, prev_s = None, 0
        for s in stops + [longest]:
            marker = os.path.join(long_dir, ".done-%d" % s)
            argv = self.train_argv(self.cfg[model], seed, long_dir, longest, resume="auto",
                                   stop_at=None if s == longest else s, extra=extra)
            job = Job("%s steps-%d to %d" % (name, longest, s), argv, marker, [prev] if prev else [],
                      os.path.join(long_dir, "train.log"), work=(s - prev_s) * cost)
            self.jobs.append(job)
            prev, prev_s = job, s
            if s in branch_points:
                t = branch_points[s]
                bdir = os.path.join(base, "steps-%d" % t)
                # Own checkpoint first (an interrupted branch), else the longest run's at the decay start.
                resume = bdir if last_checkpoint(bdir) else os.path.join(long_dir, "checkpoints", "step-%08d" % s)
                self.jobs.append(Job("%s steps-%d (branch at %d)" % (name, t, s),
                                     self.train_argv(self.cfg[model], seed, bdir, t, resume=resume, extra=extra),
                                     os.path.join(bdir, ".done"), [job], os.path.join(bdir, "train.log"),
                                     work=(t - s) * cost))
        self.lines[key] = dict(dir=base, longest=longest, budgets=sorted(budgets),
                               snapshots=[s for s in stops + [longest] if s in snapshots or s == longest])

    def build(self):
        p = self.p
        r = self.flop_ratio[""]
        gqe_budgets = sorted(set(p["budgets"]) | {int(round(t * r)) for t in p["budgets"]})
        large_cost = self.info["gqe-large"][1] / self.info["gqe"][1]
        for seed in p["seeds"]:
            self.add_line("gqa", seed, p["budgets"], [], 1.0)
            self.add_line("gqe", seed, gqe_budgets, p["snapshots"], 1.0)
        # A branch trained from scratch: must end exactly where the branch does.
        t, s = p["check_budget"], p["seeds"][0]
        cdir = os.path.join(self.out, "runs", "gqa-s%d" % s, "steps-%d-from-scratch" % t)
        self.jobs.append(Job("gqa-s%d steps-%d from scratch (branch check)" % (s, t),
                             self.train_argv(self.cfg["gqa"], s, cdir, t, resume="auto"),
                             os.path.join(cdir, ".done"), [], os.path.join(cdir, "train.log"), work=t))
        top = max(p["budgets"])
        for seed in p["ablation_seeds"]:
            for v in ABLATIONS:
                self.add_line(v, seed, [top], p["snapshots"], 1.0)
        for seed in p["large_seeds"]:
            self.add_line("gqa-large", seed, [p["large_budget"]], [], large_cost)
            self.add_line("gqe-large", seed, [p["large_budget"]], [], large_cost)
        self.drop_stale_marks()

    def write_json(self, **extra):
        """OUT/plan.json: the plan, the FLOP ratios and each config's size, with `extra` fields first."""
        with open(os.path.join(self.out, "plan.json"), "w") as f:
            json.dump(dict(extra, plan=self.p, flop_ratio=self.flop_ratio,
                           info={k: dict(params=v[0], forward_flops_per_token=v[1]) for k, v in self.info.items()}),
                      f, indent=2)

    def drop_stale_marks(self):
        """A job marked done whose dependencies are not (their output was deleted) must run again."""
        for j in self.jobs:
            if j.state == "done" and any(d.state != "done" for d in j.deps):
                j.state = "todo"


def run_jobs(jobs, workers, deadline=None):
    """Runs jobs (in list order, as dependencies allow) on `workers` processes at a time; none is started after
    `deadline` (a time.time() value), and the call returns when those running have finished."""
    lock = threading.Condition()
    total = sum(j.work for j in jobs if j.state != "done") or 1
    state = dict(done_work=0.0, failed=None, t0=time.time())

    def runnable():
        for j in jobs:
            if j.state == "todo" and all(d.state == "done" for d in j.deps):
                return j
        return None

    def worker():
        while True:
            with lock:
                while True:
                    if state["failed"] or (deadline is not None and time.time() >= deadline):
                        return
                    j = runnable()
                    if j:
                        j.state = "running"
                        break
                    if all(x.state == "done" for x in jobs) or not any(x.state == "running" for x in jobs):
                        return
                    lock.wait()
            log("start  " + j.name)
            os.makedirs(os.path.dirname(j.log_path), exist_ok=True)
            with open(j.log_path, "a") as lf:
                for argv in j.argv if isinstance(j.argv[0], list) else [j.argv]:
                    lf.write("\n$ " + " ".join(argv) + "\n")
                    lf.flush()
                    rc = subprocess.run(argv, stdout=lf, stderr=subprocess.STDOUT, cwd=ROOT).returncode
                    if rc != 0:
                        break
            with lock:
                if rc != 0:
                    j.state = "failed"
                    state["failed"] = "%s failed (exit %d); see %s" % (j.name, rc, j.log_path)
                else:
                    with open(j.done_marker, "w") as f:
                        f.write(datetime.datetime.utcnow().isoformat() + "Z\n")
                    j.state = "done"
                    state["done_work"] += j.work
                    el = time.time() - state["t0"]
                    frac = state["done_work"] / total
                    eta = el / frac * (1 - frac) if frac > 0 else 0
                    log("done   %s%s  [%.0f%% of the work, %s elapsed, ETA %s]" % (
                        j.name, last_losses(os.path.dirname(j.log_path)), 100 * frac, fmt_s(el), fmt_s(eta)))
                lock.notify_all()

    threads = [threading.Thread(target=worker) for _ in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if state["failed"]:
        fail(state["failed"])


def last_losses(run_dir):
    """': train loss X, val loss Y at step S' from a run's metrics.jsonl ('' when there is none)."""
    train = val = None
    try:
        with open(os.path.join(run_dir, "metrics.jsonl")) as f:
            for line in f:
                try:
                    r = json.loads(line)
                except ValueError:
                    continue
                if r.get("type") == "train":
                    train = r
                elif r.get("type") == "val":
                    val = r
    except OSError:
        return ""
    parts = ["train loss %.3f" % train["loss"]] if train else []
    if val and (not train or val["step"] == train["step"]):
        parts.append("val loss %.4f" % val["val_loss"])
    return (": " + ", ".join(parts) + (" at step %d" % train["step"] if train else "")) if parts else ""


def fmt_s(s):
    s = int(s)
    return "%dh%02dm" % (s // 3600, s // 60 % 60) if s >= 3600 else "%dm%02ds" % (s // 60, s % 60)


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
    import study_report  # scripts/study_report.py (it imports this module: not at the top)
    import study_zero_shot  # scripts/study_zero_shot.py (likewise)
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
