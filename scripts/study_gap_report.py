"""The report of scripts/study_gap.py: results.json (the raw numbers read from the runs), README.md and plots.

README.md is a pure function of results.json (render(raw)): tests/scripts/study_gap_test.py regenerates the
committed README from its results.json and requires the same text, so every number in it is recomputed.
Python 3 standard library (and gnuplot for the plots).
"""
import datetime
import json
import math
import os
import re
import shutil
import statistics

import study_report as R
import study_zero_shot as Z
from study_plan import BATCH, CORPORA, DECAY, LR, MIN_LR, SEQ, TRAIN_SLICE_TOKENS
from study_stats import mean_std, t_quantile

Z95 = 1.959964  # the normal 97.5% quantile, for the validation text's sampling error (hundreds of windows)
TARGET = 0.03   # the half-width the gap at the largest budget should be bounded to


# ---------------------------------------------------------------------------------------------------------
# reading the runs


def _read_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def _train_seconds(run_dir):
    """[(steps, seconds)] of each `gqe train` invocation in run_dir/train.log ('trained to step ...' lines)."""
    out = []
    try:
        with open(os.path.join(run_dir, "train.log")) as f:
            for m in re.finditer(r"trained to step \d+ \((\d+) steps in this run, ([0-9.e+-]+) s", f.read()):
                out.append([int(m.group(1)), float(m.group(2))])
    except OSError:
        pass
    return out


def collect(plan, tasks, eval_limit, command):
    """The raw numbers of every finished final model: results.json's content."""
    runs = []
    for name, t, d in plan.finals():
        line = plan.lines[name]
        if not os.path.exists(os.path.join(d, ".val.done")):
            continue
        val = {}
        for corpus in CORPORA + ["train"]:
            j = _read_json(os.path.join(d, "val-%s.json" % corpus))
            if j is not None:
                val[corpus] = dict(loss=j["loss"], window_tokens=j["window_tokens"],
                                   window_nats=[round(x, 4) for x in j["window_nats"]])
        runs.append(dict(model=line["model"], corpus=line["corpus"], pair=line["pair"], steps=t, val=val))
    segments = []
    for name, line in plan.lines.items():
        for sub in sorted(os.listdir(line["dir"])) if os.path.isdir(line["dir"]) else []:
            for steps, sec in _train_seconds(os.path.join(line["dir"], sub)):
                segments.append(dict(line=name, model=line["model"], corpus=line["corpus"], pair=line["pair"],
                                     steps=steps, seconds=sec))
    zero = []
    for name, line in plan.lines.items():
        d = os.path.join(line["dir"], "steps-%d" % max(plan.budgets))
        if line["corpus"] != "full" or not os.path.exists(os.path.join(d, ".zero-shot.done")):
            continue
        results = {}
        for path in Z.result_paths(d):
            j = _read_json(path)
            if j:
                for task, r in j["results"].items():
                    if task not in tasks:  # MMLU's subjects: the table has MMLU as lm-eval aggregates it
                        continue
                    key, value, se = Z.headline(r)
                    results[task] = dict(metric=key, value=value, stderr=se, chance=r.get("chance"))
        zero.append(dict(model=line["model"], pair=line["pair"], results=results))
    return dict(
        design=dict(quick=plan.p["quick"], budgets=plan.budgets, pairs=plan.p["pairs"], quarter_pairs=plan.p["quarter_pairs"],
                    init_seed="100 + pair", data_seed="200 + pair", batch=BATCH, seq=SEQ, lr=LR,
                    min_lr=MIN_LR, warmup=plan.warmup, decay_fraction=DECAY, train_tokens=plan.train_tokens,
                    quarter_tokens=plan.train_tokens // 4, flop_ratio=plan.flop_ratio[""],
                    wall_clock_steps=plan.wall_clock_steps, params=dict(gqa=plan.info["gqa"][0], gqe=plan.info["gqe"][0]),
                    corpora=CORPORA, train_slice_tokens=plan.p["val_max_tokens"] or TRAIN_SLICE_TOKENS,
                    val_max_tokens=plan.p["val_max_tokens"],
                    manpages_val_tokens=_read_json(os.path.join(plan.args.data_root, "manpages", "spm-4096",
                                                                "meta.json"))["val"]["tokens"], jobs=plan.args.jobs,
                    threads=plan.args.threads, eval_limit=eval_limit, tasks=tasks),
        timing=plan.timing, runs=runs, segments=segments, zero_shot=zero,
        meta=dict(command=command, cpu="%s (%d cores)" % (plan.timing.get("cpu", "unknown CPU"), os.cpu_count() or 0),
                  written=datetime.datetime.utcnow().strftime("%Y-%m-%d")))


# ---------------------------------------------------------------------------------------------------------
# statistics


