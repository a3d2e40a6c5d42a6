// gqe export --format hf / gqe import: a checkpoint as a Hugging Face transformers folder and back
// (src/gqe/interop/hf_export.h, docs/interop.md).
#include <iostream>

#include "gqe/cli/args.h"
#include "gqe/cli/commands.h"
#include "gqe/core/error.h"
#include "gqe/interop/hf_export.h"

namespace gqe::cli {

int cmd_export(int argc, char** argv) {
  Args args("export", argc, argv, {"format", "tokenizer"}, {"help"}, Positionals{"CHECKPOINT OUT_DIR", 0, 2});
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
  export_hf(ckpt, out, hf_tokenizer_of_checkpoint(ckpt, args.get("tokenizer", "")));
  std::cout << "wrote " << out << " (load: AutoModelForCausalLM.from_pretrained(\"" << out
            << "\", trust_remote_code=True))\n";
  return 0;
}

int cmd_import(int argc, char** argv) {
  Args args("import", argc, argv, {}, {"help"}, Positionals{"HF_DIR OUT_CHECKPOINT", 0, 2});
  if (args.flag("help") || args.positional().size() != 2) {
    std::cout << "usage: gqe import HF_DIR OUT_CHECKPOINT\n"
                 "Reads a folder written by `gqe export --format hf` (or saved from it by transformers) back into a\n"
                 "gqe checkpoint folder (config.json, model.safetensors, the tokenizer recorded as gqe train does).\n"
                 "Weights saved in float16, bfloat16 or float64 become float32. OUT_CHECKPOINT must be new or empty.\n";
    return args.flag("help") ? 0 : 2;
  }
  const HfImportReport report = import_hf(args.positional()[0], args.positional()[1]);
  for (const auto& [dtype, n] : report.converted)
    std::cout << (dtype == "float64" ? "rounded " : "converted ") << n << " " << dtype << " tensor" << (n == 1 ? "" : "s")
              << " to float32"
              << (dtype == "float64" ? " (to float32's precision)\n"
                                     : " (exactly: the weights keep the precision they were saved with)\n");
  std::cout << "wrote " << args.positional()[1] << "\n";
  return 0;
}

}  // namespace gqe::cli
