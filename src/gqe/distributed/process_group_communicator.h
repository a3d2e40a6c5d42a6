// A Communicator over one c10d process group (Gloo or NCCL), for communicator.cpp and
// cuda/nccl_communicator.cpp only: the c10d headers stay out of the rest of gqe. Rendezvous through a
// TCPStore hosted by rank 0, the torchrun way, and the job check of rendezvous.h; every collective waits for its work and turns a c10d failure
// (a peer that died, a timeout) into a gqe::Error that names the rank and the operation.
#pragma once
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include <functional>
#include <string>

#include "gqe/core/error.h"
#include "gqe/distributed/communicator.h"
#include "gqe/distributed/rendezvous.h"

namespace gqe {

inline std::string first_line(const std::string& s) {
  auto nl = s.find('\n');
  return nl == std::string::npos ? s : s.substr(0, nl);
}

// Group: c10d::ProcessGroupGloo or c10d::ProcessGroupNCCL. Tensors whose device the group cannot take
// (CPU scalars on NCCL) travel through `device` and are copied back.
template <class Group>
class ProcessGroupCommunicator : public Communicator {
 public:
  using MakeGroup = std::function<c10::intrusive_ptr<Group>(const c10::intrusive_ptr<c10d::Store>&)>;

  // make_group gets the store under this job's process-group prefix (rendezvous.h).
  ProcessGroupCommunicator(const DistEnv& env, std::chrono::milliseconds timeout, const std::string& backend,
                           const MakeGroup& make_group, const JobFingerprint& fingerprint, at::Device device = at::kCPU)
      : env_(env), device_(device) {
    StartupDeadline deadline(env, timeout);
    const std::string at = env.master_addr + ":" + std::to_string(env.master_port);
    c10d::TCPStoreOptions so;
    so.port = uint16_t(env.master_port);
    so.isServer = env.rank == 0;
    so.numWorkers = size_t(env.world_size);
    so.waitWorkers = false;  // join_job waits for the ranks, within the deadline, and names the missing ones
    so.timeout = deadline.remaining();
    deadline.phase("connecting to the rendezvous store at " + at);
    try {
      store_ = c10::make_intrusive<c10d::TCPStore>(env.master_addr, so);
    } catch (const std::exception& e) {
      throw Error(deadline.rank_prefix() + "cannot " + (env.rank == 0 ? "host" : "reach") + " the rendezvous store at " +
                  at + ", " + deadline.waited() + ": " + first_line(e.what()) +
                  (env.rank == 0 ? " (is MASTER_PORT in use by another program?)"
                                 : " (is rank 0 started, and MASTER_ADDR/MASTER_PORT the same for all ranks?)"));
    }
    join_job(*store_, env, fingerprint, deadline);
    deadline.phase("connecting the " + backend + " process group");
    try {
      store_->setTimeout(deadline.remaining());
      pg_ = make_group(c10::make_intrusive<c10d::PrefixStore>(process_group_prefix(env), store_));
      store_->setTimeout(timeout);
    } catch (const std::exception& e) {
      throw Error(deadline.rank_prefix() + "cannot connect the " + backend + " process group via " + at + ", " +
                  deadline.waited() + " (a rank stopped during start-up?): " + first_line(e.what()));
    }
  }
  int rank() const override { return env_.rank; }
  int world_size() const override { return env_.world_size; }

  void allreduce_sum(std::vector<at::Tensor>& tensors) override {
    for (auto& t : tensors) {
      std::vector<at::Tensor> one{on_device(t)};
      run("all-reduce", [&] { return pg_->allreduce(one); });
      if (!one[0].is_same(t)) t.copy_(one[0]);
    }
  }
  void broadcast(std::vector<at::Tensor>& tensors, int root) override {
    for (auto& t : tensors) {
      std::vector<at::Tensor> one{on_device(t)};
      c10d::BroadcastOptions o;
      o.rootRank = root;
      run("broadcast", [&] { return pg_->broadcast(one, o); });
      if (!one[0].is_same(t)) t.copy_(one[0]);
    }
  }
  void barrier() override {
    run("barrier", [&] { return pg_->barrier(); });
  }

 private:
  at::Tensor on_device(const at::Tensor& t) const { return t.device() == device_ ? t : t.to(device_); }

  template <class F>
  void run(const char* what, F&& f) {
    try {
      auto work = f();
      work->wait();
    } catch (const std::exception& e) {
      // Gloo reports a peer that exited as a closed connection, and a hung peer as a timeout.
      throw Error("rank " + std::to_string(env_.rank) + "/" + std::to_string(env_.world_size) + ": " + what +
                  " failed, another rank has probably died or stalled (stopping this rank too): " +
                  first_line(e.what()));
    }
  }

  DistEnv env_;
  at::Device device_;
  c10::intrusive_ptr<c10d::Store> store_;
  c10::intrusive_ptr<Group> pg_;
};

}  // namespace gqe
