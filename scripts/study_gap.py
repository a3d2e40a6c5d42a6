#!/usr/bin/env python3
"""The GQA-vs-GQE study, round 2: the gap at the largest CPU budget with enough seeds to bound it, separated
from repetition, on held-out corpora, at equal FLOPs and at equal wall clock, and extrapolated with its
uncertainty.

    python3 scripts/study_gap.py [--out runs/study-gap] [--jobs 2] [--pairs 8] [--quarter-pairs 4]
    python3 scripts/study_gap.py --report-only --out runs/study-gap --report docs/results/DATE-study-gap

Resumable like scripts/study.py, whose job graph, branches and configs it reuses (scripts/study_plan.py): run
it again after a stop and it continues; finished runs are never redone. Jobs run in priority order, so that
every stop leaves complete seed pairs: the first four pairs of the full corpus, the first three of the quarter
corpus, then the rest.
The report is written from whatever has finished, and says what the unfinished part would cost.

Design (the report's README explains it to readers):
- A *pair* i trains GQA and GQE from the same initialisation seed (100 + i) on the same data order (data seed
  200 + i): the two seeds differ from each other and from every other pair's, so pairs are independent draws of
  both (gqe train --seed / --data-seed). The gap is computed per pair, then averaged over pairs.
- Budgets 150 / 600 / 2400 steps of 16 x 128 tokens (0.31M / 1.23M / 4.92M), WSD branches of one run per line
  (scripts/study.py); GQE also at equal training FLOPs and, at the largest budget, at equal wall clock.
- Equal wall clock: before any training, GQA and GQE train alone, one thread, alternately, three times each;
  the median seconds per step give GQE's steps at GQA's largest budget's time (timing.json).
- Repetition control: the same budgets on the first quarter of the training tokens (gqe train --train-tokens),
  validated on the same held-out text: at equal tokens seen the quarter repeats its data 4x as often, and the
  quarter at T/4 steps sees the data as often as the full corpus at T.
- Held-out corpora: every final model is validated (gqe eval --val-loss) on the King James Bible's held-out 2%,
  the World English Bible's and the man-pages' (scripts/prepare-study-corpora.sh), each window's nats kept so
  that the validation text's own sampling error enters the intervals.
"""
import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time

import study_report as R
import study_zero_shot as Z
from study_jobs import ROOT, Job, fail, log, run_jobs
from study_plan import BATCH, CORPORA, SEQ, TRAIN_SLICE_TOKENS, WARMUP, Plan, schedule_flags, write_configs

# The plan, and its --quick form (a smoke test of the pipeline in a few minutes: no finding).
FULL = dict(budgets=[150, 600, 2400], timing_steps=150, timing_repeats=3, eval_every=150, val_max_tokens=0)
QUICK = dict(budgets=[10, 40], timing_steps=10, timing_repeats=1, eval_every=40, val_max_tokens=2048, warmup=2)


def init_seed(pair):
    return 100 + pair


def data_seed(pair):
    return 200 + pair


def train_tokens(data_dir):
    with open(os.path.join(data_dir, "kjv", "spm-4096", "meta.json")) as f:
        return json.load(f)["train"]["tokens"]


# ---------------------------------------------------------------------------------------------------------
# equal wall clock: a quiet, sequential timing of one training step


