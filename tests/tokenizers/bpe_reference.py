"""Hugging Face `tokenizers` side of tests/tokenizers/bpe_tokenizer_test.cpp.

  train STYLE CORPUS VOCAB_SIZE OUT_DIR   trains a small byte-level BPE tokenizer with `tokenizers` itself:
      STYLE gpt2:   ByteLevel pre-tokenizer (GPT-2's regex), <|endoftext|>
      STYLE llama3: Split with the LLaMA-3 (tiktoken) regex + ByteLevel(use_regex=False), ignore_merges,
                    <|begin_of_text|> <|end_of_text|> and reserved special tokens
    and writes OUT_DIR/tokenizer.json (merges as [a, b] arrays), OUT_DIR/tokenizer-string-merges.json (the
    same with the older "a b" merges) and OUT_DIR/vocab.json + OUT_DIR/merges.txt (GPT-2's file pair).
  encode TOKENIZER_JSON TEXT_FILE IDS_FILE   encodes the text (UTF-8) without post-processing and writes
    the ids as little-endian uint32.
"""
import array
import json
import os
import sys

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers

LLAMA3_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)


def train(style, corpus, vocab_size, out_dir):
    if style == "gpt2":
        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        special = ["<|endoftext|>"]
    elif style == "llama3":
        tok = Tokenizer(models.BPE(ignore_merges=True))
        tok.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(LLAMA3_PATTERN), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ])
        special = ["<|begin_of_text|>", "<|end_of_text|>"] + [f"<|reserved_special_token_{i}|>" for i in range(4)]
    else:
        raise SystemExit(f"unknown style {style}")
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=special, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train([corpus], trainer)
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, "tokenizer.json")
    tok.save(path)
    with open(path, encoding="utf-8") as f:
        j = json.load(f)
    j["model"]["merges"] = [m if isinstance(m, str) else " ".join(m) for m in j["model"]["merges"]]
    with open(os.path.join(out_dir, "tokenizer-string-merges.json"), "w", encoding="utf-8") as f:
        json.dump(j, f, ensure_ascii=False)
    tok.model.save(out_dir)  # vocab.json + merges.txt


def encode(tokenizer_json, text_file, ids_file):
    tok = Tokenizer.from_file(tokenizer_json)
    with open(text_file, encoding="utf-8", newline="") as f:
        text = f.read()
    ids = tok.encode(text, add_special_tokens=False).ids
    with open(ids_file, "wb") as f:
        array.array("I", ids).tofile(f)


if __name__ == "__main__":
    if sys.argv[1] == "train":
        train(sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5])
    elif sys.argv[1] == "encode":
        encode(sys.argv[2], sys.argv[3], sys.argv[4])
    else:
        raise SystemExit(__doc__)
