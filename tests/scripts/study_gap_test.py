"""scripts/study_gap_report.py (CTest `study_gap`): the paired gap with its two error terms, the pairs needed for a
target interval and the scale fit against hand-computed values on made-up runs; then every committed round-2 study
(docs/results/*-study-gap/) regenerated from its results.json must equal its README.md, so each number in it is
recomputed from the raw values. Python 3 standard library only; no build, no training."""
import glob
import math
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.join(ROOT, "scripts"))

import study_gap_report as R  # noqa: E402 (after the path)
import study_stats as T  # noqa: E402

failures = []


def check(cond, what):
    if not cond:
        failures.append(what)


def close(a, b, tol=1e-12):
    return abs(a - b) <= tol * max(1.0, abs(b))


def run(model, corpus, steps, pair, windows):
    """A run whose KJV validation windows hold `windows` = [(nats, tokens)]."""
    nats = [n for n, _ in windows]
    tok = [t for _, t in windows]
    return dict(model=model, corpus=corpus, steps=steps, pair=pair,
                val=dict(kjv=dict(loss=sum(nats) / sum(tok), window_nats=nats, window_tokens=tok)))


def test_paired():
    # Three pairs, three windows of 10, 10 and 5 tokens.
    gqa = {1: [20.0, 30.0, 10.0], 2: [22.0, 28.0, 11.0], 3: [21.0, 29.0, 9.0]}
    gqe = {1: [21.0, 30.5, 10.0], 2: [22.0, 29.0, 11.5], 3: [22.5, 29.0, 9.0]}
    tok = [10, 10, 5]
    raw = dict(runs=[run("gqa", "full", 100, p, list(zip(gqa[p], tok))) for p in gqa] +
               [run("gqe", "full", 100, p, list(zip(gqe[p], tok))) for p in gqe])
    r = R.paired(raw, ("gqa", "full", 100), ("gqe", "full", 100))
    gaps = [(sum(gqe[p]) - sum(gqa[p])) / 25 for p in [1, 2, 3]]
    check(r["pairs"] == [1, 2, 3], "paired: pairs %r" % r["pairs"])
    check(all(close(a, b) for a, b in zip(r["gaps"], gaps)), "paired: gaps %r, want %r" % (r["gaps"], gaps))
    m = sum(gaps) / 3
    sd = math.sqrt(sum((g - m) ** 2 for g in gaps) / 2)
    check(close(r["mean"], m) and close(r["sd"], sd), "paired: mean/sd")
    check(close(r["seed_half"], T.t_quantile(0.95, 2) * sd / math.sqrt(3)), "paired: seed half-width")
    # Validation text: per window the pairs' mean difference per token, its token-weighted mean is the gap, and the
    # ratio estimator's standard error over the three windows.
    g = [sum(gqe[p][w] - gqa[p][w] for p in gqa) / 3 / tok[w] for w in range(3)]
    G = sum(t * x for t, x in zip(tok, g)) / 25
    check(close(G, m), "paired: the windows' weighted mean is the gap")
    se = math.sqrt(sum((t * (x - G)) ** 2 for t, x in zip(tok, g)) * 3 / 2) / 25
    check(close(r["val_se"], se), "paired: val_se %r, want %r" % (r["val_se"], se))
    check(close(r["half"], math.sqrt(r["seed_half"] ** 2 + (R.Z95 * se) ** 2)), "paired: combined half-width")
    # A pair missing one model is left out; no common pair gives None.
    raw["runs"] = [x for x in raw["runs"] if not (x["model"] == "gqe" and x["pair"] == 3)]
    check(R.paired(raw, ("gqa", "full", 100), ("gqe", "full", 100))["pairs"] == [1, 2], "paired: incomplete pair")
    check(R.paired(raw, ("gqa", "full", 100), ("gqe", "full", 999)) is None, "paired: no pair")


