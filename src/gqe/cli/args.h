// A small command-line parser: `--name value`, `--name=value`, `--flag`, and positionals. Strict: an
// unknown option, a flag given a value, an option given twice, an option whose value is missing (the next
// argument is another `--option`: write `--name=--value` for a value that starts with `--`) and a
// positional argument to a command that declares none are errors naming the argument. `--` ends the
// options: everything after it is positional. The typed getters reject what is not a number of their kind,
// NaN and infinities, and values outside the range the command gives.
//
// Hand-written rather than CLI11 (Debian's libcli11-dev, tried): commands declare option names only and
// read typed values later, often with defaults computed after loading a model (gqe eval's --seq), which
// CLI11's parse-time typed binding does not fit; used only to split argv, CLI11 2.1 reports the cases
// this parser exists for less clearly (`--out --threads 1` -> "The following argument was not expected:
// 1", an unknown option without the known ones, a repeated flag accepted silently).
#pragma once
#include <cstdint>
#include <limits>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "gqe/core/enum_names.h"

namespace gqe::cli {

// "a,b,,c" -> {"a", "b", "c"}
std::vector<std::string> split_commas(const std::string& s);

// The positional arguments a command takes: between `min` and `max` of them, called `name` in messages.
// The default is none.
struct Positionals {
  std::string name;
  size_t min = 0;
  size_t max = 0;
  static Positionals any(const std::string& name) { return {name, 0, std::numeric_limits<size_t>::max()}; }
};

class Args {
 public:
  // `options` take a value; `flags` do not.
  Args(const std::string& command, int argc, char** argv, const std::set<std::string>& options,
       const std::set<std::string>& flags = {}, const Positionals& positionals = {});
  bool has(const std::string& name) const { return values_.count(name) > 0; }
  bool flag(const std::string& name) const { return flags_.count(name) > 0; }
  std::string get(const std::string& name, const std::string& def) const;
  std::string require(const std::string& name) const;
  // An integer (no fraction, no trailing characters, within int64), within [min, max] when given.
  int64_t get_int(const std::string& name, int64_t def) const;
  int64_t get_int(const std::string& name, int64_t def, int64_t min,
                  int64_t max = std::numeric_limits<int64_t>::max()) const;
  // A finite number (NaN and infinities are refused), within [min, max] when given.
  double get_double(const std::string& name, double def) const;
  double get_double(const std::string& name, double def, double min,
                    double max = std::numeric_limits<double>::max()) const;
  // A finite number in (0, max].
  double get_positive_double(const std::string& name, double def,
                             double max = std::numeric_limits<double>::max()) const;
  const std::vector<std::string>& positional() const { return positional_; }
  // Comma-separated values of --name (empty items dropped); `def` when the option is absent.
  std::vector<std::string> get_list(const std::string& name, const std::vector<std::string>& def = {}) const;
  // Comma-separated positive integers of --name; an error names the option and the bad item.
  std::vector<int64_t> get_positive_ints(const std::string& name, const std::vector<int64_t>& def = {}) const;
  // A value of a closed set (core/enum_names.h), or a comma-separated list of them; an unknown one is an
  // error naming the option and listing the valid values.
  template <class E>
  E get_enum(const std::string& name, E def) const {
    return has(name) ? parse_enum<E>(get(name, ""), option_label(name)) : def;
  }
  template <class E>
  std::vector<E> get_enum_list(const std::string& name, const std::vector<E>& def) const {
    if (!has(name)) return def;
    std::vector<E> out;
    for (const std::string& item : get_list(name)) out.push_back(parse_enum<E>(item, option_label(name)));
    return out;
  }

 private:
  std::string option_label(const std::string& name) const { return "gqe " + command_ + ": --" + name; }
  [[noreturn]] void bad_value(const std::string& name, const std::string& value, const std::string& expected) const;
  double parse_double(const std::string& name, const std::string& expected) const;

  std::string command_;
  std::map<std::string, std::string> values_;
  std::set<std::string> flags_;
  std::vector<std::string> positional_;
};

}  // namespace gqe::cli
