#!/usr/bin/env python3
"""Finds tensor factories that land on the CPU by accident in gqe's device-generic code.

A model can live on a GPU. Code that builds tensors for it (token ids, masks, positions, accumulators) must
say where each one lives: `at::tensor(ids, at::kLong)` is a CPU tensor, and feeding it to a CUDA model
crashes at run time -- on a GPU only, where no test of this repository's CI runs. This check runs
everywhere: every factory call (at::/torch:: tensor, zeros, ones, full, empty, arange, rand*, linspace, eye)
in the device-generic folders must either

  * take its options from a tensor or a device: an argument mentioning `options`, `device`, `Device`, or
    `TensorOptions(` with a device, or a `*_like(` factory (which follows its tensor), or
  * be marked as deliberately on the host with a `// host:` comment saying why (on its line, or on a comment
    line directly above it or above the run of factory lines it belongs to), e.g. bookkeeping read with
    data_ptr, or ids copied to the model's device by a `.to(...)` in the same statement.

Folders checked: src/gqe/{attention,model,generate,eval,train,io,bench,distributed}. The CPU kernels
(src/gqe/kernels/, CPU-only by contract: each refuses other devices), the data loaders (host batches that the
trainer moves), the CLI and core are not device-generic.

Usage: check-device-factories.py [ROOT]    the self-test, then the tree: exit 0 clean, 1 with one line per
                                           finding (file:line: call)
       check-device-factories.py --self-test
"""
import os
import re
import sys

FOLDERS = ["attention", "model", "generate", "eval", "train", "io", "bench", "distributed"]
FACTORY = re.compile(r"\b(?:at|torch)::(tensor|zeros|ones|full|empty|arange|rand|randn|randint|randperm|"
                     r"linspace|eye)\s*\(")
PLACED = re.compile(r"options|device|Device|_like\(")
MARKER = "// host:"
MARKED = re.compile(r"//.*\bhost\b")  # the marker, also at the end of a comment that says more


def call_arguments(text, open_paren):
    """The text between the parenthesis at open_paren and its match (the rest of the text if unbalanced)."""
    depth = 0
    for i in range(open_paren, len(text)):
        c = text[i]
        if c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
            if depth == 0:
                return text[open_paren + 1:i]
    return text[open_paren + 1:]


def strip_comments(line):
    return line.split("//", 1)[0]


def findings_in(source, name):
    lines = source.split("\n")
    # Line starts, to map offsets to line numbers.
    starts, pos = [], 0
    for line in lines:
        starts.append(pos)
        pos += len(line) + 1
    code = "\n".join(strip_comments(l) for l in lines)  # same offsets: comments blanked by truncation only
    code_lines = code.split("\n")
    code = "\n".join(cl.ljust(len(l)) for cl, l in zip(code_lines, lines))
    factory_lines = set()
    hits = []
    for m in FACTORY.finditer(code):
        line_no = max(i for i, s in enumerate(starts) if s <= m.start())
        factory_lines.add(line_no)
        args = call_arguments(code, m.end() - 1)
        if PLACED.search(args):
            continue
        hits.append((line_no, m.group(0).rstrip("(").strip()))
    out = []
    for line_no, call in hits:
        if marked(lines, line_no, factory_lines):
            continue
        out.append(f"{name}:{line_no + 1}: {call}(...) without a device: pass options from a tensor or device, "
                   f"or mark it '{MARKER} why' if it belongs on the host")
    return out


def marked(lines, line_no, factory_lines):
    if MARKED.search(lines[line_no]):
        return True
    i = line_no - 1
    while i >= 0:
        stripped = lines[i].strip()
        if stripped.startswith("//"):
            if MARKED.search(stripped):
                return True
            i -= 1  # a comment block: keep looking for the marker at its top
            continue
        code = strip_comments(stripped).rstrip()
        if i in factory_lines or (code and not code.endswith(";") and not code.endswith("{")):
            if MARKED.search(stripped):
                return True
            i -= 1  # another factory line of the same run, or a statement continued on the next line
            continue
        return False
    return False


def check_tree(root):
    out = []
    for folder in FOLDERS:
        base = os.path.join(root, "src", "gqe", folder)
        for dirpath, _, files in os.walk(base):
            for f in sorted(files):
                if f.endswith((".cpp", ".h", ".cu")):
                    path = os.path.join(dirpath, f)
                    with open(path, encoding="utf-8") as fh:
                        out += findings_in(fh.read(), os.path.relpath(path, root))
    return out


def self_test():
    bad = """
  at::Tensor input = at::tensor(prompt, at::kLong).unsqueeze(0);
  input = at::full({1, 1}, tok, at::kLong);
  at::Tensor step = at::zeros({B, 1}, at::kLong);  // finished sequences feed padding
"""
    good = """
  at::Tensor aux = at::zeros({}, h.options());
  at::Tensor t = at::full({1, 1}, tok, at::TensorOptions(model.device()).dtype(at::kLong));
  at::Tensor ids = at::tensor(prompt, at::kLong).to(model.device());  // host: copied to the model
  // host: accumulators read with data_ptr
  at::Tensor a = at::zeros({L, G}, f64);
  at::Tensor b = at::zeros({L, L, G},
                           f64);
  at::Tensor e = at::empty_like(a);
"""
    found = findings_in(bad, "bad.cpp")
    assert [f.split(":")[1] for f in found] == ["2", "3", "4"], found
    assert findings_in(good, "good.cpp") == [], findings_in(good, "good.cpp")
    print("check-device-factories: self-test passed")


def main():
    if sys.argv[1:] == ["--self-test"]:
        self_test()
        return 0
    root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
    self_test()  # a check that cannot find the bug it exists for proves nothing
    found = check_tree(root)
    for f in found:
        print(f)
    if found:
        print(f"check-device-factories: {len(found)} tensor factories without a device in device-generic code",
              file=sys.stderr)
        return 1
    print("check-device-factories: every tensor factory in device-generic code names its device or is marked host")
    return 0


if __name__ == "__main__":
    sys.exit(main())
