"""The report of scripts/study.py: README.md, results.json and plots (gnuplot), computed from the runs' files.

Everything is read from what the runs wrote (metrics.jsonl, train.log, routes/*.json and *.choices); nothing is
typed by hand. Cells whose runs have not finished yet are left out and the report says which.
"""
import datetime
import gzip
import json
import math
import os
import platform
import shutil
import subprocess

import study_zero_shot as Z
from study_jobs import ROOT
from study_plan import (BATCH, DECAY, FULL, LARGE, LR, MIN_LR, ROUTE_TOKENS, SEQ, TOKENS_PER_STEP,
                        training_flops)
from study_stats import mean_ci, mean_std

VARIANT_NAMES = {  # the paper's Table 2 rows
    "gqa": "GQA baseline (all heads active)",
    "weighted_concat": "Weighted concat, no renormalized slot",
    "hard_concat": "Hard concat only",
    "gqe": "GQE (renorm. scoring + shared head)",
}
# The committed report of the full study, which a --quick report points to: one seed at a few dozen steps is
# a check of the pipeline, not a finding.
FULL_STUDY = "docs/results/2026-11-30-study/README.md"


def read_jsonl(path):
    out = []
    if not os.path.exists(path):
        return out
    with open(path) as f:
        for line in f:
            try:
                out.append(json.loads(line))
            except ValueError:
                pass  # a torn last line of an interrupted run
    return out


def fmt_ms(xs, digits=4):
    m, sd = mean_std(xs)
    if m is None:
        return "–"
    return ("%.*f ± %.*f" % (digits, m, digits, sd)) if len(xs) > 1 else ("%.*f" % (digits, m))


def fmt_gap(ds):
    """Paired differences over seeds: mean ± std, and the 95% confidence interval of the mean (Student's t)."""
    m, sd, h = mean_ci(ds)
    if m is None:
        return "–", "–"
    if h is None:
        return "%+.4f" % m, "(1 seed)"
    return "%+.4f ± %.4f" % (m, sd), "[%+.4f, %+.4f]" % (m - h, m + h)


class Runs:
    """Final validation losses and curves of every finished run of the plan."""

    def __init__(self, plan):
        self.plan = plan
        self.final = {}   # (model, seed, steps) -> val loss at the last step
        self.curve = {}   # (model, seed) -> [(step, val loss)] of the longest run
        self.seconds = 0.0  # training process time, all runs
        for (model, seed), line in plan.lines.items():
            for t in line["budgets"]:
                d = os.path.join(line["dir"], "steps-%d" % t)
                if not os.path.exists(os.path.join(d, ".done" if t != line["longest"] else ".done-%d" % t)):
                    continue
                vals = [r for r in read_jsonl(os.path.join(d, "metrics.jsonl")) if r.get("type") == "val"]
                last = [r["val_loss"] for r in vals if r["step"] == t]
                if last:
                    self.final[(model, seed, t)] = last[-1]
                if t == line["longest"]:
                    self.curve[(model, seed)] = [(r["step"], r["val_loss"]) for r in vals]
        for root, _, files in os.walk(os.path.join(plan.out, "runs")):
            if "train.log" in files:
                with open(os.path.join(root, "train.log")) as f:
                    for line in f:
                        if line.startswith("trained to step") and " steps in this run, " in line:
                            self.seconds += float(line.split(" steps in this run, ")[1].split(" s")[0])

    def losses(self, model, steps, seeds):
        return [self.final[(model, s, steps)] for s in seeds if (model, s, steps) in self.final]

    def paired(self, a, ta, b, tb, seeds):
        """b - a per seed where both finished."""
        return [self.final[(b, s, tb)] - self.final[(a, s, ta)] for s in seeds
                if (a, s, ta) in self.final and (b, s, tb) in self.final]


# ---------------------------------------------------------------------------------------------------------
# routing health


