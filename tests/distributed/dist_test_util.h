// Launching gqe ranks as real processes on 127.0.0.1 for the distributed tests (GQE_BIN).
#pragma once
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "gqe/core/config.h"
#include "process_util.h"
#include "test_util.h"

namespace gqe::disttest {

// The process helpers live in tests/process_util.h (shared with the kill -9 resume test).
using test::free_port;
using test::rank_env;
using test::slurp;
using test::spawn;
using test::wait_for;

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
  s.bin = test::gqe_bin();
  s.dir = test::train_inputs_dir(name, 300, "And God said, Let there be light: and there was light. ");
  s.data = s.dir + "/text.txt";
  s.config = s.dir + "/model.json";
  return s;
}

inline std::vector<std::string> train_args(const RunSetup& s, const std::string& out, const std::string& steps) {
  return {s.bin, "train", "--config", s.config, "--data", s.data, "--out", s.dir + "/" + out, "--steps", steps,
          "--batch", "2", "--seq", "16", "--global-batch", "64", "--threads", "1", "--sample-tokens", "0",
          "--eval-every", "0", "--seed", "5", "--lr", "1e-2", "--dist-timeout", "60"};
}

}  // namespace gqe::disttest