def measure_step_times(gqe, cfg, data_dir, out, steps, repeats, warmup):
    """{"gqa": [s/step per repeat], "gqe": [...]}: `steps` steps alone on one thread, the models alternating
    (GQA first in odd repeats, GQE first in even ones) so that a drift of the machine hits both alike."""
    path = os.path.join(out, "timing.json")
    if os.path.exists(path):
        with open(path) as f:
            return json.load(f)
    shards = os.path.join(data_dir, "kjv", "spm-4096")
    times = {"gqa": [], "gqe": []}
    for rep in range(repeats):
        for model in (["gqa", "gqe"] if rep % 2 == 0 else ["gqe", "gqa"]):
            d = os.path.join(out, "timing", "%s-%d" % (model, rep))
            argv = [gqe, "train", "--config", cfg[model], "--train-shards", os.path.join(shards, "train_*.tok"),
                    "--out", d, "--overwrite", "--steps", str(steps), "--batch", str(BATCH), "--seq",
                    str(SEQ)] + schedule_flags(warmup) + [
                    "--seed", "1", "--threads", "1", "--log-every", "50", "--sample-tokens", "0", "--keep", "1"]
            r = subprocess.run(argv, capture_output=True, text=True)
            m = re.search(r"trained to step \d+ \((\d+) steps in this run, ([0-9.e+-]+) s", r.stdout)
            if r.returncode != 0 or not m:
                fail("timing run %s failed (exit %d): %s" % (d, r.returncode, (r.stderr or r.stdout)[-400:]))
            times[model].append(float(m.group(2)) / int(m.group(1)))
            log("timing %s repeat %d: %.4f s/step" % (model, rep + 1, times[model][-1]))
    result = dict(steps=steps, repeats=repeats, threads=1, seconds_per_step=times,
                  cpu=R.cpu_model(), load_before=os.getloadavg()[0])
    with open(path + ".tmp", "w") as f:
        json.dump(result, f, indent=2)
    os.replace(path + ".tmp", path)
    return result


def wall_clock_steps(timing, steps):
    """GQE's steps in the time GQA takes for `steps`, from the median seconds per step."""
    t = timing["seconds_per_step"]
    return int(round(steps * statistics.median(t["gqa"]) / statistics.median(t["gqe"])))


# ---------------------------------------------------------------------------------------------------------
# the plan


