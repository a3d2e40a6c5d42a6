// A small command-line parser: `--name value`, `--name=value`, `--flag`, and positionals.
// Unknown options are errors naming the option and listing the known ones.
#pragma once
#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

namespace gqe::cli {

// "a,b,,c" -> {"a", "b", "c"}
std::vector<std::string> split_commas(const std::string& s);

class Args {
 public:
  // `options` take a value; `flags` do not.
  Args(const std::string& command, int argc, char** argv, const std::set<std::string>& options,
       const std::set<std::string>& flags = {});
  bool has(const std::string& name) const { return values_.count(name) > 0; }
  bool flag(const std::string& name) const { return flags_.count(name) > 0; }
  std::string get(const std::string& name, const std::string& def) const;
  std::string require(const std::string& name) const;
  int64_t get_int(const std::string& name, int64_t def) const;
  double get_double(const std::string& name, double def) const;
  const std::vector<std::string>& positional() const { return positional_; }
  // Comma-separated values of --name (empty items dropped); `def` when the option is absent.
  std::vector<std::string> get_list(const std::string& name, const std::vector<std::string>& def = {}) const;
  // Comma-separated positive integers of --name; an error names the option and the bad item.
  std::vector<int64_t> get_positive_ints(const std::string& name, const std::vector<int64_t>& def = {}) const;

 private:
  std::string command_;
  std::map<std::string, std::string> values_;
  std::set<std::string> flags_;
  std::vector<std::string> positional_;
};

}  // namespace gqe::cli
