#include "gqe/core/run_dir.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <system_error>

#include "gqe/core/error.h"
#include "gqe/core/fs.h"

namespace gqe {

namespace {

std::string host_name() {
  char buf[256] = {};
  if (::gethostname(buf, sizeof buf - 1) != 0) return "?";
  return buf;
}

// "pid 123\nhost h\n" -> {"123", "h"}
std::pair<std::string, std::string> parse_owner(const std::string& text) {
  std::string pid, host;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t nl = text.find('\n', pos);
    if (nl == std::string::npos) nl = text.size();
    const std::string line = text.substr(pos, nl - pos);
    if (line.rfind("pid ", 0) == 0) pid = line.substr(4);
    if (line.rfind("host ", 0) == 0) host = line.substr(5);
    pos = nl + 1;
  }
  return {pid, host};
}

std::string read_fd(int fd) {
  std::string out;
  char buf[512];
  ssize_t n;
  off_t off = 0;
  while ((n = ::pread(fd, buf, sizeof buf, off)) > 0 && out.size() < 4096) {
    out.append(buf, size_t(n));
    off += n;
  }
  return out;
}

bool all_digits(const std::string& s) {
  if (s.empty() || s.size() > 9) return false;
  for (char c : s)
    if (c < '0' || c > '9') return false;
  return true;
}

}  // namespace

RunDirLock::RunDirLock(const std::string& dir, const std::string& what) : dir_(dir) {
  const std::string label = what.empty() ? dir : what + " " + dir;
  if (fs::exists(dir) && !fs::is_directory(dir))
    throw Error(label + ": exists and is not a directory (expected a run directory)");
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) throw Error(label + ": cannot create the run directory: " + ec.message());
  const std::string path = dir + "/" + kRunLockFile;
  fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd_ < 0) {
    const int e = errno;
    throw Error(label + ": cannot write in the run directory: " + std::strerror(e));
  }
  if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
    const int e = errno;
    const auto [pid, host] = parse_owner(read_fd(fd_));
    ::close(fd_);
    fd_ = -1;
    if (e == EWOULDBLOCK)
      throw Error(label + ": in use by another gqe process (pid " + (pid.empty() ? "?" : pid) + " on host " +
                  (host.empty() ? "?" : host) + "); wait for it to finish, or use another directory");
    throw Error(label + ": cannot lock " + path + ": " + std::strerror(e));
  }
  const std::string previous_host = parse_owner(read_fd(fd_)).second;
  previous_owner_here_ = previous_host.empty() || previous_host == host_name();
  const std::string owner = "pid " + std::to_string(::getpid()) + "\nhost " + host_name() + "\n";
  if (::ftruncate(fd_, 0) != 0 || ::pwrite(fd_, owner.data(), owner.size(), 0) != ssize_t(owner.size())) {
    const int e = errno;
    ::close(fd_);
    fd_ = -1;
    throw Error(label + ": cannot write in the run directory (" + kRunLockFile + ": " + std::strerror(e) + ")");
  }
}

RunDirLock::~RunDirLock() {
  if (fd_ >= 0) ::close(fd_);  // releases the lock; the file stays (removing it would race a new owner)
}

pid_t temp_file_owner(const std::string& name) {
  // NAME.tmp.<pid>: core/fs.h write_file_atomic (and the shard writer)
  const size_t dot = name.rfind(".tmp.");
  if (dot != std::string::npos && dot > 0 && all_digits(name.substr(dot + 5))) return pid_t(std::stol(name.substr(dot + 5)));
  // .tmp-<name>-<pid>, .old-<name>-<pid>: train/train_checkpoint.cpp
  if (name.rfind(".tmp-", 0) == 0 || name.rfind(".old-", 0) == 0) {
    const size_t dash = name.rfind('-');
    if (dash > 4 && all_digits(name.substr(dash + 1))) return pid_t(std::stol(name.substr(dash + 1)));
  }
  return 0;
}

bool process_alive(pid_t pid) {
  if (pid <= 0) return false;
  return ::kill(pid, 0) == 0 || errno == EPERM;
}

std::vector<std::string> remove_stale_temp_files(const std::string& dir) {
  std::vector<std::string> removed;
  for (const auto& name : fs::list_dir(dir)) {
    const pid_t owner = temp_file_owner(name);
    if (owner <= 0 || owner == ::getpid() || process_alive(owner)) continue;
    fs::remove_tree(dir + "/" + name);
    removed.push_back(name);
  }
  return removed;
}

