// Files for the data tests (self-contained: the tests write every file they read, in test::scratch_dir
// folders, test_util.h).
#pragma once
#include <fstream>
#include <stdexcept>
#include <string>

namespace gqe::datatest {

inline void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!f) throw std::runtime_error("cannot write " + path);
}

}  // namespace gqe::datatest