def routing_health(plan):
    """Per snapshot step of the GQE runs: router entropy, load balance and the top-1 change share."""
    rows = {}  # step -> lists over seeds
    for (model, seed), line in sorted(plan.lines.items()):
        if model != "gqe":
            continue
        prev = None
        for s in line["snapshots"]:
            prefix = os.path.join(line["dir"], "routes", "step-%d" % s)
            if not os.path.exists(prefix + ".json"):
                prev = None
                continue
            with open(prefix + ".json") as f:
                r = json.load(f)
            groups = [g for layer in r["per_layer"] for g in layer["groups"]]
            m = r["experts_per_group"]
            ent = sum(g["entropy"] for g in groups) / len(groups) / math.log(m)  # 1 = uniform router
            bal = sum(g["load_entropy"] for g in groups) / len(groups) / math.log(m)  # 1 = balanced load
            top = sum(max(g["load"]) for g in groups) / len(groups)
            with open(prefix + ".choices", "rb") as f:
                ch = f.read()
            change = None
            if prev is not None and len(prev) == len(ch):
                change = sum(1 for a, b in zip(prev, ch) if a != b) / len(ch)
            prev = ch
            row = rows.setdefault(s, dict(entropy=[], balance=[], top_load=[], change=[]))
            row["entropy"].append(ent)
            row["balance"].append(bal)
            row["top_load"].append(top)
            if change is not None:
                row["change"].append(change)
    return rows


# ---------------------------------------------------------------------------------------------------------
# plots


def gnuplot(script, cwd):
    if not shutil.which("gnuplot"):
        return False
    term = "pngcairo" if subprocess.run(["gnuplot", "-e", "set terminal pngcairo"], capture_output=True).returncode == 0 \
        else "png"
    r = subprocess.run(["gnuplot"], input="set terminal %s size 900,560\n" % term + script, text=True, cwd=cwd,
                       capture_output=True)
    if r.returncode != 0:
        print("study report: gnuplot failed: " + r.stderr.strip())
    return r.returncode == 0


def write_dat(path, rows):
    with open(path, "w") as f:
        for row in rows:
            f.write(" ".join("%.8g" % x for x in row) + "\n")


# ---------------------------------------------------------------------------------------------------------
# the report: a function per section, each returning its markdown lines


def write_report(plan, out_dir):
    """OUT_DIR/README.md (the sections in order, the findings after the title), results.json, the plots and the
    runs' files; returns results.json's content."""
    os.makedirs(out_dir, exist_ok=True)
    runs = Runs(plan)
    health = routing_health(plan)
    check = branch_check(plan, runs)
    zero_shot, zero_shot_numbers = Z.section(plan, plan.eval_tasks, plan.args.eval_limit, plan.args.no_eval)
    findings = summary(runs, plan, health)
    if "summary" in zero_shot_numbers:
        findings.insert(len(findings) - 1, zero_shot_numbers["summary"])  # before what the study cannot show
    L = (title_section(plan, runs) + findings + tokens_section(plan, runs) + flops_section(plan, runs, out_dir)
         + ablations_section(plan, runs) + size_section(plan, runs) + routing_section(plan, health, out_dir)
         + curves_section(plan, runs, out_dir) + zero_shot + method_section(plan, runs, check))
    results = dict(plan=plan.p, flop_ratio=plan.flop_ratio, tokens_per_step=TOKENS_PER_STEP,
                   models={k: dict(params=v[0], forward_flops_per_token=v[1]) for k, v in plan.info.items()},
                   final_val_loss=[dict(model=m, seed=s, steps=t, tokens=t * TOKENS_PER_STEP, val_loss=v)
                                   for (m, s, t), v in sorted(runs.final.items())],
                   training_process_seconds=runs.seconds, missing=missing_runs(plan, runs),
                   routing_health={str(k): v for k, v in sorted(health.items())}, branch_check=check,
                   zero_shot=zero_shot_numbers)
    with open(os.path.join(out_dir, "results.json"), "w") as f:
        json.dump(results, f, indent=1)
    with open(os.path.join(out_dir, "README.md.tmp"), "w") as f:
        f.write("\n".join(L) + "\n")
    os.replace(os.path.join(out_dir, "README.md.tmp"), os.path.join(out_dir, "README.md"))
    for name in os.listdir(out_dir):
        if name.endswith(".dat"):
            os.remove(os.path.join(out_dir, name))  # the plots' data; results.json has the numbers
    copy_run_files(plan, out_dir)
    return results


