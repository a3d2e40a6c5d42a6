// Tests that run the gqe binary (GQE_BIN) and other programs as real processes: run a command to its end
// with a deadline and capture its output (run, run_gqe) and check how it ended (exited, fails_with,
// one_line_error); start one in the background (spawn) and wait for it (wait_for); free ports for the Gloo
// ranks' rendezvous, and reading their logs. Arguments go to the program as they are, one per element:
// never through a shell.
#pragma once
#include <gtest/gtest.h>

#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "test_util.h"

namespace gqe::test {

// A command line: the program (or, for run_gqe, the first argument) and its arguments, one per element.
using Args = std::vector<std::string>;
// Variables added to (or replacing those of) the environment a command runs in.
using Env = std::vector<std::pair<std::string, std::string>>;

// `a` followed by `b`.
inline Args concat(Args a, const Args& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

// An argument as a shell would need it quoted (for messages, never run).
inline std::string shell_quoted(const std::string& arg) {
  if (!arg.empty() && arg.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
                                            "_-+=/.,:@%") == std::string::npos)
    return arg;
  std::string q = "'";
  for (char c : arg) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}
inline std::string shell_quoted(const Args& args) {
  std::string line;
  for (const auto& a : args) line += (line.empty() ? "" : " ") + shell_quoted(a);
  return line;
}

namespace detail {

// What a child process executes, prepared before fork() so that the child only calls async-signal-safe
// functions (the test process has libtorch's threads). `limits`: shell commands (e.g. "ulimit -v 8000000")
// run by a /bin/sh that then execs the program, the arguments passed to it as "$@", never parsed.
class Exec {
 public:
  Exec(const Args& args, const Env& env, const std::string& cwd, const std::string& limits) : cwd_(cwd) {
    if (!limits.empty()) args_ = {"/bin/sh", "-c", limits + "\nexec \"$@\"", "sh"};
    args_.insert(args_.end(), args.begin(), args.end());
    for (char** e = environ; *e; ++e) {
      const char* eq = std::strchr(*e, '=');
      const std::string name(*e, eq ? size_t(eq - *e) : std::strlen(*e));
      if (std::none_of(env.begin(), env.end(), [&](const auto& kv) { return kv.first == name; })) env_.push_back(*e);
    }
    for (const auto& [k, v] : env) env_.push_back(k + "=" + v);
    for (auto& a : args_) argv_.push_back(a.data());
    argv_.push_back(nullptr);
    for (auto& e : env_) envp_.push_back(e.data());
    envp_.push_back(nullptr);
  }
  Exec(const Exec&) = delete;
  Exec& operator=(const Exec&) = delete;

  // In the child: stdin from /dev/null, stdout and stderr to the given descriptors, then the program.
  [[noreturn]] void run_in_child(int out_fd, int err_fd) const {
    const int null = ::open("/dev/null", O_RDONLY);
    if (null < 0 || ::dup2(null, STDIN_FILENO) < 0 || ::dup2(out_fd, STDOUT_FILENO) < 0 ||
        ::dup2(err_fd, STDERR_FILENO) < 0)
      ::_exit(126);
    if (!cwd_.empty() && ::chdir(cwd_.c_str()) != 0) ::_exit(126);
    ::execvpe(argv_[0], argv_.data(), envp_.data());
    ::_exit(127);
  }

 private:
  std::string cwd_;
  Args args_;
  std::vector<std::string> env_;
  std::vector<char*> argv_, envp_;
};

}  // namespace detail

// How run() runs a command. Set fields, or chain: RunOptions().in(dir).with_limits("ulimit -v 8000000").
struct RunOptions {
  std::string cwd;            // the folder it runs in ("": this process's)
  Env env;                    // added to this process's environment
  std::string limits;         // shell commands run first (detail::Exec), e.g. "ulimit -v 8000000"
  double timeout_s = 300;     // killed (SIGKILL) when it runs longer
  bool stderr_apart = false;  // stderr into CommandRun::err; otherwise with stdout into `out`, as 2>&1

