// Files and directories: the one home for the small filesystem helpers every area needs. Every error
// names the path it is about.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace gqe::fs {

// Size limits for read_file. Every file a user hands gqe is read whole into memory, so its size is
// checked against what that kind of file can sensibly be before a byte is read: /dev/zero or a
// multi-gigabyte file named by mistake becomes an error, not an out-of-memory kill.
constexpr uint64_t kMiB = uint64_t(1) << 20;
constexpr uint64_t kDefaultReadLimit = 1024 * kMiB;  // data: eval sets, prompts, token files, tokenizers
constexpr uint64_t kSmallFileLimit = 64 * kMiB;      // configs, recipes, run records, checkpoint state
// Tokenizer files: the largest real ones are tens of MB, and parsing JSON takes many times its size.
constexpr uint64_t kTokenizerFileLimit = 256 * kMiB;

// The whole file, byte for byte. Only a regular file (or a link to one) of at most `max_bytes` is read: a
// directory, FIFO, socket or device is refused (a FIFO without blocking on it). Throws gqe::Error
// naming the path: "PATH: cannot open: REASON", "PATH: not a regular file (a directory)",
// "PATH: too large: N bytes (at most M expected)".
std::string read_file(const std::string& path, uint64_t max_bytes = kDefaultReadLimit);

// Opens `path` for reading after the same checks as read_file; returns the descriptor (the caller closes it)
// and the file's size. For readers that map a file.
int open_regular_file(const std::string& path, uint64_t max_bytes, uint64_t* size);

// Throws the same errors as read_file when `path` is missing, not a regular file or larger than
// `max_bytes`; for readers that stream a file (or map it) rather than read it whole. Returns its size.
uint64_t check_regular_file(const std::string& path, uint64_t max_bytes = UINT64_MAX);

// The canonical path of `name` inside the folder `dir`, which must be a regular file there: a link that
// leads out of `dir` (or anywhere but a regular file) is refused with a gqe::Error naming both. For files
// a folder from elsewhere names (an imported model's tokenizer): they must not pull in files from outside it.
std::string regular_file_inside(const std::string& dir, const std::string& name);

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
