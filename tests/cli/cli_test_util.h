// Running the gqe executable (GQE_BIN) from the CLI tests.
#pragma once
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>

namespace gqe::test {

struct CliResult {
  int rc;           // exit status; -1 when killed by a signal
  std::string out;  // stdout + stderr
};

inline bool gqe_bin_available() {
  const char* bin = std::getenv("GQE_BIN");
  return bin && ::access(bin, X_OK) == 0;
}

// `gqe ARGS` through the shell (ARGS may hold redirections or a `ulimit` prefix via `prefix`).
inline CliResult run_gqe(const std::string& args, const std::string& prefix = "") {
  const std::string cmd = prefix + "'" + std::string(std::getenv("GQE_BIN")) + "' " + args + " 2>&1";
  CliResult r{-1, ""};
  FILE* p = ::popen(cmd.c_str(), "r");
  if (!p) return r;
  char buf[4096];
  for (size_t n; (n = std::fread(buf, 1, sizeof buf, p)) > 0;) r.out.append(buf, n);
  const int status = ::pclose(p);
  r.rc = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

}  // namespace gqe::test