  RunOptions& in(const std::string& dir) {
    cwd = dir;
    return *this;
  }
  RunOptions& with_env(const std::string& name, const std::string& value) {
    env.emplace_back(name, value);
    return *this;
  }
  RunOptions& with_limits(const std::string& shell_commands) {
    limits = shell_commands;
    return *this;
  }
  RunOptions& deadline(double seconds) {
    timeout_s = seconds;
    return *this;
  }
  RunOptions& keep_stderr_apart() {
    stderr_apart = true;
    return *this;
  }
};

// How a command ended and what it wrote.
struct CommandRun {
  std::string command;     // the command line, quoted as for a shell (for messages)
  int rc = -1;             // the exit status, 128 + the signal that killed it; -1: not started or past the deadline
  int signal = 0;          // the signal that killed it (0: it exited; SIGKILL at the deadline)
  bool timed_out = false;  // killed at the deadline
  std::string out;         // stdout, and stderr interleaved as written unless RunOptions::stderr_apart
  std::string err;         // stderr with RunOptions::stderr_apart (or why it could not start)
  std::string output() const { return out + err; }
};

// Runs ARGS[0] (found on $PATH when it has no '/') with ARGS and waits for it (at most opts.timeout_s).
inline CommandRun run(const Args& args, const RunOptions& opts = {}) {
  CommandRun r;
  r.command = (opts.cwd.empty() ? "" : "cd " + shell_quoted(opts.cwd) + " && ") + shell_quoted(args);
  if (args.empty()) return r;
  const detail::Exec exec(args, opts.env, opts.cwd, opts.limits);
  int out[2] = {-1, -1}, err[2] = {-1, -1};
  if (::pipe2(out, O_CLOEXEC) != 0 || (opts.stderr_apart && ::pipe2(err, O_CLOEXEC) != 0)) {
    r.err = std::string("pipe: ") + std::strerror(errno);
    for (int fd : {out[0], out[1], err[0], err[1]})
      if (fd >= 0) ::close(fd);
    return r;
  }
  const pid_t pid = ::fork();
  if (pid == 0) exec.run_in_child(out[1], opts.stderr_apart ? err[1] : out[1]);
  ::close(out[1]);
  if (opts.stderr_apart) ::close(err[1]);
  if (pid < 0) {
    ::close(out[0]);
    if (opts.stderr_apart) ::close(err[0]);
    r.err = std::string("fork: ") + std::strerror(errno);
    return r;
  }
  // Read both pipes until they close (the program and whatever it started have exited) or the deadline.
  const auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(opts.timeout_s);
  std::vector<pollfd> fds = {{out[0], POLLIN, 0}};
  if (opts.stderr_apart) fds.push_back({err[0], POLLIN, 0});
  std::string* sinks[] = {&r.out, &r.err};
  while (std::any_of(fds.begin(), fds.end(), [](const pollfd& p) { return p.fd >= 0; })) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(end - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      r.timed_out = true;
      ::kill(pid, SIGKILL);
      break;
    }
    if (::poll(fds.data(), fds.size(), int(std::min<int64_t>(left.count(), 1000))) < 0 && errno != EINTR) break;
    for (size_t i = 0; i < fds.size(); ++i) {
      if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      char buf[65536];
      const ssize_t n = ::read(fds[i].fd, buf, sizeof buf);
      if (n > 0) {
        sinks[i]->append(buf, size_t(n));
      } else if (n == 0 || errno != EINTR) {
        ::close(fds[i].fd);
        fds[i].fd = -1;
      }
    }
  }
  for (const pollfd& p : fds)
    if (p.fd >= 0) ::close(p.fd);
  int st = 0;
  while (::waitpid(pid, &st, 0) < 0 && errno == EINTR) {
  }
  r.signal = WIFSIGNALED(st) ? WTERMSIG(st) : 0;
  r.rc = r.timed_out ? -1 : WIFEXITED(st) ? WEXITSTATUS(st) : 128 + r.signal;
  return r;
}

