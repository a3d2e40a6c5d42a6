// Launching gqe ranks as real processes on 127.0.0.1 for the distributed tests (GQE_BIN).
#pragma once
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "gqe/core/config.h"
#include "test_util.h"

namespace gqe::disttest {

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

inline pid_t spawn(const std::vector<std::string>& args, const std::vector<std::pair<std::string, std::string>>& env,
            const std::string& log) {
  pid_t pid = fork();
  if (pid == 0) {
    for (const auto& [k, v] : env) setenv(k.c_str(), v.c_str(), 1);
    if (!freopen(log.c_str(), "w", stdout) || !freopen(log.c_str(), "a", stderr)) _exit(126);
    std::vector<char*> argv;
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    execv(argv[0], argv.data());
    _exit(127);
  }
  return pid;
}

// Waits up to `seconds`; returns the exit status, or -1 (after killing it) on timeout.
inline int wait_for(pid_t pid, double seconds) {
  const auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  int st = 0;
  while (std::chrono::steady_clock::now() < end) {
    if (waitpid(pid, &st, WNOHANG) == pid) return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  kill(pid, SIGKILL);
  waitpid(pid, &st, 0);
  return -1;
}

inline std::string slurp(const std::string& p) {
  std::ifstream f(p);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

inline std::vector<nlohmann::json> train_records(const std::string& path) {
  std::vector<nlohmann::json> out;
  std::ifstream f(path);
  std::string line;
  while (std::getline(f, line)) {
    auto j = nlohmann::json::parse(line);
    if (j["type"] == "train") out.push_back(j);
  }
  return out;
}

struct RunSetup {
  std::string dir, bin, config, data;
};

inline RunSetup make_setup(const std::string& name) {
  RunSetup s;
  const char* bin = std::getenv("GQE_BIN");
  if (!bin || access(bin, X_OK) != 0) return s;
  s.bin = bin;
  s.dir = test::scratch_dir(name);
  s.data = s.dir + "/text.txt";
  std::ofstream f(s.data);
  for (int i = 0; i < 300; ++i) f << "And God said, Let there be light: and there was light. " << i << "\n";
  auto cfg = test::small_config("gqe", 4, 2);
  cfg.vocab_size = 256;
  s.config = s.dir + "/model.json";
  std::ofstream(s.config) << model_config_to_json(cfg);
  return s;
}

inline std::vector<std::string> train_args(const RunSetup& s, const std::string& out, const std::string& steps) {
  return {s.bin, "train", "--config", s.config, "--data", s.data, "--out", s.dir + "/" + out, "--steps", steps,
          "--batch", "2", "--seq", "16", "--global-batch", "64", "--threads", "1", "--sample-tokens", "0",
          "--eval-every", "0", "--seed", "5", "--lr", "1e-2", "--dist-timeout", "60"};
}

inline std::vector<std::pair<std::string, std::string>> rank_env(int rank, int world, int port) {
  return {{"RANK", std::to_string(rank)}, {"WORLD_SIZE", std::to_string(world)}, {"LOCAL_RANK", std::to_string(rank)},
          {"MASTER_ADDR", "127.0.0.1"}, {"MASTER_PORT", std::to_string(port)}};
}

}  // namespace gqe::disttest
