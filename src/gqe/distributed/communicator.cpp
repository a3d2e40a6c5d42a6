#include "gqe/distributed/communicator.h"

// Debian's libtorch is built with Gloo; the public c10d headers only declare ProcessGroupGloo when this
// macro is set (the build of libtorch itself defines it). The symbols live in libtorch_cpu.so.
#ifndef USE_C10D_GLOO
#define USE_C10D_GLOO
#endif
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <limits>

#include "gqe/core/error.h"
#include "gqe/distributed/process_group_communicator.h"

namespace gqe {

namespace {

int env_int(const char* name, int def, bool& present) {
  const char* v = std::getenv(name);
  present = v && *v;
  if (!present) return def;
  char* end = nullptr;
  errno = 0;
  long x = std::strtol(v, &end, 10);
  if (*end != '\0' || errno != 0 || x < 0 || x > std::numeric_limits<int>::max())
    throw Error(std::string("environment variable ") + name + "='" + v + "': expected a non-negative integer");
  return int(x);
}

class LocalCommunicator : public Communicator {
 public:
  int rank() const override { return 0; }
  int world_size() const override { return 1; }
  void allreduce_sum(std::vector<at::Tensor>&) override {}
  void broadcast(std::vector<at::Tensor>&, int) override {}
  void barrier() override {}
};

// The Gloo group of this rank over the rendezvous store (hosted by rank 0).
c10::intrusive_ptr<c10d::ProcessGroupGloo> make_gloo_group(const DistEnv& env, const c10::intrusive_ptr<c10d::Store>& store,
                                                           std::chrono::milliseconds timeout) {
  auto opts = c10d::ProcessGroupGloo::Options::create(timeout);
  // Bind to the address the peers reach us by: the master's interface on one host; on a cluster,
  // GLOO_SOCKET_IFNAME picks the interface (as in PyTorch).
  if (const char* ifname = std::getenv("GLOO_SOCKET_IFNAME"); ifname && *ifname)
    opts->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(ifname));
  else if (env.master_addr == "127.0.0.1" || env.master_addr == "localhost")
    opts->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1"));
  else
    opts->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
  opts->threads = 2;
  return c10::make_intrusive<c10d::ProcessGroupGloo>(store, env.rank, env.world_size, opts);
}

}  // namespace

DistEnv dist_env_from_environment() {
  DistEnv e;
  bool has_world = false, has_rank = false, present = false;
  e.world_size = env_int("WORLD_SIZE", 1, has_world);
  e.rank = env_int("RANK", 0, has_rank);
  e.local_rank = env_int("LOCAL_RANK", e.rank, present);
  e.from_environment = has_world;
  if (e.world_size < 1) throw Error("environment variable WORLD_SIZE=0: expected >= 1");
  if (e.rank >= e.world_size)
    throw Error("environment: RANK=" + std::to_string(e.rank) + " is not below WORLD_SIZE=" + std::to_string(e.world_size));
  if (e.world_size > 1 && !has_rank) throw Error("environment: WORLD_SIZE=" + std::to_string(e.world_size) + " but RANK is not set");
  if (const char* a = std::getenv("MASTER_ADDR"); a && *a) e.master_addr = a;
  else if (e.world_size > 1) throw Error("environment: WORLD_SIZE > 1 but MASTER_ADDR is not set");
  e.master_port = env_int("MASTER_PORT", 29500, present);
  if (!present && e.world_size > 1) throw Error("environment: WORLD_SIZE > 1 but MASTER_PORT is not set");
  if (e.master_port < 1 || e.master_port > 65535)
    throw Error("environment variable MASTER_PORT=" + std::to_string(e.master_port) + ": expected 1..65535");
  if (const char* id = std::getenv("GQE_RUN_ID"); id && *id) {
    e.run_id = id;
    if (e.run_id.size() > 128 || e.run_id.find('/') != std::string::npos)
      throw Error("environment variable GQE_RUN_ID='" + e.run_id + "': expected at most 128 characters and no '/'");
  } else if (const char* te = std::getenv("TORCHELASTIC_RUN_ID"); te && *te && std::string(te) != "none") {
    e.run_id = "torchelastic-" + std::string(te);
  }
  return e;
}

std::string run_id_for_output(const std::string& out_dir) {
  std::error_code ec;
  std::filesystem::path p = std::filesystem::weakly_canonical(std::filesystem::absolute(out_dir, ec), ec);
  if (p.empty()) p = std::filesystem::path(out_dir).lexically_normal();
  if (!p.has_filename() && p.has_parent_path()) p = p.parent_path();  // "dir/" is "dir"
  const std::string path = p.string();
  uint64_t h = 1469598103934665603ull;  // FNV-1a: the same on every host and build
  for (unsigned char c : path) h = (h ^ c) * 1099511628211ull;
  char buf[32];
  std::snprintf(buf, sizeof buf, "out-%016llx", static_cast<unsigned long long>(h));
  return buf;
}

std::unique_ptr<Communicator> make_local_communicator() { return std::make_unique<LocalCommunicator>(); }

std::unique_ptr<Communicator> make_gloo_communicator(const DistEnv& env, std::chrono::milliseconds timeout,
                                                     const JobFingerprint& fingerprint) {
  return std::make_unique<ProcessGroupCommunicator<c10d::ProcessGroupGloo>>(
      env, timeout, "Gloo", [&](const c10::intrusive_ptr<c10d::Store>& store) { return make_gloo_group(env, store, timeout); },
      fingerprint);
}

std::unique_ptr<Communicator> make_communicator(const DistEnv& env, std::chrono::milliseconds timeout,
                                                const at::Device& device, const JobFingerprint& fingerprint) {
  if (env.world_size == 1) return make_local_communicator();
#ifdef GQE_WITH_CUDA
  if (device.is_cuda()) return make_nccl_communicator(env, timeout, device, fingerprint);
#else
  if (device.is_cuda())
    throw Error("distributed training on " + device.str() + " needs NCCL, which this build of gqe lacks (build it "
                "with GQE_CUDA, see docs/gpu.md)");
#endif
  return make_gloo_communicator(env, timeout, fingerprint);
}

void allreduce_mean_gradients(Communicator& comm, const std::vector<at::Tensor>& params, int64_t bucket_bytes) {
  if (comm.world_size() == 1) return;
  torch::NoGradGuard g;
  std::vector<at::Tensor> grads;
  for (const auto& p : params) {
    if (!p.grad().defined()) p.mutable_grad() = at::zeros_like(p);
    grads.push_back(p.grad());
  }
  size_t i = 0;
  while (i < grads.size()) {
    // One bucket: consecutive gradients of one dtype up to bucket_bytes (at least one tensor).
    size_t j = i;
    int64_t bytes = 0;
    while (j < grads.size() && grads[j].scalar_type() == grads[i].scalar_type() &&
           (j == i || bytes + grads[j].numel() * int64_t(grads[j].element_size()) <= bucket_bytes)) {
      bytes += grads[j].numel() * int64_t(grads[j].element_size());
      ++j;
    }
    std::vector<at::Tensor> flat_parts;
    for (size_t k = i; k < j; ++k) flat_parts.push_back(grads[k].reshape({-1}));
    std::vector<at::Tensor> bucket{at::cat(flat_parts)};
    comm.allreduce_sum(bucket);
    bucket[0].div_(double(comm.world_size()));
    int64_t off = 0;
    for (size_t k = i; k < j; ++k) {
      const int64_t n = grads[k].numel();
      grads[k].copy_(bucket[0].narrow(0, off, n).view_as(grads[k]));
      off += n;
    }
    i = j;
  }
}

}  // namespace gqe
