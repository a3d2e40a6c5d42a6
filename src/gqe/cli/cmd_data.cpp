// gqe tokenizer train / gqe data prepare: SentencePiece training and corpus -> token shards.
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>

#include "gqe/cli/args.h"
#include "gqe/cli/commands.h"
#include "gqe/core/error.h"
#include "gqe/core/fs.h"
#include "gqe/data/prepare.h"
#include "gqe/tokenizers/sentencepiece.h"
#include "gqe/data/shard.h"

namespace gqe::cli {

namespace {

// Multi-valued options are comma-separated (--input a.txt,b.txt) and/or positional: split_commas (args.h).

std::vector<std::string> inputs_of(const Args& args) {
  std::vector<std::string> in = split_commas(args.get("input", ""));
  for (const auto& p : args.positional()) in.push_back(p);
  return in;
}

// JSONL inputs are flattened to one text file (documents' text, one line each is not required: SentencePiece
// reads lines, so embedded newlines simply make more lines).
std::vector<std::string> text_inputs_for_training(const std::vector<std::string>& inputs, const std::string& field,
                                                  const std::string& tmp_path) {
  std::vector<std::string> out;
  std::ofstream tmp;
  for (const auto& p : inputs) {
    const std::string ext = std::filesystem::path(p).extension().string();
    if (ext != ".jsonl" && ext != ".json" && ext != ".ndjson") {
      out.push_back(p);
      continue;
    }
    if (!tmp.is_open()) {
      tmp.open(tmp_path, std::ios::binary | std::ios::trunc);
      if (!tmp) throw Error(tmp_path + ": cannot create temporary file");
      out.push_back(tmp_path);
    }
    fs::check_regular_file(p);  // streamed, so no size limit; but /dev/zero or a FIFO would never end
    std::ifstream in(p, std::ios::binary);
    if (!in) throw Error(p + ": cannot open input");
    std::string line;
    int64_t n = 0;
    while (std::getline(in, line)) {
      ++n;
      if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
      nlohmann::json j;
      try {
        j = nlohmann::json::parse(line);
      } catch (const std::exception& e) {
        throw FormatError(p + ":" + std::to_string(n) + ": invalid JSON: " + e.what());
      }
      if (!j.is_object() || !j.contains(field) || !j[field].is_string())
        throw FormatError(p + ":" + std::to_string(n) + ": expected a JSON object with a string field '" + field + "'");
      tmp << j[field].get<std::string>() << '\n';
    }
  }
  return out;
}

}  // namespace

int cmd_tokenizer(int argc, char** argv) {
  if (argc >= 1 && std::string(argv[0]) == "bench") return cmd_tokenizer_bench(argc - 1, argv + 1);
  if (argc < 1 || std::string(argv[0]) != "train") {
    std::cerr << "usage: gqe tokenizer train --input FILES --out PREFIX [--vocab-size N] ...\n"
                 "       gqe tokenizer bench --tokenizer SPEC --input TEXT_FILE\n";
    return argc >= 1 && (std::string(argv[0]) == "--help" || std::string(argv[0]) == "-h") ? 0 : 2;
  }
  Args args("tokenizer train", argc - 1, argv + 1,
            {"input", "out", "vocab-size", "model-type", "threads", "sentences", "character-coverage", "text-field",
             "spm-option"},
            {"help"}, Positionals::any("INPUT"));
  if (args.flag("help")) {
    std::cout << "usage: gqe tokenizer train --input F1[,F2...] --out PREFIX [options] [more inputs...]\n"
                 "Trains a SentencePiece model on text files (one sentence/paragraph per line) or JSONL\n"
                 "(.jsonl: the --text-field of each line). Writes PREFIX.model and PREFIX.vocab.\n"
                 "  --vocab-size N (4096)        --model-type bpe|unigram (bpe)\n"
                 "  --threads N (2)              --sentences N (0 = all: train on a sample of N lines)\n"
                 "  --character-coverage X (0.9995)  --text-field NAME (text)\n"
                 "  --spm-option key=value[,key=value]  raw SentencePiece trainer flags (override defaults)\n"
                 "Defaults give exact round trips: identity normalisation, spaces kept, byte fallback,\n"
                 "split digits, no dummy prefix; ids unk=0 bos=1 eos=2.\n";
    return 0;
  }
  SpmTrainOptions o;
  const std::string prefix = args.require("out");
  if (const auto parent = std::filesystem::path(prefix).parent_path(); !parent.empty()) fs::mkdirs(parent.string());
  const std::string tmp = prefix + ".jsonl-text.tmp." + std::to_string(::getpid());
  try {
    o.inputs = text_inputs_for_training(inputs_of(args), args.get("text-field", "text"), tmp);
  } catch (...) {
    std::filesystem::remove(tmp);
    throw;
  }
  if (o.inputs.empty()) throw Error("gqe tokenizer train: no input files (--input or positional)");
  o.model_prefix = prefix;
  o.vocab_size = args.get_int("vocab-size", o.vocab_size);
  o.model_type = args.get("model-type", o.model_type);
  o.num_threads = static_cast<int>(args.get_int("threads", o.num_threads));
  o.input_sentence_size = args.get_int("sentences", 0);
  o.character_coverage = args.get_double("character-coverage", o.character_coverage);
  o.extra = split_commas(args.get("spm-option", ""));
  std::cerr << "training SentencePiece " << o.model_type << " (vocab " << o.vocab_size << ", " << o.num_threads
            << " threads) on " << o.inputs.size() << " file(s)...\n";
  const auto t0 = std::chrono::steady_clock::now();
  try {
    train_sentencepiece(o);
  } catch (...) {
    std::filesystem::remove(tmp);
    throw;
  }
  std::filesystem::remove(tmp);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  SentencePieceTokenizer tok(prefix + ".model");
  std::cout << "wrote " << prefix << ".model and " << prefix << ".vocab: " << tok.vocab_size() << " pieces, eos id "
            << tok.eos_id() << ", trained in " << secs << " s\n";
  return 0;
}

int cmd_data(int argc, char** argv) {
  if (argc < 1 || std::string(argv[0]) != "prepare") {
    std::cerr << "usage: gqe data prepare --input FILES --out DIR [--tokenizer bytes|MODEL|tokenizer.json] ...\n";
    return argc >= 1 && (std::string(argv[0]) == "--help" || std::string(argv[0]) == "-h") ? 0 : 2;
  }
  Args args("data prepare", argc - 1, argv + 1,
            {"input", "out", "tokenizer", "text-field", "val-fraction", "shard-tokens", "chunk-bytes", "threads"},
            {"help", "force", "no-eos", "quiet"}, Positionals::any("INPUT"));
  if (args.flag("help")) {
    std::cout << "usage: gqe data prepare --input F1[,F2...] --out DIR [options] [more inputs...]\n"
                 "Tokenizes text files / JSONL (.jsonl: one {\"text\": ...} object per line, FineWeb-Edu style)\n"
                 "into DIR/train_NNNNNN.tok, DIR/val_NNNNNN.tok (gqe token shards) and DIR/meta.json.\n"
                 "  --tokenizer SPEC (bytes): bytes, a SentencePiece .model, a Hugging Face tokenizer.json (GPT-2,\n"
                 "      LLaMA-3 style byte-level BPE) or GPT-2's vocab.json + merges.txt   --text-field NAME (text)\n"
                 "  --val-fraction X (0.01: one chunk in 100 goes to validation)\n"
                 "  --chunk-bytes N (16384: text files are cut into line-aligned chunks of this size)\n"
                 "  --shard-tokens N (100000000)  --threads N (2)\n"
                 "  --no-eos (no EOS token after each document)  --force (replace shards in DIR)  --quiet\n";
    return 0;
  }
  PrepareOptions o;
  o.inputs = inputs_of(args);
  o.out_dir = args.require("out");
  o.tokenizer = args.get("tokenizer", o.tokenizer);
  o.text_field = args.get("text-field", o.text_field);
  o.val_fraction = args.get_double("val-fraction", o.val_fraction);
  o.shard_tokens = args.get_int("shard-tokens", o.shard_tokens);
  o.chunk_bytes = args.get_int("chunk-bytes", o.chunk_bytes);
  o.threads = static_cast<int>(args.get_int("threads", o.threads));
  o.append_eos = !args.flag("no-eos");
  o.force = args.flag("force");
  o.progress = !args.flag("quiet");
  const PrepareResult r = prepare_data(o);
  std::cout << "tokenizer " << o.tokenizer << " (vocab " << r.vocab_size << "): " << r.input_bytes << " bytes, "
            << r.documents << " documents, " << r.chunks << " chunks in " << r.seconds << " s\n"
            << "train: " << r.train_tokens << " tokens in " << r.train_shards.size() << " shard(s)  "
            << o.out_dir << "/train_*.tok\n"
            << "val:   " << r.val_tokens << " tokens in " << r.val_shards.size() << " shard(s)  " << o.out_dir
            << "/val_*.tok\n";
  return 0;
}

}  // namespace gqe::cli
