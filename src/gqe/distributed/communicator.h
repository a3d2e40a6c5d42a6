// Data-parallel communication on PyTorch's c10d: a TCPStore rendezvous and a Gloo (CPU) or NCCL (CUDA)
// process group, configured the torchrun way from the environment (RANK, WORLD_SIZE, LOCAL_RANK,
// MASTER_ADDR, MASTER_PORT). The c10d headers stay inside this folder; callers see only this interface.
#pragma once
#include <ATen/ATen.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace gqe {

struct DistEnv {
  int rank = 0;
  int world_size = 1;
  int local_rank = 0;
  std::string master_addr = "127.0.0.1";
  int master_port = 29500;
  bool from_environment = false;  // true when WORLD_SIZE was set
  // Names the job in the rendezvous store, so that a rank that reaches another job's store (a MASTER_PORT
  // already in use) never joins it: GQE_RUN_ID, else TORCHELASTIC_RUN_ID (torchrun), else empty and the
  // caller sets one that all ranks of the job share (run_id_for_output).
  std::string run_id;
};

// Reads RANK / WORLD_SIZE / LOCAL_RANK / MASTER_ADDR / MASTER_PORT / GQE_RUN_ID. Without WORLD_SIZE: a
// single process. Throws gqe::Error naming the variable when a value is malformed or inconsistent
// (RANK >= WORLD_SIZE, ...).
DistEnv dist_env_from_environment();

// The default run id of a training job: a hash of the absolute output directory, which all ranks of one
// job share and two jobs never do (a run directory has one owner).
std::string run_id_for_output(const std::string& out_dir);

// What every rank of one job must agree on, as named fields in a fixed order ("model.hidden_size" -> "512",
// "recipe.micro_batch" -> "2", "data.train" -> ...). Compared across ranks at start-up (with the world
// size): a difference is an error naming the field, its values and the ranks.
using JobFingerprint = std::vector<std::pair<std::string, std::string>>;

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int world_size() const = 0;
  // In-place sum over ranks of each tensor (same shapes and dtypes on every rank). Throws gqe::Error
  // with a clear message when a peer died or the timeout passed.
  virtual void allreduce_sum(std::vector<at::Tensor>& tensors) = 0;
  // In-place: every rank gets root's values.
  virtual void broadcast(std::vector<at::Tensor>& tensors, int root) = 0;
  virtual void barrier() = 0;
  bool is_main() const { return rank() == 0; }
};

// world_size 1: every collective is a no-op.
std::unique_ptr<Communicator> make_local_communicator();

// Gloo over TCP. Rank 0 hosts the TCPStore at MASTER_ADDR:MASTER_PORT; all ranks must call this.
// `timeout` bounds the whole start-up (rendezvous.h: store, job and fingerprint check, group)
// and every collective, so a dead rank ends the others with an error.
std::unique_ptr<Communicator> make_gloo_communicator(const DistEnv& env, std::chrono::milliseconds timeout,
                                                     const JobFingerprint& fingerprint = {});

#ifdef GQE_WITH_CUDA
// NCCL over TCP rendezvous; `device` is this rank's GPU (cuda:LOCAL_RANK). cuda/nccl_communicator.cpp.
std::unique_ptr<Communicator> make_nccl_communicator(const DistEnv& env, std::chrono::milliseconds timeout,
                                                     const at::Device& device, const JobFingerprint& fingerprint = {});
#endif

// The communicator for `env` and the device the model trains on: local when world_size == 1; NCCL for
// CUDA (builds with GQE_CUDA; others refuse with a clear error); Gloo for the CPU.
std::unique_ptr<Communicator> make_communicator(const DistEnv& env, std::chrono::milliseconds timeout,
                                                const at::Device& device = at::kCPU,
                                                const JobFingerprint& fingerprint = {});

// Averages the gradients of `params` over ranks in place (sum, then divide by world size). Gradients are
// packed into flat buckets of at most `bucket_bytes` so that a model costs a few collectives, not one per
// tensor. Parameters without a gradient get a zero gradient first (every rank must send the same layout).
void allreduce_mean_gradients(Communicator& comm, const std::vector<at::Tensor>& params,
                              int64_t bucket_bytes = 64ll << 20);

}  // namespace gqe
