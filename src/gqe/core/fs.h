// Files and directories: the one home for the small filesystem helpers every area needs. Every error
// names the path it is about.
#pragma once
#include <string>
#include <vector>

namespace gqe::fs {

// The whole file, byte for byte. Throws gqe::Error "PATH: cannot open: REASON".
std::string read_file(const std::string& path);

// Writes `bytes` to `path` atomically: a temporary file in the same directory, fsync, rename. A crash
// leaves either the old file or the new one, never a torn one.
void write_file_atomic(const std::string& path, const std::string& bytes);

bool exists(const std::string& path);
bool is_file(const std::string& path);  // a regular file (or a link to one)
bool is_directory(const std::string& path);

// Creates `dir` and its missing parents (mkdir -p). Throws gqe::Error naming `dir`.
void mkdirs(const std::string& dir);

// Removes `path` and everything below it; a missing path is not an error.
void remove_tree(const std::string& path);

// Names of the entries of `dir` (without "." and ".."), sorted; empty when `dir` cannot be read.
std::vector<std::string> list_dir(const std::string& dir);

// Makes a directory's entries (created, renamed files) durable. Best effort: some filesystems do not
// allow opening directories.
void fsync_dir(const std::string& dir);

}  // namespace gqe::fs
