#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets into fuzz/corpus/<target>/: small valid files of each
format (as gqe writes them) plus edge cases, among them every input that once crashed a reader. Standard
library only. The train_state seeds start from the template checkpoint of train_state_fuzz itself
(GQE_FUZZ_WRITE_SEED): pass the built binary with --train-state-fuzz. fuzz/corpus/train_state/bad-* are
fuzzer findings kept as they were found (this script leaves them alone).

    python3 fuzz/make_corpus.py [--train-state-fuzz build-fuzz/train_state_fuzz]
"""
import argparse
import json
import os
import shutil
import struct
import subprocess

ROOT = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(ROOT, "corpus")
MASK = (1 << 64) - 1
FNV_OFFSET, FNV_PRIME = 14695981039346656037, 1099511628211


def fnv1a64(data):
    h = FNV_OFFSET
    for b in data:
        h = ((h ^ b) * FNV_PRIME) & MASK
    return h


def token_checksum(data):  # data/shard.h TokenChecksum (docs/data.md)
    h = FNV_OFFSET

    def mix(h, w):
        h = ((h ^ w) * FNV_PRIME) & MASK
        return h ^ (h >> 32)

    for i in range(0, len(data), 8):
        h = mix(h, int.from_bytes(data[i:i + 8].ljust(8, b"\0"), "little"))
    return mix(h, len(data))


def gqe_shard(tokens, width, vocab):
    body = b"".join(t.to_bytes(width, "little") for t in tokens)
    head = b"GQETOKS\0" + struct.pack("<IIQQQ", 1, width, len(tokens), vocab, token_checksum(body))
    return head + struct.pack("<Q", fnv1a64(head)) + b"\0" * 16 + body


def llmc_shard(tokens, width):
    magic, version = (20240520, 1) if width == 2 else (20240801, 7)
    head = struct.pack("<iii", magic, version, len(tokens)) + b"\0" * (1024 - 12)
    return head + b"".join(t.to_bytes(width, "little") for t in tokens)


def safetensors(tensors, metadata=None, header_pad=0):
    """tensors: [(name, dtype, shape, raw bytes)]"""
    header, data = {}, b""
    if metadata is not None:
        header["__metadata__"] = metadata
    for name, dtype, shape, raw in tensors:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * ((8 - len(text) % 8) % 8 + header_pad)
    return struct.pack("<Q", len(text)) + text + data


def f32(*xs):
    return struct.pack("<%df" % len(xs), *xs)


def write(target, name, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


def config_corpus(repo):
    for n in sorted(os.listdir(os.path.join(repo, "configs"))):
        text = open(os.path.join(repo, "configs", n)).read()
        if '"attention"' in text:  # model configs (the recipes are another format)
            write("config", n, text)
    base = json.load(open(os.path.join(repo, "configs", "tiny-gqa.json")))
    hf = dict(base)
    hf["attention"] = {k: v for k, v in base["attention"].items() if k != "head_dim"}
    write("config", "head-dim-from-hidden.json", json.dumps(hf))
    for name, patch in [("huge-sizes.json", {"vocab_size": 2**62, "hidden_size": 2**40}),
                        ("float-overflow.json", {"rope_theta": "1e999"}),
                        ("negative.json", {"num_hidden_layers": -1}),
                        ("int64-max-context.json", {"max_position_embeddings": 2**63 - 1})]:
        c = dict(base)
        c.update(patch)
        text = json.dumps(c).replace('"1e999"', "1e999")
        write("config", name, text)
    write("config", "empty-object.json", "{}")
    write("config", "deep.json", "[" * 600 + "]" * 600)
    write("config", "truncated.json", json.dumps(base)[:70])


def shard_corpus():
    toks = [(i * 37) % 256 for i in range(40)]
    write("shard", "gqe-u16.tok", gqe_shard(toks, 2, 256))
    write("shard", "gqe-u32.tok", gqe_shard([t * 1000 for t in toks], 4, 300000))
    write("shard", "gqe-vocab-unknown.tok", gqe_shard(toks[:3], 2, 0))
    write("shard", "gqe-vocab-too-large.tok", gqe_shard(toks[:3], 2, 2**64 - 1))  # more than uint16 tokens hold
    write("shard", "gqe-one-token.tok", gqe_shard([5], 2, 256))
    write("shard", "llmc-gpt2.bin", llmc_shard(toks[:8], 2))
    write("shard", "llmc-llama3.bin", llmc_shard([t * 500 for t in toks[:8]], 4))
    write("shard", "truncated.tok", gqe_shard(toks, 2, 256)[:70])
    write("shard", "text.txt", "In the beginning God created the heaven and the earth.\n")


def safetensors_corpus():
    write("safetensors", "f32.safetensors",
          safetensors([("a", "F32", [2, 3], f32(1, 2, 3, 4, 5, 6)), ("b.weight", "F32", [3], f32(-1, 0.5, 2))],
                      {"format": "pt", "config": '{"vocab_size": 4}'}))
    write("safetensors", "dtypes.safetensors",
          safetensors([("f64", "F64", [1], struct.pack("<d", 1.5)), ("f16", "F16", [2], b"\x00\x3c\x00\xc0"),
                       ("bf16", "BF16", [2], b"\x80\x3f\x00\x40"), ("i64", "I64", [1], struct.pack("<q", -3)),
                       ("i32", "I32", [1], struct.pack("<i", 7)), ("i16", "I16", [1], struct.pack("<h", 9)),
                       ("i8", "I8", [2], b"\x01\xff"), ("u8", "U8", [3], b"abc"), ("bool", "BOOL", [2], b"\x00\x01")]))
    write("safetensors", "scalar-and-empty.safetensors",
          safetensors([("s", "F32", [], f32(3)), ("e", "F32", [0, 4], b"")]))
    write("safetensors", "empty-header.safetensors", safetensors([]))
    write("safetensors", "padded-header.safetensors", safetensors([("a", "F32", [1], f32(1))], header_pad=8))
    good = safetensors([("a", "F32", [2], f32(1, 2))])
    write("safetensors", "trailing-bytes.safetensors", good + b"\0\0\0\0")
    write("safetensors", "truncated.safetensors", good[:-3])
    write("safetensors", "short-length.safetensors", struct.pack("<Q", 3))
    # Shapes whose counts wrap around 64 bits to the empty byte range (once accepted, then crashed).
    for name, dtype, shape in [("shape-2pow63", "F32", [2**63]), ("shape-bytes-wrap", "F32", [2**62]),
                               ("shape-elements-wrap", "U8", [2**32, 2**32])]:
        text = json.dumps({"a": {"dtype": dtype, "shape": shape, "data_offsets": [0, 0]}}).encode()
        write("safetensors", name + ".safetensors", struct.pack("<Q", len(text)) + text)
    text = b'{"a":{"dtype":"F32","shape":[1e999],"data_offsets":[0,4]}}'
    write("safetensors", "header-number-overflow.safetensors", struct.pack("<Q", len(text)) + text + f32(1))


def tasks_corpus():
    hs = {"ind": 7, "activity_label": "Kite flying", "ctx_a": "A boy holds a kite on a beach.", "ctx_b": "the BOY",
          "label": 2, "endings": ["eats a sandwich.", "paints the kite [title] red.", "runs and lets it rise.",
                                  "sits down [step] quietly."], "split": "val"}
    hs_hf = dict(hs, ind=8, label="3", ctx_b="")
    write("tasks", "hellaswag.jsonl", "h" + json.dumps(hs) + "\n" + json.dumps(hs_hf) + "\n")
    arc = {"id": "Mercury_1", "question": {"stem": "Which is a gas?", "choices": [
        {"text": "ice", "label": "A"}, {"text": "steam", "label": "B"}, {"text": "rock", "label": "C"}]},
        "answerKey": "B"}
    arc_hf = {"id": "x2", "question": "Two plus two?", "choices": {"text": ["3", "4"], "label": ["1", "2"]},
              "answerKey": "2"}
    write("tasks", "arc.jsonl", "a\ufeff" + json.dumps(arc) + "\r\n" + json.dumps(arc_hf) + "\n")
    piqa = [{"id": "p1", "goal": "Open a jar", "sol1": "Twist the lid.", "sol2": "Freeze the jar."},
            {"id": "p2", "goal": "Dry a shirt", "sol1": "Hang it in the sun.", "sol2": "Put it in water."}]
    write("tasks", "piqa-with-labels.jsonl",
          "p" + "".join(json.dumps(r) + "\n" for r in piqa) + "--labels--\n0\n1\n")
    write("tasks", "piqa-hf-labels.jsonl", "p" + "".join(json.dumps(dict(r, label=i)) + "\n" for i, r in enumerate(piqa)))
    write("tasks", "bad-json.jsonl", "h{\"ind\": 3, \"activity_label\": \n")
    write("tasks", "nul-byte.jsonl", "a{\"id\": \"a\0\"}\n")
    write("tasks", "number-overflow.jsonl", "a78888888888e888888")  # once crashed the loaders


def spm_model_corpus():
    """SentencePiece models whose precompiled_charsmap crashes libsentencepiece (tests/spm_crafted.h builds
    the same ones). gqe-bpe-320.model and truncated.model in the folder are kept as they are."""
    def varint(v):
        out = bytearray()
        while True:
            out.append((v & 0x7F) | (0x80 if v >= 0x80 else 0))
            v >>= 7
            if not v:
                return bytes(out)

    def field_bytes(n, b):
        return varint(n << 3 | 2) + varint(len(b)) + b

    def field_uint(n, v):
        return varint(n << 3) + varint(v)

    def model(charsmap):
        m = b""
        for piece, score, kind in (("<unk>", 0, 2), ("<s>", 0, 3), ("</s>", 0, 3), ("\u2581", -1, 1), ("a", -2, 1),
                                   ("b", -3, 1), ("c", -4, 1)):
            body = field_bytes(1, piece.encode()) + varint(2 << 3 | 5) + struct.pack("<f", score) + field_uint(3, kind)
            m += field_bytes(1, body)
        m += field_bytes(2, field_uint(3, 2))  # trainer_spec.model_type = BPE
        return m + field_bytes(3, field_bytes(1, b"crafted") + field_bytes(2, charsmap))

    def blob(units, strings):
        return struct.pack("<I", 4 * len(units)) + struct.pack("<%dI" % len(units), *units) + strings

    def one_rule_trie(value, a_next_offset=0x100):
        u = [0x80000000] * 512
        u[0] = 256 << 10
        u[256 ^ ord("a")] = (a_next_offset << 10) | (1 << 8) | ord("a")
        u[(256 ^ ord("a")) ^ a_next_offset] = 0x80000000 | value
        return u

    write("spm_model", "charsmap-valid.model", model(blob(one_rule_trie(0), b"b\0")))
    write("spm_model", "charsmap-root-past-trie.model", model(blob([0xFFFFFE00], b"x\0")))  # once crashed (SIGSEGV)
    write("spm_model", "charsmap-cycle.model", model(blob(one_rule_trie(0, 0x61), b"b\0")))  # once crashed
    write("spm_model", "charsmap-bad-offset.model", model(blob(one_rule_trie(1000), b"b\0")))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--train-state-fuzz", help="built train_state_fuzz binary (writes its template as the seed)")
    args = ap.parse_args()
    repo = os.path.dirname(ROOT)
    for t in ("config", "shard", "safetensors", "tasks"):
        shutil.rmtree(os.path.join(CORPUS, t), ignore_errors=True)
    config_corpus(repo)
    shard_corpus()
    safetensors_corpus()
    tasks_corpus()
    spm_model_corpus()
    if args.train_state_fuzz:
        d = os.path.join(CORPUS, "train_state")  # kept: it also holds inputs that once crashed (bad-*)
        os.makedirs(d, exist_ok=True)
        seed = os.path.join(d, "template-checkpoint")
        env = dict(os.environ, GQE_FUZZ_WRITE_SEED=seed, ASAN_OPTIONS="detect_leaks=0")
        subprocess.run([args.train_state_fuzz, "-runs=0"], env=env, check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        sep = b"\n--gqe-fuzz-next-file--\n"
        state, opt, model = open(seed, "rb").read().split(sep)
        write("train_state", "state-only", state)  # the two safetensors files from the template
        write("train_state", "state-and-optimizer", state + sep + opt)
        s = json.loads(state)
        s["data"]["epoch"] = 2**64 - 1
        write("train_state", "huge-epoch", json.dumps(s).encode() + sep + opt + sep + model)
        s = json.loads(state)
        del s["zclip"]
        write("train_state", "no-zclip", json.dumps(s))


if __name__ == "__main__":
    main()