def missing_runs(plan, runs):
    """The plan's runs that have not finished, in words."""
    return sorted("%s seed %d, %d steps" % (m, s, t) for (m, s), line in plan.lines.items()
                  for t in line["budgets"] if (m, s, t) not in runs.final)


def branch_check(plan, runs):
    """The check budget's GQA run trained from scratch against its branch: results.json's branch_check."""
    t, s = plan.p["check_budget"], plan.p["seeds"][0]
    scratch = [x["val_loss"] for x in read_jsonl(os.path.join(plan.check_dir(), "metrics.jsonl"))
               if x.get("type") == "val" and x["step"] == t]
    branch = runs.final.get(("gqa", s, t))
    return dict(steps=t, seed=s, branch=branch, from_scratch=scratch[-1] if scratch else None,
                identical=bool(scratch) and branch == scratch[-1])


def title_section(plan, runs):
    """The title, what the report is (the quick form: a smoke test), where its numbers come from, what is missing."""
    seeds, budgets = plan.p["seeds"], plan.p["budgets"]
    if plan.args.quick:
        full_tokens = [t * TOKENS_PER_STEP / 1e6 for t in FULL["budgets"]]
        L = ["# Smoke test of the study pipeline: GQA vs GQE, %d seed, %s steps\n"
             % (len(seeds), " and ".join(str(t) for t in budgets)),
             "This is the study's quick form: every stage (the token budgets as branches, equal compute, the "
             "ablations, the larger pair, routing snapshots, zero-shot evaluation where benchmark data is installed, "
             "this report) run end to end at %s steps with %d seed. What it can show is that the pipeline works on "
             "this machine: every run finishes, a branch equals its run from scratch (How the runs were made, "
             "below), the losses fall and the routing statistics are recorded. It cannot show whether GQE is worse "
             "or better than GQA, nor how the gap moves: with one seed a gap has no spread to tell it from seed "
             "noise, and %.2fM tokens at most are a small fraction of what the full study trains. The full study "
             "(%d seeds, %.2fM-%.2fM tokens; `python3 scripts/study.py`) is committed in `%s`.\n"
             % (" and ".join(str(t) for t in budgets), len(seeds), max(budgets) * TOKENS_PER_STEP / 1e6,
                len(FULL["seeds"]), min(full_tokens), max(full_tokens), FULL_STUDY)]
    else:
        L = ["# Does GQE close the gap to GQA with more training, at equal compute, and with size?\n"]
    L.append("Generated by `python3 scripts/study.py%s` from the run directories it trained; every number below is "
             "read from the runs' `metrics.jsonl`, `train.log` and `routes/`. Validation loss is the mean "
             "cross-entropy (nats per SentencePiece token) on the held-out 2%% of the corpus (%d of its tokens, the "
             "same for every run), measured at each run's last step.\n"
             % (" --quick" if plan.args.quick else "", 10 * TOKENS_PER_STEP))
    missing = missing_runs(plan, runs)
    if missing:
        L.append("**Not finished yet** (the study resumes where it stopped): %s.\n" % "; ".join(missing))
    return L


def tokens_section(plan, runs):
    """1: GQA's and GQE's losses and their paired gap at each token budget."""
    seeds = plan.p["seeds"]
    L = ["## 1. The gap against training tokens (equal tokens)\n",
         "| steps | tokens | GQA val loss | GQE val loss | GQE − GQA (paired over seeds) | 95% CI of the gap |",
         "|---|---|---|---|---|---|"]
    for t in plan.p["budgets"]:
        g, ci = fmt_gap(runs.paired("gqa", t, "gqe", t, seeds))
        L.append("| %d | %.2fM | %s | %s | %s | %s |" % (t, t * TOKENS_PER_STEP / 1e6,
                                                        fmt_ms(runs.losses("gqa", t, seeds)),
                                                        fmt_ms(runs.losses("gqe", t, seeds)), g, ci))
    L.append("")
    if len(seeds) > 1:
        L.append("Mean ± sample standard deviation over seeds %s (seed = initialisation and data order; GQA and GQE "
                 "of one seed see the same batches). The gap is computed per seed, then averaged.\n" % seeds)
    else:
        L.append("Seed %d only (initialisation and data order; GQA and GQE see the same batches): each cell is one "
                 "run, with no spread and no interval.\n" % seeds[0])
    return L


