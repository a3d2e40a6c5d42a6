// gqe export --format hf / gqe import: a checkpoint as a Hugging Face transformers folder and back
// (src/gqe/io/hf_export.h, docs/interop.md).
#include <iostream>

#include "gqe/cli/args.h"
#include "gqe/cli/commands.h"
#include "gqe/core/error.h"
#include "gqe/core/fs.h"
#include "gqe/io/hf_export.h"

namespace gqe::cli {

namespace {

// The checkpoint's tokenizer, as the files beside it say: a Hugging Face tokenizer.json (byte-level BPE),
// a SentencePiece tokenizer.model, or none (gqe's byte tokenizer). --tokenizer overrides.
// When the checkpoint records its tokenizer (src/gqe/data/'s resolver), this is the place to ask it.
HfTokenizerSource checkpoint_tokenizer(const std::string& dir, const std::string& spec) {
  auto from_file = [](const std::string& path) {
    if (!fs::is_file(path)) throw Error("tokenizer file '" + path + "' does not exist");
    const bool json = path.size() >= 5 && path.compare(path.size() - 5, 5, ".json") == 0;
    return HfTokenizerSource{json ? HfTokenizerKind::tokenizer_json : HfTokenizerKind::sentencepiece, path};
  };
  if (spec == "bytes") return {HfTokenizerKind::bytes, ""};
  if (!spec.empty()) return from_file(spec);
  if (fs::is_file(dir + "/tokenizer.json")) return from_file(dir + "/tokenizer.json");
  if (fs::is_file(dir + "/tokenizer.model")) return from_file(dir + "/tokenizer.model");
  return {HfTokenizerKind::bytes, ""};
}

}  // namespace

int cmd_export(int argc, char** argv) {
  Args args("export", argc, argv, {"format", "tokenizer"}, {"help"});
  if (args.flag("help") || args.positional().size() != 2) {
    std::cout << "usage: gqe export --format hf CHECKPOINT OUT_DIR [--tokenizer bytes|FILE]\n"
                 "Writes CHECKPOINT as a Hugging Face transformers folder: config.json, model.safetensors,\n"
                 "configuration_gqe.py + modeling_gqe.py (load with trust_remote_code=True) and the tokenizer\n"
                 "(default: CHECKPOINT's tokenizer.json or tokenizer.model, else bytes). OUT_DIR must be new or empty.\n"
                 "See docs/interop.md.\n";
    return args.flag("help") ? 0 : 2;
  }
  const std::string format = args.require("format");
  if (format != "hf") throw Error("--format: expected \"hf\" (Hugging Face transformers), got '" + format + "'");
  const std::string ckpt = args.positional()[0], out = args.positional()[1];
  export_hf(ckpt, out, checkpoint_tokenizer(ckpt, args.get("tokenizer", "")));
  std::cout << "wrote " << out << " (load: AutoModelForCausalLM.from_pretrained(\"" << out
            << "\", trust_remote_code=True))\n";
  return 0;
}

int cmd_import(int argc, char** argv) {
  Args args("import", argc, argv, {}, {"help"});
  if (args.flag("help") || args.positional().size() != 2) {
    std::cout << "usage: gqe import HF_DIR OUT_CHECKPOINT\n"
                 "Reads a folder written by `gqe export --format hf` (or saved from it by transformers) back into a\n"
                 "gqe checkpoint folder (config.json, model.safetensors, tokenizer). OUT_CHECKPOINT must be new or empty.\n";
    return args.flag("help") ? 0 : 2;
  }
  import_hf(args.positional()[0], args.positional()[1]);
  std::cout << "wrote " << args.positional()[1] << "\n";
  return 0;
}

}  // namespace gqe::cli
