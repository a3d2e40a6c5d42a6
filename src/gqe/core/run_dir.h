// Run directories (`gqe train --out DIR`) belong to one process at a time. The owner holds an advisory
// lock (flock) on DIR/.gqe-run.lock, which records its pid and host;
// the kernel drops the lock when the process ends, however it ends, so a killed run never leaves DIR
// locked. Only after taking the lock does the owner clean up what dead writers left behind: the temporary
// files of atomic writes ("NAME.tmp.<pid>", core/fs.h) and the temporary checkpoint directories
// ("checkpoints/.tmp-step-N-<pid>", ".old-step-N-<pid>", train/train_checkpoint.h).
#pragma once
#include <sys/types.h>

#include <functional>
#include <string>
#include <vector>

namespace gqe {

class RunDirLock {
 public:
  // Creates `dir` if needed and takes its lock. Throws gqe::Error with one line naming the path: when
  // another process holds the lock (naming its pid and host), when `dir` is not a directory, or when
  // it cannot be created or written (`what` names the option, e.g. "--out").
  RunDirLock(const std::string& dir, const std::string& what);
  ~RunDirLock();
  RunDirLock(const RunDirLock&) = delete;
  RunDirLock& operator=(const RunDirLock&) = delete;

  const std::string& dir() const { return dir_; }
  // Whether the previous owner (if any) ran on this host: only then can pids in temporary names be
  // checked (remove_stale_temp_files).
  bool previous_owner_here() const { return previous_owner_here_; }

 private:
  std::string dir_;
  bool previous_owner_here_ = true;
  int fd_ = -1;
};

inline constexpr const char* kRunLockFile = ".gqe-run.lock";

// The pid that owns a temporary name of gqe's writers ("x.tmp.123", ".tmp-step-00000100-123",
// ".old-step-00000100-123"), or 0 when `name` is not one.
pid_t temp_file_owner(const std::string& name);
// Whether `pid` is a live process on this host (a process of another user counts as live).
bool process_alive(pid_t pid);
// Removes the temporaries of dead owners in `dir` (not recursive; directories whole); the caller must
// own `dir` (RunDirLock). Returns the names removed.
std::vector<std::string> remove_stale_temp_files(const std::string& dir);

// What a training run left in `dir` that a new run there would overwrite or mix with: "metrics.jsonl",
// "model.safetensors", "checkpoints/step-00000100" (the newest complete checkpoint's name, or
// "checkpoints/" when it holds only other checkpoint files). Empty when `dir` holds no run: temporaries
// of dead writers, a lock file, an empty metrics.jsonl and a recipe or tokenizer written before the
// first step do not count.
std::vector<std::string> previous_run_outputs(const std::string& dir);
// Deletes what a training run writes in `dir` (checkpoints/, metrics.jsonl, the model's config.json and
// model.safetensors, recipe.json, the recorded tokenizer and its files), nothing else: other files the
// user keeps there stay. Files that are one of `keep` (the same file, however named) stay too. The
// caller must own `dir` (RunDirLock). Returns the names removed.
std::vector<std::string> remove_run_outputs(const std::string& dir, const std::vector<std::string>& keep = {});

// Writes the folder `dir` whole or not at all (gqe export, gqe import): `fill` writes into a fresh
// temporary sibling ".NAME.gqe-partial.HOST.PID", created by this call, which is then renamed to `dir`.
// `dir` must not exist or be an empty folder: checked first, and again by the rename itself (rename(2)
// never replaces a folder with contents), so a folder that appears meanwhile is left as it is and the
// call fails. Throws gqe::Error naming `dir`; on any error the temporary folder is removed, and nothing
// else is ever removed but the temporaries that killed writers on this host left beside `dir` (their
// pid no longer runs), so a killed export neither blocks nor confuses the next one.
void write_folder_atomically(const std::string& dir, const std::function<void(const std::string&)>& fill);

}  // namespace gqe
