#include "gqe/cli/args.h"

#include <cstdlib>

#include "gqe/core/error.h"

namespace gqe::cli {

Args::Args(const std::string& command, int argc, char** argv, const std::set<std::string>& options,
           const std::set<std::string>& flags)
    : command_(command) {
  for (int i = 0; i < argc; ++i) {
    std::string a = argv[i];
    if (a.rfind("--", 0) != 0 || a == "--") {
      positional_.push_back(a);
      continue;
    }
    std::string name = a.substr(2), value;
    bool inline_value = false;
    if (auto eq = name.find('='); eq != std::string::npos) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
      inline_value = true;
    }
    if (flags.count(name)) {
      flags_.insert(name);
    } else if (options.count(name)) {
      if (!inline_value) {
        if (i + 1 >= argc) throw Error("gqe " + command + ": option --" + name + " needs a value");
        value = argv[++i];
      }
      values_[name] = value;
    } else {
      std::string known;
      for (const auto& o : options) known += " --" + o;
      for (const auto& f : flags) known += " --" + f;
      throw Error("gqe " + command + ": unknown option --" + name + " (known:" + known + ")");
    }
  }
}

std::vector<std::string> split_commas(const std::string& s) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= s.size()) {
    size_t c = s.find(',', start);
    if (c == std::string::npos) c = s.size();
    if (c > start) out.push_back(s.substr(start, c - start));
    start = c + 1;
  }
  return out;
}

std::vector<std::string> Args::get_list(const std::string& name, const std::vector<std::string>& def) const {
  return has(name) ? split_commas(get(name, "")) : def;
}

std::vector<int64_t> Args::get_positive_ints(const std::string& name, const std::vector<int64_t>& def) const {
  if (!has(name)) return def;
  std::vector<int64_t> out;
  for (const std::string& item : split_commas(get(name, ""))) {
    char* end = nullptr;
    long long v = std::strtoll(item.c_str(), &end, 10);
    if (!end || *end || v <= 0)
      throw Error("gqe " + command_ + ": --" + name + " expects comma-separated positive integers, got '" + item + "'");
    out.push_back(v);
  }
  return out;
}

std::string Args::get(const std::string& name, const std::string& def) const {
  auto it = values_.find(name);
  return it == values_.end() ? def : it->second;
}

std::string Args::require(const std::string& name) const {
  auto it = values_.find(name);
  if (it == values_.end()) throw Error("gqe " + command_ + ": missing required option --" + name);
  return it->second;
}

int64_t Args::get_int(const std::string& name, int64_t def) const {
  if (!has(name)) return def;
  const std::string v = get(name, "");
  try {
    size_t pos = 0;
    int64_t x = std::stoll(v, &pos);
    if (pos != v.size()) throw std::invalid_argument(v);
    return x;
  } catch (const std::exception&) {
    throw Error("gqe " + command_ + ": --" + name + " expects an integer, got '" + v + "'");
  }
}

double Args::get_double(const std::string& name, double def) const {
  if (!has(name)) return def;
  const std::string v = get(name, "");
  try {
    size_t pos = 0;
    double x = std::stod(v, &pos);
    if (pos != v.size()) throw std::invalid_argument(v);
    return x;
  } catch (const std::exception&) {
    throw Error("gqe " + command_ + ": --" + name + " expects a number, got '" + v + "'");
  }
}

}  // namespace gqe::cli
