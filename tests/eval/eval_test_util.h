// Helpers for the eval tests: a scratch directory under $GQE_TEST_TMP and file writing.
#pragma once
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <string>

namespace gqe::eval::testing {

inline std::string scratch_dir(const std::string& name) {
  const char* base = std::getenv("GQE_TEST_TMP");
  std::string dir = std::string(base && *base ? base : "/tmp") + "/eval";
  ::mkdir(std::string(base && *base ? base : "/tmp").c_str(), 0755);
  ::mkdir(dir.c_str(), 0755);
  dir += "/" + name + "." + std::to_string(::getpid());
  ::mkdir(dir.c_str(), 0755);
  return dir;
}

inline std::string write(const std::string& path, const std::string& text) {
  std::ofstream f(path, std::ios::binary);
  f << text;
  return path;
}

// Runs `fn` and returns the gqe::Error message ("" if nothing was thrown).
template <class F>
std::string error_of(F&& fn) {
  try {
    fn();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

}  // namespace gqe::eval::testing
