// A Communicator over one c10d process group (Gloo or NCCL), for communicator.cpp and
// cuda/nccl_communicator.cpp only: the c10d headers stay out of the rest of gqe. Rendezvous through a
// TCPStore hosted by rank 0, the torchrun way; every collective waits for its work and turns a c10d failure
// (a peer that died, a timeout) into a gqe::Error that names the rank and the operation.
#pragma once
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include <functional>
#include <string>

#include "gqe/core/error.h"
#include "gqe/distributed/communicator.h"

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

  ProcessGroupCommunicator(const DistEnv& env, std::chrono::milliseconds timeout, const std::string& backend,
                           const MakeGroup& make_group, at::Device device = at::kCPU)
      : env_(env), device_(device) {
    c10d::TCPStoreOptions so;
    so.port = uint16_t(env.master_port);
    so.isServer = env.rank == 0;
    so.numWorkers = size_t(env.world_size);
    so.waitWorkers = true;
    so.timeout = timeout;
    try {
      store_ = c10::make_intrusive<c10d::TCPStore>(env.master_addr, so);
      pg_ = make_group(store_);
    } catch (const std::exception& e) {
      throw Error("rank " + std::to_string(env.rank) + "/" + std::to_string(env.world_size) + ": cannot join the " +
                  backend + " process group at " + env.master_addr + ":" + std::to_string(env.master_port) +
                  " within " + std::to_string(timeout.count() / 1000) + " s (are all ranks started, and " +
                  "MASTER_ADDR/MASTER_PORT the same for all?): " + first_line(e.what()));
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