def flops_section(plan, runs, out_dir):
    """2: the gap with GQE given GQA's training FLOPs, then the plots of both gaps and of loss against FLOPs."""
    seeds, r = plan.p["seeds"], plan.flop_ratio[""]
    f_gqa, f_gqe = plan.info["gqa"][1], plan.info["gqe"][1]
    L = ["## 2. The gap at equal training compute\n",
         "GQE's step is cheaper: `gqe info` counts %d forward FLOPs per token for GQA and %d for GQE (mean over a "
         "causal prefill of %d; attention, MLP and LM head), a ratio of %.4f. At equal compute GQE therefore "
         "trains %.2f%% more steps: round(T × %.4f).\n" % (f_gqa, f_gqe, SEQ, r, 100 * (r - 1), r),
         "| GQA steps | GQE steps | training FLOPs (3 × forward) | GQA val loss | GQE val loss | GQE − GQA | 95% CI |",
         "|---|---|---|---|---|---|---|"]
    for t in plan.p["budgets"]:
        tg = int(round(t * r))
        g, ci = fmt_gap(runs.paired("gqa", t, "gqe", tg, seeds))
        L.append("| %d | %d | %.3g | %s | %s | %s | %s |" % (t, tg, training_flops(f_gqa, t),
                                                            fmt_ms(runs.losses("gqa", t, seeds)),
                                                            fmt_ms(runs.losses("gqe", tg, seeds)), g, ci))
    L.append("")
    return L + gap_plots(plan, runs, out_dir)


def gap_plots(plan, runs, out_dir):
    """The gap against tokens and against FLOPs, and the loss against FLOPs (gnuplot): their image lines."""
    seeds, budgets, r = plan.p["seeds"], plan.p["budgets"], plan.flop_ratio[""]
    f_gqa, f_gqe = plan.info["gqa"][1], plan.info["gqe"][1]

    def mean_sd_at(x, ds):
        return [(x,) + mean_std(ds)] if ds else []

    gap_tok = [row for t in budgets for row in mean_sd_at(t * TOKENS_PER_STEP, runs.paired("gqa", t, "gqe", t, seeds))]
    gap_flop = [row for t in budgets for row in mean_sd_at(training_flops(f_gqa, t),
                                                            runs.paired("gqa", t, "gqe", int(round(t * r)), seeds))]
    write_dat(os.path.join(out_dir, "gap_tokens.dat"), gap_tok)
    write_dat(os.path.join(out_dir, "gap_flops.dat"), gap_flop)
    loss_rows = {}
    for model, f_model, steps_of in [("gqa", f_gqa, lambda t: t), ("gqe", f_gqe, lambda t: t),
                                     ("gqe", f_gqe, lambda t: int(round(t * r)))]:
        for t in budgets:
            ts = steps_of(t)
            xs = runs.losses(model, ts, seeds)
            if xs:
                m, sd = mean_std(xs)
                loss_rows.setdefault(model, set()).add((training_flops(f_model, ts), m, sd))
    for model, rows in loss_rows.items():
        write_dat(os.path.join(out_dir, "loss_flops_%s.dat" % model), sorted(rows))
    if not (gap_tok and "gqa" in loss_rows and "gqe" in loss_rows) or not gnuplot("""
set output 'gap.png'
set multiplot layout 1,2 title 'GQE − GQA validation loss (mean ± std over seeds)'
set logscale x
set grid
set xlabel 'training tokens'
set ylabel 'GQE − GQA (nats)'
set offsets graph 0.1, graph 0.1, graph 0.1, graph 0.1
set arrow 1 from graph 0, first 0 to graph 1, first 0 nohead lc 'black'
plot 'gap_tokens.dat' using 1:2:3 with yerrorlines lw 2 pt 7 title 'equal tokens'
set xlabel 'training FLOPs'
plot 'gap_flops.dat' using 1:2:3 with yerrorlines lw 2 pt 7 lc 2 title 'equal FLOPs'
unset multiplot
set output 'loss_vs_flops.png'
unset arrow 1
set title 'validation loss against training FLOPs (mean ± std over seeds)'
set xlabel 'training FLOPs (3 × forward)'
set ylabel 'validation loss (nats)'
plot 'loss_flops_gqa.dat' using 1:2:3 with yerrorlines lw 2 pt 7 title 'GQA', \
     'loss_flops_gqe.dat' using 1:2:3 with yerrorlines lw 2 pt 5 title 'GQE'
""", out_dir):
        return []
    return ["![gap](gap.png)\n", "![loss against FLOPs](loss_vs_flops.png)\n"]


