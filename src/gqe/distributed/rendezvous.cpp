#include "gqe/distributed/rendezvous.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "gqe/core/error.h"
#include "gqe/core/json.h"

namespace gqe {

namespace {

std::string seconds_text(double s) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f s", s);
  return buf;
}

std::string endpoint(const DistEnv& env) { return env.master_addr + ":" + std::to_string(env.master_port); }

std::vector<uint8_t> bytes_of(const std::string& s) { return {s.begin(), s.end()}; }
std::string string_of(const std::vector<uint8_t>& b) { return {b.begin(), b.end()}; }

std::string first_line_of(const std::string& s) {
  auto nl = s.find('\n');
  return nl == std::string::npos ? s : s.substr(0, nl);
}

// Waits for `key` within what is left of the deadline; `missing` says what its absence means.
void wait_for_key(c10d::Store& store, const std::string& key, const DistEnv& env, StartupDeadline& deadline,
                  const std::string& missing) {
  try {
    store.wait({key}, deadline.remaining());
  } catch (const std::exception& e) {
    if (deadline.passed()) throw Error(deadline.rank_prefix() + missing + ", " + deadline.waited());
    throw Error(deadline.rank_prefix() + "lost the rendezvous store at " + endpoint(env) + " (rank 0 stopped?): " +
                first_line_of(e.what()));
  }
}

struct RankFingerprint {
  int world_size = 0;
  JobFingerprint fields;
};

std::string encode(int world_size, const JobFingerprint& fp) {
  nlohmann::json fields = nlohmann::json::array();
  for (const auto& [k, v] : fp) fields.push_back({k, v});
  return nlohmann::json{{"world_size", world_size}, {"fields", fields}}.dump(-1, ' ', false,
                                                                              nlohmann::json::error_handler_t::replace);
}

RankFingerprint decode(const std::string& s, const std::string& what) {
  try {
    const auto j = nlohmann::json::parse(s);
    RankFingerprint r;
    r.world_size = json_integer<int>(j, "world_size", what, "", 1);
    for (const auto& f : j.at("fields")) r.fields.emplace_back(f.at(0).get<std::string>(), f.at(1).get<std::string>());
    return r;
  } catch (const std::exception&) {
    throw Error(what + ": the rendezvous store holds a malformed start-up record (another program on the port?)");
  }
}

// The first difference between rank `r`'s fingerprint and rank 0's, or "".
std::string first_difference(const RankFingerprint& zero, const RankFingerprint& other, int r) {
  const std::string ranks = " on rank 0 but ";
  if (zero.world_size != other.world_size)
    return "WORLD_SIZE differs between ranks: WORLD_SIZE=" + std::to_string(zero.world_size) + " on rank 0 but " +
           std::to_string(other.world_size) + " on rank " + std::to_string(r) +
           " (every rank of a job needs the same WORLD_SIZE)";
  const size_t n = std::max(zero.fields.size(), other.fields.size());
  for (size_t i = 0; i < n; ++i) {
    const bool in0 = i < zero.fields.size(), inr = i < other.fields.size();
    if (in0 && inr && zero.fields[i] == other.fields[i]) continue;
    const std::string field = in0 ? zero.fields[i].first : other.fields[i].first;
    const std::string v0 = in0 ? zero.fields[i].second : "(absent)";
    std::string vr = "(absent)";
    for (const auto& [k, v] : other.fields)
      if (k == field) vr = v;
    return "ranks disagree on " + field + ": " + v0 + ranks + vr + " on rank " + std::to_string(r) +
           " (every rank of a job needs the same model config, recipe flags and data)";
  }
  return "";
}

}  // namespace

StartupDeadline::StartupDeadline(const DistEnv& env, std::chrono::milliseconds timeout)
    : env_(env), timeout_(timeout), start_(Clock::now()), deadline_(start_ + timeout) {
  watchdog_ = std::thread([this] { watch(); });
}

StartupDeadline::~StartupDeadline() {
  {
    std::lock_guard<std::mutex> g(mu_);
    finished_ = true;
  }
  cv_.notify_all();
  watchdog_.join();
}

void StartupDeadline::phase(const std::string& what) {
  std::lock_guard<std::mutex> g(mu_);
  phase_ = what;
}