def loss_of(raw, model, corpus, steps, pair, on="kjv"):
    for r in raw["runs"]:
        if (r["model"], r["corpus"], r["steps"], r["pair"]) == (model, corpus, steps, pair) and on in r["val"]:
            return r["val"][on]
    return None


def paired(raw, a, b, on="kjv"):
    """The gap B − A over the pairs that have both. a, b: (model, corpus, steps). Returns a dict with the per-pair
    gaps, their mean, sd and seed half-width (t, 95%), the validation text's standard error (per window, the
    pairs' mean gap, token-weighted) and the combined half-width; None without any pair."""
    pairs = sorted({r["pair"] for r in raw["runs"]})
    per, wins = [], []
    for p in pairs:
        x, y = loss_of(raw, *a, p, on=on), loss_of(raw, *b, p, on=on)
        if x is None or y is None:
            continue
        per.append((p, y["loss"] - x["loss"]))
        wins.append([(ny - nx, n) for nx, ny, n in zip(x["window_nats"], y["window_nats"], x["window_tokens"])])
    if not per:
        return None
    gaps = [g for _, g in per]
    m, sd = mean_std(gaps)
    seed_half = t_quantile(0.95, len(gaps) - 1) * sd / math.sqrt(len(gaps)) if len(gaps) > 1 else None
    # Per window: the pairs' mean difference of summed nats, over the window's tokens. The mean gap is their
    # token-weighted mean; its standard error over windows (a ratio estimator) is the validation text's share.
    W = len(wins[0])
    tok = [wins[0][w][1] for w in range(W)]
    g = [sum(wp[w][0] for wp in wins) / len(wins) / tok[w] for w in range(W)]
    G = sum(t * x for t, x in zip(tok, g)) / sum(tok)
    val_se = math.sqrt(sum((t * (x - G)) ** 2 for t, x in zip(tok, g)) * W / (W - 1)) / sum(tok)
    half = math.sqrt(seed_half ** 2 + (Z95 * val_se) ** 2) if seed_half is not None else None
    return dict(pairs=[p for p, _ in per], gaps=gaps, mean=m, sd=sd, seed_half=seed_half, val_se=val_se, half=half)


def pairs_needed(sd, val_se, target=TARGET, most=200):
    """The fewest pairs n whose combined half-width sqrt((t(n-1) sd/sqrt n)^2 + (1.96 val_se)^2) is <= target;
    None when the validation text alone exceeds it (more pairs cannot help) or more than `most` are needed."""
    if Z95 * val_se >= target:
        return None
    for n in range(2, most + 1):
        if math.sqrt((t_quantile(0.95, n - 1) * sd / math.sqrt(n)) ** 2 + (Z95 * val_se) ** 2) <= target:
            return n
    return None


def pair_cost_seconds(raw, corpus="full"):
    """Mean training seconds of one (corpus, pair): both models, every branch, summed (one process each)."""
    per = {}
    for s in raw["segments"]:
        if s["corpus"] == corpus:
            per[s["pair"]] = per.get(s["pair"], 0.0) + s["seconds"]
    full = [v for p, v in per.items() if complete_pair(raw, corpus, p)]
    return sum(full) / len(full) if full else None


def complete_pair(raw, corpus, pair):
    steps = {(r["model"], r["steps"]) for r in raw["runs"] if r["corpus"] == corpus and r["pair"] == pair}
    return all(("gqa", t) in steps and ("gqe", t) in steps for t in raw["design"]["budgets"])


def fit_line(xs, ys):
    """Least-squares intercept and slope of ys on xs."""
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    b = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx
    return my - b * mx, b


def scale_fit(raw):
    """Per pair, the gap at the three equal-token budgets against log10(tokens); the slope (per decade) and the
    gap extrapolated to 10x the largest budget, each as mean and t half-width over pairs."""
    d = raw["design"]
    tokens = [t * d["batch"] * d["seq"] for t in d["budgets"]]
    slopes, preds, used = [], [], []
    x_far = math.log10(10 * max(tokens))
    for p in sorted({r["pair"] for r in raw["runs"] if r["corpus"] == "full"}):
        ys = []
        for t in d["budgets"]:
            a, b = loss_of(raw, "gqa", "full", t, p), loss_of(raw, "gqe", "full", t, p)
            if a is None or b is None:
                break
            ys.append(b["loss"] - a["loss"])
        if len(ys) != len(tokens):
            continue
        a0, b0 = fit_line([math.log10(x) for x in tokens], ys)
        slopes.append(b0)
        preds.append(a0 + b0 * x_far)
        used.append(p)
    if len(used) < 2:
        return None

    def ci(xs):
        m, sd = mean_std(xs)
        return dict(mean=m, half=t_quantile(0.95, len(xs) - 1) * sd / math.sqrt(len(xs)))
    return dict(pairs=used, slope=ci(slopes), at_10x=ci(preds), tokens_10x=10 * max(tokens))