def ablations_section(plan, runs):
    """3: the paper's Table 2 rows at the largest budget, with validation loss for its benchmark columns."""
    top, aseeds = max(plan.p["budgets"]), plan.p["ablation_seeds"]
    L = ["## 3. Ablations at the largest budget (the paper's Table 2 layout)\n",
         "%d steps (%.2fM tokens), seeds %s. The paper's columns are HellaSwag / ARC-E / PIQA accuracies at 250M "
         "parameters; a model of this size scores at chance on them, so the column here is validation loss "
         "(lower is better).\n" % (top, top * TOKENS_PER_STEP / 1e6, aseeds),
         "| Variant | val loss | val ppl | − GQA (paired) | params | active query heads |",
         "|---|---|---|---|---|---|"]
    for v in ["gqa", "weighted_concat", "hard_concat", "gqe"]:
        xs = runs.losses(v, top, aseeds)
        m, _ = mean_std(xs)
        d = runs.paired("gqa", top, v, top, aseeds) if v != "gqa" else []
        with open(plan.cfg[v]) as f:
            att = json.load(f)["attention"]
        n = att["num_attention_heads"]
        active = n if v == "gqa" else att["num_key_value_heads"] * att["top_k"] + (1 if v == "gqe" else 0)
        L.append("| %s | %s | %s | %s | %s | %d of %d |" % (VARIANT_NAMES[v], fmt_ms(xs),
                                                          "%.2f" % math.exp(m) if m else "–",
                                                          fmt_gap(d)[0] if d else "–",
                                                          "{:,}".format(plan.info[v][0]), active, n))
    L.append("")
    return L


def size_section(plan, runs):
    """4: the gap of the tiny pair against the larger pair's, at the same budget and seeds."""
    lt, lseeds = plan.p["large_budget"], plan.p["large_seeds"]
    L = ["## 4. Size: the same comparison with about %.1fx the parameters\n"
         % (plan.info["gqa-large"][0] / plan.info["gqa"][0]),
         "%d steps (%.2fM tokens), seeds %s; the larger model has d = %d, %d layers, d_h = %d (same heads and "
         "router).\n" % (lt, lt * TOKENS_PER_STEP / 1e6, lseeds, LARGE["hidden_size"], LARGE["num_hidden_layers"],
                         LARGE["head_dim"]),
         "| model | params (GQA / GQE) | GQA val loss | GQE val loss | GQE − GQA (paired) |",
         "|---|---|---|---|---|"]
    for size, name in [("", "tiny"), ("-large", "larger")]:
        ds = runs.paired("gqa" + size, lt, "gqe" + size, lt, lseeds)
        L.append("| %s | %s / %s | %s | %s | %s |" % (name, "{:,}".format(plan.info["gqa" + size][0]),
                                                    "{:,}".format(plan.info["gqe" + size][0]),
                                                    fmt_ms(runs.losses("gqa" + size, lt, lseeds)),
                                                    fmt_ms(runs.losses("gqe" + size, lt, lseeds)), fmt_gap(ds)[0]))
    L.append("\n(The tiny row uses the same seeds as the larger one, so the two gaps compare like with like.)\n")
    return L