// `gqe ARGS...` (the executable test::gqe_bin() names).
inline CommandRun run_gqe(const Args& args, const RunOptions& opts = {}) {
  return run(concat({gqe_bin()}, args), opts);
}

// The command line, how it ended and its output: the message of a failed check.
inline std::string describe(const CommandRun& r) {
  std::string s = r.command + "\n";
  if (r.timed_out)
    s += "killed at the deadline";
  else if (r.signal)
    s += "killed by signal " + std::to_string(r.signal);
  else
    s += "exit status " + std::to_string(r.rc);
  if (!r.out.empty()) s += "\n" + std::string(r.err.empty() ? "output" : "stdout") + ":\n" + r.out;
  if (!r.err.empty()) s += "\nstderr:\n" + r.err;
  return s;
}

// EXPECT_TRUE(test::exited(r, 0)): exit status `code`; otherwise the command and its output.
inline ::testing::AssertionResult exited(const CommandRun& r, int code) {
  if (r.rc == code) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "expected exit status " << code << "; " << describe(r);
}

// Exit status `code` (1: an error in the input) and `text` in its output (stdout and stderr).
inline ::testing::AssertionResult fails_with(const CommandRun& r, const std::string& text, int code = 1) {
  if (r.rc == code && r.output().find(text) != std::string::npos) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "expected exit status " << code << " and '" << text << "' in the output; "
                                       << describe(r);
}

// Exit status 1 and one line of output holding every one of `texts`: gqe's error for bad input.
inline ::testing::AssertionResult one_line_error(const CommandRun& r, const std::vector<std::string>& texts) {
  const std::string o = r.output();
  const bool ok = r.rc == 1 && std::count(o.begin(), o.end(), '\n') == 1;
  std::string missing;
  for (const auto& t : texts)
    if (o.find(t) == std::string::npos) missing += "\n  missing '" + t + "'";
  if (ok && missing.empty()) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "expected exit status 1 and a one-line error" << missing << "\n"
                                       << describe(r);
}

// A TCP port on 127.0.0.1 that was free a moment ago.
inline int free_port() {
  int s = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  bind(s, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  getsockname(s, reinterpret_cast<sockaddr*>(&a), &len);
  close(s);
  return ntohs(a.sin_port);
}

// Starts args[0] with `args` in the background, the environment plus `env`, stdout and stderr into `log`
// (one open file for both, as `> log 2>&1`: two would each keep their own offset and overwrite the other's
// lines); wait for it with wait_for.
inline pid_t spawn(const Args& args, const Env& env, const std::string& log) {
  const detail::Exec exec(args, env, "", "");
  const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  const pid_t pid = ::fork();
  if (pid == 0) exec.run_in_child(fd, fd);  // exits 126 when the log could not be opened
  if (fd >= 0) ::close(fd);
  return pid;
}

// Waits up to `seconds`; returns the exit status (128 + signal when killed by one), or -1 (after killing
// it) on timeout.
inline int wait_for(pid_t pid, double seconds) {
  const auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  int st = 0;
  while (std::chrono::steady_clock::now() < end) {
    if (waitpid(pid, &st, WNOHANG) == pid) return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  kill(pid, SIGKILL);
  waitpid(pid, &st, 0);
  return -1;
}

// The environment of rank `rank` of `world` Gloo ranks meeting on 127.0.0.1:port (what torchrun sets).
inline Env rank_env(int rank, int world, int port) {
  return {{"RANK", std::to_string(rank)}, {"WORLD_SIZE", std::to_string(world)}, {"LOCAL_RANK", std::to_string(rank)},
          {"MASTER_ADDR", "127.0.0.1"}, {"MASTER_PORT", std::to_string(port)}};
}

inline std::string slurp(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

}  // namespace gqe::test