# ---------------------------------------------------------------------------------------------------------
# formatting


def fmt_gap(r):
    if r is None:
        return "–", "–"
    if r["half"] is None:
        return "%+.4f (1 pair)" % r["mean"], "–"
    return ("%+.4f ± %.4f" % (r["mean"], r["sd"]),
            "[%+.4f, %+.4f]" % (r["mean"] - r["half"], r["mean"] + r["half"]))


def verdict(r):
    if r is None or r["half"] is None:
        return "–"
    lo, hi = r["mean"] - r["half"], r["mean"] + r["half"]
    return "GQE worse" if lo > 0 else "GQE better" if hi < 0 else "no difference shown"


def mean_loss(raw, model, corpus, steps, on="kjv"):
    xs = [r["val"][on]["loss"] for r in raw["runs"]
          if (r["model"], r["corpus"], r["steps"]) == (model, corpus, steps) and on in r["val"]]
    m, sd = mean_std(xs)
    return "%.4f ± %.4f" % (m, sd) if xs else "–"


def mtok(steps, d):
    return "%.2fM" % (steps * d["batch"] * d["seq"] / 1e6)


def interval(r):
    return "%+.4f [%+.4f, %+.4f]" % (r["mean"], r["mean"] - r["half"], r["mean"] + r["half"])


def diff_of_gaps(raw, first, second):
    """(first's gap − second's gap) per pair over the pairs both have: (mean, t half-width, n) or None.
    first, second: (corpus, GQA steps, GQE steps)."""
    g1 = paired(raw, ("gqa", first[0], first[1]), ("gqe", first[0], first[2]))
    g2 = paired(raw, ("gqa", second[0], second[1]), ("gqe", second[0], second[2]))
    if not g1 or not g2:
        return None
    common = sorted(set(g1["pairs"]) & set(g2["pairs"]))
    ds = [g1["gaps"][g1["pairs"].index(p)] - g2["gaps"][g2["pairs"].index(p)] for p in common]
    if len(ds) < 2:
        return None
    m, sd = mean_std(ds)
    return dict(mean=m, half=t_quantile(0.95, len(ds) - 1) * sd / math.sqrt(len(ds)), n=len(ds))


def zero_shot_rows(raw):
    """Per task: GQA's and GQE's mean score over the pairs both have, GQE − GQA with its 95% half-width (the pairs'
    spread plus both models' item errors: unpaired, conservative) and whether every score is above chance."""
    zs = raw["zero_shot"]
    tasks, rows = list(raw["design"].get("tasks", [])), []  # the installed order, then anything else
    for z in zs:
        tasks += sorted(t for t in z["results"] if t not in tasks)
    for task in tasks:
        per = {m: {z["pair"]: z["results"][task] for z in zs if z["model"] == m and task in z["results"]}
               for m in ["gqa", "gqe"]}
        common = sorted(set(per["gqa"]) & set(per["gqe"]))
        if not common:
            continue
        any_r = per["gqa"][common[0]]
        ds = [per["gqe"][p]["value"] - per["gqa"][p]["value"] for p in common]
        m, sd = mean_std(ds)
        item = sum(per["gqa"][p]["stderr"] ** 2 + per["gqe"][p]["stderr"] ** 2 for p in common) / len(common)
        chance = any_r["chance"]
        # Above chance: more than two standard errors above it, for every model and pair evaluated (below it, as on
        # boolq where a constant answer scores the minority label's share, is no skill either).
        above = all(per[x][p]["value"] - chance > 2 * per[x][p]["stderr"] for x in per for p in common) \
            if chance is not None else None
        rows.append(dict(task=task, metric=any_r["metric"], chance=chance, pairs=len(common), mean=m,
                         half=Z95 * math.sqrt(sd ** 2 / len(ds) + item), above=above,
                         cells=["%.3f ± %.3f" % (sum(per[x][p]["value"] for p in common) / len(common),
                                                 sum(per[x][p]["stderr"] for p in common) / len(common))
                                for x in ["gqa", "gqe"]]))
    return rows