def routing_section(plan, health, out_dir):
    """5: GQE's routing statistics at each snapshot (routing_health) and their plot."""
    L = ["## 5. Routing health over training (GQE, seeds %s)\n" % plan.p["seeds"]]
    if not health:
        return L + ["No routing snapshots yet.\n"]
    L += ["From `gqe routes --dump-choices` on %d validation tokens at each snapshot of the longest GQE runs. "
          "Router entropy and load entropy are divided by ln M (1 = uniform router / perfectly balanced load); "
          "top load is the busiest expert's share of its group (1/M = balanced); *changed* is the share of "
          "(token, layer, group) top-1 choices that differ from the previous snapshot.\n" % ROUTE_TOKENS,
          "| step | tokens | router entropy | load entropy | top expert load | changed since previous | steps since "
          "previous |",
          "|---|---|---|---|---|---|---|"]
    rows = []
    prev_step = None
    for s in sorted(health):
        h = health[s]
        L.append("| %d | %.2fM | %s | %s | %s | %s | %s |" % (s, s * TOKENS_PER_STEP / 1e6, fmt_ms(h["entropy"], 3),
                                                            fmt_ms(h["balance"], 3), fmt_ms(h["top_load"], 3),
                                                            fmt_ms(h["change"], 3) if h["change"] else "–",
                                                            s - prev_step if prev_step else "–"))
        prev_step = s
        me = lambda k: mean_std(h[k])[0] if h[k] else float("nan")
        rows.append((s * TOKENS_PER_STEP, me("entropy"), me("balance"), me("change")))
    L.append("")
    write_dat(os.path.join(out_dir, "routing.dat"), rows)
    if gnuplot("""
set output 'routing.png'
set title 'GQE routing over training (mean over seeds, layers and groups)'
set logscale x
set grid
set xlabel 'training tokens'
set yrange [0:1.05]
set key bottom left
plot 'routing.dat' using 1:2 with linespoints lw 2 pt 7 title 'router entropy / ln M', \
     'routing.dat' using 1:3 with linespoints lw 2 pt 5 title 'load entropy / ln M', \
     'routing.dat' using 1:4 with linespoints lw 2 pt 9 title 'top-1 changed since previous snapshot'
""", out_dir):
        L.append("![routing](routing.png)\n")
    return L


def curves_section(plan, runs, out_dir):
    """6: validation loss during the longest runs (a plot only: no section without gnuplot)."""
    top, r = max(plan.p["budgets"]), plan.flop_ratio[""]
    curves = {}
    for (model, seed), c in runs.curve.items():
        if model in VARIANT_NAMES:
            for step, v in c:
                curves.setdefault(model, {}).setdefault(step, []).append(v)
    for model, by_step in curves.items():
        write_dat(os.path.join(out_dir, "curve_%s.dat" % model),
                  [(st * TOKENS_PER_STEP, mean_std(v)[0]) for st, v in sorted(by_step.items())])
    if not curves or not gnuplot("""
set output 'loss_curves.png'
set title 'validation loss during the longest runs (mean over seeds)'
set logscale x
set grid
set xlabel 'training tokens'
set ylabel 'validation loss (nats)'
plot %s
""" % ", ".join("'curve_%s.dat' using 1:2 with linespoints lw 2 title '%s'" % (m, VARIANT_NAMES[m])
                for m in VARIANT_NAMES if m in curves), out_dir):
        return []
    return ["## 6. Validation loss during training\n",
            "The longest run of each variant (GQE's runs %d steps, its equal-compute budget; the others %d). The "
            "shorter budgets branch off these runs before their decay, so their curves coincide until then.\n"
            % (int(round(top * r)), top),
            "![loss curves](loss_curves.png)\n"]


