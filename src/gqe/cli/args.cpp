#include "gqe/cli/args.h"

#include <cerrno>
#include <cctype>
#include <cmath>
#include <cstdlib>
#include <sstream>

#include "gqe/core/error.h"

namespace gqe::cli {

namespace {

std::string format_number(double x) {
  std::ostringstream s;
  s << x;
  return s.str();
}

// "in [0, 1]", ">= 0", "in (0, 1]", "> 0": the interval a number must lie in, for messages.
std::string describe_range(const std::string& low, bool open_low, bool unbounded_high, const std::string& high) {
  if (unbounded_high) return (open_low ? "> " : ">= ") + low;
  return std::string("in ") + (open_low ? "(" : "[") + low + ", " + high + "]";
}

}  // namespace

Args::Args(const std::string& command, int argc, char** argv, const std::set<std::string>& options,
           const std::set<std::string>& flags, const Positionals& positionals)
    : command_(command) {
  const std::string who = "gqe " + command + ": ";
  bool options_ended = false;
  for (int i = 0; i < argc; ++i) {
    const std::string a = argv[i];
    if (options_ended || a.rfind("--", 0) != 0) {
      if (!options_ended && a == "-h" && flags.count("help")) {
        flags_.insert("help");
        continue;
      }
      if (positional_.size() >= positionals.max) {
        if (positionals.max == 0)
          throw Error(who + "unexpected argument '" + a + "': this command takes no positional arguments (options " +
                      "start with --)");
        throw Error(who + "unexpected argument '" + a + "': at most " + std::to_string(positionals.max) + " " +
                    positionals.name + " argument(s) expected");
      }
      positional_.push_back(a);
      continue;
    }
    if (a == "--") {
      options_ended = true;
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
      if (inline_value) throw Error(who + "flag --" + name + " takes no value, got '" + a + "'");
      if (!flags_.insert(name).second) throw Error(who + "flag --" + name + " given twice");
    } else if (options.count(name)) {
      if (!inline_value) {
        if (i + 1 >= argc) throw Error(who + "option --" + name + " needs a value");
        const std::string next = argv[i + 1];
        // `--out --threads 1` is a forgotten value, not a directory called "--threads".
        if (next.rfind("--", 0) == 0)
          throw Error(who + "option --" + name + " needs a value, got the option '" + next + "' (write --" + name +
                      "=" + next + " if that is the value)");
        value = next;
        ++i;
      }
      if (auto it = values_.find(name); it != values_.end())
        throw Error(who + "option --" + name + " given twice ('" + it->second + "' and '" + value + "')");
      values_[name] = value;
    } else {
      std::string known;
      for (const auto& o : options) known += " --" + o;
      for (const auto& f : flags) known += " --" + f;
      throw Error(who + "unknown option --" + name + " (known:" + known + ")");
    }
  }
  if (positional_.size() < positionals.min && !flag("help"))
    throw Error(who + "expected at least " + std::to_string(positionals.min) + " " + positionals.name +
                " argument(s), got " + std::to_string(positional_.size()));
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
    errno = 0;
    long long v = std::strtoll(item.c_str(), &end, 10);
    if (!end || *end || v <= 0 || errno == ERANGE || !std::isdigit(static_cast<unsigned char>(item[0])))
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

void Args::bad_value(const std::string& name, const std::string& value, const std::string& expected) const {
  throw Error(option_label(name) + " expects " + expected + ", got '" + value + "'");
}

int64_t Args::get_int(const std::string& name, int64_t def) const {
  return get_int(name, def, std::numeric_limits<int64_t>::min());
}

int64_t Args::get_int(const std::string& name, int64_t def, int64_t min, int64_t max) const {
  if (!has(name)) return def;
  const std::string v = get(name, "");
  const bool bounded = min != std::numeric_limits<int64_t>::min() || max != std::numeric_limits<int64_t>::max();
  const std::string expected =
      bounded ? "an integer " + describe_range(std::to_string(min), false, max == std::numeric_limits<int64_t>::max(),
                                               std::to_string(max))
              : "an integer";
  // strtoll skips leading blanks and clamps on overflow: both are refused here.
  const bool starts_well = !v.empty() && (std::isdigit(static_cast<unsigned char>(v[0])) || v[0] == '-' || v[0] == '+');
  char* end = nullptr;
  errno = 0;
  const long long x = starts_well ? std::strtoll(v.c_str(), &end, 10) : 0;
  if (!starts_well || !end || *end || errno == ERANGE) bad_value(name, v, expected);
  if (x < min || x > max) bad_value(name, v, expected);
  return x;
}

double Args::parse_double(const std::string& name, const std::string& expected) const {
  const std::string v = get(name, "");
  // strtod also reads "nan", "inf" and leading blanks; a number here is finite and written plainly.
  const bool starts_well =
      !v.empty() && (std::isdigit(static_cast<unsigned char>(v[0])) || v[0] == '-' || v[0] == '+' || v[0] == '.');
  char* end = nullptr;
  errno = 0;
  const double x = starts_well ? std::strtod(v.c_str(), &end) : 0.0;
  if (!starts_well || !end || *end || !std::isfinite(x) || (errno == ERANGE && x != 0)) bad_value(name, v, expected);
  return x;
}

double Args::get_double(const std::string& name, double def) const {
  return has(name) ? parse_double(name, "a finite number") : def;
}

double Args::get_double(const std::string& name, double def, double min, double max) const {
  if (!has(name)) return def;
  const std::string expected =
      "a number " + describe_range(format_number(min), false, max == std::numeric_limits<double>::max(), format_number(max));
  const double x = parse_double(name, expected);
  if (x < min || x > max) bad_value(name, get(name, ""), expected);
  return x;
}

double Args::get_positive_double(const std::string& name, double def, double max) const {
  if (!has(name)) return def;
  const std::string expected =
      "a number " + describe_range("0", true, max == std::numeric_limits<double>::max(), format_number(max));
  const double x = parse_double(name, expected);
  if (x <= 0 || x > max) bad_value(name, get(name, ""), expected);
  return x;
}

}  // namespace gqe::cli
