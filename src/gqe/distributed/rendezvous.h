// Start-up of a data-parallel job, before the process group exists (communicator.cpp and
// cuda/nccl_communicator.cpp only: the c10d headers stay in this folder).
//
// Every phase (connecting to rank 0's TCPStore, the job check below, the process group's own connection)
// runs against one deadline of --dist-timeout from the start: each wait gets what is left of it, and a
// watchdog ends the rank with a one-line error when a phase that cannot be given a timeout (a listener on
// MASTER_PORT that is not a c10d store and never answers) outlives it.
//
// The job check: rank 0 writes its run id (DistEnv::run_id) under "gqe/job"; a rank that finds another id
// there is talking to another gqe job's store and stops. Then every rank publishes its JobFingerprint and
// world size under "gqe/<run id>/fingerprint/<rank>", and every rank compares each rank's with rank 0's in
// rank order, so all ranks report the same first difference (a WORLD_SIZE mismatch first, then the first
// differing field) and stop. The process group's keys live under "gqe/<run id>/pg/".
#pragma once
#include <torch/csrc/distributed/c10d/Store.hpp>

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>

#include "gqe/distributed/communicator.h"

namespace gqe {

class StartupDeadline {
 public:
  using Clock = std::chrono::steady_clock;
  StartupDeadline(const DistEnv& env, std::chrono::milliseconds timeout);
  ~StartupDeadline();  // stops the watchdog
  StartupDeadline(const StartupDeadline&) = delete;
  StartupDeadline& operator=(const StartupDeadline&) = delete;

  // What this rank waits for now ("connecting to the store at HOST:PORT"), for the watchdog's message.
  void phase(const std::string& what);
  std::chrono::milliseconds remaining() const;  // at least 1 ms
  bool passed() const { return Clock::now() >= deadline_; }
  // "rank R/W: " and "after 3.0 s (--dist-timeout 3 s)": the wait as it really was.
  std::string rank_prefix() const;
  std::string waited() const;

 private:
  void watch();

  DistEnv env_;
  std::chrono::milliseconds timeout_;
  Clock::time_point start_, deadline_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool finished_ = false;
  std::string phase_ = "starting";
  std::thread watchdog_;
};

// The job check described above, on the store rank 0 hosts. Throws gqe::Error naming the other job, the
// missing ranks, or the differing field and ranks.
void join_job(c10d::Store& store, const DistEnv& env, const JobFingerprint& fingerprint, StartupDeadline& deadline);

// The prefix of the process group's keys in the store for `env`'s job.
std::string process_group_prefix(const DistEnv& env);

}  // namespace gqe
