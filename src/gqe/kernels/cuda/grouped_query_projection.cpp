#include "gqe/kernels/cuda/grouped_query_projection.h"

#include "gqe/core/autocast.h"

#include <vector>

namespace gqe::kernels::cuda {
namespace {

// Rows of xs [R, d] times per-expert weights w [E, d, d_h], expert e taking rows [offs[e-1], offs[e]).
// The run ends must be on the host: a device-to-host copy, which waits for the GPU (the fallback only).
at::Tensor per_expert_matmul(const at::Tensor& xs, const at::Tensor& w, const at::Tensor& offsets) {
  at::Tensor host_ends = offsets.to(at::kCPU, at::kLong);
  const int64_t* end = host_ends.data_ptr<int64_t>();
  std::vector<at::Tensor> parts;
  int64_t off = 0;
  for (int64_t e = 0; e < w.size(0); ++e) {
    if (end[e] == off) continue;
    parts.push_back(at::matmul(xs.narrow(0, off, end[e] - off), w[e]));
    off = end[e];
  }
  return at::cat(parts, 0);
}

// Whether libtorch's grouped matmul takes these operands: rows of a multiple of 16 bytes (d and d_h), and
// on CUDA bf16 only (the Hopper kernel); the CPU implementation takes any float dtype.
bool grouped_mm_runs(const at::Tensor& xs, int64_t head_dim) {
  const int64_t bytes = int64_t(xs.element_size());
  if ((xs.size(1) * bytes) % 16 != 0 || (head_dim * bytes) % 16 != 0) return false;
  if (xs.device().is_cpu()) return true;
  return xs.device().is_cuda() && xs.scalar_type() == at::kBFloat16;
}

}  // namespace

at::Tensor grouped_query_projection(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& selected,
                                    int64_t experts_per_group, int64_t head_dim, GroupedGemm gemm) {
  TORCH_CHECK(x.dim() == 3 && selected.dim() == 4 && weight.dim() == 2, "grouped_query_projection: expected x ",
              "[B, T, d], weight [N*d_h, d], selected [B, T, G, k]; got ", x.sizes(), ", ", weight.sizes(), ", ",
              selected.sizes());
  const int64_t B = x.size(0), T = x.size(1), d = x.size(2), G = selected.size(2), k = selected.size(3);
  const int64_t M = experts_per_group, dh = head_dim, N = G * M;
  TORCH_CHECK(selected.size(0) == B && selected.size(1) == T && weight.size(0) == N * dh && weight.size(1) == d,
              "grouped_query_projection: x ", x.sizes(), ", weight ", weight.sizes(), " and selected ",
              selected.sizes(), " do not fit G=", G, " M=", M, " d_h=", dh);
  TORCH_CHECK(x.device() == weight.device() && x.device() == selected.device(), "grouped_query_projection: x on ",
              x.device(), ", weight on ", weight.device(), ", selected on ", selected.device());
  TORCH_CHECK(selected.scalar_type() == at::kLong, "grouped_query_projection: selected must be int64");

  // Slot s = (token i, group g, rank r) at s = i*G*k + g*k + r; its expert is g*M + selected[i,g,r].
  at::Tensor group_base = at::arange(G, selected.options()).mul_(M).view({1, 1, G, 1});
  at::Tensor expert = (selected + group_base).reshape({-1});                       // [B*T*G*k]
  auto [sorted_expert, order] = expert.sort(/*stable=*/true, /*dim=*/0, /*descending=*/false);  // slots by expert
  // Where each expert's run of rows ends: offsets[e] = number of slots with expert <= e, found on the device
  // by a binary search of the sorted ids (at::bincount would copy its size to the host: a sync per layer).
  at::Tensor offsets = at::searchsorted(sorted_expert, at::arange(N, expert.options()), /*out_int32=*/true,
                                        /*right=*/true);                           // [N] int32
  at::Tensor token = order.div(G * k, "floor");                                    // x row of each sorted slot

  at::ScalarType dtype = x.scalar_type();
  if (x.device().is_cuda() && cuda_autocast_enabled()) dtype = cuda_autocast_dtype();
  at::Tensor xs = x.reshape({B * T, d}).index_select(0, token).to(dtype);         // [S, d]
  at::Tensor w = weight.view({N, dh, d}).transpose(1, 2).to(dtype);                // [N, d, d_h]

  if (gemm == GroupedGemm::automatic)
    gemm = grouped_mm_runs(xs, dh) ? GroupedGemm::grouped_mm : GroupedGemm::per_expert;
  at::Tensor ys;  // [S, d_h] in expert order
  if (gemm == GroupedGemm::grouped_mm) {
    ys = at::_grouped_mm(xs, w, offsets);
  } else {
    ys = per_expert_matmul(xs, w, offsets);
  }
  // Back to slot order: row j of ys is slot order[j] (a permutation, so every row is written).
  return at::empty_like(ys).index_copy(0, order, ys).view({B, T, G * k, dh});
}

}  // namespace gqe::kernels::cuda
