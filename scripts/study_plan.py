"""The studies' plan: the training recipe every run shares, the model configs, and the job graph of WSD budgets
as branches of one run per line. scripts/study.py and scripts/study_gap.py build their plans from it, and their
reports (scripts/study_report.py, study_gap_report.py, study_zero_shot.py) read the plan's numbers from here.
"""
import json
import os
import re
import subprocess

from study_jobs import ROOT, Job, fail

# The plan. Steps are optimizer steps of BATCH x SEQ tokens.
BATCH, SEQ, LR, MIN_LR, WARMUP, DECAY = 16, 128, 3e-3, 3e-4, 30, 0.2
TOKENS_PER_STEP = BATCH * SEQ
FULL = dict(budgets=[150, 600, 2400], seeds=[1, 2, 3], ablation_seeds=[1, 2, 3], large_budget=600,
            large_seeds=[1, 2], snapshots=[30, 60, 120, 240, 480, 720, 960, 1200, 1440, 1680, 1920, 2160, 2400],
            check_budget=150, eval_every=150)
QUICK = dict(budgets=[40, 120], seeds=[1], ablation_seeds=[1], large_budget=40, large_seeds=[1],
             snapshots=[20, 40, 80, 120], check_budget=40, eval_every=40)
ABLATIONS = ["hard_concat", "weighted_concat"]
ROUTE_TOKENS = 8192  # validation tokens routed at each snapshot
# The larger model: about 4x the tiny model's parameters (d 256, 6 layers, d_h 32), same head layout.
LARGE = {"hidden_size": 256, "num_hidden_layers": 6, "intermediate_size": 704, "head_dim": 32}
# Round 2 (scripts/study_gap.py): the validation corpora, data/<name>/spm-4096/val_*.tok, and the training tokens
# the final models are also scored on (as many as the KJV held-out).
CORPORA = ["kjv", "web", "manpages"]
TRAIN_SLICE_TOKENS = 20480


def schedule_flags(warmup):
    """The learning-rate schedule of every study run, as flags of `gqe train` and of `gqe info --schedule`."""
    return ["--lr", str(LR), "--min-lr", str(MIN_LR), "--warmup", str(warmup), "--decay-fraction", str(DECAY)]


def training_flops(model_flops, steps):
    """Training FLOPs of `steps` steps of a model of `model_flops` forward FLOPs per token (3 x forward)."""
    return 3.0 * model_flops * steps * TOKENS_PER_STEP


# ---------------------------------------------------------------------------------------------------------
# configs and what gqe says about them


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


def schedule(gqe, steps, warmup):
    """The phases of a `steps`-step run's learning-rate schedule (warmup_steps, decay_start, total_steps, ...) as
    gqe's trainer computes them (`gqe info --schedule`): the budgets branch at the decay start, which must be
    the step where gqe train begins to decay, not a re-derivation of it."""
    argv = [gqe, "info", "--schedule", "--steps", str(steps)] + schedule_flags(warmup)
    r = subprocess.run(argv, capture_output=True, text=True)
    if r.returncode != 0:
        fail("%s failed (exit %d): %s" % (" ".join(argv), r.returncode, r.stderr.strip()))
    return json.loads(r.stdout)


# ---------------------------------------------------------------------------------------------------------
# the job graph


def last_checkpoint(run_dir):
    return os.path.exists(os.path.join(run_dir, "checkpoints", "latest"))


class Plan:
    def __init__(self, args, plan, gqe, out):
        self.args, self.p, self.gqe, self.out = args, plan, gqe, out
        self.warmup = plan.get("warmup", WARMUP)
        self.cfg = write_configs(out, os.path.join(ROOT, "configs", "tiny-gqe.json"))
        self.info = {k: model_info(gqe, v) for k, v in self.cfg.items()}
        self.flop_ratio = {size: self.info["gqa" + size][1] / self.info["gqe" + size][1] for size in ["", "-large"]}
        self.jobs = []
        self.lines = {}  # (variant+size, seed) -> dict(long=dir, budgets={T: dir}, snapshots=[steps])
        self.schedules = {}  # steps -> gqe's schedule of a run of that many steps

    def decay_start(self, steps):
        """The first step of the decay phase of a `steps`-step run (asked of gqe once per budget)."""
        if steps not in self.schedules:
            self.schedules[steps] = schedule(self.gqe, steps, self.warmup)
        return self.schedules[steps]["decay_start"]

    def train_argv(self, cfg, seed, out_dir, steps, resume=None, stop_at=None, extra=()):
        """extra: further `gqe train` flags of a line (scripts/study_gap.py: --data-seed, --train-tokens)."""
        shards = os.path.join(self.args.data, "spm-4096")
        argv = [self.gqe, "train", "--config", cfg, "--train-shards", os.path.join(shards, "train_*.tok"),
                "--val-shards", os.path.join(shards, "val_*.tok"), "--out", out_dir, "--steps", str(steps),
                "--batch", str(BATCH), "--seq", str(SEQ)] + schedule_flags(self.warmup) + [
                "--seed", str(seed), "--threads", str(self.args.threads), "--eval-every", str(self.p["eval_every"]),
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
        branch_points = {self.decay_start(t): t for t in budgets if t != longest}
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
        cdir = self.check_dir()
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

    def check_dir(self):
        """The run that checks the branches: GQA of the first seed at the check budget, trained from scratch."""
        return os.path.join(self.out, "runs", "gqa-s%d" % self.p["seeds"][0],
                            "steps-%d-from-scratch" % self.p["check_budget"])

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