def summary(raw):
    """The findings, one bullet each, from the same numbers as the tables."""
    d = raw["design"]
    b = d["budgets"]
    top = max(b)
    out = []
    main = paired(raw, ("gqa", "full", top), ("gqe", "full", top))
    if not main or main["half"] is None:
        return ["- Not enough finished pairs yet for a finding (two are needed)."]
    need = pairs_needed(main["sd"], main["val_se"])
    s = ("- **The gap at %s tokens** (GQE − GQA held-out loss, nats, %d seed pairs): %s (seeds ±%.4f, validation "
         "text ±%.4f): %s." % (mtok(top, d), len(main["gaps"]), interval(main), main["seed_half"],
                              Z95 * main["val_se"], verdict(main)))
    if main["half"] <= TARGET:
        s += " The interval is within the ±%.2f the study set out to reach." % TARGET
    elif need:
        cost = pair_cost_seconds(raw)
        more = need - len(main["gaps"])
        s += (" Bounding it to ±%.2f takes about %d pairs at this spread (sd %.4f over %d pairs, an estimate that "
              "so few pairs leave uncertain: the next pairs move it): %d more%s." % (
                  TARGET, need, main["sd"], len(main["gaps"]), more,
                  ", about %.1f hours on this machine at %d processes at a time" % (
                      more * cost / 3600 / d["jobs"], d["jobs"]) if cost else ""))
    else:
        s += " The validation text's own error alone exceeds ±%.2f: more pairs cannot bound it; a larger " \
             "held-out set can." % TARGET
    out.append(s)
    per_budget = [(t, paired(raw, ("gqa", "full", t), ("gqe", "full", t))) for t in b]
    out.append("- **Against tokens** (equal tokens): " + "; ".join(
        "%s: %s %s" % (mtok(t, d), interval(r), verdict(r)) for t, r in per_budget if r and r["half"] is not None) +
        "." + ("".join(" From %s to %s the gap changes by %+.4f [%+.4f, %+.4f] (paired over %d pairs)." % (
            mtok(b[i], d), mtok(b[i + 1], d), -x["mean"], -x["mean"] - x["half"], -x["mean"] + x["half"], x["n"])
            for i in range(len(b) - 1) for x in [diff_of_gaps(raw, ("full", b[i], b[i]), ("full", b[i + 1], b[i + 1]))]
            if x)))
    fl = paired(raw, ("gqa", "full", top), ("gqe", "full", int(round(top * d["flop_ratio"]))))
    wc = paired(raw, ("gqa", "full", top), ("gqe", "full", d["wall_clock_steps"]))
    t = raw["timing"]["seconds_per_step"]
    ratio = statistics.median(t["gqe"]) / statistics.median(t["gqa"])
    if fl and wc and fl["half"] is not None and wc["half"] is not None:
        out.append("- **Equal compute** at GQA's %d steps: equal FLOPs (GQE %d steps) %s, %s; equal wall clock (GQE %d "
                   "steps: its step takes %.3f of GQA's time on this CPU, one thread, alone) %s, %s." % (
                       top, int(round(top * d["flop_ratio"])), interval(fl), verdict(fl), d["wall_clock_steps"], ratio,
                       interval(wc), verdict(wc)))
    rep = [(t, diff_of_gaps(raw, ("quarter", t, t), ("full", t, t))) for t in b]
    rep = [(t, x) for t, x in rep if x]
    if rep:
        q = d["quarter_tokens"]
        out.append("- **Repetition** (the first quarter of the corpus against all of it, same pairs, same steps): the "
                   "gap with 4x the passes minus the gap without: " + "; ".join(
                       "%s tokens (%.1f vs %.1f passes): %+.4f [%+.4f, %+.4f]" % (
                           mtok(t, d), t * d["batch"] * d["seq"] / q, t * d["batch"] * d["seq"] / d["train_tokens"],
                           x["mean"], x["mean"] - x["half"], x["mean"] + x["half"]) for t, x in rep) + ".")
        same = [(b[i], diff_of_gaps(raw, ("quarter", b[i], b[i]), ("full", b[i + 1], b[i + 1])))
                for i in range(len(b) - 1) if b[i + 1] == 4 * b[i]]
        same = [(t, x) for t, x in same if x]
        if same:
            out.append("- **Unique tokens at equal passes** (quarter at T against full at 4T: the same passes, 4x the "
                       "unique tokens and tokens seen in the second): " + "; ".join(
                           "%.1f passes: %+.4f [%+.4f, %+.4f]" % (t * d["batch"] * d["seq"] / d["quarter_tokens"],
                                                                  x["mean"], x["mean"] - x["half"], x["mean"] + x["half"])
                           for t, x in same) + ".")
    held = []
    for corpus in d["corpora"][1:]:
        r = paired(raw, ("gqa", "full", top), ("gqe", "full", top), on=corpus)
        if r and r["half"] is not None:
            held.append("%s %s, %s" % (corpus, interval(r), verdict(r)))
    if held:
        out.append("- **Held-out corpora** at %s tokens (trained on the KJV): %s." % (mtok(top, d), "; ".join(held)))
    zrows = zero_shot_rows(raw)
    if zrows:
        above = [r["task"] for r in zrows if r["above"]]
        apart = ["%s %+.3f [%+.3f, %+.3f]" % (r["task"], r["mean"], r["mean"] - r["half"], r["mean"] + r["half"])
                 for r in zrows if r["mean"] - r["half"] > 0 or r["mean"] + r["half"] < 0]
        out.append("- **Zero-shot benchmarks** (%d tasks, first %d docs each, %d pair(s)): both models above chance on "
                   "%s; GQE − GQA %s." % (
                       len(zrows), d["eval_limit"], max(r["pairs"] for r in zrows),
                       "%d (%s)" % (len(above), ", ".join(above)) if above else "none",
                       "excludes 0 on " + "; ".join(apart) if apart else "includes 0 on every task: at this scale "
                       "the benchmarks cannot separate the two"))
    fit = scale_fit(raw)
    if fit:
        out.append("- **Extrapolation** (a straight line in log tokens through three budgets, one size): slope %+.4f "
                   "[%+.4f, %+.4f] nats per decade; at %.0fM tokens, 10x the largest budget, the line gives %+.4f "
                   "[%+.4f, %+.4f]. Outside the measured range: a guess with an interval, not a measurement." % (
                       fit["slope"]["mean"], fit["slope"]["mean"] - fit["slope"]["half"],
                       fit["slope"]["mean"] + fit["slope"]["half"], fit["tokens_10x"] / 1e6, fit["at_10x"]["mean"],
                       fit["at_10x"]["mean"] - fit["at_10x"]["half"], fit["at_10x"]["mean"] + fit["at_10x"]["half"]))
    return out