def method_section(plan, runs, check):
    """How the runs were made: corpus, models, recipe, the branch check's outcome and the machine."""
    top = max(plan.p["budgets"])
    scratch, branch = check["from_scratch"], check["branch"]
    return [
        "## How the runs were made\n",
        "- Corpus: the embedded King James Bible (`scripts/prepare-corpus.sh`), SentencePiece BPE with a 4096-token "
        "vocabulary trained on it; 1.02M training tokens, so the largest budget (%.2fM tokens) is about %.1f epochs."
        % (top * TOKENS_PER_STEP / 1e6, top * TOKENS_PER_STEP / 1.02e6),
        "- Models: `configs/tiny-gqe.json` with vocab 4096 (d 128, 4 layers, 8 query heads / 4 KV heads, d_h 16, "
        "k = 1, aux weight 0.01): the paper's 2 query heads per KV head and k = 1, but 8/4 rather than 16/8 "
        "heads because 16 heads at d = 128 leave d_h = 8. GQE runs 5 of 8 query heads per token (4 routed + "
        "the shared head); the paper's shape runs 9 of 16.",
        "- Recipe: batch %d × %d tokens, AdamW, peak lr %g, warmup %d steps, constant, then linear decay to %g over "
        "the last %d%% (WSD), z-clip; 1 thread per run, %d runs at a time." %
        (BATCH, SEQ, LR, plan.warmup, MIN_LR, int(100 * DECAY), plan.args.jobs),
        "- Budgets as branches: a WSD run of T steps equals a longer run of the same seed until T's decay starts, "
        "so each shorter budget resumes the longest run's checkpoint at its decay start with `--steps T` "
        "(gqe's resume is bit-exact). Check: GQA seed %d, %d steps, trained from scratch ends at validation loss "
        "%s; its branch ends at %s (%s)." % (check["seed"], check["steps"],
                                            "%.10f" % scratch if scratch is not None else "(not run)",
                                            "%.10f" % branch if branch is not None else "(not run)",
                                            "identical" if check["identical"] else
                                            "NOT identical" if scratch is not None and branch is not None else
                                            "pending"),
        "- Machine time: %.1f h of training processes (%d at a time), on %s, %d cores; written %s UTC, gqe %s." % (
            runs.seconds / 3600, plan.args.jobs, cpu_model(), os.cpu_count() or 0,
            datetime.datetime.utcnow().strftime("%Y-%m-%d %H:%M"), git_rev()),
        ""]


def copy_run_files(plan, out_dir):
    """The files every number above comes from, beside the report: each run's metrics.jsonl (gzipped: a record
    per step) and recipe.json, the routing snapshots' JSON (not the per-token choices), the configs and plan."""
    dest = os.path.join(out_dir, "runs")
    shutil.rmtree(dest, ignore_errors=True)
    for root, _, files in os.walk(os.path.join(plan.out, "runs")):
        rel = os.path.relpath(root, os.path.join(plan.out, "runs"))
        for name in files:
            if name in ("metrics.jsonl", "recipe.json") or (os.path.basename(root) == "routes" and name.endswith(".json")):
                os.makedirs(os.path.join(dest, rel), exist_ok=True)
                if name == "metrics.jsonl":
                    with open(os.path.join(root, name), "rb") as src, \
                            gzip.GzipFile(os.path.join(dest, rel, name + ".gz"), "wb", mtime=0) as gz:
                        shutil.copyfileobj(src, gz)
                else:
                    shutil.copyfile(os.path.join(root, name), os.path.join(dest, rel, name))
    shutil.copytree(os.path.join(plan.out, "configs"), os.path.join(out_dir, "configs"), dirs_exist_ok=True)
    shutil.copyfile(os.path.join(plan.out, "plan.json"), os.path.join(out_dir, "plan.json"))


def verdict(ds):
    """'worse' / 'better' / 'not distinguishable' for a GQE − GQA gap, from its 95% interval over seeds."""
    m, _, h = mean_ci(ds)
    if h is None:
        return "one seed, no interval"
    if m - h > 0:
        return "GQE worse, the 95% interval excludes 0"
    if m + h < 0:
        return "GQE better, the 95% interval excludes 0"
    return "not distinguishable from 0 at 95%"


