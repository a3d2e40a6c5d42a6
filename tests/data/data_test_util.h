// Scratch files for the data tests (self-contained: the tests write every file they read).
#pragma once
#include <cstdlib>
#include <fstream>
#include <stdexcept>
#include <string>
#include <unistd.h>

namespace gqe::datatest {

inline std::string scratch(const std::string& name) {
  const char* base = std::getenv("GQE_TEST_TMP");
  const std::string dir = std::string(base ? base : "/tmp") + "/data-" + std::to_string(::getpid()) + "-" + name;
  const std::string cmd = "rm -rf '" + dir + "' && mkdir -p '" + dir + "'";
  if (std::system(cmd.c_str()) != 0) throw std::runtime_error("cannot create " + dir);
  return dir;
}

inline void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!f) throw std::runtime_error("cannot write " + path);
}

}  // namespace gqe::datatest
