// NCCL with world size 1 on the GPU: rendezvous through the TCPStore, all-reduce and broadcast of CUDA
// tensors and of CPU scalars (which travel through the GPU), and gradient averaging.
#include <gtest/gtest.h>

#include "cuda_test_util.h"
#include "gqe/distributed/communicator.h"

namespace gqe {
namespace {

TEST(NcclCommunicator, CpuTrainingNeverPicksNccl) {
  DistEnv env;  // world size 1: local
  EXPECT_EQ(make_communicator(env, std::chrono::seconds(5), at::kCPU)->world_size(), 1);
}

TEST(NcclCommunicatorGpu, WorldSizeOneCollectives) {
  GQE_REQUIRE_GPU();
  DistEnv env;
  env.master_port = 29731;
  auto comm = make_nccl_communicator(env, std::chrono::seconds(60), at::Device(at::kCUDA, 0));
  std::vector<at::Tensor> ts = {at::arange(5, at::TensorOptions(at::kCUDA).dtype(at::kFloat)),
                                at::full({}, 2.5, at::kDouble)};
  comm->allreduce_sum(ts);
  EXPECT_TRUE(at::equal(ts[0].cpu(), at::arange(5, at::kFloat)));
  EXPECT_EQ(ts[1].item<double>(), 2.5);
  EXPECT_TRUE(ts[1].device().is_cpu());
  comm->broadcast(ts, 0);
  comm->barrier();
  at::Tensor p = at::ones({3}, at::kCUDA).requires_grad_();
  p.sum().backward();
  allreduce_mean_gradients(*comm, {p});  // world size 1: unchanged
  EXPECT_TRUE(at::equal(p.grad().cpu(), at::ones({3})));
}

}  // namespace
}  // namespace gqe
