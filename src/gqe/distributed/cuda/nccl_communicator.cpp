// NCCL for CUDA ranks (built with GQE_CUDA only): c10d's ProcessGroupNCCL behind the same Communicator
// interface as Gloo, rendezvous through the same TCPStore. One GPU per rank: `device` (cuda:LOCAL_RANK).
// The c10d headers declare ProcessGroupNCCL only under this macro (libtorch's own build sets it); the
// symbols live in libtorch_cuda.so.
#ifndef USE_C10D_NCCL
#define USE_C10D_NCCL
#endif
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>

#include <c10/cuda/CUDAFunctions.h>

#include "gqe/distributed/process_group_communicator.h"

namespace gqe {

std::unique_ptr<Communicator> make_nccl_communicator(const DistEnv& env, std::chrono::milliseconds timeout,
                                                     const at::Device& device, const JobFingerprint& fingerprint) {
  if (!device.is_cuda() || !device.has_index())
    throw Error("NCCL communicator: expected a CUDA device with an index, got " + device.str());
  c10::cuda::set_device(device.index());  // NCCL binds the communicator to the current device
  auto make_group = [&](const c10::intrusive_ptr<c10d::Store>& store) {
    auto opts = c10d::ProcessGroupNCCL::Options::create();
    opts->timeout = timeout;
    return c10::make_intrusive<c10d::ProcessGroupNCCL>(store, env.rank, env.world_size, opts);
  };
  return std::make_unique<ProcessGroupCommunicator<c10d::ProcessGroupNCCL>>(env, timeout, "NCCL", make_group, fingerprint,
                                                                            device);
}

}  // namespace gqe
