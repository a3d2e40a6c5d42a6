#!/usr/bin/env python3
"""The include graph of src/gqe/ with its folders as layers: every folder (area) sits on a floor, and a file
may include only its own area and areas on lower floors. That rules out cycles and includes that run upward.

    python3 scripts/check-layers.py [SOURCE_DIR]          check; exit 1 naming each offending include
    python3 scripts/check-layers.py --table [SOURCE_DIR]  the floors as the Markdown table docs/architecture.md holds
    python3 scripts/check-layers.py --docs [SOURCE_DIR]   check, and that docs/architecture.md holds that table

FLOORS is the one statement of the order. CMakeLists.txt groups the same areas into three libraries (gqe_nn,
gqe, gqe_app); the check also holds those lists to the floors (a library's areas lie below the next one's).
"""
import os
import re
import sys

# Lowest first; each floor a list of (area, what it holds). Areas on one floor do not include each other.
FLOORS = [
    [("core", "configs, errors, files, JSON, run directories, threads and BLAS, SHA-256")],
    [("kernels", "the CPU kernels and their reference twins (`twins.h` lists them); `cuda/`, the CUDA kernels")],
    [("attention", "GQA and GQE attention blocks, the router, the KV cache, the one choice of kernel path")],
    [("model", "norms, MLP, the decoder-only language model")],
    [("io", "safetensors, model checkpoints")],
    [("tokenizers", "the `Tokenizer` interface: bytes, SentencePiece, byte-level BPE; the tokenizer a run records")],
    [("data", "token shards, their meta.json, corpus preparation, the loader"),
     ("distributed", "c10d communicators (Gloo, NCCL), the ranks' rendezvous"),
     ("generate", "sampling with the KV cache")],
    [("eval", "lm-evaluation-harness-exact tasks, validation loss, routing analytics")],
    [("train", "the recipe (AdamW, WSD, ZClip), the trainer, `TrainJob` (a whole run from options)")],
    [("interop", "Hugging Face transformers export and import"),
     ("bench", "GQA-vs-GQE prefill, training and decode benchmarks")],
    [("serve", "`gqe serve`: OpenAI-compatible HTTP endpoints, continuous batching over the ragged decode")],
    [("cli", "the `gqe` command: its flags into the layers below")],
]
LIBRARIES = ["GQE_NN_AREAS", "GQE_SYSTEM_AREAS", "GQE_APP_AREAS"]
INCLUDE = re.compile(r'^\s*#\s*include\s+"gqe/([a-z_0-9]+)/')


def floor_of():
    return {area: i for i, floor in enumerate(FLOORS) for area, _ in floor}


def includes(src):
    """(area, file, line number, included area) for every #include "gqe/<area>/..." under src/gqe/<area>/."""
    root = os.path.join(src, "src", "gqe")
    for area in sorted(os.listdir(root)):
        if not os.path.isdir(os.path.join(root, area)):
            continue
        for dirpath, _, files in os.walk(os.path.join(root, area)):
            for name in sorted(files):
                path = os.path.join(dirpath, name)
                with open(path, encoding="utf-8", errors="replace") as f:
                    for n, line in enumerate(f, 1):
                        m = INCLUDE.match(line)
                        if m:
                            yield area, os.path.relpath(path, src), n, m.group(1)


def cmake_libraries(src):
    text = open(os.path.join(src, "CMakeLists.txt"), encoding="utf-8").read()
    out = []
    for var in LIBRARIES:
        m = re.search(r"set\(%s ([^)]*)\)" % var, text)
        out.append((var, m.group(1).split() if m else []))
    return out


def problems(src):
    floors = floor_of()
    out = []
    areas = sorted(d for d in os.listdir(os.path.join(src, "src", "gqe")) if os.path.isdir(os.path.join(src, "src", "gqe", d)))
    for a in areas:
        if a not in floors:
            out.append("src/gqe/%s/ is on no floor: add it to FLOORS in scripts/check-layers.py" % a)
    for a in floors:
        if a not in areas:
            out.append("FLOORS names %s, which is not a folder of src/gqe/" % a)
    for area, path, n, inc in includes(src):
        if inc == area or area not in floors:
            continue
        if inc not in floors:
            out.append("%s:%d includes gqe/%s/, which is not an area" % (path, n, inc))
        elif floors[inc] >= floors[area]:
            where = "the same floor as" if floors[inc] == floors[area] else "above"
            out.append("%s:%d: %s includes %s, which is on %s it" % (path, n, area, inc, where))
    top = -1
    for var, lib in cmake_libraries(src):
        if not lib:
            out.append("CMakeLists.txt: no set(%s ...)" % var)
            continue
        low = min(floors.get(a, 99) for a in lib)
        if low <= top:
            out.append("CMakeLists.txt: %s holds an area below the previous library's highest" % var)
        top = max(floors.get(a, -1) for a in lib)
    return out


def table(src):
    floors = floor_of()
    uses = {}
    for area, _, _, inc in includes(src):
        if inc != area:
            uses.setdefault(area, set()).add(inc)
    libs = {a: var for var, lib in cmake_libraries(src) for a in lib}
    names = {"GQE_NN_AREAS": "gqe_nn", "GQE_SYSTEM_AREAS": "gqe", "GQE_APP_AREAS": "gqe_app"}
    rows = ["| floor | area (`src/gqe/…/`) | library | what | includes |", "|---|---|---|---|---|"]
    for i in reversed(range(len(FLOORS))):
        for a, what in FLOORS[i]:
            inc = ", ".join(sorted(uses.get(a, ()), key=lambda x: (-floors.get(x, -1), x))) or "-"
            rows.append("| %d | `%s` | %s | %s | %s |" % (i, a, names.get(libs.get(a), "?"), what, inc))
    return "\n".join(rows) + "\n"


def main(argv):
    args = [a for a in argv if not a.startswith("--")]
    src = os.path.abspath(args[0] if args else os.path.join(os.path.dirname(__file__), ".."))
    if "--table" in argv:
        sys.stdout.write(table(src))
        return 0
    bad = problems(src)
    if "--docs" in argv:
        doc = os.path.join(src, "docs", "architecture.md")
        text = open(doc, encoding="utf-8").read() if os.path.exists(doc) else ""
        if table(src) not in text:
            bad.append("docs/architecture.md does not hold the floors table as it is now: replace it with the "
                       "output of `python3 scripts/check-layers.py --table`")
    for p in bad:
        print("check-layers: " + p, file=sys.stderr)
    if not bad:
        n = sum(1 for _ in includes(src))
        print("check-layers: %d areas on %d floors, %d includes, none upward or sideways" % (len(floor_of()), len(FLOORS), n))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