std::chrono::milliseconds StartupDeadline::remaining() const {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline_ - Clock::now());
  return std::max(left, std::chrono::milliseconds(1));
}

std::string StartupDeadline::rank_prefix() const {
  return "rank " + std::to_string(env_.rank) + "/" + std::to_string(env_.world_size) + ": ";
}

std::string StartupDeadline::waited() const {
  const double s = std::chrono::duration<double>(Clock::now() - start_).count();
  return "after " + seconds_text(s) + " (--dist-timeout " + seconds_text(double(timeout_.count()) / 1000) + ")";
}

// The waits inside the phases end at the deadline with their own messages; a phase still running a
// moment later is stuck where no timeout reaches (a peer that accepts the connection and never answers),
// and the rank ends here.
void StartupDeadline::watch() {
  const auto grace = std::min<std::chrono::milliseconds>(std::chrono::milliseconds(1000), timeout_ / 4);
  std::unique_lock<std::mutex> lock(mu_);
  if (cv_.wait_until(lock, deadline_ + grace, [this] { return finished_; })) return;
  const std::string msg = "gqe train: error: " + rank_prefix() + "start-up did not finish " + waited() +
                          ", stuck " + phase_ + " (is something other than this job's rank 0 listening on " +
                          endpoint(env_) + "? are all ranks started?)\n";
  if (::write(2, msg.data(), msg.size()) < 0) {
  }
  ::_exit(1);
}

void join_job(c10d::Store& store, const DistEnv& env, const JobFingerprint& fingerprint, StartupDeadline& deadline) {
  const std::string who = deadline.rank_prefix();
  const std::string job_key = "gqe/job";
  if (env.rank == 0) {
    store.set(job_key, bytes_of(env.run_id));
  } else {
    deadline.phase("waiting for rank 0 at " + endpoint(env) + " to name its job");
    wait_for_key(store, job_key, env, deadline,
                 "no gqe job answered at " + endpoint(env) + " (is rank 0 started, with the same MASTER_ADDR/MASTER_PORT?)");
    const std::string theirs = string_of(store.get(job_key));
    if (theirs != env.run_id)
      throw Error(who + "the store at " + endpoint(env) + " belongs to another gqe job (run id '" + theirs +
                  "', this rank's '" + env.run_id + "'); give each job its own MASTER_PORT, and all ranks of one "
                  "job the same --out or GQE_RUN_ID");
  }

  const std::string prefix = "gqe/" + env.run_id + "/";
  const auto key_of = [&](int r) { return prefix + "fingerprint/" + std::to_string(r); };
  const RankFingerprint mine{env.world_size, fingerprint};
  store.set(key_of(env.rank), bytes_of(encode(env.world_size, fingerprint)));
  const auto read = [&](int r) {
    if (r == env.rank) return mine;
    deadline.phase("waiting for rank " + std::to_string(r) + " to join");
    wait_for_key(store, key_of(r), env, deadline,
                 "rank " + std::to_string(r) + " did not join (is it started, with the same MASTER_ADDR/MASTER_PORT "
                 "and --out or GQE_RUN_ID?)");
    return decode(string_of(store.get(key_of(r))), who + "rank " + std::to_string(r));
  };
  // Rank 0's record first: a WORLD_SIZE mismatch shows there before any wait for a rank that does not exist.
  // Then every rank against rank 0 in rank order, the same order on every rank.
  const RankFingerprint zero = read(0);
  std::string difference;
  if (zero.world_size != env.world_size) difference = first_difference(zero, mine, env.rank);
  for (int r = 1; difference.empty() && r < env.world_size; ++r) difference = first_difference(zero, read(r), r);
  const std::string checked_key = prefix + "checked";
  store.add(checked_key, 1);
  if (difference.empty()) return;
  // Rank 0 hosts the store: it stays until every rank has read the records (or the deadline), so that
  // they all report the difference instead of a lost connection.
  if (env.rank == 0) {
    deadline.phase("waiting for the other ranks to read the start-up records");
    while (!deadline.passed() && store.add(checked_key, 0) < env.world_size)
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  throw Error(who + difference);
}

std::string process_group_prefix(const DistEnv& env) { return "gqe/" + env.run_id + "/pg"; }

}  // namespace gqe