class GapPlan(Plan):
    def __init__(self, args, gqe, out, timing):
        plan = dict(QUICK if args.quick else FULL, pairs=args.pairs, quarter_pairs=args.quarter_pairs,
                    seeds=list(range(1, args.pairs + 1)), quick=args.quick)
        self.timing = timing
        super().__init__(args, plan, gqe, out)
        self.train_tokens = train_tokens(args.data_root)
        self.budgets = plan["budgets"]
        self.wall_clock_steps = wall_clock_steps(timing, max(self.budgets))

    def line_name(self, model, corpus, pair):
        return "%s-%s-p%d" % (model, corpus, pair)

    def add_pair(self, corpus, pair):
        extra = ["--data-seed", str(data_seed(pair))]
        if corpus == "quarter":
            extra += ["--train-tokens", str(self.train_tokens // 4)]
        r = self.flop_ratio[""]
        gqe_budgets = set(self.budgets)
        if corpus == "full":
            gqe_budgets |= {int(round(t * r)) for t in self.budgets} | {self.wall_clock_steps}
        for model, budgets in [("gqa", self.budgets), ("gqe", sorted(gqe_budgets))]:
            name = self.line_name(model, corpus, pair)
            self.add_line(model, init_seed(pair), budgets, [], 1.0, name=name, extra=extra)
            self.lines[name].update(model=model, corpus=corpus, pair=pair)

    def build(self):
        a = self.args
        first = min(4, a.pairs)
        order = [("full", i) for i in range(1, first + 1)]
        order += [("quarter", i) for i in range(1, min(3, a.quarter_pairs) + 1)]
        order += [("full", i) for i in range(first + 1, a.pairs + 1)]
        order += [("quarter", i) for i in range(4, a.quarter_pairs + 1)]
        for corpus, pair in order:
            self.add_pair(corpus, pair)
        self.drop_stale_marks()

    def finals(self):
        """(line name, steps, run dir) of every budget's final model."""
        for name, line in self.lines.items():
            for t in line["budgets"]:
                yield name, t, os.path.join(line["dir"], "steps-%d" % t)


def val_jobs(plan):
    """gqe eval --val-loss of every final model on each corpus's held-out shard, each window's nats kept, and on the
    first VAL_TOKENS training tokens (inside the quarter corpus too): held-out minus training loss is the
    overfitting measure, on the same model and the same number of tokens."""
    jobs = []
    for name, t, d in plan.finals():
        argvs = []
        common = [plan.gqe, "eval", "--val-loss", "--checkpoint", d, "--seq", str(SEQ), "--batch-size", "16",
                  "--threads", str(plan.args.threads), "--no-progress"]
        limit = ["--max-tokens", str(plan.p["val_max_tokens"])] if plan.p["val_max_tokens"] else []
        for corpus in CORPORA:
            val = os.path.join(plan.args.data_root, corpus, "spm-4096", "val_000000.tok")
            argvs.append(common + limit + ["--data", val, "--out", os.path.join(d, "val-%s.json" % corpus)])
        train = os.path.join(plan.args.data_root, "kjv", "spm-4096", "train_000000.tok")
        argvs.append(common + ["--data", train, "--max-tokens", str(plan.p["val_max_tokens"] or TRAIN_SLICE_TOKENS),
                               "--out", os.path.join(d, "val-train.json")])
        jobs.append(Job("val-loss %s steps-%d" % (name, t), argvs, os.path.join(d, ".val.done"), [],
                          os.path.join(d, "val.log"), work=1))
    return jobs


def zero_shot_jobs(plan, tasks, limit):
    """Zero-shot benchmarks of the full corpus's largest equal-token budget, GQA and GQE of every pair."""
    jobs = []
    for name, line in plan.lines.items():
        if line["corpus"] != "full":
            continue
        d = os.path.join(line["dir"], "steps-%d" % max(plan.budgets))
        common = [plan.gqe, "eval", "--checkpoint", d, "--data-dir", os.path.abspath(plan.args.eval_data),
                  "--threads", str(plan.args.threads), "--no-progress"]
        argvs = []
        for group, lim, path in [([x for x in tasks if x != "mmlu"], limit, Z.result_paths(d)[0]),
                                 ([x for x in tasks if x == "mmlu"], Z.mmlu_limit(limit), Z.result_paths(d)[1])]:
            if group:
                argvs.append(common + ["--task", ",".join(group), "--limit", str(lim), "--out", path])
        jobs.append(Job("zero-shot %s steps-%d" % (name, max(plan.budgets)), argvs, os.path.join(d, ".zero-shot.done"),
                          [], os.path.join(d, "zero-shot.log"), work=1))
    return jobs


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true",
                    help="a smoke test of the pipeline in minutes (budgets 10 / 40 steps, one timing repeat): no finding")
    ap.add_argument("--out", default=None, help="run directory (default runs/study-gap, runs/study-gap-quick)")
    ap.add_argument("--report", default=None, help="report directory (default OUT/report)")
    ap.add_argument("--data-root", default=os.path.join(ROOT, "data"),
                    help="prepared corpora: kjv (scripts/prepare-corpus.sh), web and manpages "
                         "(scripts/prepare-study-corpora.sh)")
    ap.add_argument("--gqe", default=os.environ.get("GQE", os.path.join(ROOT, "build", "gqe")))
    ap.add_argument("--jobs", type=int, default=2, help="training processes at a time (2)")
    ap.add_argument("--threads", type=int, default=1, help="threads per training process (1)")
    ap.add_argument("--pairs", type=int, default=None, help="GQA/GQE seed pairs on the full corpus (8; --quick 2)")
    ap.add_argument("--quarter-pairs", type=int, default=None, help="seed pairs on the quarter corpus (4; --quick 2)")
    ap.add_argument("--eval-data", default=os.path.join(ROOT, "data", "eval"))
    ap.add_argument("--eval-limit", type=int, default=None, help="docs per zero-shot task (500; --quick 20)")
    ap.add_argument("--no-eval", action="store_true", help="skip the zero-shot benchmarks")
    ap.add_argument("--report-only", action="store_true", help="write the report from what has finished")
    ap.add_argument("--until", default=None, help="stop starting jobs after this local time (HH:MM)")
    args = ap.parse_args()
    for name, full, quick in [("pairs", 8, 2), ("quarter_pairs", 4, 2), ("eval_limit", 500, 20)]:
        if getattr(args, name) is None:
            setattr(args, name, quick if args.quick else full)
    if args.jobs < 1 or args.threads < 1 or args.pairs < 2 or args.quarter_pairs < 0 or args.eval_limit < 1:
        fail("--jobs, --threads and --eval-limit must be at least 1, --pairs at least 2, --quarter-pairs at least 0")
    deadline = None
    if args.until:
        m = re.fullmatch(r"([01]?\d|2[0-3]):([0-5]\d)", args.until)
        if not m:
            fail("--until %s: expected a local time HH:MM" % args.until)
        now = time.localtime()
        deadline = time.mktime(now[:3] + (int(m.group(1)), int(m.group(2)), 0) + now[6:])
        if deadline <= time.time():
            deadline += 24 * 3600  # a time already past today means tomorrow
    args.data = os.path.join(args.data_root, "kjv")  # study_plan.Plan's training corpus
    out = os.path.abspath(args.out or os.path.join(ROOT, "runs", "study-gap-quick" if args.quick else "study-gap"))
    gqe = os.path.abspath(args.gqe)
    if not os.access(gqe, os.X_OK):
        fail("--gqe %s: not an executable; build first (scripts/build.sh) or pass --gqe" % gqe)
    for corpus in CORPORA:
        if not os.path.exists(os.path.join(args.data_root, corpus, "spm-4096", "meta.json")):
            fail("%s/%s/spm-4096 is not prepared: run scripts/prepare-corpus.sh, then "
                   "scripts/prepare-study-corpora.sh" % (args.data_root, corpus))
    os.makedirs(out, exist_ok=True)
    cfg = write_configs(out, os.path.join(ROOT, "configs", "tiny-gqe.json"))
    if not os.path.exists(os.path.join(out, "timing.json")):
        if args.report_only:
            fail("%s has no timing.json: nothing has run there yet" % out)
        log("timing one training step of GQA and GQE, alone and in turn (nothing else may run now)")
    p = QUICK if args.quick else FULL
    timing = measure_step_times(gqe, cfg, args.data_root, out, p["timing_steps"], p["timing_repeats"],
                                p.get("warmup", WARMUP))
    plan = GapPlan(args, gqe, out, timing)
    plan.build()
    tasks = [] if args.no_eval else Z.installed_tasks(args.eval_data)
    plan.write_json(wall_clock_steps=plan.wall_clock_steps)
    if not args.report_only:
        todo = [j for j in plan.jobs if j.state != "done"]
        log("%d training jobs, %d to run, %d at a time; GQE gets %d steps at GQA's %d-step wall clock" % (
            len(plan.jobs), len(todo), args.jobs, plan.wall_clock_steps, max(plan.budgets)))
        # Validation and benchmarks of a pair follow its training, so that a stop leaves pairs complete.
        jobs = plan.jobs + val_jobs(plan) + (zero_shot_jobs(plan, tasks, args.eval_limit) if tasks else [])
        ends = finishing_job(plan)
        for j in jobs[len(plan.jobs):]:
            j.deps = [ends[os.path.dirname(j.done_marker)]]
        run_jobs(order_by_pair(jobs), args.jobs, deadline=deadline)
    report = os.path.abspath(args.report or os.path.join(out, "report"))
    import study_gap_report  # here, not at the top: a long run reports with the module as it is at its end
    command = "python3 scripts/study_gap.py" + (" --quick" if args.quick else "")
    study_gap_report.write_report(plan, report, tasks, args.eval_limit, command)
    log("report: " + os.path.join(report, "README.md"))


def finishing_job(plan):
    """run dir -> the training job that ends it: a branch's only job, or the longest run's last segment."""
    out = {}
    for j in plan.jobs:
        d, b = os.path.split(j.done_marker)
        if b == ".done" or b == ".done-" + d.rsplit("steps-", 1)[-1]:
            out[d] = j
    return out


def order_by_pair(jobs):
    """Training, validation and benchmarks of one (corpus, pair) together, in the plan's pair order."""
    def pair_of(job):
        m = re.search(r"(full|quarter)-p(\d+)", job.name)
        return (m.group(1), int(m.group(2))) if m else ("", 0)
    keys = []
    for j in jobs:
        if pair_of(j) not in keys:
            keys.append(pair_of(j))
    return sorted(jobs, key=lambda j: keys.index(pair_of(j)))


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    main()