def test_pairs_needed():
    # Without validation error: the first n with t(n-1) sd / sqrt(n) <= target.
    n = R.pairs_needed(0.05, 0.0)
    check(T.t_quantile(0.95, n - 1) * 0.05 / math.sqrt(n) <= R.TARGET < T.t_quantile(0.95, n - 2) * 0.05 /
          math.sqrt(n - 1), "pairs_needed: %r is not the first n" % n)
    check(R.pairs_needed(0.05, 0.01) >= n, "pairs_needed: validation error cannot lower n")
    check(R.pairs_needed(0.05, R.TARGET / R.Z95) is None, "pairs_needed: the validation text alone exceeds it")


def test_scale_fit():
    # Every pair's gap exactly a + b log10(tokens): the slope and the 10x prediction exact, with zero spread... plus
    # a pair offset by a constant, which moves the intercept only.
    d = dict(budgets=[150, 600, 2400], batch=16, seq=128)
    runs = []
    for p, shift in [(1, 0.0), (2, 0.02), (3, -0.01)]:
        for t in d["budgets"]:
            x = math.log10(t * 16 * 128)
            runs.append(run("gqa", "full", t, p, [(40.0, 10)]))
            runs.append(run("gqe", "full", t, p, [(40.0 + 10 * (0.5 - 0.08 * x + shift), 10)]))
    f = R.scale_fit(dict(design=d, runs=runs))
    check(close(f["slope"]["mean"], -0.08, 1e-9) and f["slope"]["half"] < 1e-9, "scale_fit: slope %r" % f["slope"])
    far = math.log10(10 * 2400 * 16 * 128)
    check(close(f["at_10x"]["mean"], 0.5 - 0.08 * far + (0.02 - 0.01) / 3, 1e-9), "scale_fit: prediction")
    check(close(f["at_10x"]["half"], T.t_quantile(0.95, 2) * T.mean_std([0.0, 0.02, -0.01])[1] / math.sqrt(3), 1e-9),
          "scale_fit: prediction interval")


def test_zero_shot_rows():
    def score(model, pair, value, se):
        return dict(model=model, pair=pair, results=dict(copa=dict(metric="acc", value=value, stderr=se, chance=0.5)))
    raw = dict(design=dict(tasks=["copa"]), zero_shot=[score("gqa", 1, 0.60, 0.05), score("gqe", 1, 0.64, 0.05), score("gqa", 2, 0.62, 0.05),
                          score("gqe", 2, 0.70, 0.04), score("gqe", 3, 0.9, 0.01)])  # pair 3 lacks GQA: left out
    (r,) = R.zero_shot_rows(raw)
    check(r["pairs"] == 2 and close(r["mean"], 0.06), "zero_shot_rows: mean over the common pairs %r" % r)
    sd = T.mean_std([0.04, 0.08])[1]
    check(close(r["half"], R.Z95 * math.sqrt(sd ** 2 / 2 + (0.05 ** 2 * 3 + 0.04 ** 2) / 2)), "zero_shot_rows: half")
    check(r["above"] is False, "zero_shot_rows: 0.60 ± 0.05 is not 2 stderr above 0.5")
    check(r["cells"] == ["0.610 ± 0.050", "0.670 ± 0.045"], "zero_shot_rows: cells %r" % r["cells"])


def test_committed_reports():
    import json
    folders = sorted(glob.glob(os.path.join(ROOT, "docs", "results", "*-study-gap")))
    for folder in folders:
        with open(os.path.join(folder, "results.json")) as f:
            raw = json.load(f)
        with open(os.path.join(folder, "README.md")) as f:
            readme = f.read()
        again = R.render(raw)
        if again != readme:
            a, b = readme.split("\n"), again.split("\n")
            first = next((i for i in range(min(len(a), len(b))) if a[i] != b[i]), min(len(a), len(b)))
            failures.append("%s: README.md differs from its regeneration at line %d:\n  committed:   %s\n  "
                            "regenerated: %s" % (folder, first + 1, a[first] if first < len(a) else "<end>",
                                                 b[first] if first < len(b) else "<end>"))
    return len(folders)


if __name__ == "__main__":
    test_paired()
    test_pairs_needed()
    test_scale_fit()
    test_zero_shot_rows()
    n = test_committed_reports()
    for f in failures:
        print("FAIL: " + f)
    print("study_gap: %d committed report(s) regenerated; %s" % (n, "FAILED" if failures else "all checks passed"))
    sys.exit(1 if failures else 0)
