"""The studies' job graph: commands whose success leaves a marker file, run a few at a time as their dependencies
allow, with each run's losses and an ETA logged as it finishes. A job whose marker exists is done and never runs
again, which is what makes scripts/study.py and scripts/study_gap.py resumable.
"""
import datetime
import json
import os
import subprocess
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def log(msg):
    print(time.strftime("%H:%M:%S"), msg, flush=True)


def fail(msg):
    print("study: " + msg, file=sys.stderr)
    sys.exit(1)


class Job:
    """A command (or a list of commands run in turn) whose success writes done_marker."""

    def __init__(self, name, argv, done_marker, deps=(), log_path=None, work=0):
        self.name, self.argv, self.done_marker, self.deps = name, argv, done_marker, list(deps)
        self.log_path, self.work = log_path, work  # work: training steps x relative cost, for the ETA
        self.state = "done" if os.path.exists(done_marker) else "todo"


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
                    # A command that cannot start (a gqe being rebuilt) fails its job: an exception here would end
                    # this worker with its job marked running, and the other workers would wait for it forever.
                    try:
                        rc = subprocess.run(argv, stdout=lf, stderr=subprocess.STDOUT, cwd=ROOT).returncode
                    except OSError as e:
                        lf.write("%s\n" % e)
                        rc = 127
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
