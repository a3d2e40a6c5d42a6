// What the fuzz targets share. The readers take paths, so each input is written to a file in a
// per-process scratch directory (under /dev/shm when it exists: no disk traffic per execution).
//
// The contract every target checks: bad input makes a reader throw gqe::Error (a one-line message for
// the user). Any other exception escaping (std::bad_alloc, c10::Error, nlohmann::json::exception, ...) is
// an "internal error" and so a bug: it is not caught here, terminates the process, and libFuzzer keeps
// the input as a crash. So are sanitizer reports, timeouts and running out of memory.
#pragma once
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "gqe/core/error.h"
#include "gqe/core/fs.h"

namespace gqe::fuzz {

inline const std::string& scratch_dir() {
  static const std::string dir = [] {
    const char* tmp = std::getenv("TMPDIR");
    const std::string base = fs::is_directory("/dev/shm") ? "/dev/shm" : tmp ? tmp : "/tmp";
    std::string d = base + "/gqe-fuzz-" + std::to_string(::getpid());
    fs::remove_tree(d);
    fs::mkdirs(d);
    return d;
  }();
  static const bool cleanup_registered = [] { return std::atexit([] { fs::remove_tree(scratch_dir()); }) == 0; }();
  (void)cleanup_registered;
  return dir;
}

// Writes the bytes to scratch_dir()/name (replacing it) and returns the path. Plain stdio: the
// atomic, fsync'ed writer of core/fs would make every execution wait for the disk.
inline std::string write_input(const std::string& name, const void* data, size_t size) {
  const std::string path = scratch_dir() + "/" + name;
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (!f || (size > 0 && std::fwrite(data, 1, size, f) != size) || std::fclose(f) != 0) {
    std::perror(path.c_str());
    std::abort();  // the scratch directory itself failed: not a finding, but nothing can go on
  }
  return path;
}
inline std::string write_input(const std::string& name, const std::string& bytes) {
  return write_input(name, bytes.data(), bytes.size());
}

}  // namespace gqe::fuzz
