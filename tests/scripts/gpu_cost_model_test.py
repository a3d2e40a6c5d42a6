"""scripts/gpu-cost-model.py (CTest `gpu_cost_model`): docs/gpu.md's "Cost model" section is exactly the
script's --markdown output, so its numbers can be reproduced with one command; and the model keeps the
properties that hold by construction. Python 3 standard library only; no build, no GPU."""
import importlib.util
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = os.path.join(ROOT, "scripts", "gpu-cost-model.py")
DOC = os.path.join(ROOT, "docs", "gpu.md")
HEADING = "## Cost model"


def doc_section():
    """The section from its heading to the next level-2 heading or the end of the file."""
    text = open(DOC, encoding="utf-8").read()
    start = text.find("\n" + HEADING + "\n")
    if start < 0:
        return None
    section = text[start + 1:]
    end = section.find("\n## ", len(HEADING))
    return section if end < 0 else section[:end + 1]


def load_model():
    sys.dont_write_bytecode = True  # no __pycache__ in the source tree
    spec = importlib.util.spec_from_file_location("gpu_cost_model", SCRIPT)
    model = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(model)
    return model


def main():
    failures = []

    def check(cond, what):
        if not cond:
            failures.append(what)
            print("FAILED: " + what)

    r = subprocess.run([sys.executable, SCRIPT, "--markdown"], capture_output=True, text=True, encoding="utf-8")
    check(r.returncode == 0, "--markdown runs (exit %d): %s" % (r.returncode, r.stderr[-2000:]))
    section = doc_section()
    check(section is not None, "docs/gpu.md has a '%s' section" % HEADING)
    if r.returncode == 0 and section is not None and section != r.stdout:
        doc_lines, out_lines = section.splitlines(), r.stdout.splitlines()
        first = next((i for i, (x, y) in enumerate(zip(doc_lines, out_lines)) if x != y),
                     min(len(doc_lines), len(out_lines)))
        check(False, "docs/gpu.md's Cost model section equals `python3 scripts/gpu-cost-model.py --markdown`; "
                     "first difference at section line %d:\n  doc:    %r\n  script: %r"
              % (first + 1, doc_lines[first] if first < len(doc_lines) else "<end>",
                 out_lines[first] if first < len(out_lines) else "<end>"))

    m = load_model()
    a, s = m.BASE, m.PAPER
    limit = float(s.heads) / (s.kv_heads * s.top_k + 1)
    for gpu in m.GPUS:
        core = m.predict("gqa-after", s, 65536, gpu, a, "core")[0] / m.predict("gqe-after", s, 65536, gpu, a, "core")[0]
        check(abs(core / limit - 1) < 0.05,
              "%s: the after core ratio at 64k (%.3f) is within 5%% of 16/9" % (gpu.key, core))
        for n in m.LENGTHS:
            before = m.predict("gqe-before", s, n, gpu, a)[0]
            after = m.predict("gqe-after", s, n, gpu, a)[0]
            check(after < before,
                  "%s n %d: GQE after (%.3g s) is faster than before (%.3g s)" % (gpu.key, n, after, before))
    for n in m.LENGTHS:
        gqa = m.work(m.design("gqa-after", s, n, a).kernels)
        for name in ["gqe-before", "gqe-after"]:
            gqe = m.work(m.design(name, s, n, a).kernels)
            check(gqe[0] < gqa[0], "n %d: %s has fewer FLOPs than GQA (%.4g < %.4g)" % (n, name, gqe[0], gqa[0]))
        check(m.work(m.design("gqe-before", s, n, a).kernels)[3] == 2, "n %d: before syncs twice (bincount)" % n)
        check(m.work(m.design("gqe-after", s, n, a).kernels)[3] == 0, "n %d: after never syncs" % n)
        core_flops = [k.flops for k in m.design("gqe-after", s, n, a).kernels if k.kind == "flash"]
        check(core_flops == [4.0 * (s.kv_heads + 1) * s.head_dim * n * (n + 1) / 2.0],
              "n %d: after makes one SDPA call of G + 1 heads, causal FLOPs" % n)
    r = subprocess.run([sys.executable, SCRIPT, "--kernels", "gqe-after", "--n", "4096", "--train"],
                       capture_output=True, text=True)
    check(r.returncode == 0 and "total:" in r.stdout, "--kernels lists a layer: %s" % r.stderr[-2000:])
    print("gpu_cost_model_test: %s" % ("FAILED" if failures else "passed"))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