def summary(runs, plan, health):
    """What the data shows, in sentences computed from the tables (no claim the numbers do not carry)."""
    p, r = plan.p, plan.flop_ratio[""]
    out = ["## What this smoke run shows (not a finding)\n" if plan.args.quick else "## What the data shows\n"]
    tok, flop = [], []
    for t in p["budgets"]:
        d = runs.paired("gqa", t, "gqe", t, p["seeds"])
        if d:
            tok.append("%.2fM tokens: %+.3f (%s)" % (t * TOKENS_PER_STEP / 1e6, mean_std(d)[0], verdict(d)))
        d = runs.paired("gqa", t, "gqe", int(round(t * r)), p["seeds"])
        if d:
            flop.append("%.2fM GQA tokens: %+.3f (%s)" % (t * TOKENS_PER_STEP / 1e6, mean_std(d)[0], verdict(d)))
    if tok:
        out.append("- **Gap against tokens** (GQE − GQA validation loss, nats): " + "; ".join(tok) + ".")
    if flop:
        out.append("- **At equal training FLOPs** (GQE trains %.1f%% more tokens): " % (100 * (r - 1)) + "; ".join(flop) + ".")
    lt = p["large_budget"]
    sizes = []
    for size, name in [("", "tiny"), ("-large", "%.1fx larger" % (plan.info["gqa-large"][0] / plan.info["gqa"][0]))]:
        d = runs.paired("gqa" + size, lt, "gqe" + size, lt, p["large_seeds"])
        if d:
            sizes.append("%s model %+.3f (%s)" % (name, mean_std(d)[0], verdict(d)))
    if sizes:
        line = "- **Size**, at %.2fM tokens: " % (lt * TOKENS_PER_STEP / 1e6) + "; ".join(sizes) + "."
        small = runs.losses("gqa", lt, p["large_seeds"])
        large = runs.losses("gqa-large", lt, p["large_seeds"])
        if small and large and mean_std(large)[0] >= mean_std(small)[0]:
            line += (" At this budget the larger GQA model is not yet better than the tiny one (%.3f vs %.3f, same "
                     "peak learning rate): both are undertrained, so this compares the gap early in training at "
                     "two sizes, not at convergence." % (mean_std(large)[0], mean_std(small)[0]))
        out.append(line)
    top = max(p["budgets"])
    abl = []
    for v in ["weighted_concat", "hard_concat", "gqe"]:
        d = runs.paired("gqa", top, v, top, p["ablation_seeds"])
        if d:
            abl.append("%s %+.3f" % (VARIANT_NAMES[v], mean_std(d)[0]))
    if abl:
        out.append("- **Ablations** at %.2fM tokens, each − GQA: " % (top * TOKENS_PER_STEP / 1e6) + "; ".join(abl) + ".")
    steps = sorted(health)
    changed = [s for s in steps if health[s]["change"]]
    if len(steps) >= 2 and len(changed) >= 2:
        me = lambda s, k: mean_std(health[s][k])[0]
        full = [s for s in changed if s - steps[steps.index(s) - 1] == max(b - a for a, b in zip(steps, steps[1:]))]
        last = full[-1] if full else changed[-1]
        out.append("- **Routing**: router entropy / ln M goes from %.3f (step %d) to %.3f (step %d); load entropy / ln M "
                   "is %.3f at the end (1 = balanced); the share of top-1 choices that changed between snapshots goes "
                   "from %.1f%% (steps %d-%d) to %.1f%% (steps %d-%d)." % (
                       me(steps[0], "entropy"), steps[0], me(steps[-1], "entropy"), steps[-1],
                       me(steps[-1], "balance"), 100 * me(changed[0], "change"), steps[steps.index(changed[0]) - 1],
                       changed[0], 100 * me(last, "change"), steps[steps.index(last) - 1], last))
    # With one seed there is no spread: say so rather than promise an uncertainty the tables cannot give.
    reach = ("it shows how the gap moves over the range it covers, with the uncertainty the seeds give."
             if len(p["seeds"]) > 1 else
             "with one seed this run cannot say even how the gap moves over its own range: each gap is a single "
             "draw, with no spread to tell it from seed noise. The full study's report is `%s`." % FULL_STUDY)
    out.append("- **What it cannot show.** These are models of %.1fM and %.1fM parameters trained on at most %.1fM "
               "tokens of one book (about %.1f passes over its 1.02M training tokens) with a 4096-token vocabulary: "
               "10^4-10^5 times below the paper's 250M parameters and 30B tokens, with 8 query heads rather than 16. "
               "Whether the gap closes at the paper's scale is outside what this study can measure; %s\n"
               % (plan.info["gqa"][0] / 1e6, plan.info["gqa-large"][0] / 1e6, top * TOKENS_PER_STEP / 1e6,
                  top * TOKENS_PER_STEP / 1.02e6, reach))
    return out


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def git_rev():
    r = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT)
    return r.stdout.strip() or "unknown"
