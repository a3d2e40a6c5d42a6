#include "gqe/kernels/cuda/route_top_k.h"

#include <ATen/AccumulateType.h>
#include <ATen/Dispatch.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>

#include <vector>

namespace gqe::kernels::cuda {
namespace {

template <typename scalar_t>
__global__ void route_top_k_kernel(const scalar_t* __restrict__ probs, int64_t* __restrict__ out, int64_t rows,
                                   int M, int k) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= rows) return;
  const scalar_t* row = probs + i * M;
  int64_t* dst = out + i * k;
  using acc_t = at::acc_type<scalar_t, /*is_cuda=*/true>;  // float for half/bf16/float, double for double
  for (int r = 0; r < k; ++r) {
    int best = -1;
    acc_t best_p = 0;
    for (int m = 0; m < M; ++m) {
      bool taken = false;
      for (int j = 0; j < r; ++j) taken |= dst[j] == m;
      if (taken) continue;
      const acc_t p = static_cast<acc_t>(row[m]);
      if (best < 0 || p > best_p) best = m, best_p = p;  // strict: ties keep the lower index
    }
    dst[r] = best;
  }
}

}  // namespace

at::Tensor route_top_k(const at::Tensor& probs, int64_t k) {
  TORCH_CHECK(probs.is_cuda(), "kernels::cuda::route_top_k: expected CUDA probabilities, got ", probs.device());
  const int64_t M = probs.size(-1), rows = probs.numel() / M;
  TORCH_CHECK(k >= 1 && k <= M, "route_tokens: k = ", k, " outside 1..", M);
  c10::cuda::CUDAGuard guard(probs.device());
  at::Tensor p = probs.contiguous();
  std::vector<int64_t> out_shape(probs.sizes().begin(), probs.sizes().end());
  out_shape.back() = k;
  at::Tensor sel = at::empty(out_shape, probs.options().dtype(at::kLong));
  if (rows == 0) return sel;
  constexpr int threads = 256;
  const int64_t blocks = (rows + threads - 1) / threads;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, p.scalar_type(), "route_top_k", [&] {
    route_top_k_kernel<scalar_t><<<blocks, threads, 0, at::cuda::getCurrentCUDAStream()>>>(
        p.data_ptr<scalar_t>(), sel.data_ptr<int64_t>(), rows, int(M), int(k));
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return sel;
}

}  // namespace gqe::kernels::cuda
