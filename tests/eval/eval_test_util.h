// Helpers for the eval tests: file writing (in test::scratch_dir folders, test_util.h) and error messages.
#pragma once
#include <gtest/gtest.h>

#include <fstream>
#include <string>

namespace gqe::eval::testing {

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