def render(raw):
    """README.md's text from results.json's content."""
    d, timing = raw["design"], raw["timing"]
    top = max(d["budgets"])
    r_fl = d["flop_ratio"]
    wc = d["wall_clock_steps"]
    main_top = paired(raw, ("gqa", "full", top), ("gqe", "full", top))
    done_full = sorted({r["pair"] for r in raw["runs"] if r["corpus"] == "full" and complete_pair(raw, "full", r["pair"])})
    done_quarter = sorted({r["pair"] for r in raw["runs"]
                           if r["corpus"] == "quarter" and complete_pair(raw, "quarter", r["pair"])})
    L = []
    if d.get("quick"):
        L.append("# Smoke test of the round-2 study pipeline (`--quick`): not a finding\n")
        L.append("Budgets of %s steps, %d pairs, one timing repeat: this run checks that every part of the pipeline "
                 "works (seed pairs, branches, the quarter corpus, held-out corpora, timing, the report). Its numbers "
                 "are too small and too few to say anything about GQE; the round-2 findings are in the committed "
                 "`docs/results/*-study-gap/README.md`.\n" % (" / ".join(map(str, d["budgets"])), d["pairs"]))
    else:
        L.append("# Study round 2: the GQE − GQA gap at the largest CPU budget, against repetition, on held-out "
                 "corpora, at equal FLOPs and equal wall clock\n")
    L.append("Generated by `%s` (the training, resumable) and `%s --report-only --report DIR` (this README; "
             "tests/scripts/study_gap_test.py regenerates it from results.json, so every number below is recomputed "
             "from the raw values). Machine: %s, %d training processes at a time with %d thread each. Written %s.\n" % (
                 raw["meta"]["command"], raw["meta"]["command"], raw["meta"]["cpu"], d["jobs"], d["threads"],
                 raw["meta"]["written"]))
    # ---- summary
    if not d.get("quick"):
        L.append("## What the data shows\n")
        L.append("Every interval is 95%: the pairs' spread and the validation text's sampling error together "
                 "(Design).\n")
        L += summary(raw)
        L.append("")
    # ---- design
    L.append("## Design\n")
    L.append("- **Pairs.** Pair *i* trains GQA and GQE from initialisation seed 100 + *i* on data order 200 + *i* "
             "(`gqe train --seed`, `--data-seed`): within a pair both models see the same batches; across pairs both "
             "seeds change, independently of each other. The gap is computed per pair, then averaged; its 95% "
             "interval adds the pairs' spread (Student t, n − 1 degrees of freedom) and the validation text's "
             "sampling error (per validation window, the pairs' mean gap; standard error of the token-weighted mean "
             "over windows; 1.96 of it) in quadrature. The KJV's held-out windows are 128-token slices of five "
             "contiguous 16 KiB chunks of the text (the WEB's and the man pages' likewise): neighbouring windows "
             "correlate, so the validation term is a lower bound of that error.")
    L.append("- **Budgets.** %s steps of %d × %d tokens (%s tokens), learning rate %g → %g, warmup %d steps, "
             "linear decay over the last %d%%; each budget a branch of one run (bit-exact resume; scripts/study.py). "
             "The tiny configuration (configs/tiny-gqe.json, vocabulary 4096): %s parameters (GQA), %s (GQE)." % (
                 " / ".join(str(t) for t in d["budgets"]), d["batch"], d["seq"],
                 " / ".join(mtok(t, d) for t in d["budgets"]), d["lr"], d["min_lr"], d["warmup"],
                 round(100 * d["decay_fraction"]), "{:,}".format(d["params"]["gqa"]), "{:,}".format(d["params"]["gqe"])))
    L.append("- **Corpora.** Training: the King James Bible (%s training tokens) and, for the repetition control, its "
             "first quarter (`gqe train --train-tokens %d`). Validation: the KJV's held-out 2%%, the World English "
             "Bible's (the same book in modern English: a shift of wording) and the man-pages project's section 7 "
             "(technical English: a shift of domain; 10%% held out, %s tokens), all encoded with the KJV tokenizer "
             "(scripts/prepare-study-corpora.sh). The models train on one corpus and are validated on all; "
             "the repetition control stays on the KJV alone so that the two questions stay apart. The WEB's held-out "
             "passages are mostly in the KJV's training text in the old wording: its number measures the shift "
             "of wording on largely known content, the man pages' a new domain." % (
                 "{:,}".format(d["train_tokens"]), d["quarter_tokens"], "{:,}".format(d.get("manpages_val_tokens", 0))))
    L.append("- **Done.** Full corpus: %d of %d pairs complete (%s); quarter corpus: %d of %d (%s). The schedule "
             "is resumable (`python3 scripts/study_gap.py` continues it)." % (
                 len(done_full), d["pairs"], ", ".join(map(str, done_full)) or "none", len(done_quarter),
                 d["quarter_pairs"], ", ".join(map(str, done_quarter)) or "none"))
    L.append("")
    # ---- 1. the gap
    L.append("## 1. The gap at each budget (equal tokens, equal FLOPs, equal wall clock)\n")
    L.append("| comparison | GQA steps | GQE steps | tokens (GQA) | pairs | GQA val loss | GQE val loss | GQE − GQA "
             "(mean ± sd over pairs) | 95% interval | seeds ± | val text ± | verdict |")
    L.append("|---|---|---|---|---|---|---|---|---|---|---|---|")
    rows = [("equal tokens", t, t) for t in d["budgets"]]
    rows += [("equal FLOPs", t, int(round(t * r_fl))) for t in d["budgets"]]
    rows += [("equal wall clock", top, wc)]
    numbers = []
    for label, ta, tb in rows:
        r = paired(raw, ("gqa", "full", ta), ("gqe", "full", tb))
        mean, cell = fmt_gap(r)
        L.append("| %s | %d | %d | %s | %d | %s | %s | %s | %s | %s | %s | %s |" % (
            label, ta, tb, mtok(ta, d), len(r["gaps"]) if r else 0, mean_loss(raw, "gqa", "full", ta),
            mean_loss(raw, "gqe", "full", tb), mean, cell,
            "%.4f" % r["seed_half"] if r and r["seed_half"] is not None else "–",
            "%.4f" % (Z95 * r["val_se"]) if r else "–", verdict(r)))
    L.append("")
    if main_top:
        L.append("Per pair at %d steps (GQE − GQA): %s.\n" % (
            top, ", ".join("pair %d %+.4f" % (p, g) for p, g in zip(main_top["pairs"], main_top["gaps"]))))
    # ---- timing
    t = timing["seconds_per_step"]
    med = {m: statistics.median(t[m]) for m in ["gqa", "gqe"]}
    L.append("**Equal wall clock.** One training step (%d × %d tokens, one thread, alone: nothing else ran), %d "
             "steps × %d repeats, the models in turn: GQA %.4f s (%.4f..%.4f), GQE %.4f s (%.4f..%.4f), median "
             "(min..max); GQE/GQA time %.3f, while GQE's forward FLOPs are 1/%.4f of GQA's. In GQA's %d-step time "
             "GQE trains %d steps.\n" % (
                 d["batch"], d["seq"], timing["steps"], timing["repeats"], med["gqa"], min(t["gqa"]), max(t["gqa"]),
                 med["gqe"], min(t["gqe"]), max(t["gqe"]), med["gqe"] / med["gqa"], r_fl, top, wc))
    # ---- 2. repetition
    L.append("## 2. Repetition: the full corpus against its first quarter\n")
    L.append("Passes = tokens seen / unique training tokens. Overfit = held-out loss − loss on the first %d training "
             "tokens (the same model on text it trained on; the level also carries the two texts' difference in "
             "difficulty, so compare GQA with GQE and the corpora with each other, not with 0).\n" % d["train_slice_tokens"])
    L.append("| corpus | steps | tokens seen | unique tokens | passes | pairs | GQA val loss | GQE val loss | "
             "GQE − GQA | 95% interval | GQA overfit | GQE overfit |")
    L.append("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for corpus, uniq in [("full", d["train_tokens"]), ("quarter", d["quarter_tokens"])]:
        for ts in d["budgets"]:
            r = paired(raw, ("gqa", corpus, ts), ("gqe", corpus, ts))
            mean, cell = fmt_gap(r)
            over = []
            for model in ["gqa", "gqe"]:
                xs = [r2["val"]["kjv"]["loss"] - r2["val"]["train"]["loss"] for r2 in raw["runs"]
                      if (r2["model"], r2["corpus"], r2["steps"]) == (model, corpus, ts) and "train" in r2["val"]]
                m, sd = mean_std(xs)
                over.append("%+.3f ± %.3f" % (m, sd) if xs else "–")
            L.append("| %s | %d | %s | %s | %.1f | %d | %s | %s | %s | %s | %s | %s |" % (
                corpus, ts, mtok(ts, d), "%.2fM" % (uniq / 1e6), ts * d["batch"] * d["seq"] / uniq,
                len(r["gaps"]) if r else 0, mean_loss(raw, "gqa", corpus, ts), mean_loss(raw, "gqe", corpus, ts),
                mean, cell, over[0], over[1]))
    L.append("")
    L.append("Matched comparisons (difference of gaps, paired by pair; positive: the gap is larger in the first):\n")
    L.append("| question | first | second | pairs | difference of gaps | 95% interval (pairs) |")
    L.append("|---|---|---|---|---|---|")
    q = d["budgets"]
    comps = [("repetition at equal tokens seen", ("quarter", ts), ("full", ts)) for ts in q]
    comps += [("unique tokens at equal passes", ("quarter", q[i]), ("full", q[i + 1])) for i in range(len(q) - 1)
              if q[i + 1] == 4 * q[i]]
    for label, (c1, t1), (c2, t2) in comps:
        g1 = paired(raw, ("gqa", c1, t1), ("gqe", c1, t1))
        g2 = paired(raw, ("gqa", c2, t2), ("gqe", c2, t2))
        cell, half, n = "–", "–", 0
        if g1 and g2:
            common = sorted(set(g1["pairs"]) & set(g2["pairs"]))
            ds = [g1["gaps"][g1["pairs"].index(p)] - g2["gaps"][g2["pairs"].index(p)] for p in common]
            n = len(ds)
            if ds:
                m, sd = mean_std(ds)
                cell = "%+.4f" % m
                if n > 1:
                    h = t_quantile(0.95, n - 1) * sd / math.sqrt(n)
                    half = "[%+.4f, %+.4f]" % (m - h, m + h)
        L.append("| %s | %s %d steps (%.1f passes) | %s %d steps (%.1f passes) | %d | %s | %s |" % (
            label, c1, t1, t1 * d["batch"] * d["seq"] / (d["quarter_tokens"] if c1 == "quarter" else d["train_tokens"]),
            c2, t2, t2 * d["batch"] * d["seq"] / (d["quarter_tokens"] if c2 == "quarter" else d["train_tokens"]),
            n, cell, half))
    L.append("")
    # ---- 3. held-out corpora
    L.append("## 3. Held-out corpora (trained on the KJV, validated on each)\n")
    L.append("| validation corpus | steps | pairs | GQA loss | GQE loss | GQE − GQA | 95% interval | verdict |")
    L.append("|---|---|---|---|---|---|---|---|")
    for corpus in d["corpora"]:
        for ts in d["budgets"]:
            r = paired(raw, ("gqa", "full", ts), ("gqe", "full", ts), on=corpus)
            mean, cell = fmt_gap(r)
            L.append("| %s | %d | %d | %s | %s | %s | %s | %s |" % (
                corpus, ts, len(r["gaps"]) if r else 0, mean_loss(raw, "gqa", "full", ts, on=corpus),
                mean_loss(raw, "gqe", "full", ts, on=corpus), mean, cell, verdict(r)))
    L.append("")
    # ---- 4. scale
    L.append("## 4. The gap against training tokens, extrapolated\n")
    fit = scale_fit(raw)
    if fit:
        L.append("Per pair, a least-squares line of the gap against log10(tokens) through the %d equal-token budgets; "
                 "mean over %d pairs with a t interval. Slope: %+.4f nats per decade of tokens [%+.4f, %+.4f]. "
                 "**Extrapolation** (outside the measured range, assuming the straight line holds, which nothing "
                 "here tests) to %.1fM tokens, 10x the largest budget: gap %+.4f [%+.4f, %+.4f]. One model size "
                 "only: no size term is fitted.\n" % (
                     len(d["budgets"]), len(fit["pairs"]), fit["slope"]["mean"],
                     fit["slope"]["mean"] - fit["slope"]["half"], fit["slope"]["mean"] + fit["slope"]["half"],
                     fit["tokens_10x"] / 1e6, fit["at_10x"]["mean"], fit["at_10x"]["mean"] - fit["at_10x"]["half"],
                     fit["at_10x"]["mean"] + fit["at_10x"]["half"]))
    else:
        L.append("Needs two complete pairs.\n")
    L.append("![gap against tokens](gap.png)\n")
    # ---- 5. zero-shot
    L.append("## 5. Zero-shot benchmarks\n")
    zs = raw["zero_shot"]
    if not zs:
        L.append("No model has been evaluated (no benchmark data installed, `--no-eval`, or not reached yet).\n")
    else:
        L.append("`gqe eval`, the first %d docs of each task (MMLU: that many over its subjects), GQA and GQE at %d "
                 "steps of each evaluated pair; acc_norm where lm-eval reports it, else acc; ± is the mean of lm-eval's "
                 "standard errors. The difference's interval adds the pairs' spread to both models' item errors "
                 "(unpaired, conservative).\n" % (d["eval_limit"], top))
        L.append("| task | metric | chance | pairs | GQA | GQE | GQE − GQA [95%] | above chance? |")
        L.append("|---|---|---|---|---|---|---|---|")
        for r in zero_shot_rows(raw):
            L.append("| %s | %s | %s | %d | %s | %s | %+.3f [%+.3f, %+.3f] | %s |" % (
                r["task"], r["metric"], "%.3f" % r["chance"] if r["chance"] is not None else "–", r["pairs"],
                r["cells"][0], r["cells"][1], r["mean"], r["mean"] - r["half"], r["mean"] + r["half"],
                "yes" if r["above"] else "no" if r["above"] is not None else "–"))
        L.append("")
    # ---- cost
    L.append("## Cost\n")
    for corpus in ["full", "quarter"]:
        c = pair_cost_seconds(raw, corpus)
        if c:
            L.append("- One %s-corpus pair: %.2f training process-hours (GQA and GQE, every branch)." % (corpus, c / 3600))
    L.append("- What it cannot show: models of %.1fM parameters, one size, trained on at most %s tokens with a "
             "4096-token vocabulary, far below the paper's 250M parameters and 30B tokens.\n" % (
                 d["params"]["gqa"] / 1e6, mtok(top, d)))
    return "\n".join(L)


# ---------------------------------------------------------------------------------------------------------
# plots and files


def plot(raw, out_dir):
    d = raw["design"]
    rows = {}
    for corpus in ["full", "quarter"]:
        rows[corpus] = []
        for t in d["budgets"]:
            r = paired(raw, ("gqa", corpus, t), ("gqe", corpus, t))
            if r and r["half"] is not None:
                rows[corpus].append((t * d["batch"] * d["seq"], r["mean"], r["mean"] - r["half"], r["mean"] + r["half"]))
        R.write_dat(os.path.join(out_dir, "gap_%s.dat" % corpus), rows[corpus])
    fit = scale_fit(raw)
    if not rows["full"]:
        for corpus in ["full", "quarter"]:
            os.remove(os.path.join(out_dir, "gap_%s.dat" % corpus))
        return False
    script = ('set output "gap.png"\nset logscale x\nset xlabel "training tokens"\n'
              'set ylabel "GQE - GQA validation loss (nats)"\nset key top right\nset grid\n'
              'set title "The gap against tokens, 95%% intervals (pairs and validation text)"\n'
              'set xrange [%g:%g]\n'
              'f(x) = %r + %r * log10(x)\n' % (rows["full"][0][0] / 2, (fit["tokens_10x"] if fit else rows["full"][-1][0]) * 2,
                  fit["at_10x"]["mean"] - fit["slope"]["mean"] * math.log10(fit["tokens_10x"]) if fit else 0.0,
                  fit["slope"]["mean"] if fit else 0.0))
    parts = ['"gap_full.dat" using 1:2:3:4 with yerrorlines lw 2 title "full corpus"']
    if rows["quarter"]:
        parts.append('"gap_quarter.dat" using ($1*1.04):2:3:4 with yerrorlines lw 2 title "first quarter"')
    if fit:
        parts.append('[%g:%g] f(x) with lines dt 2 title "line through the full corpus (extrapolated past %s)"'
                     % (rows["full"][0][0] / 1.5, fit["tokens_10x"], mtok(max(d["budgets"]), d)))
    parts.append("0 with lines lc rgb 'black' notitle")
    ok = R.gnuplot(script + "plot " + ", ".join(parts) + "\n", out_dir)
    for corpus in ["full", "quarter"]:
        os.remove(os.path.join(out_dir, "gap_%s.dat" % corpus))
    return ok


def write_report(plan, out_dir, tasks, eval_limit, command):
    os.makedirs(out_dir, exist_ok=True)
    raw = collect(plan, tasks, eval_limit, command)
    with open(os.path.join(out_dir, "results.json"), "w") as f:
        json.dump(raw, f, sort_keys=True, separators=(",", ":"))  # one line: the windows' values dominate
        f.write("\n")
    with open(os.path.join(out_dir, "README.md"), "w") as f:
        f.write(render(raw))
    plot(raw, out_dir)
    for name in ["plan.json", "timing.json"]:
        src = os.path.join(plan.out, name)
        if os.path.exists(src):
            shutil.copy(src, os.path.join(out_dir, name))
    return raw
