// The eval task loaders (eval/tasks.cpp) on arbitrary files. The first input byte picks the loader
// ('h' HellaSwag, 'a' ARC, 'p' PIQA; any other byte by its value mod 3); the rest is the task file. For
// PIQA, a line "--labels--" splits the rest into the .jsonl and its line-aligned labels file (without it,
// the rows must carry their labels). Loaded docs must be usable: at least 2 choices and a gold index
// among them.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "fuzz_util.h"
#include "gqe/eval/tasks.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const char pick = static_cast<char>(data[0]);
  const int loader = pick == 'h' ? 0 : pick == 'a' ? 1 : pick == 'p' ? 2 : data[0] % 3;
  std::string file(reinterpret_cast<const char*>(data) + 1, size - 1);
  try {
    std::vector<gqe::eval::McDoc> docs;
    if (loader == 0) {
      docs = gqe::eval::load_hellaswag(gqe::fuzz::write_input("hellaswag_val.jsonl", file));
    } else if (loader == 1) {
      docs = gqe::eval::load_arc(gqe::fuzz::write_input("ARC-Easy-Test.jsonl", file));
    } else {
      const std::string mark = "\n--labels--\n";
      std::string labels_path;
      const size_t cut = file.find(mark);
      if (cut != std::string::npos) {
        labels_path = gqe::fuzz::write_input("valid-labels.lst", file.substr(cut + mark.size()));
        file.resize(cut + 1);
      }
      docs = gqe::eval::load_piqa(gqe::fuzz::write_input("valid.jsonl", file), labels_path);
    }
    if (docs.empty()) std::abort();  // a loader returns docs or throws
    for (const auto& d : docs)
      if (d.choices.size() < 2 || d.gold < 0 || d.gold >= int64_t(d.choices.size())) {
        std::fprintf(stderr, "tasks_fuzz: line %lld loaded with %zu choices and gold %lld\n", (long long)d.line,
                     d.choices.size(), (long long)d.gold);
        std::abort();
      }
  } catch (const gqe::Error&) {
  }
  return 0;
}