std::vector<std::string> previous_run_outputs(const std::string& dir) {
  std::vector<std::string> found;
  std::error_code ec;
  const auto size = std::filesystem::file_size(dir + "/metrics.jsonl", ec);
  if (!ec && size > 0) found.push_back("metrics.jsonl");  // empty: a run stopped before its first step
  if (fs::exists(dir + "/model.safetensors")) found.push_back("model.safetensors");
  const std::string ck = dir + "/checkpoints";
  if (fs::is_directory(ck)) {
    std::string newest;
    bool other = false;
    for (const auto& name : fs::list_dir(ck)) {
      if (temp_file_owner(name) > 0) continue;  // a writer's temporary: removed at start, not a run
      if (name.rfind("step-", 0) == 0) newest = std::max(newest, name);
      else other = true;
    }
    if (!newest.empty()) found.push_back("checkpoints/" + newest);
    else if (other) found.push_back("checkpoints/");
  }
  return found;
}

std::vector<std::string> remove_run_outputs(const std::string& dir, const std::vector<std::string>& keep) {
  // The files of a recorded tokenizer (tokenizers/run_tokenizer.h) beside the record itself.
  static const char* const kRunFiles[] = {"checkpoints", "metrics.jsonl", "model.safetensors", "config.json",
                                          "recipe.json", "tokenizer_info.json", "tokenizer.model",
                                          "tokenizer.json", "vocab.json", "merges.txt"};
  std::vector<std::string> removed;
  for (const char* name : kRunFiles) {
    const std::string path = dir + "/" + name;
    std::error_code ec;
    if (!std::filesystem::exists(std::filesystem::symlink_status(path, ec))) continue;
    bool kept = false;
    for (const auto& k : keep) kept = kept || std::filesystem::equivalent(path, k, ec);
    if (kept) continue;
    fs::remove_tree(path);
    if (std::filesystem::exists(std::filesystem::symlink_status(path, ec)))
      throw Error(path + ": cannot remove it (a file of the previous run)");
    removed.push_back(name);
  }
  if (!removed.empty()) fs::fsync_dir(dir);
  return removed;
}

void write_folder_atomically(const std::string& out_dir, const std::function<void(const std::string&)>& fill) {
  namespace stdfs = std::filesystem;
  std::string dir = out_dir;
  while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
  if (fs::exists(dir) && (!fs::is_directory(dir) || !fs::list_dir(dir).empty()))
    throw Error(dir + ": already exists and is not an empty folder; name a new folder");
  const stdfs::path target(dir);
  const std::string parent = target.has_parent_path() ? target.parent_path().string() : ".";
  const std::string prefix = "." + target.filename().string() + ".gqe-partial.", host = host_name();
  // What killed writers of this folder left: "<prefix><host>.<pid>" of a pid that no longer runs here.
  for (const auto& name : fs::list_dir(parent)) {
    if (name.rfind(prefix, 0) != 0) continue;
    const std::string rest = name.substr(prefix.size());
    const size_t dot = rest.rfind('.');
    if (dot == std::string::npos || rest.substr(0, dot) != host || !all_digits(rest.substr(dot + 1))) continue;
    const pid_t pid = pid_t(std::stol(rest.substr(dot + 1)));
    if (pid != ::getpid() && !process_alive(pid)) fs::remove_tree(parent + "/" + name);
  }
  fs::mkdirs(parent);
  const std::string tmp = parent + "/" + prefix + host + "." + std::to_string(::getpid());
  int rc = ::mkdir(tmp.c_str(), 0777);
  if (rc != 0 && errno == EEXIST) {
    // Only an earlier process with this pid on this host, now dead, can have made this name.
    fs::remove_tree(tmp);
    rc = ::mkdir(tmp.c_str(), 0777);
  }
  if (rc != 0) throw Error(dir + ": cannot create a folder beside it (" + tmp + "): " + std::strerror(errno));
  try {
    fill(tmp);
    fs::fsync_dir(tmp);
    // Replaces a missing or empty `dir` in one step; refuses one with contents.
    if (std::rename(tmp.c_str(), dir.c_str()) != 0) {
      const int e = errno;
      if (e == ENOTEMPTY || e == EEXIST || e == ENOTDIR || e == EISDIR)
        throw Error(dir + ": appeared while this was written and is not an empty folder; left as it is, nothing "
                          "written (name a new folder)");
      throw Error(dir + ": cannot rename " + tmp + " into place: " + std::strerror(e));
    }
  } catch (...) {
    fs::remove_tree(tmp);
    throw;
  }
  fs::fsync_dir(parent);
}

}  // namespace gqe
